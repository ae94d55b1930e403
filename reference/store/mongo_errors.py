"""Every MongoDB call of the store bounded in time, and every PyMongo error given its wire code.

Theory of operation
-------------------
The store reaches its collections only through ``guarded(db)``: each call runs under
``pymongo.timeout(OPERATION_TIMEOUT_S)`` (PyMongo's client-side operation timeout: server
selection, the command and any retry of it share one deadline), so an outage or an election
answers within seconds rather than after the 30 s of PyMongo's default server selection. The
deadline is also what keeps a publisher well inside its idempotency claim's takeover time (see
``reference.store.mongo_claims``).

What the call raises is then sorted once, here:

- a duplicate-key error passes through unchanged: the store's algorithms use unique indexes
  as arbiters and catch it themselves;
- a transient error becomes ``Unavailable`` (wire code ``unavailable``, which publishers retry
  and which delivery loops wait out instead of ending the subscription): no connection, no
  primary (a step-down, an election), a timeout, a write concern that could not be satisfied
  in time, a server shutting down, and what the server labels retryable;
- any other PyMongo error becomes ``InternalError`` (an unauthorised user, a bad command):
  retrying will not help, and the log has the cause.

Errors that are not PyMongo's (mongomock's ``NotImplementedError`` for a server command,
cancellation) pass through: they say something about the caller, not the deployment.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any, cast

from pymongo import errors as pe
from pymongo import timeout as operation_deadline

from reference.core.errors import InternalError, ReplayError, Unavailable
from reference.store.mongo_collection import Collection, Database, FindCursor

#: Every MongoDB call of the store ends within this many seconds, one way or the other.
OPERATION_TIMEOUT_S = 5.0

# Server error codes that mean "not now" (from the server's error_codes.yml): a host or network
# failure, an interrupted or timed-out operation, no primary, a write concern not satisfied,
# a lock or write conflict, and the document-size limit, which a channel document meets only
# while very many publishes to it are in flight at once.
TRANSIENT_CODES = frozenset(
    {
        6,  # HostUnreachable
        7,  # HostNotFound
        24,  # LockTimeout
        46,  # LockBusy
        50,  # MaxTimeMSExpired
        64,  # WriteConcernFailed
        89,  # NetworkTimeout
        91,  # ShutdownInProgress
        112,  # WriteConflict
        133,  # FailedToSatisfyReadPreference
        134,  # ReadConcernMajorityNotAvailableYet
        189,  # PrimarySteppedDown
        262,  # ExceededTimeLimit
        9001,  # SocketException
        10058,  # LegacyNotPrimary
        10107,  # NotWritablePrimary
        10334,  # BSONObjectTooLarge
        11600,  # InterruptedAtShutdown
        11602,  # InterruptedDueToReplStateChange
        13435,  # NotPrimaryNoSecondaryOk
        13436,  # NotPrimaryOrSecondary
        17419,  # a document grown past 16 MiB by an update
    }
)


def transient(exc: BaseException) -> bool:
    """Whether a PyMongo error says "the deployment cannot answer now; try again"."""
    if isinstance(exc, pe.ConnectionFailure | pe.WriteConcernError | pe.ExecutionTimeout):
        return True  # AutoReconnect, NotPrimaryError, NetworkTimeout, ServerSelectionTimeout...
    if not isinstance(exc, pe.PyMongoError):
        return False
    if exc.timeout or exc.has_error_label("RetryableWriteError"):
        return True
    if isinstance(exc, pe.BulkWriteError):
        return bool(exc.details.get("writeConcernErrors"))
    return isinstance(exc, pe.OperationFailure) and exc.code in TRANSIENT_CODES


def mapped(exc: pe.PyMongoError) -> ReplayError:
    """The store error a PyMongo error stands for (the cause stays attached by the caller)."""
    if transient(exc):
        return Unavailable(f"the MongoDB store cannot answer now ({type(exc).__name__}); retry")
    return InternalError(f"the MongoDB store failed ({type(exc).__name__})")


@contextlib.contextmanager
def sorted_errors(
    *, keep: tuple[type[pe.PyMongoError], ...] = (pe.DuplicateKeyError,)
) -> Iterator[None]:
    """Bound the calls in the block by ``OPERATION_TIMEOUT_S`` and map their errors, except
    the lasting ones of the ``keep`` classes (by default a duplicate key, an arbiter's answer
    for the store to read)."""
    with operation_deadline(OPERATION_TIMEOUT_S):
        try:
            yield
        except pe.PyMongoError as exc:
            if isinstance(exc, keep) and not transient(exc):
                raise
            raise mapped(exc) from exc


def _guard(call: Callable[..., Any]) -> Callable[..., Any]:
    async def guarded_call(*args: Any, **kwargs: Any) -> Any:
        with sorted_errors():
            return await call(*args, **kwargs)

    return guarded_call


class _GuardedCursor:
    def __init__(self, inner: FindCursor) -> None:
        self._inner = inner

    def sort(self, key: str, direction: int, /) -> _GuardedCursor:
        self._inner = self._inner.sort(key, direction)
        return self

    def limit(self, limit: int, /) -> _GuardedCursor:
        self._inner = self._inner.limit(limit)
        return self

    async def to_list(self, length: int | None = None, /) -> Any:
        with sorted_errors():
            return await self._inner.to_list(length)


class _GuardedCollection:
    def __init__(self, inner: Collection) -> None:
        self._inner = inner

    def find(self, *args: Any) -> _GuardedCursor:
        return _GuardedCursor(self._inner.find(*args))

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        return _guard(attr) if inspect.iscoroutinefunction(attr) else attr


class _GuardedDatabase:
    def __init__(self, inner: Database) -> None:
        self._inner = inner
        self.name = inner.name

    def __getitem__(self, name: str) -> Collection:
        return cast(Collection, _GuardedCollection(self._inner[name]))

    async def command(self, command: str, /) -> Any:
        with sorted_errors():
            return await self._inner.command(command)


def guarded(db: Database) -> Database:
    """``db`` with every call bounded by ``OPERATION_TIMEOUT_S`` and its errors sorted."""
    return cast(Database, _GuardedDatabase(db))
