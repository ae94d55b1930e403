"""``replay-conformance``: help, exit statuses, selection, ``--list`` and JUnit properties, run
as an adapter author runs it (a subprocess, from a directory outside the checkout).

Marked ``slow``: the runs launch the reference (or a mutant of it) as the target.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.suite_runs import ROOT, checkout_env

pytestmark = pytest.mark.slow

MUTANT = "{python} %s stale-epoch-accepted --host 127.0.0.1 --port {port} --api-key={api_key}" % (
    ROOT / "tests" / "mutants" / "serve.py"
)


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conformance.cli", *args],
        cwd=cwd, env=checkout_env(), capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def test_help_groups_the_plugins_options_and_lists_the_exit_statuses(tmp_path: Path) -> None:
    done = cli(tmp_path, "--help")
    assert done.returncode == 0
    out = done.stdout[done.stdout.index("\nreplay:") :]  # the groups, after the usage line
    group, output, running = (out.index(s) for s in ("replay:", "output:", "running:"))
    assert group < out.index("--target-cmd CMD") < out.index("--clause SELECTOR") < output
    assert output < out.index("--junit-xml") < running < out.index("--list")
    for status in ("0  the run passed", "1  a MUST clause failed", "2  usage", "4  preflight"):
        assert status in out


@pytest.mark.parametrize(
    "args",
    [("--clause", "XYZ", "--list"), ("--feature", "teleport"), ("--replay-timeout", "soon"),
     ("--no-such-option",), ("--baseline", "missing.txt")],
)  # fmt: skip
def test_a_usage_error_exits_2_with_one_line(tmp_path: Path, args: tuple[str, ...]) -> None:
    done = cli(tmp_path, *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip() and "Traceback" not in done.stderr


def test_list_prints_the_selected_clauses_and_their_cases_without_running(tmp_path: Path) -> None:
    done = cli(tmp_path, "--list", "--clause", "SUB-4", "--target", "http://127.0.0.1:9")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:2] == ["SUB-4", "MUST"]
    cases = [line.strip() for line in lines[1:]]
    assert cases and all(c.startswith("conformance/cases/test_") and "::test_" in c for c in cases)
    assert lines[0].split()[2] == str(len(cases))


def test_preflight_failure_exits_4(tmp_path: Path) -> None:
    done = cli(tmp_path, "--clause", "SUB-4", "--target", "http://127.0.0.1:9", "--api-key", "k")
    assert done.returncode == 4, done.stdout + done.stderr
    assert "cannot reach target" in done.stdout + done.stderr


def _junit_cases(path: Path) -> list[ET.Element]:
    return list(ET.parse(path).getroot().iter("testcase"))


def test_clause_selection_runs_only_its_cases_and_grades_only_it(tmp_path: Path) -> None:
    listed = cli(tmp_path, "--list", "--clause", "SUB-4").stdout.splitlines()[1:]
    report, junit = tmp_path / "r", tmp_path / "j.xml"
    done = cli(tmp_path, "--clause", "SUB-4", f"--replay-report={report}", f"--junit-xml={junit}")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "selection: --clause SUB-4" in done.stdout
    document = json.loads(report.with_suffix(".json").read_text())
    assert document["selection"] == "--clause SUB-4"
    assert [c["id"] for c in document["clauses"]] == ["SUB-4"]
    assert "only the 1 clauses selected by `--clause SUB-4`" in (tmp_path / "r.md").read_text()
    cases = _junit_cases(junit)
    assert len(cases) == len(listed)
    for testcase in cases:
        properties = [(p.get("name"), p.get("value")) for p in testcase.iter("property")]
        assert ("clause", "SUB-4 MUST") in properties, properties


def test_a_failing_must_exits_1_and_junit_names_clause_expected_received(tmp_path: Path) -> None:
    junit, report = tmp_path / "j.xml", tmp_path / "r"
    done = cli(
        tmp_path, "--clause", "SUB-4", "--target-cmd", MUTANT, f"--junit-xml={junit}",
        f"--replay-report={report}", "--replay-history=hist",
    )  # fmt: skip
    assert done.returncode == 1, done.stdout[-4000:] + done.stderr[-2000:]
    failures = [f.get("message") or "" for f in ET.parse(junit).getroot().iter("failure")]
    assert any(
        m.startswith("conformance.errors.ConformanceFailure: [SUB-4] expected ") for m in failures
    )
    assert all("; received " in m for m in failures), failures
    # Each failure names the file of its whole event log, written as JSON lines.
    named = [f["history"] for f in json.loads(report.with_suffix(".json").read_text())["failures"]]
    assert len(named) == len(failures) and all(named)
    for path in named:
        entries = [json.loads(line) for line in (tmp_path / path).read_text().splitlines()]
        assert entries and [e["seq"] for e in entries] == list(range(1, len(entries) + 1))


STALE_EPOCH = ("--clause", "SUB-4", "--clause", "SUB-1", "--clause", "SIG-4")  # what MUTANT fails


def test_a_baseline_tolerates_known_failures_and_fails_a_new_one(tmp_path: Path) -> None:
    first = cli(tmp_path, *STALE_EPOCH, "--target-cmd", MUTANT, f"--replay-report={tmp_path}/r1")
    assert first.returncode == 1, first.stdout[-4000:]
    assert json.loads((tmp_path / "r1.badge.json").read_text())["color"] == "red"
    again = cli(tmp_path, *STALE_EPOCH, "--target-cmd", MUTANT, f"--baseline={tmp_path}/r1.json")
    assert again.returncode == 0, again.stdout[-4000:]
    assert "baseline: 3 known failures tolerated" in again.stdout
    (tmp_path / "partial.txt").write_text("SUB-1\nSIG-4\n")
    new = cli(tmp_path, *STALE_EPOCH, "--target-cmd", MUTANT, f"--baseline={tmp_path}/partial.txt")
    assert new.returncode == 1, new.stdout[-4000:]
    assert "new failures (not in the baseline): SUB-4" in new.stdout


def test_a_baselined_clause_that_passes_is_reported_and_the_badge_is_green(tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("SUB-4\n")
    done = cli(tmp_path, "--clause", "SUB-4", "--baseline=b.txt", "--replay-report=r")
    assert done.returncode == 0, done.stdout[-4000:]
    assert "remove from the baseline: SUB-4" in done.stdout
    assert json.loads((tmp_path / "r.json").read_text())["baseline"]["fixed"] == ["SUB-4"]
    assert json.loads((tmp_path / "r.badge.json").read_text()) == {
        "schemaVersion": 1, "label": "replay/1", "message": "1/1 MUST", "color": "brightgreen",
    }  # fmt: skip
