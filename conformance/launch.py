"""From the ``replay`` options to a started target: which nodes, launched how.

Priority: the URLs of servers someone else runs, then a command the suite launches, then a
container image, then the reference server (:data:`DEFAULT_COMMAND`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from conformance.errors import SuiteError
from conformance.nodes import CommandNode, ImageNode, Node, UrlNode
from conformance.target import Target

if TYPE_CHECKING:
    from conformance.driver import Driver

__all__ = ["DEFAULT_COMMAND", "LaunchSpec", "launch"]

DEFAULT_COMMAND: Final = "{python} -m reference --host 127.0.0.1 --port {port} --api-key={api_key}"


@dataclass(frozen=True)
class LaunchSpec:
    """How to reach or launch the target (from the ``replay`` options)."""

    urls: tuple[str, ...] = ()
    command: str | None = None
    image: str | None = None
    image_port: int = 8080
    api_key: str | None = None

    @property
    def mode(self) -> str:
        """``url``, ``command``, ``image`` or ``reference`` (the default command)."""
        if self.urls:
            return "url"
        return "command" if self.command else "image" if self.image else "reference"


def launch(spec: LaunchSpec, driver: Driver, default_timeout: float) -> Target:
    """Build the target of ``spec`` and start what the suite launches (raises SuiteError)."""
    if spec.mode == "url":
        if not spec.api_key:
            raise SuiteError(
                "replay: no API key for the target; pass --api-key or set REPLAY_API_KEY"
            )
        nodes: list[Node] = [UrlNode(url.rstrip("/")) for url in spec.urls]
        return Target(nodes, spec.api_key, driver, default_timeout)
    # Hex, not base64url: a generated key must never start with "-", which a command line
    # would read as an option.
    api_key = spec.api_key or secrets.token_hex(24)
    if spec.mode == "image":
        assert spec.image is not None
        nodes = [ImageNode(spec.image, api_key=api_key, port=spec.image_port)]
    else:
        template = spec.command or DEFAULT_COMMAND
        nodes = [CommandNode(template, api_key=api_key)]
    target = Target(
        nodes, api_key, driver, default_timeout, command=spec.command or DEFAULT_COMMAND
    )
    try:
        for node in nodes:
            node.start()
    except BaseException:
        target.stop_nodes()
        raise
    return target
