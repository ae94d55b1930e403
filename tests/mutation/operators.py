"""The mutation operators of the campaign: a chosen subset of cosmic-ray's own, plus the ones
it lacks, written as cosmic-ray operators on its parso trees.

cosmic-ray finds operators through stevedore providers (entry point group
``cosmic_ray.operator_providers``). These operators live in ``tests/``, which the wheel does not
ship, so rather than declaring an entry point in the package metadata, :func:`register` adds
the provider to cosmic-ray's table in the campaign's own process, the only one that mutates.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import cosmic_ray.plugins
import parso
from cosmic_ray.operators.operator import Example, Operator

PROVIDER = "replay"

# cosmic-ray's operators that the brief's families need. Comparison operators are flipped to
# their negation or moved across the boundary, never replaced by every other comparison:
# those permutations add mostly redundant mutants.
_FLIPS = [
    ("Eq", "NotEq"), ("NotEq", "Eq"), ("Is", "IsNot"), ("IsNot", "Is"),
    ("Lt", "GtE"), ("GtE", "Lt"), ("Gt", "LtE"), ("LtE", "Gt"),
    ("Lt", "LtE"), ("LtE", "Lt"), ("Gt", "GtE"), ("GtE", "Gt"),
]  # fmt: skip
BUILTIN = (
    *(f"core/ReplaceComparisonOperator_{a}_{b}" for a, b in _FLIPS),
    "core/NumberReplacer",
    "core/ReplaceTrueWithFalse",
    "core/ReplaceFalseWithTrue",
    "core/ReplaceAndWithOr",
    "core/ReplaceOrWithAnd",
    "core/AddNot",
)

Position = tuple[tuple[int, int], tuple[int, int]]
Node = Any  # a parso node; parso ships no type hints


def _replacement(code: str) -> Node:
    """A parso node that prints as ``code`` (cosmic-ray's own way to build one)."""
    return parso.parse(code)


def _leaves_prefix(node: Node) -> str:
    prefix: str = node.get_first_leaf().prefix
    return prefix


def _exits(block: Node) -> bool:
    """Whether ``block`` (the body of an ``if`` branch) has a top-level ``return``/``raise``."""
    statements = block.children if block.type == "suite" else [block]
    for statement in statements:
        if statement.type != "simple_stmt":
            continue
        for part in statement.children:
            if part.type in ("return_stmt", "raise_stmt"):
                return True
            if part.type == "keyword" and part.value in ("return", "raise"):
                return True
    return False


class RemoveCheck(Operator):
    """An ``if``/``elif`` whose body returns or raises made never true: the check is gone."""

    def _tests(self, node: Node) -> Iterator[int]:
        if node.type != "if_stmt":
            return
        for index, child in enumerate(node.children):
            is_test = child.type == "keyword" and child.value in ("if", "elif")
            if is_test and _exits(node.children[index + 3]):
                yield index + 1

    def mutation_positions(self, node: Node) -> Iterator[Position]:
        for index in self._tests(node):
            test = node.children[index]
            yield (test.start_pos, test.end_pos)

    def mutate(self, node: Node, index: int) -> Node:
        at = list(self._tests(node))[index]
        node.children[at] = _replacement(_leaves_prefix(node.children[at]) + "False")
        return node

    @classmethod
    def examples(cls) -> tuple[Example, ...]:
        return (
            Example("if x > 1:\n    raise E\n", "if False:\n    raise E\n"),
            Example(
                "if a: return 1\nelif b: return 2\n", "if a: return 1\nelif False: return 2\n", 1
            ),
        )


class DropAwait(Operator):
    """``await f()`` becomes ``f()``: the coroutine is made and never run."""

    def mutation_positions(self, node: Node) -> Iterator[Position]:
        first = node.children[0] if node.type == "atom_expr" else None
        if first is not None and first.type == "keyword" and first.value == "await":
            yield (first.start_pos, first.end_pos)

    def mutate(self, node: Node, index: int) -> Node:
        keyword, *rest = node.children
        rest[0].prefix = keyword.prefix
        node.children = rest
        return node

    @classmethod
    def examples(cls) -> tuple[Example, ...]:
        return (Example("async def f():\n    await g(1)\n", "async def f():\n    g(1)\n"),)


def _positional(argument: Node) -> bool:
    """Not ``k=v``, ``*args`` or ``**kwargs``."""
    return argument.type != "argument" and not argument.get_code().lstrip().startswith("*")


class SwapArguments(Operator):
    """Two adjacent positional arguments of a call swapped: ``f(a, b)`` becomes ``f(b, a)``."""

    @staticmethod
    def _pairs(node: Node) -> Iterator[tuple[int, int]]:
        if node.type != "trailer" or node.children[0].value != "(" or len(node.children) != 3:
            return
        arglist = node.children[1]
        if arglist.type != "arglist":
            return
        arguments = [i for i, child in enumerate(arglist.children) if child.type != "operator"]
        for left, right in itertools.pairwise(arguments):
            pair = arglist.children[left], arglist.children[right]
            positional = all(_positional(a) for a in pair)
            if positional and pair[0].get_code().strip() != pair[1].get_code().strip():
                yield left, right

    def mutation_positions(self, node: Node) -> Iterator[Position]:
        for left, right in self._pairs(node):
            arglist = node.children[1]
            yield (arglist.children[left].start_pos, arglist.children[right].end_pos)

    def mutate(self, node: Node, index: int) -> Node:
        left, right = list(self._pairs(node))[index]
        children = node.children[1].children
        a, b = children[left], children[right]
        a_prefix, b_prefix = a.get_first_leaf().prefix, b.get_first_leaf().prefix
        children[left] = _replacement(a_prefix + b.get_code(include_prefix=False))
        children[right] = _replacement(b_prefix + a.get_code(include_prefix=False))
        return node

    @classmethod
    def examples(cls) -> tuple[Example, ...]:
        return (
            Example("f(a, b, c=1)\n", "f(b, a, c=1)\n"),
            Example("f(a, b, c)\n", "f(a, c, b)\n", 1),
        )


def _removable(statement: Node) -> bool:
    """A call, an ``await``, an augmented assignment or an assignment to an attribute or item:
    statements whose removal leaves valid code that runs (removing ``x = ...`` mostly makes
    a NameError, an uninteresting kill)."""
    if statement.type == "atom_expr":
        return statement.children[-1].type == "trailer" or statement.children[0].type == "keyword"
    if statement.type == "expr_stmt":
        operator = statement.children[1]
        if operator.type == "operator" and operator.value.endswith("=") and operator.value != "=":
            return True  # += and friends
        if operator.type == "operator" and operator.value == "=":
            return statement.children[0].type == "atom_expr" and len(statement.children) == 3
    return False


class RemoveStatement(Operator):
    """A statement replaced by ``pass``."""

    def mutation_positions(self, node: Node) -> Iterator[Position]:
        if node.type == "simple_stmt" and len(node.children) == 2:
            statement = node.children[0]
            if _removable(statement):
                yield (statement.start_pos, statement.end_pos)

    def mutate(self, node: Node, index: int) -> Node:
        statement = node.children[0]
        node.children[0] = _replacement(_leaves_prefix(statement) + "pass")
        return node

    @classmethod
    def examples(cls) -> tuple[Example, ...]:
        return (
            Example("def f():\n    g(1)\n", "def f():\n    pass\n"),
            Example("def f():\n    self.x = 1\n", "def f():\n    pass\n"),
            Example("def f():\n    n += 1\n", "def f():\n    pass\n"),
        )


class FlipMembership(Operator):
    """``in`` becomes ``not in`` and back (cosmic-ray's comparison operators skip these)."""

    @staticmethod
    def _points(node: Node) -> Iterator[int]:
        if node.type == "comparison":
            for index in range(1, len(node.children), 2):
                op = node.children[index]
                if op.get_code().split() in (["in"], ["not", "in"]):
                    yield index

    def mutation_positions(self, node: Node) -> Iterator[Position]:
        for index in self._points(node):
            yield (node.children[index].start_pos, node.children[index].end_pos)

    def mutate(self, node: Node, index: int) -> Node:
        at = list(self._points(node))[index]
        op = node.children[at]
        flipped = "in" if op.get_code().split() == ["not", "in"] else "not in"
        node.children[at] = _replacement(_leaves_prefix(op) + flipped)
        return node

    @classmethod
    def examples(cls) -> tuple[Example, ...]:
        return (
            Example("x in y\n", "x not in y\n"),
            Example("x not in y\n", "x in y\n"),
        )


OWN: dict[str, type[Operator]] = {
    cls.__name__: cls
    for cls in (RemoveCheck, DropAwait, SwapArguments, RemoveStatement, FlipMembership)
}


class ReplayOperators:
    """The cosmic-ray operator provider for :data:`OWN`."""

    def __iter__(self) -> Iterator[str]:
        return iter(OWN)

    def __getitem__(self, name: str) -> type[Operator]:
        return OWN[name]


def register() -> None:
    """Make ``replay/<Name>`` operators known to cosmic-ray in this process."""
    cosmic_ray.plugins.OPERATOR_PROVIDERS.setdefault(PROVIDER, ReplayOperators())


def operator_names() -> tuple[str, ...]:
    """Every operator the campaign applies, as cosmic-ray names them."""
    register()
    return (*BUILTIN, *(f"{PROVIDER}/{name}" for name in OWN))
