"""Preflight: before any case runs, check every node once and stop the run with one clear line
if the target cannot be judged (unreachable, another protocol, an invalid info, a wrong key).
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any, Final

import pytest

from conformance import schemas
from conformance.errors import SuiteError
from conformance.protocol import INFO_PATH, PROTOCOL, session_path
from conformance.text import summarize

if TYPE_CHECKING:
    from conformance.target import Target

__all__ = ["PREFLIGHT_EXIT", "PREFLIGHT_TIMEOUT_S", "preflight"]

PREFLIGHT_TIMEOUT_S: Final = 5.0
# The exit status of a run stopped by preflight: the target cannot be judged as configured.
PREFLIGHT_EXIT: Final = pytest.ExitCode.USAGE_ERROR


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
        if protocol != PROTOCOL:
            raise SuiteError(
                f"replay: target {url} speaks {protocol!r}, this suite tests {PROTOCOL}"
            )
        if problems := schemas.validate("http-info-response", info):
            raise SuiteError(f"replay: target {where} is invalid (INF-1): {problems[0]}")
        probe = url + session_path(f"replay-preflight-{secrets.token_hex(6)}")
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
