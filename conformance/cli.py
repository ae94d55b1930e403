"""``replay-conformance``: the installed suite as one command, for adapter authors who do not
work in Python.

It takes the plugin's own options (declared once, in :mod:`conformance.options`, and shown
here in the same groups), checks them, and runs the installed cases with pytest; anything
after ``--`` goes to pytest unchanged. ``--list`` prints the clause -> cases matrix of the
selection without running anything.

Exit status: see ``EXIT_STATUS`` (also printed by ``--help``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Final

import pytest

import conformance.cases
from conformance import clauses, inventory
from conformance.baseline import load_baseline
from conformance.errors import SuiteError
from conformance.options import OPTIONS, add_options, resolve_settings
from conformance.plugin import stopped_by_preflight
from conformance.preflight import PREFLIGHT_EXIT

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_PREFLIGHT",
    "EXIT_STATUS",
    "EXIT_USAGE",
    "main",
    "pytest_argv",
]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_PREFLIGHT: Final = int(PREFLIGHT_EXIT)
EXIT_STATUS: Final = """exit status:
  0  the run passed (failed SHOULD clauses are reported, not fatal)
  1  a MUST clause failed, or a case errored (the suite could not judge it)
  2  usage error: a bad option, or a selection that selects nothing
  3  pytest's internal error
  4  preflight stopped the run: the target cannot be judged as configured"""
_CASES_DIR: Final = Path(conformance.cases.__file__).resolve().parent


class _Group:
    """pytest's ``OptionGroup.addoption`` over an argparse group (so options are declared once)."""

    def __init__(self, group: argparse._ArgumentGroup) -> None:
        self._group = group

    def addoption(self, *names: str, **kwargs: Any) -> None:
        self._group.add_argument(*names, **kwargs)


class _Parser:
    """pytest's ``Parser.getgroup`` over argparse: each plugin group becomes a help section."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self._parser = parser

    def getgroup(self, name: str, description: str = "") -> _Group:
        return _Group(self._parser.add_argument_group(f"{name}: {description}"))


def build_parser() -> argparse.ArgumentParser:
    """The command's options: the plugin's groups, then output and running."""
    parser = argparse.ArgumentParser(
        prog="replay-conformance",
        description="Judge a replay/1 server against the spec (runs the installed suite).",
        epilog=EXIT_STATUS + "\n\nEvery option also reads the environment variable in brackets.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_options(_Parser(parser))  # type: ignore[arg-type]
    output = parser.add_argument_group("output")
    output.add_argument("--junit-xml", metavar="PATH", help="write a JUnit XML report to PATH")
    output.add_argument("--html", metavar="PATH", help="the same as --replay-html PATH")
    running = parser.add_argument_group("running")
    running.add_argument(
        "--list",
        action="store_true",
        help="print the selected clauses and their cases, run nothing",
    )
    running.add_argument("pytest_args", nargs="*", help="after --: arguments for pytest")
    return parser


def pytest_argv(args: argparse.Namespace) -> list[str]:
    """The pytest command line that runs the installed cases with the options given.

    ``-c`` an empty file and a rootdir at the package, so that the configuration of the
    directory the command runs in (an adapter's own pytest setup) does not change the suite.
    """
    argv = [str(_CASES_DIR), "-c", os.devnull, f"--rootdir={_CASES_DIR.parents[1]}"]
    argv += ["-p", "no:cacheprovider", "-o", "junit_suite_name=replay-conformance"]
    # --list's inventory imported the cases before pytest could rewrite their asserts; they
    # judge with expect(), not assert, so the warning says nothing to an adapter author.
    argv += ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
    for option, (dest, _) in OPTIONS.items():
        given = getattr(args, dest)
        for value in given if isinstance(given, list) else [given] if given else []:
            argv.append(f"{option}={value}")
    if args.junit_xml:
        argv.append(f"--junit-xml={args.junit_xml}")
    if args.html:
        argv.append(f"--replay-html={args.html}")
    return [*argv, *args.pytest_args]


def _print_matrix(rows: list[tuple[Any, list[str]]]) -> None:
    for clause, cases in rows:
        print(f"{clause.id:8} {clause.level.value:6} {len(cases):3} cases  {clause.section}")
        for name in cases:
            print(f"    {name}")


def main(argv: list[str] | None = None) -> int:
    """Run the suite (or ``--list``); returns the documented exit status."""
    args = build_parser().parse_args(argv)  # a usage error exits with 2
    try:
        settings = resolve_settings(vars(args), os.environ)
        rows = inventory.matrix(settings.selection)
        if settings.baseline:
            load_baseline(settings.baseline, clauses.by_id())
    except SuiteError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    if args.list:
        _print_matrix(rows)
        return EXIT_OK
    if settings.selection.active and not any(cases for _, cases in rows):
        print(f"replay: {settings.selection.describe()} selects no case", file=sys.stderr)
        return EXIT_USAGE
    watch = _Watch()
    code = int(pytest.main(pytest_argv(args), plugins=[watch]))
    if code == pytest.ExitCode.USAGE_ERROR and not watch.stopped_by_preflight():
        return EXIT_USAGE  # pytest's own usage errors (an unknown option, -n) exit with 4 too
    return EXIT_USAGE if code == pytest.ExitCode.NO_TESTS_COLLECTED else code


class _Watch:
    """Keeps the run's config, so that the exit status can tell preflight from usage."""

    def __init__(self) -> None:
        self.config: pytest.Config | None = None

    def pytest_configure(self, config: pytest.Config) -> None:
        self.config = config

    def stopped_by_preflight(self) -> bool:
        return self.config is not None and stopped_by_preflight(self.config)


if __name__ == "__main__":
    sys.exit(main())
