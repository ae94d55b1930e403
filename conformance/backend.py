"""The trusted backend's side of a target: the HTTP API of spec §4, over aiohttp.

Every response is logged and checked against its schema (API-4 for error bodies); a violation
is recorded in the case's event log and fails the case when it ends. Typed helpers
(``register``, ``publish``, ...) are steps: unless answered with success and a valid body they
fail the case at once, naming the step's own clause (SES-1, PUB-1, RET-1, ...), not the case's;
``request`` and the ``*_raw`` helpers return the raw ``(status, body)`` to test errors with.
"""

from __future__ import annotations

import asyncio
import enum
import json
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, NamedTuple
from urllib.parse import urlencode

import aiohttp
import yarl

from conformance import schemas
from conformance.errors import ConformanceFailure, Indeterminate
from conformance.eventlog import KNOWN, KnownEpoch
from conformance.expectations import fail
from conformance.protocol import (
    ERROR_STATUS,
    INFO_PATH,
    ROUTE_SESSION,
    SUCCESS_SCHEMAS,
    batches_path,
    messages_path,
    retention_path,
    session_path,
)
from conformance.text import summarize

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from conformance.eventlog import EventLog

__all__ = ["UNSET", "Backend", "HttpResponse", "Registration"]

REQUEST_TIMEOUT_S: Final = 15.0


class _Unset(enum.Enum):
    UNSET = "unset"


UNSET: Final = _Unset.UNSET


class HttpResponse(NamedTuple):
    """An HTTP answer: the status and the body (parsed JSON, None when empty, else text)."""

    status: int
    body: Any


@dataclass(frozen=True)
class Registration:
    """A registered session, as the backend's registration answered it."""

    session_id: str
    token: str
    expires_at: int
    status: int  # 201: created, 200: an existing session was re-registered
    client_id: str
    grants: list[dict[str, Any]]
    subscribe: list[dict[str, Any]] | None = None


