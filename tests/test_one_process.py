"""pytest-xdist is refused before any target starts: the suite runs in one process.

Its cases share one target (some restart it), one driver loop and one grading of the whole
run, so workers would each launch a target and grade a part. The guard fires however the
cases are named: a path, a ``--pyargs`` module, or through ``replay-conformance``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.suite_runs import ROOT, checkout_env

UNREACHABLE = ("--target", "http://127.0.0.1:9", "--api-key", "k")  # never reached: refused first
ONE_PROCESS = "runs in one process"


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd, env=checkout_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("where", "names"),
    [("checkout", ("conformance",)), ("checkout", ("conformance/cases/test_info.py",)),
     ("elsewhere", ("--pyargs", "conformance"))],
)  # fmt: skip
def test_pytest_with_workers_is_a_usage_error(
    tmp_path: Path, where: str, names: tuple[str, ...]
) -> None:
    cwd = ROOT if where == "checkout" else tmp_path
    done = run(cwd, "-m", "pytest", *names, "-n", "2", "-p", "no:cacheprovider", *UNREACHABLE)
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert ONE_PROCESS in done.stderr
    assert "cannot reach target" not in done.stdout + done.stderr  # refused before preflight


def test_the_command_exits_2_for_workers_as_for_any_usage_error(tmp_path: Path) -> None:
    done = run(tmp_path, "-m", "conformance.cli", *UNREACHABLE, "--", "-n", "2")
    assert done.returncode == 2, done.stdout + done.stderr
    assert ONE_PROCESS in done.stderr


def test_the_projects_own_tests_may_still_use_workers(tmp_path: Path) -> None:
    """The plugin is loaded in every pytest run of the environment; only its cases are guarded."""
    (tmp_path / "test_plain.py").write_text("def test_one():\n    assert True\n")
    done = run(tmp_path, "-m", "pytest", "-n", "2", "-q", "-p", "no:cacheprovider", "test_plain.py")
    assert done.returncode == 0, done.stdout + done.stderr
