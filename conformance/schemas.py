"""The replay/1 JSON Schemas (``spec/schemas``), loaded once, and validation against them.

Schemas are named by file name without ``.json`` (``"subscribe-reply"``); see
``spec/schemas/README.md`` for the ``$id`` scheme.
"""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING, Final

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from conformance.errors import SuiteError
from conformance.spec_files import spec_dir
from conformance.text import summarize

if TYPE_CHECKING:
    from referencing.jsonschema import SchemaRegistry

__all__ = ["ID_PREFIX", "names", "registry", "validate", "validate_reply", "validator"]

ID_PREFIX: Final = "urn:socketio-replay:replay-1:"
_MAX_ERRORS: Final = 3  # a report names the first few problems, not every nested one


@cache
def registry() -> SchemaRegistry:
    """Every schema of ``spec/schemas``, keyed by ``$id``."""
    folder = spec_dir() / "schemas"
    resources: list[tuple[str, Resource]] = []
    for path in sorted(folder.glob("*.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        resources.append((contents["$id"], DRAFT202012.create_resource(contents)))
    if not resources:
        raise SuiteError(f"no JSON Schemas found in {folder}")
    return Registry().with_resources(resources)


@cache
def names() -> tuple[str, ...]:
    """The schema names available (``common``, ``subscribe-reply``, ...)."""
    return tuple(sorted(uri.removeprefix(ID_PREFIX) for uri in registry()))


@cache
def validator(name: str) -> Draft202012Validator:
    """A validator for schema ``name``; raises :class:`SuiteError` for an unknown name."""
    uri = ID_PREFIX + name
    try:
        contents = registry()[uri].contents
    except LookupError:
        raise SuiteError(f"no schema named {name!r}") from None
    return Draft202012Validator(contents, registry=registry())


def _describe(error: object) -> str:
    path = "/".join(str(p) for p in getattr(error, "absolute_path", ()))
    return f"{path or '(root)'}: {getattr(error, 'message', error)}"


def validate(name: str, payload: object) -> list[str]:
    """The ways ``payload`` breaks schema ``name`` (empty when it is valid)."""
    errors = sorted(validator(name).iter_errors(payload), key=lambda e: list(e.absolute_path))
    problems = [_describe(e) for e in errors[:_MAX_ERRORS]]
    if len(errors) > _MAX_ERRORS:
        problems.append(f"... and {len(errors) - _MAX_ERRORS} more")
    return problems


def validate_reply(event: str, reply: object) -> list[str]:
    """Check the ack to client event ``event`` (``replay:subscribe``...) against its schemas.

    An ack is valid against the event's ok-reply schema or ``error-reply`` (spec EVT-1); which
    one is decided by ``ok``, so that the problems named are the relevant ones.
    """
    ok_schema = event.removeprefix("replay:") + "-reply"
    if isinstance(reply, dict) and reply.get("ok") is False:
        return validate("error-reply", reply)
    if isinstance(reply, dict) and reply.get("ok") is True:
        return validate(ok_schema, reply) if ok_schema in names() else []
    return [f"(root): {summarize(reply, 80)} is neither an ok reply nor an error reply"]
