"""A pytest plugin (``-p mutation.suite_order``) that runs the suite's fastest cases first, so
a mutant that any quick case catches dies in seconds under ``-x``.

``--mutation-durations PATH``: when PATH does not exist (the unmutated run), each case's
duration is recorded there; when it exists, cases run shortest first, cases it does not
know last, ties in collection order.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

OPTION = "--mutation-durations"
_recorded: dict[str, float] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(OPTION, default=None, help="case durations: recorded if absent, else used")


def _path(config: pytest.Config) -> Path | None:
    value = config.getoption(OPTION)
    return Path(value) if value else None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    path = _path(config)
    if path is None or not path.is_file():
        return
    durations: dict[str, float] = json.loads(path.read_text())
    unknown = max(durations.values(), default=0.0) + 1.0
    items.sort(key=lambda item: durations.get(item.nodeid, unknown))  # sort is stable


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _recorded[report.nodeid] = _recorded.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = _path(session.config)
    if path is not None and not path.exists():
        path.write_text(json.dumps(_recorded, indent=0, sort_keys=True))
