"""The thin slice of a MongoDB driver that ``MongoStore`` uses, as structural types.

PyMongo's asynchronous API (``pymongo.AsyncMongoClient(url)[name]``) satisfies these
protocols, and so does mongomock-motor's in-memory double used by the tests; the store is
written against nothing else. Positional parameters are positional-only so that the drivers'
own parameter names do not matter.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

Document = Mapping[str, Any]
IndexKeys = Sequence[tuple[str, int]]


class UpdateResult(Protocol):
    """What ``update_one`` and ``replace_one`` return."""

    @property
    def matched_count(self) -> int: ...

    @property
    def upserted_id(self) -> Any: ...


class DeleteResult(Protocol):
    """What ``delete_one`` and ``delete_many`` return."""

    @property
    def deleted_count(self) -> int: ...


class FindCursor(Protocol):
    """A query not yet run: refine it with ``sort`` and ``limit``, then run ``to_list``."""

    def sort(self, key: str, direction: int, /) -> FindCursor: ...

    def limit(self, limit: int, /) -> FindCursor: ...

    async def to_list(self, length: int | None = None, /) -> Sequence[Document]: ...


@runtime_checkable
class Collection(Protocol):
    """The collection methods the store calls."""

    async def create_index(
        self,
        keys: IndexKeys,
        /,
        *,
        name: str,
        unique: bool = ...,
        sparse: bool = ...,
        expireAfterSeconds: int = ...,
    ) -> str: ...

    # PyMongo types the inserted document as the client's document class (a ``dict`` here)
    async def insert_one(self, document: dict[str, Any], /) -> object: ...

    async def find_one(
        self, filter: Document, projection: Document | None = None, /
    ) -> Document | None: ...

    def find(self, filter: Document, projection: Document | None = None, /) -> FindCursor: ...

    async def find_one_and_update(
        self,
        filter: Document,
        update: Document,
        /,
        *,
        projection: Document | None = None,
        upsert: bool = False,
        return_document: bool = False,
    ) -> Document | None: ...

    async def find_one_and_delete(self, filter: Document, /) -> Document | None: ...

    async def update_one(
        self, filter: Document, update: Document, /, *, upsert: bool = False
    ) -> UpdateResult: ...

    async def replace_one(
        self, filter: Document, replacement: Document, /, *, upsert: bool = False
    ) -> UpdateResult: ...

    async def delete_many(self, filter: Document, /) -> DeleteResult: ...


@runtime_checkable
class Database(Protocol):
    """A database: collections by name, and commands (``hello``; mongomock-motor has the
    method but implements no command, which is how the store tells it from a server)."""

    @property
    def name(self) -> str: ...

    def __getitem__(self, name: str, /) -> Collection: ...

    async def command(self, command: str, /) -> Mapping[str, Any]: ...


class Closable(Protocol):
    """A client the store owns and closes with itself."""

    async def close(self) -> None: ...


# ``find_one_and_update``'s ``return_document``: PyMongo's ``ReturnDocument`` values.
BEFORE = False
AFTER = True


def duplicate_key_errors() -> tuple[type[Exception], ...]:
    """The exception classes that mean "a unique index refused this write".

    PyMongo's ``DuplicateKeyError``, and mongomock's own class when mongomock is in use (it
    subclasses PyMongo's only when PyMongo is importable). Neither import is required.
    """
    found: list[type[Exception]] = []
    try:
        from pymongo.errors import DuplicateKeyError
    except ImportError:  # pragma: no cover - pymongo is there whenever a real driver is
        pass
    else:
        found.append(DuplicateKeyError)
    mongomock = sys.modules.get("mongomock")  # imported already if a test double is in use
    mock_error = getattr(mongomock, "DuplicateKeyError", None)
    if (
        isinstance(mock_error, type)
        and issubclass(mock_error, Exception)
        and not any(issubclass(mock_error, cls) for cls in found)
    ):
        found.append(mock_error)
    return tuple(found)


if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase
    from pymongo.asynchronous.mongo_client import AsyncMongoClient

    def _pymongo_fits(db: AsyncDatabase[dict[str, Any]]) -> Database:
        """Never called: makes mypy prove that PyMongo satisfies the protocols."""
        return db

    def _pymongo_client_fits(client: AsyncMongoClient[dict[str, Any]]) -> Closable:
        return client
