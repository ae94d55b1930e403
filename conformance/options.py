"""The suite's options (pytest group ``replay``), each with an environment fallback.

``--target URL`` (``REPLAY_TARGET``, comma-separated; repeatable: one URL per node),
``--api-key`` (``REPLAY_API_KEY``), ``--target-cmd CMD`` (``REPLAY_TARGET_CMD``; placeholders
``{port}``, ``{api_key}``, ``{python}``), ``--target-image IMAGE`` (``REPLAY_TARGET_IMAGE``),
``--target-image-port`` (``REPLAY_TARGET_IMAGE_PORT``, default 8080), ``--replay-report PATH``
(``REPLAY_REPORT``), ``--replay-timeout S`` (``REPLAY_TIMEOUT``, default 30), ``--clause SELECTOR``
(``REPLAY_CLAUSE``) and ``--feature NAME`` (``REPLAY_FEATURE``; both repeatable or
comma-separated; see :mod:`conformance.selection`). Without a target option the suite launches
the reference server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from conformance.errors import SuiteError
from conformance.launch import DEFAULT_COMMAND, LaunchSpec
from conformance.selection import Selection

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pytest

__all__ = [
    "OPTIONS",
    "OPT_API_KEY",
    "OPT_BASELINE",
    "OPT_CLAUSE",
    "OPT_FEATURE",
    "OPT_HISTORY",
    "OPT_HTML",
    "OPT_REPORT",
    "OPT_TARGET",
    "OPT_TARGET_CMD",
    "OPT_TARGET_IMAGE",
    "OPT_TARGET_IMAGE_PORT",
    "OPT_TIMEOUT",
    "Settings",
    "add_options",
    "resolve_settings",
]

OPT_TARGET: Final = "--target"
OPT_API_KEY: Final = "--api-key"
OPT_TARGET_CMD: Final = "--target-cmd"
OPT_TARGET_IMAGE: Final = "--target-image"
OPT_TARGET_IMAGE_PORT: Final = "--target-image-port"
OPT_REPORT: Final = "--replay-report"
OPT_TIMEOUT: Final = "--replay-timeout"
OPT_CLAUSE: Final = "--clause"
OPT_BASELINE: Final = "--baseline"
OPT_HISTORY: Final = "--replay-history"
OPT_HTML: Final = "--replay-html"  # not --html: pytest-html has that one
OPT_FEATURE: Final = "--feature"

# option -> (dest, environment variable)
OPTIONS: Final[dict[str, tuple[str, str]]] = {
    OPT_TARGET: ("replay_target", "REPLAY_TARGET"),
    OPT_API_KEY: ("replay_api_key", "REPLAY_API_KEY"),
    OPT_TARGET_CMD: ("replay_target_cmd", "REPLAY_TARGET_CMD"),
    OPT_TARGET_IMAGE: ("replay_target_image", "REPLAY_TARGET_IMAGE"),
    OPT_TARGET_IMAGE_PORT: ("replay_target_image_port", "REPLAY_TARGET_IMAGE_PORT"),
    OPT_REPORT: ("replay_report", "REPLAY_REPORT"),
    OPT_TIMEOUT: ("replay_timeout", "REPLAY_TIMEOUT"),
    OPT_CLAUSE: ("replay_clause", "REPLAY_CLAUSE"),
    OPT_FEATURE: ("replay_feature", "REPLAY_FEATURE"),
    OPT_BASELINE: ("replay_baseline", "REPLAY_BASELINE"),
    OPT_HISTORY: ("replay_history", "REPLAY_HISTORY"),
    OPT_HTML: ("replay_html", "REPLAY_HTML"),
}
DEFAULT_TIMEOUT_S: Final = 30.0
DEFAULT_IMAGE_PORT: Final = 8080


@dataclass(frozen=True)
class Settings:
    """The ``replay`` options, resolved against their environment fallbacks."""

    targets: tuple[str, ...] = ()
    api_key: str | None = None
    target_cmd: str | None = None
    target_image: str | None = None
    target_image_port: int = DEFAULT_IMAGE_PORT
    report: str | None = None
    timeout: float = DEFAULT_TIMEOUT_S
    selection: Selection = field(default_factory=Selection)
    baseline: str | None = None
    history: str | None = None
    html: str | None = None

    @property
    def launch_spec(self) -> LaunchSpec:
        """How to reach or launch the target (priority: URLs, command, image, reference)."""
        return LaunchSpec(
            urls=self.targets,
            command=self.target_cmd,
            image=self.target_image,
            image_port=self.target_image_port,
            api_key=self.api_key,
        )

    def describe(self) -> str:
        """The target as the options name it (for the report header, before launch)."""
        spec = self.launch_spec
        if spec.mode == "url":
            return ", ".join(self.targets)
        if spec.mode == "image":
            return f"image {self.target_image} (port {self.target_image_port})"
        if spec.mode == "command":
            return f"command {self.target_cmd}"
        return f"reference server (command {DEFAULT_COMMAND})"


def resolve_settings(options: Mapping[str, Any], env: Mapping[str, str]) -> Settings:
    """Build :class:`Settings` from option values (by dest) and environment variables.

    An option given on the command line wins over its environment variable. Raises
    :class:`SuiteError` for a value that does not parse.
    """

    def value(option: str) -> Any:
        dest, variable = OPTIONS[option]
        given = options.get(dest)
        return given if given not in (None, []) else env.get(variable) or None

    def number(option: str, kind: type[float] | type[int], default: float) -> Any:
        raw = value(option)
        try:
            return kind(raw) if raw is not None else default
        except ValueError:
            raise SuiteError(f"replay: {option} must be a number, got {raw!r}") from None

    def listed(option: str) -> tuple[str, ...]:
        raw = value(option) or ()
        raw = [raw] if isinstance(raw, str) else raw
        return tuple(u.strip() for item in raw for u in item.split(",") if u.strip())

    return Settings(
        targets=listed(OPT_TARGET),
        api_key=value(OPT_API_KEY),
        target_cmd=value(OPT_TARGET_CMD),
        target_image=value(OPT_TARGET_IMAGE),
        target_image_port=number(OPT_TARGET_IMAGE_PORT, int, DEFAULT_IMAGE_PORT),
        report=value(OPT_REPORT),
        timeout=number(OPT_TIMEOUT, float, DEFAULT_TIMEOUT_S),
        selection=Selection(listed(OPT_CLAUSE), listed(OPT_FEATURE)),
        baseline=value(OPT_BASELINE),
        history=value(OPT_HISTORY),
        html=value(OPT_HTML),
    )


def add_options(parser: pytest.Parser) -> None:
    """Declare the ``replay`` option group."""
    group = parser.getgroup("replay", "replay/1 conformance suite")
    group.addoption(
        OPT_TARGET,
        action="append",
        dest="replay_target",
        metavar="URL",
        help="base URL of a target node (repeat for a cluster) [REPLAY_TARGET]",
    )
    group.addoption(
        OPT_API_KEY,
        dest="replay_api_key",
        metavar="KEY",
        help="the target's backend API key [REPLAY_API_KEY]",
    )
    group.addoption(
        OPT_TARGET_CMD,
        dest="replay_target_cmd",
        metavar="CMD",
        help="launch the target with CMD; placeholders {port} {api_key} {python} "
        "[REPLAY_TARGET_CMD]",
    )
    group.addoption(
        OPT_TARGET_IMAGE,
        dest="replay_target_image",
        metavar="IMAGE",
        help="launch the target from a container image (needs Docker) [REPLAY_TARGET_IMAGE]",
    )
    group.addoption(
        OPT_TARGET_IMAGE_PORT,
        dest="replay_target_image_port",
        metavar="PORT",
        help=f"the image's HTTP port (default {DEFAULT_IMAGE_PORT}) [REPLAY_TARGET_IMAGE_PORT]",
    )
    group.addoption(
        OPT_REPORT,
        dest="replay_report",
        metavar="PATH",
        help="write the report to PATH.json, PATH.md and PATH.badge.json [REPLAY_REPORT]",
    )
    group.addoption(
        OPT_TIMEOUT,
        dest="replay_timeout",
        metavar="SECONDS",
        help=f"default per-case timeout (default {DEFAULT_TIMEOUT_S:g}) [REPLAY_TIMEOUT]",
    )
    _add_scope(group)


def _add_scope(group: Any) -> None:
    """What the run judges (``--clause``, ``--feature``, ``--baseline``), and the histories."""
    group.addoption(
        OPT_HTML,
        dest="replay_html",
        metavar="PATH",
        help="write the report as one self-contained HTML file [REPLAY_HTML]",
    )
    group.addoption(
        OPT_HISTORY,
        dest="replay_history",
        metavar="DIR",
        help="write each failed case's whole event log to DIR as JSON lines [REPLAY_HISTORY]",
    )
    group.addoption(
        OPT_BASELINE,
        dest="replay_baseline",
        metavar="FILE",
        help="known failures (an earlier JSON report, or a list of clause IDs): they do not "
        "fail the run, a new failure does [REPLAY_BASELINE]",
    )
    group.addoption(
        OPT_CLAUSE,
        action="append",
        dest="replay_clause",
        metavar="SELECTOR",
        help="run only the cases citing these clauses and grade only them: an ID (SUB-4), "
        "a prefix (SUB) or a section (§10.2); repeatable [REPLAY_CLAUSE]",
    )
    group.addoption(
        OPT_FEATURE,
        action="append",
        dest="replay_feature",
        metavar="NAME",
        help="run only the cases of a feature and grade only its clauses; repeatable "
        "[REPLAY_FEATURE]",
    )
