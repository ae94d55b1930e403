"""The pytest plugin: options, target launch and preflight, grading, report.

Loaded in every pytest run of an environment where the package is installed (entry point
``pytest11``), it stays inert unless the run collects conformance cases (functions made by
``@case``). Then it launches the target (or reaches the one given), checks it once
(preflight: reachable, speaks replay/1, valid info, API key accepted) and fails fast with one
clear line if not; grades each case; and at the end writes the report and prints a clause
summary.

Options (group ``replay``), each with an environment fallback:

``--target URL`` (``REPLAY_TARGET``, comma-separated; repeatable: one URL per node),
``--api-key`` (``REPLAY_API_KEY``), ``--target-cmd CMD`` (``REPLAY_TARGET_CMD``; placeholders
``{port}``, ``{api_key}``, ``{python}``), ``--target-image IMAGE`` (``REPLAY_TARGET_IMAGE``),
``--target-image-port`` (``REPLAY_TARGET_IMAGE_PORT``, default 8080), ``--replay-report PATH``
(``REPLAY_REPORT``), ``--replay-timeout S`` (``REPLAY_TIMEOUT``, default 30). Without a
target option the suite launches the reference server.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import hypothesis
import pytest

from conformance import clauses, schemas
from conformance.case import spec_of, unclaimed
from conformance.driver import Driver
from conformance.findings import (
    SuiteError,
    as_failure,
    failure_dict,
    summarize,
)
from conformance.report import (
    FAILED,
    CaseResult,
    ClauseVerdict,
    grade,
    is_strict,
    render_json,
    terminal_lines,
    write_report,
)
from conformance.scenarios.profiles import DEFAULT_PROFILE
from conformance.target import DEFAULT_COMMAND, INFO_PATH, LaunchSpec, Target, launch

if TYPE_CHECKING:
    from collections.abc import Generator, Mapping

    from conformance.case import CaseSpec

__all__ = [
    "OPT_API_KEY",
    "OPT_REPORT",
    "OPT_TARGET",
    "OPT_TARGET_CMD",
    "OPT_TARGET_IMAGE",
    "OPT_TARGET_IMAGE_PORT",
    "OPT_TIMEOUT",
    "Settings",
    "preflight",
    "resolve_settings",
    "session_target",
]

OPT_TARGET: Final = "--target"
OPT_API_KEY: Final = "--api-key"
OPT_TARGET_CMD: Final = "--target-cmd"
OPT_TARGET_IMAGE: Final = "--target-image"
OPT_TARGET_IMAGE_PORT: Final = "--target-image-port"
OPT_REPORT: Final = "--replay-report"
OPT_TIMEOUT: Final = "--replay-timeout"

# option -> (dest, environment variable)
_OPTIONS: Final[dict[str, tuple[str, str]]] = {
    OPT_TARGET: ("replay_target", "REPLAY_TARGET"),
    OPT_API_KEY: ("replay_api_key", "REPLAY_API_KEY"),
    OPT_TARGET_CMD: ("replay_target_cmd", "REPLAY_TARGET_CMD"),
    OPT_TARGET_IMAGE: ("replay_target_image", "REPLAY_TARGET_IMAGE"),
    OPT_TARGET_IMAGE_PORT: ("replay_target_image_port", "REPLAY_TARGET_IMAGE_PORT"),
    OPT_REPORT: ("replay_report", "REPLAY_REPORT"),
    OPT_TIMEOUT: ("replay_timeout", "REPLAY_TIMEOUT"),
}
DEFAULT_TIMEOUT_S: Final = 30.0
DEFAULT_IMAGE_PORT: Final = 8080
PREFLIGHT_TIMEOUT_S: Final = 5.0
# The exit status of a run stopped by preflight: the target cannot be judged as configured.
PREFLIGHT_EXIT: Final = pytest.ExitCode.USAGE_ERROR
_CASES_DIR: Final = Path(__file__).resolve().parent / "cases"


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
        dest, variable = _OPTIONS[option]
        given = options.get(dest)
        return given if given not in (None, []) else env.get(variable) or None

    def number(option: str, kind: type[float] | type[int], default: float) -> Any:
        raw = value(option)
        try:
            return kind(raw) if raw is not None else default
        except ValueError:
            raise SuiteError(f"replay: {option} must be a number, got {raw!r}") from None

    raw_targets = value(OPT_TARGET) or ()
    raw_targets = [raw_targets] if isinstance(raw_targets, str) else raw_targets
    targets = tuple(u.strip() for item in raw_targets for u in item.split(",") if u.strip())
    return Settings(
        targets=targets,
        api_key=value(OPT_API_KEY),
        target_cmd=value(OPT_TARGET_CMD),
        target_image=value(OPT_TARGET_IMAGE),
        target_image_port=number(OPT_TARGET_IMAGE_PORT, int, DEFAULT_IMAGE_PORT),
        report=value(OPT_REPORT),
        timeout=number(OPT_TIMEOUT, float, DEFAULT_TIMEOUT_S),
    )


# --- preflight ----------------------------------------------------------------------------------


def _http(method: str, url: str, api_key: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method)
    if api_key is not None:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=PREFLIGHT_TIMEOUT_S) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None) or exc
    return str(reason).splitlines()[0] if str(reason) else type(exc).__name__


def preflight(target: Target) -> dict[str, Any]:
    """Check every node once; returns the first node's info. Raises one-line SuiteErrors."""
    infos = []
    for url in target.urls:
        where = f"{url}{INFO_PATH}"
        try:
            status, raw = _http("GET", where)
        except (OSError, ValueError) as exc:
            raise SuiteError(f"replay: cannot reach target {where}: {_reason(exc)}") from None
        if status != 200:
            raise SuiteError(f"replay: target {where} answered HTTP {status}, not 200 (INF-1)")
        try:
            info = json.loads(raw)
        except ValueError:
            raise SuiteError(f"replay: target {where} did not answer JSON (INF-1)") from None
        protocol = info.get("protocol") if isinstance(info, dict) else None
        if protocol != "replay/1":
            raise SuiteError(f"replay: target {url} speaks {protocol!r}, this suite tests replay/1")
        if problems := schemas.validate("http-info-response", info):
            raise SuiteError(f"replay: target {where} is invalid (INF-1): {problems[0]}")
        probe = f"{url}/replay/v1/sessions/replay-preflight-{secrets.token_hex(6)}"
        try:
            status, raw = _http("DELETE", probe, target.api_key)
        except (OSError, ValueError) as exc:
            raise SuiteError(f"replay: cannot reach target {probe}: {_reason(exc)}") from None
        if status == 401:
            raise SuiteError(
                f"replay: target {url} rejected the API key (HTTP 401 on DELETE "
                "/replay/v1/sessions/<id>); pass the right one with --api-key or REPLAY_API_KEY"
            )
        if status != 404:
            raise SuiteError(
                f"replay: target {url} answered HTTP {status} to DELETE of an unknown session, "
                f"expected 404 (SES-13): {summarize(raw.decode(errors='replace'), 120)}"
            )
        infos.append(info)
    first: dict[str, Any] = infos[0]
    return first


