"""The ``expect`` helpers cases judge with: each fails the case, naming a clause, unless the
target did what the clause says. A failure carries the end of the running case's event log.

``expect_ok`` without a clause checks a step: an event the case only relies on (a subscribe
that prepares what the case judges). A refusal then names the clause that event's success
rests on (``protocol.step_clause``), not the case's own, which the case never reached.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn

from conformance.errors import ConformanceFailure, ConnectRefused, SuiteError
from conformance.eventlog import active_log
from conformance.protocol import Reply, channel_of
from conformance.text import ranges, summarize

if TYPE_CHECKING:
    from collections.abc import Awaitable, Sequence

__all__ = [
    "describe_offsets",
    "expect",
    "expect_duplicate_of",
    "expect_error",
    "expect_offsets",
    "expect_ok",
    "expect_refused",
    "expect_status",
    "fail",
]


def fail(
    clause: str | None,
    expected: str,
    received: object,
    *,
    channel: str | None = None,
    actor: str | None = None,
) -> NoReturn:
    """Raise a :class:`ConformanceFailure` with the case's recent event log attached."""
    __tracebackhide__ = True
    log = active_log.get()
    text = received if isinstance(received, str) else summarize(received)
    raise ConformanceFailure(clause, expected, text, log.tail(channel, actor) if log else ())


def expect(
    condition: object,
    *,
    clause: str | None,
    expected: str,
    received: object,
    channel: str | None = None,
    actor: str | None = None,
) -> None:
    """Fail the case (naming ``clause``) unless ``condition`` holds."""
    __tracebackhide__ = True
    if not condition:
        fail(clause, expected, received, channel=channel, actor=actor)


def expect_ok(
    reply: object, *, clause: str | None = None, channel: str | None = None
) -> dict[str, Any]:
    """The reply is an ok reply (``"ok": true``); returns it.

    ``clause`` is the one the case judges; without it the reply is a step's, and a failure
    names the clause its event's success rests on: SUB-7 for a subscribe from ``beginning``,
    ACK-4 for an ack, ... (``protocol.step_clause``).
    """
    __tracebackhide__ = True
    clause = clause or _step_clause(reply)
    channel = channel or channel_of(reply)
    if isinstance(reply, dict) and reply.get("ok") is True:
        return reply
    fail(clause, "an ok reply", reply, channel=channel)


def _step_clause(reply: object) -> str:
    """The clause the success of the event ``reply`` answers rests on."""
    found = reply.step_clause if isinstance(reply, Reply) else None
    if found is None:
        raise SuiteError(
            f"expect_ok needs clause= for a reply that is not a client's answer: {reply!r:.80}"
        )
    return found


def expect_error(
    reply: object, code: str, *, clause: str | None, channel: str | None = None
) -> dict[str, Any]:
    """The reply is an error reply with ``code``; returns its ``error`` object."""
    __tracebackhide__ = True
    error = reply.get("error") if isinstance(reply, dict) else None
    is_error = isinstance(reply, dict) and reply.get("ok") is False
    if is_error and isinstance(error, dict) and error.get("code") == code:
        return error
    fail(clause, f"an error reply with code {code!r}", reply, channel=channel)


def expect_status(
    response: tuple[int, Any],
    status: int,
    *,
    clause: str | None,
    code: str | None = None,
    channel: str | None = None,
) -> Any:
    """An HTTP ``(status, body)`` has ``status`` (and error ``code``); returns the body."""
    __tracebackhide__ = True
    got, body = response
    error = body.get("error") if isinstance(body, dict) else None
    got_code = error.get("code") if isinstance(error, dict) else None
    if got == status and (code is None or got_code == code):
        return body
    want = f"HTTP {status}" + (f" with error code {code!r}" if code else "")
    fail(clause, want, f"HTTP {got} {summarize(body)}", channel=channel)


def expect_duplicate_of(
    answer: object,
    original: Mapping[str, Any],
    *,
    clause: str,
    channel: str | None = None,
    what: str = "",
) -> None:
    """A publish answer for a repeated id says ``duplicate: true`` at the original's offset
    (IDM-7); ``what`` names the publish in the failure."""
    __tracebackhide__ = True
    offset = original.get("offset")
    expect(
        isinstance(answer, Mapping)
        and answer.get("duplicate") is True
        and answer.get("offset") == offset,
        clause=clause,
        expected=f"{what + ': ' if what else ''}duplicate true with the original offset {offset}",
        received=answer,
        channel=channel,
    )


def describe_offsets(received: Sequence[int], expected: Sequence[int]) -> str:
    """How ``received`` differs from ``expected``: missing, duplicate, extra, reordered."""
    counts = Counter(received)
    wanted = set(expected)
    problems = []
    if missing := [o for o in expected if o not in counts]:
        problems.append(f"missing {ranges(missing)}")
    if duplicates := sorted(o for o, n in counts.items() if n > 1):
        problems.append(f"duplicated {ranges(duplicates)}")
    if extra := sorted(o for o in counts if o not in wanted):
        problems.append(f"unexpected {ranges(extra)}")
    if not problems:
        at = next(i for i, (a, b) in enumerate(zip(received, expected, strict=False)) if a != b)
        problems.append(f"out of order at position {at}: {received[at]} instead of {expected[at]}")
    return f"{len(received)} offsets [{ranges(received)}]: {'; '.join(problems)}"


def expect_offsets(
    received: Sequence[int],
    expected: Sequence[int],
    *,
    clause: str | None,
    channel: str | None = None,
    actor: str | None = None,
) -> None:
    """The delivered offsets are exactly ``expected``, in that order."""
    __tracebackhide__ = True
    if list(received) != list(expected):
        fail(
            clause,
            f"offsets [{ranges(expected)}] in order",
            describe_offsets(received, expected),
            channel=channel,
            actor=actor,
        )


async def expect_refused(
    attempt: Awaitable[object], *, clause: str | None, message: str = "unauthorized"
) -> ConnectRefused:
    """Await a connect attempt that must be refused with CONNECT_ERROR ``{"message": ...}``."""
    __tracebackhide__ = True
    want = f'CONNECT_ERROR {{"message": "{message}"}}'
    try:
        await attempt
    except ConnectRefused as refused:
        expect(
            refused.message == message,
            clause=clause,
            expected=want,
            received=f"CONNECT_ERROR {summarize(refused.data)}",
        )
        return refused
    fail(clause, want, "the connection was accepted")
