"""The pytest plugin: the hooks that launch, preflight, grade and report.

Loaded in every pytest run of an environment where the package is installed (entry point
``pytest11``), it stays inert unless the run collects conformance cases (functions made by
``@case``). Then it launches the target (or reaches the one given), checks it once
(:mod:`conformance.preflight`) and fails fast with one clear line if not; grades each case;
and at the end writes the report and prints a clause summary. The options are in
:mod:`conformance.options`.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import hypothesis
import pytest

from conformance import clauses, history
from conformance.baseline import compare, load_baseline
from conformance.driver import Driver
from conformance.errors import SuiteError
from conformance.grading import (
    ERROR,
    FAILED,
    CaseResult,
    ClauseVerdict,
    as_failure,
    grade,
    is_strict,
)
from conformance.html_report import write_html
from conformance.launch import launch
from conformance.options import OPTIONS, Settings, add_options, resolve_settings
from conformance.preflight import PREFLIGHT_EXIT, preflight
from conformance.protocol import FEATURES
from conformance.registry import spec_of, unclaimed
from conformance.report import failure_dict, render_json, terminal_lines, write_report
from conformance.scenarios.profiles import DEFAULT_PROFILE

if TYPE_CHECKING:
    from collections.abc import Generator

    from conformance.registry import CaseSpec
    from conformance.target import Target

__all__ = ["ONE_PROCESS", "session_target", "stopped_by_preflight"]

_CASES_DIR: Final = Path(__file__).resolve().parent / "cases"


# --- plugin state -------------------------------------------------------------------------------


@dataclass
class _State:
    settings: Settings | None = None
    cases: dict[str, CaseSpec] = field(default_factory=dict)  # nodeid -> spec (collected)
    results: dict[str, CaseResult] = field(default_factory=dict)
    driver: Driver | None = None
    target: Target | None = None
    verdicts: list[ClauseVerdict] | None = None
    written: tuple[Path, ...] | None = None
    baseline: frozenset[str] = frozenset()  # --baseline's clauses
    preflight_failed: bool = False  # pytest gives it the exit status of a usage error
    graded: set[str] | None = None  # the selected clauses (None: no selection, all of them)


_STATE = pytest.StashKey[_State]()


def _settings(config: pytest.Config) -> Settings:
    state = config.stash[_STATE]
    if state.settings is None:
        options = {dest: config.getoption(dest) for dest, _ in OPTIONS.values()}
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


def stopped_by_preflight(config: pytest.Config) -> bool:
    """Whether preflight ended the run (and not a usage error, which exits with the same 4)."""
    return _STATE in config.stash and config.stash[_STATE].preflight_failed


def _selects_cases(config: pytest.Config) -> bool:
    """Whether the command line points at the suite's cases (for the header, before collection)."""
    root = config.invocation_params.dir
    for arg in config.args:
        path = _module_path(arg) if config.option.pyargs else None
        path = path or (root / arg.split("::")[0]).resolve()
        if path == _CASES_DIR or _CASES_DIR in path.parents or path in _CASES_DIR.parents:
            return True
    return False


def _module_path(arg: str) -> Path | None:
    """Where ``--pyargs``'s dotted name (``conformance``, ``conformance.cases``) lives."""
    try:
        spec = importlib.util.find_spec(arg.split("::")[0])
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    origin = Path(spec.origin).resolve()
    return origin.parent if origin.name == "__init__.py" else origin


# --- hooks --------------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "clause(*ids): spec clauses a conformance case checks")
    config.addinivalue_line("markers", "feature(name): a feature a conformance case needs")
    config.stash[_STATE] = _State()
    if _selects_cases(config) and _parallel(config):
        raise pytest.UsageError(ONE_PROCESS)


# The suite shares one target among its cases (restarts, flows, the event log, the grading of
# the whole run), so pytest-xdist workers would each launch their own target and grade part of
# the run: refused before any target starts, as pytest-base-url guards its workers.
ONE_PROCESS: Final = (
    "the replay/1 conformance suite runs in one process: its cases share one target, which "
    "some of them restart, and the run is graded as a whole; drop pytest-xdist's -n/--dist"
)