class Backend:
    """The backend API of one node, logging to one case's event log."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        base_url: str,
        api_key: str,
        log: EventLog,
        actor: str = "backend",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.log = log
        self.actor = actor
        self._http = http

    # --- raw ---------------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: object = UNSET,
        raw: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
        omit: Sequence[str] = (),
        channel: str | None = None,
        timeout: float = REQUEST_TIMEOUT_S,
    ) -> HttpResponse:
        """Send one request (``path`` already percent-encoded) and check the answer.

        ``body`` is sent as JSON, ``raw`` as given; ``auth=False`` omits the API key (a
        ``headers`` entry for ``Authorization`` overrides it); ``omit`` names headers not to
        send at all, not even those aiohttp adds by itself (``Content-Type`` for ``raw``).
        Raises :class:`Indeterminate` when no answer arrives (connection refused or reset,
        timeout).
        """
        response, _ = await self._exchange(
            method, path, body, raw, headers, auth, channel, timeout, omit
        )
        return response

    async def _exchange(
        self,
        method: str,
        path: str,
        body: object,
        raw: bytes | None,
        headers: Mapping[str, str] | None,
        auth: bool,
        channel: str | None,
        timeout: float,
        omit: Sequence[str] = (),
    ) -> tuple[HttpResponse, ConformanceFailure | None]:
        """:meth:`request`; also returns the violation its answer's body was found to be."""
        sent: dict[str, str] = {"Authorization": f"Bearer {self.api_key}"} if auth else {}
        data: bytes | None = raw
        if body is not UNSET:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        for header in omit:
            sent.pop(header, None)
        name = f"{method} {path}"
        op = self.log.invoke(self.actor, name, channel=channel, payload=_shown(body, raw))
        url = yarl.URL(self.base_url + path, encoded=True)
        try:
            async with self._http.request(
                method,
                url,
                data=data,
                headers=sent,
                skip_auto_headers=omit,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                content = await response.read()
                content_type = response.headers.get("Content-Type", "")
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.log.record(
                self.actor, "reply", name, channel=channel, op=op, outcome="indeterminate"
            )
            raise Indeterminate(f"{name}: no answer from {self.base_url}: {exc!r}") from exc
        parsed = self._parse(name, status, content, content_type, channel)
        outcome = "ok" if status < 400 else "failed"
        shown = {"status": status, "body": parsed}
        self.log.record(
            self.actor, "reply", name, channel=channel, op=op, outcome=outcome, payload=shown
        )
        return HttpResponse(status, parsed), self._check(method, path, status, parsed, channel)

    async def _step(
        self,
        method: str,
        path: str,
        *,
        clause: str,
        expected: str,
        statuses: tuple[int, ...] = (200,),
        body: object = UNSET,
        auth: bool = True,
        channel: str | None = None,
    ) -> HttpResponse:
        """A request the case relies on (a step): it fails the case at once, naming the step's
        own ``clause``, unless answered with one of ``statuses`` and a valid body."""
        response, broken = await self._exchange(
            method, path, body, None, None, auth, channel, REQUEST_TIMEOUT_S
        )
        if response.status not in statuses or not isinstance(response.body, dict):
            answer = f"HTTP {response.status} {summarize(response.body)}"
            fail(clause, expected, answer, channel=channel)
        if broken is not None:
            # Recorded already; the case must not go on with an answer that failed its schema,
            # or its own clauses would be charged with this step's failure.
            raise broken
        return response

    def _parse(
        self, name: str, status: int, content: bytes, content_type: str, channel: str | None
    ) -> Any:
        if not content:
            return None
        try:
            parsed = json.loads(content.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            text = content.decode("utf-8", errors="replace")
            self.log.violation(
                "API-1",
                f"a JSON body in the HTTP {status} answer to {name}",
                f"{content_type or 'no Content-Type'}: {text[:120]!r}",
                channel=channel,
                actor=self.actor,
            )
            return text
        if not content_type.lower().startswith("application/json"):
            self.log.violation(
                "API-1",
                f"Content-Type: application/json on the answer to {name}",
                f"Content-Type: {content_type or '(none)'}",
                channel=channel,
                actor=self.actor,
            )
        return parsed

    def _check(
        self, method: str, path: str, status: int, body: Any, channel: str | None
    ) -> ConformanceFailure | None:
        """Validate a response body against its route's and status's schema; the violation."""
        name = f"{method} {path}"
        problems: list[str] = []
        clause = "API-4"
        if status >= 400:
            problems = schemas.validate("http-error", body)
            code = body.get("error", {}).get("code") if isinstance(body, dict) else None
            if not problems and isinstance(code, str) and ERROR_STATUS.get(code) != status:
                problems = [f"code {code!r} comes with HTTP {ERROR_STATUS.get(code)}, not {status}"]
        elif method == "DELETE" and ROUTE_SESSION.match(path) and status == 204:
            clause = "SES-13"
            problems = [] if body is None else [f"a 204 has an empty body, got {body!r}"]
        else:
            route = path.partition("?")[0]  # a history read's query names no other route
            for route_method, pattern, by_status in SUCCESS_SCHEMAS:
                if route_method == method and pattern.match(route) and status in by_status:
                    schema, clause = by_status[status]
                    problems = schemas.validate(schema, body)
        if not problems:
            return None
        return self.log.violation(
            clause,
            f"a valid body for HTTP {status} on {name}",
            "; ".join(problems),
            channel=channel,
            actor=self.actor,
        )

    async def register_raw(self, body: object) -> HttpResponse:
        """``POST /replay/v1/sessions`` with ``body`` as given."""
        return await self.request("POST", session_path(), body=body)

    async def publish_raw(self, channel: str, body: object) -> HttpResponse:
        """``POST /replay/v1/channels/<channel>/messages`` with ``body`` as given."""
        return await self.request("POST", messages_path(channel), body=body, channel=channel)

    async def delete_session(self, session_id: str) -> HttpResponse:
        """``DELETE /replay/v1/sessions/<id>``: 204 for a live session, 404 otherwise."""
        return await self.request("DELETE", session_path(session_id))

    # --- typed helpers: expect success --------------------------------------------------------

    async def info(self) -> dict[str, Any]:
        """``GET /replay/v1/info`` without the API key (INF-1)."""
        info = "HTTP 200 with the info object"
        step = self._step("GET", INFO_PATH, clause="INF-1", expected=info, auth=False)
        return dict((await step).body)

    async def register(
        self,
        client_id: str | None = None,
        grants: Sequence[Mapping[str, Any]] = (),
        subscribe: Sequence[Mapping[str, Any]] | None = None,
        session_id: str | None = None,
        ttl_s: int | None = None,
    ) -> Registration:
        """Register (or re-register) a session; fails the case (SES-1) unless 200/201."""
        body: dict[str, Any] = {
            "client_id": client_id or f"client-{secrets.token_hex(4)}",
            "grants": [dict(g) for g in grants],
        }
        entries = None if subscribe is None else [dict(s) for s in subscribe]
        optional = {"subscribe": entries, "session_id": session_id, "ttl_s": ttl_s}
        body.update({key: value for key, value in optional.items() if value is not None})
        status, answer = await self._step(
            "POST", session_path(), clause="SES-1", expected="HTTP 201 (or 200) with a token",
            statuses=(201, 200), body=body,
        )  # fmt: skip
        return Registration(
            session_id=str(answer.get("session_id")),
            token=str(answer.get("token")),
            expires_at=int(answer.get("expires_at") or 0),
            status=status,
            client_id=body["client_id"],
            grants=body["grants"],
            subscribe=body.get("subscribe"),
        )

    async def publish(self, channel: str, data: object, id: str | None = None) -> dict[str, Any]:
        """Publish one message; returns the answer body. Fails the case (PUB-1) unless 2xx."""
        body: dict[str, Any] = {"data": data} if id is None else {"data": data, "id": id}
        response = await self._step(
            "POST", messages_path(channel), clause="PUB-1", statuses=(201, 200), body=body,
            expected="HTTP 201 with the stored message's offset", channel=channel,
        )  # fmt: skip
        return dict(response.body)

    async def publish_batch(self, channel: str, entries: Sequence[Mapping[str, Any]]) -> Any:
        """One batch of ``{"data", "id"?}`` entries; fails the case (BAT-1) unless 2xx."""
        body = {"messages": [dict(e) for e in entries]}
        response = await self._step(
            "POST", batches_path(channel), clause="BAT-1", statuses=(201, 200), body=body,
            expected="HTTP 201 (or 200) with one result per entry", channel=channel,
        )  # fmt: skip
        return response.body

    async def publish_many(
        self, channel: str, count: int, data: Sequence[object] | None = None
    ) -> list[int]:
        """Publish ``count`` messages one after the other (``{"n": i}`` by default); offsets."""
        payloads = list(data) if data is not None else [{"n": n} for n in range(count)]
        return [int((await self.publish(channel, item))["offset"]) for item in payloads[:count]]

    async def publish_concurrently(self, channel: str, count: int, start: int = 0) -> list[int]:
        """Publish ``{"n": start}`` .. ``{"n": start+count-1}`` all at once; their offsets."""
        answers = await asyncio.gather(
            *(self.publish(channel, {"n": n}) for n in range(start, start + count))
        )
        return [int(a["offset"]) for a in answers]

    async def history_raw(
        self,
        channel: str,
        from_: int | str | None = None,
        limit: int | None = None,
        *,
        epoch: str | KnownEpoch | None = KNOWN,
    ) -> HttpResponse:
        """``GET …/messages?from=&epoch=&limit=`` as answered. An integer ``from`` goes with
        the epoch the case has seen for the channel unless ``epoch`` says otherwise
        (``None``: none at all)."""
        path = self._history_path(channel, from_, limit, epoch)
        return await self.request("GET", path, channel=channel)

    def _history_path(
        self, channel: str, from_: object, limit: object, epoch: str | KnownEpoch | None
    ) -> str:
        sent_epoch = self.log.epoch_for(channel, from_, epoch)
        pairs = (("from", from_), ("epoch", sent_epoch), ("limit", limit))
        query = {k: v for k, v in pairs if v is not None}
        return messages_path(channel) + (f"?{urlencode(query)}" if query else "")

    async def history(
        self,
        channel: str,
        from_: int | str | None = None,
        limit: int | None = None,
        *,
        epoch: str | KnownEpoch | None = KNOWN,
    ) -> dict[str, Any]:
        """``GET …/messages`` (feature ``history``), as :meth:`history_raw`; fails the case
        (HIS-1) unless 200 with a valid body."""
        path = self._history_path(channel, from_, limit, epoch)
        response = await self._step(
            "GET", path, clause="HIS-1", expected="HTTP 200 with messages", channel=channel
        )
        return dict(response.body)

    async def set_retention(
        self,
        channel: str,
        max_messages: int | _Unset | None = UNSET,
        max_age_s: int | _Unset | None = UNSET,
    ) -> dict[str, Any]:
        """``PUT …/retention`` (feature ``retention``); ``None`` removes a limit. Fails the
        case (RET-1) unless 200 with a valid body."""
        body = {
            k: v
            for k, v in (("max_messages", max_messages), ("max_age_s", max_age_s))
            if v is not UNSET
        }
        response = await self._step(
            "PUT", retention_path(channel), clause="RET-1", body=body, channel=channel,
            expected="HTTP 200 with the retention in force",
        )  # fmt: skip
        return dict(response.body)


def _shown(body: object, raw: bytes | None) -> object:
    if body is not UNSET:
        return body
    if raw is not None:
        return {"raw": raw[:120].decode("utf-8", errors="replace"), "bytes": len(raw)}
    return None