# --- plugin state -------------------------------------------------------------------------------


@dataclass
class _State:
    settings: Settings | None = None
    cases: dict[str, CaseSpec] = field(default_factory=dict)  # nodeid -> spec (collected)
    results: dict[str, CaseResult] = field(default_factory=dict)
    driver: Driver | None = None
    target: Target | None = None
    verdicts: list[ClauseVerdict] | None = None
    written: tuple[Path, Path] | None = None


_STATE = pytest.StashKey[_State]()


def _settings(config: pytest.Config) -> Settings:
    state = config.stash[_STATE]
    if state.settings is None:
        options = {dest: config.getoption(dest) for dest, _ in _OPTIONS.values()}
        try:
            state.settings = resolve_settings(options, os.environ)
        except SuiteError as exc:
            raise pytest.UsageError(str(exc)) from None
    return state.settings


def session_target(config: pytest.Config) -> Target:
    """The launched and preflighted target (the ``target`` fixture returns it)."""
    target = config.stash[_STATE].target
    if target is None:
        raise SuiteError("the conformance target was not launched (run with conformance cases)")
    return target


def _selects_cases(config: pytest.Config) -> bool:
    """Whether the command line points at the suite's cases (for the header, before collection)."""
    root = config.invocation_params.dir
    for arg in config.args:
        path = (root / arg.split("::")[0]).resolve()
        if path == _CASES_DIR or _CASES_DIR in path.parents or path in _CASES_DIR.parents:
            return True
    return False


