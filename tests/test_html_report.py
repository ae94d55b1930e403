"""The HTML report as a reader sees it: rendered by headless Chromium (Debian's ``chromium``,
driven by ``playwright-core`` from ``tests/node``) with the network cut off.

The report comes from a real red run (a mutant of the reference that accepts stale epochs), so
it has failures, passes and a grid of both. Without ``chromium``, ``node`` or the npm packages
the browser test skips, or fails when ``CI`` is set.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conformance.html_report import render_html
from tests.test_conformance_cli import MUTANT, cli

NODE_DIR = Path(__file__).resolve().parent / "node"


def _browser() -> tuple[str, str]:
    """(node, chromium), or skip (fail under CI) saying what is missing."""
    node, chromium = shutil.which("node"), shutil.which("chromium")
    missing = [name for name, path in (("node", node), ("chromium", chromium)) if path is None]
    if not (NODE_DIR / "node_modules" / "playwright-core").is_dir():
        missing.append("playwright-core (npm ci in tests/node)")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the HTML report's browser test; missing: {missing}")
        pytest.skip(f"missing: {', '.join(missing)}")
    assert node is not None and chromium is not None
    return node, chromium


def _read_in_chromium(report: Path) -> dict[str, object]:
    node, chromium = _browser()
    done = subprocess.run(
        [node, str(NODE_DIR / "read_html_report.mjs"), chromium, str(report)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    seen: dict[str, object] = json.loads(done.stdout)
    return seen


@pytest.mark.slow
def test_a_reader_sees_failures_first_and_every_link_resolves_offline(tmp_path: Path) -> None:
    _browser()  # before the run: say what is missing at once
    done = cli(
        tmp_path, "--clause", "SUB-4", "--clause", "ACK", "--target-cmd", MUTANT,
        "--html", "out/report.html", "--replay-report", "out/report",
    )  # fmt: skip
    assert done.returncode == 1, done.stdout[-3000:]
    document = json.loads((tmp_path / "out" / "report.json").read_text())
    seen = _read_in_chromium(tmp_path / "out" / "report.html")
    assert seen["leaving"] == [] and seen["consoleErrors"] == [] and seen["images"] == []
    assert seen["headings"][0] == f"Failures ({len(document['failures'])})"
    failures = seen["failures"]
    assert [f["case"] for f in failures] == [f["case"] for f in document["failures"]]
    assert all(f["visible"] and f["top"] < seen["gridTop"] for f in failures)
    first = failures[0]["text"]
    for shown in (
        "clause",
        "expected",
        "received",
        "event log",
        document["failures"][0]["expected"],
    ):
        assert shown in first
    links = seen["inPageLinks"]
    assert links and all(link["resolves"] for link in links), links
    for href in seen["specLinks"]:
        path, _, anchor = href.removeprefix("file://").partition("#")
        assert f'<a id="{anchor}"></a>' in Path(path).read_text(encoding="utf-8"), href
    assert seen["specLinks"]
    colours = {c["status"]: c["color"] for c in seen["cells"]}
    assert {"failed", "passed"} <= set(colours) and colours["failed"] != colours["passed"]
    graded = {c["id"]: c["status"].replace(" ", "-") for c in document["clauses"]}
    assert {c["id"]: c["status"] for c in seen["cells"]} == graded
    assert seen["afterClick"] == "#clause-SUB-4"


def test_what_the_target_sent_is_escaped_not_rendered() -> None:
    document = {
        "target": {"description": "<b>x</b>"},
        "selection": None,
        "summary": {"clauses": {"passed": 0, "failed": 1}, "failed_must": ["SUB-4"]},
        "clauses": [
            {
                "id": "SUB-4",
                "level": "MUST",
                "section": "6.1 s",
                "status": "failed",
                "cases": ["t::a"],
                "note": "",
            },
        ],
        "failures": [
            {
                "case": "t::a",
                "clauses": ["SUB-4", "ORD-1"],
                "expected": "e",
                "received": "<script>alert(1)</script>",
                "log": ["#1 <img src=x>"],
                "steps": [],
            },
        ],
    }
    page = render_html(document, {"SUB-4": "A subscribe MUST <fail>."}, "file:///spec.md")
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img" not in page and "&lt;fail&gt;" in page
    assert '<a href="#clause-SUB-4">SUB-4</a>' in page  # graded: in the page
    assert '<a href="file:///spec.md#ORD-1">ORD-1</a>' in page  # not graded: in the spec