def _parallel(config: pytest.Config) -> bool:
    """Whether pytest-xdist runs this session in workers (or this is one of its workers)."""
    if hasattr(config, "workerinput"):
        return True
    workers = getattr(config.option, "numprocesses", None)
    return bool(workers) or getattr(config.option, "dist", "no") != "no"


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    if not _selects_cases(config):
        return None
    return [f"replay target: {_settings(config).describe()}"]


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Deselect the cases ``--clause``/``--feature`` leave out (other tests are left alone)."""
    selection = _settings(config).selection
    if not selection.active or not any(spec_of(getattr(i, "obj", None)) for i in items):
        return
    try:
        base = selection.clause_ids(clauses.load(), FEATURES)
    except SuiteError as exc:
        raise pytest.UsageError(str(exc)) from None
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    ids = set(base)
    for item in items:
        spec = spec_of(getattr(item, "obj", None))
        chosen = spec is None or selection.selects_case(spec.clauses, spec.features, base)
        (kept if chosen else dropped).append(item)
        if spec is not None and chosen and set(spec.features) & set(selection.features):
            ids |= set(spec.clauses)  # a feature's cases are judged on all they cite
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = kept
    config.stash[_STATE].graded = ids


def pytest_collection_finish(session: pytest.Session) -> None:
    state = session.config.stash[_STATE]
    for item in session.items:
        spec = spec_of(getattr(item, "obj", None))
        if spec is not None:
            state.cases[item.nodeid] = spec
            _record_clauses(item, spec)
    if not state.cases or session.config.option.collectonly:
        return
    settings = _settings(session.config)
    if settings.baseline:
        try:
            state.baseline = load_baseline(settings.baseline, _catalog())
        except SuiteError as exc:
            raise pytest.UsageError(str(exc)) from None
    state.driver = Driver()
    try:
        state.target = launch(settings.launch_spec, state.driver, settings.timeout)
        state.target.info = preflight(state.target)
        state.target.open()
    except SuiteError as exc:
        _shutdown(state)
        state.preflight_failed = True
        pytest.exit(str(exc), returncode=PREFLIGHT_EXIT)
    if not session.config.getoption("hypothesis_profile", None):
        hypothesis.settings.load_profile(DEFAULT_PROFILE)  # the scenarios' CI size
    # Skip what the target does not claim now, so that pytest reports the case's location.
    for item in session.items:
        spec = state.cases.get(item.nodeid)
        reason = unclaimed(spec, state.target) if spec is not None else None
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


def _record_clauses(item: pytest.Item, spec: CaseSpec) -> None:
    """The case's clauses as JUnit properties (``--junit-xml`` writes ``user_properties``)."""
    catalog = _catalog()
    for clause_id in spec.clauses:
        level = catalog[clause_id].level.value if clause_id in catalog else "?"
        item.user_properties.append(("clause", f"{clause_id} {level}"))
    for feature in spec.features:
        item.user_properties.append(("feature", feature))


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
    if report.skipped and result.outcome not in (FAILED, ERROR):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        result.outcome, result.reason = "skipped", reason.removeprefix("Skipped: ")
    elif report.failed and result.outcome != FAILED:  # a later teardown error erases no finding
        error = call.excinfo.value if call.excinfo is not None else None
        result.failure = _failure_of(error, report)
        result.history = _write_history(item, error)
        finding = as_failure(error)
        result.reason = finding.headline if finding is not None else ""
        result.reason = result.reason or str(result.failure["received"])
        # Only a finding naming a clause decides one; anything else is an error of the case,
        # which decides nothing but fails the run all the same (pytest reports it failed).
        result.outcome = FAILED if result.failure["clauses"] else ERROR
        result.strict = result.outcome == ERROR or is_strict(result.failed_clauses, _catalog())
        failed = result.failed_clauses
        result.baselined = bool(failed) and set(failed) <= state.baseline
        if (result.baselined or not result.strict) and report.when == "call":
            # A failed SHOULD, or a known failure, is reported, not fatal: pytest shows an xfail.
            why = "baselined" if result.baselined else "SHOULD"
            report.outcome = "skipped"
            report.wasxfail = f"{why} {', '.join(failed)}: {result.reason}"
    return report


def _write_history(item: pytest.Item, error: BaseException | None) -> str | None:
    """Write the case's whole event log under ``--replay-history`` (None: not asked, or the
    error carries no log, as when the case failed before it started)."""
    directory = _settings(item.config).history
    entries = history.history_of(error)
    if not directory or entries is None:
        return None
    return str(history.write(directory, item.nodeid, entries))


def _failure_of(error: BaseException | None, report: pytest.TestReport) -> dict[str, Any]:
    """The report's record of a failed case: the finding, or the unexpected error."""
    failure = as_failure(error)
    if failure is not None:
        # Hypothesis adds the shrunk steps of a failing scenario to the error as notes.
        return {**failure_dict(failure), "steps": list(getattr(error, "__notes__", []))}
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
        catalog = [c for c in clauses.load() if state.graded is None or c.id in state.graded]
        state.verdicts = grade(catalog, state.results.values(), target.features)
        settings = _settings(session.config)
        if settings.report or settings.html:
            _write_reports(state, target, settings)
    _shutdown(state)


def _write_reports(state: _State, target: Target, settings: Settings) -> None:
    """The JSON, Markdown, badge and HTML reports the options ask for."""
    assert state.verdicts is not None
    document = render_json(
        {"description": target.describe(), "urls": target.urls, "info": target.info},
        state.verdicts,
        list(state.results.values()),
        selection=settings.selection.describe() if state.graded is not None else None,
    )
    if settings.baseline:
        document["baseline"] = {
            "file": settings.baseline,
            **asdict(compare(state.baseline, state.verdicts)),
        }
    written: list[Path] = []
    if settings.report:
        written += write_report(settings.report, document)
    if settings.html:
        written.append(
            write_html(settings.html, document, {c.id: c.text for c in _catalog().values()})
        )
    state.written = tuple(written)


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
    if state.graded is not None:
        selected = _settings(config).selection.describe()
        reporter.write_line(f"selection: {selected}: only the {len(state.graded)} clauses selected")
    for line in terminal_lines(state.verdicts, list(state.results.values())):
        reporter.write_line(line)
    if _settings(config).baseline:
        for line in compare(state.baseline, state.verdicts).lines():
            reporter.write_line(line)
    if state.written:
        reporter.write_line(f"report: {', '.join(str(p) for p in state.written)}")


def pytest_unconfigure(config: pytest.Config) -> None:
    if _STATE in config.stash:
        _print_summary(config)
        _shutdown(config.stash[_STATE])