# --- hooks --------------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
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
        help="write the report to PATH.json and PATH.md [REPLAY_REPORT]",
    )
    group.addoption(
        OPT_TIMEOUT,
        dest="replay_timeout",
        metavar="SECONDS",
        help=f"default per-case timeout (default {DEFAULT_TIMEOUT_S:g}) [REPLAY_TIMEOUT]",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "clause(*ids): spec clauses a conformance case checks")
    config.addinivalue_line("markers", "feature(name): a feature a conformance case needs")
    config.stash[_STATE] = _State()


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    if not _selects_cases(config):
        return None
    return [f"replay target: {_settings(config).describe()}"]


def pytest_collection_finish(session: pytest.Session) -> None:
    state = session.config.stash[_STATE]
    for item in session.items:
        spec = spec_of(getattr(item, "obj", None))
        if spec is not None:
            state.cases[item.nodeid] = spec
    if not state.cases or session.config.option.collectonly:
        return
    settings = _settings(session.config)
    state.driver = Driver()
    try:
        state.target = launch(settings.launch_spec, state.driver, settings.timeout)
        state.target.info = preflight(state.target)
        state.target.open()
    except SuiteError as exc:
        _shutdown(state)
        pytest.exit(str(exc), returncode=PREFLIGHT_EXIT)
    if not session.config.getoption("hypothesis_profile", None):
        hypothesis.settings.load_profile(DEFAULT_PROFILE)  # the scenarios' CI size
    # Skip what the target does not claim now, so that pytest reports the case's location.
    for item in session.items:
        spec = state.cases.get(item.nodeid)
        reason = unclaimed(spec, state.target) if spec is not None else None
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    state = item.config.stash[_STATE]
    spec = state.cases.get(item.nodeid)
    if spec is None:
        return report
    result = state.results.setdefault(item.nodeid, CaseResult(item.nodeid, spec.clauses))
    result.duration_s += report.duration
    if report.skipped and result.outcome != FAILED:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        result.outcome, result.reason = "skipped", reason.removeprefix("Skipped: ")
    elif report.failed:
        error = call.excinfo.value if call.excinfo is not None else None
        result.failure = _failure_of(error, report)
        finding = as_failure(error)
        result.reason = finding.headline if finding is not None else ""
        result.reason = result.reason or str(result.failure["received"])
        result.outcome = FAILED
        result.strict = is_strict(result.failed_clauses, _catalog())
        if not result.strict and report.when == "call":
            # A failed SHOULD is reported, not fatal: pytest shows it as an xfail.
            report.outcome = "skipped"
            report.wasxfail = f"SHOULD {', '.join(result.failed_clauses)}: {result.reason}"
    return report


def _failure_of(error: BaseException | None, report: pytest.TestReport) -> dict[str, Any]:
    """The report's record of a failed case: the finding, or the unexpected error."""
    failure = as_failure(error)
    if failure is not None:
        return dict(failure_dict(failure))
    text = f"{type(error).__name__}: {error}" if error is not None else str(report.longrepr)
    log = getattr(error, "log", None)
    return {
        "clause": None,
        "clauses": [],
        "expected": "the case to complete",
        "received": text.splitlines()[0] if text else "",
        "also": [],
        "log": [entry.line() for entry in log] if isinstance(log, list) else [],
    }


@functools.cache
def _catalog() -> dict[str, clauses.Clause]:
    return clauses.by_id()


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session.config.stash[_STATE]
    target = state.target
    if target is not None and target.info:
        state.verdicts = grade(clauses.load(), state.results.values(), target.features)
        report = _settings(session.config).report
        if report:
            document = render_json(
                {"description": target.describe(), "urls": target.urls, "info": target.info},
                state.verdicts,
                list(state.results.values()),
            )
            state.written = write_report(report, document)
    _shutdown(state)


def _shutdown(state: _State) -> None:
    if state.target is not None:
        state.target.close()
    if state.driver is not None:
        state.driver.close()
    state.driver = None


def _print_summary(config: pytest.Config) -> None:
    """The clause summary, after everything pytest prints (h2spec: the verdict comes last)."""
    state = config.stash[_STATE]
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if not state.verdicts or reporter is None:
        return
    reporter.write_sep("=", "replay/1 conformance: clauses")
    target = state.target
    if target is not None:
        impl = target.info.get("implementation", {})
        reporter.write_line(
            f"target: {impl.get('name', '?')} {impl.get('version', '')} at {target.describe()}"
        )
    for line in terminal_lines(state.verdicts):
        reporter.write_line(line)
    if state.written:
        reporter.write_line(f"report: {state.written[0]} and {state.written[1]}")


def pytest_unconfigure(config: pytest.Config) -> None:
    if _STATE in config.stash:
        _print_summary(config)
        _shutdown(config.stash[_STATE])
