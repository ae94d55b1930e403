"""What an adapter author's CI does, done here: build the wheel, install it in a fresh virtual
environment through ``scripts/gate-adapter`` (the script the GitHub Action runs), and run
``replay-conformance`` from it, green against the reference and through a baseline against a
mutant.

Marked ``slow``: pip installs the wheel's dependencies into a new environment (from its cache
when it has them).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest

from tests.suite_runs import ROOT, clean_env

pytestmark = pytest.mark.slow

SCRIPT = ROOT / "scripts" / "gate-adapter"
MUTANT = "{python} %s stale-epoch-accepted --host 127.0.0.1 --port {port} --api-key={api_key}" % (
    ROOT / "tests" / "mutants" / "serve.py"
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(ROOT)],
        check=True, timeout=600, env=clean_env(),
    )  # fmt: skip
    (built,) = out.glob("socketio_replay-*.whl")
    return built


def gate(cwd: Path, venv: Path, wheel: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``scripts/gate-adapter`` as the action runs it (no checkout on the path)."""
    variables = {**clean_env(), "REPLAY_SUITE": str(wheel), "REPLAY_VENV": str(venv),
                 "PYTHON": sys.executable, **env}  # fmt: skip
    variables.pop("PYTHONPATH", None)
    return subprocess.run(
        [str(SCRIPT)], cwd=cwd, env=variables, capture_output=True, text=True, timeout=900,
        check=False,
    )  # fmt: skip


def test_the_wheel_ships_the_command_the_suite_and_the_spec(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "conformance/cli.py" in names and "replay_spec/protocol.md" in names
    points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(points).decode()
    assert "replay-conformance = conformance.cli:main" in text
    assert "replay-conformance = conformance.plugin" in text


def test_from_a_fresh_venv_green_selected_then_baselined_against_a_mutant(
    wheel: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    green = gate(tmp_path, venv, wheel, REPLAY_CLAUSE="SUB-4", REPLAY_OUT="green")
    assert green.returncode == 0, green.stdout[-4000:] + green.stderr[-2000:]
    assert str(ROOT) not in (venv / "bin" / "replay-conformance").read_text()
    out = tmp_path / "green"
    cases = list(ET.parse(out / "junit.xml").getroot().iter("testcase"))
    assert cases and all(
        any(p.get("value") == "SUB-4 MUST" for p in c.iter("property")) for c in cases
    )
    assert "<!DOCTYPE html>" in (out / "report.html").read_text()
    assert json.loads((out / "report.badge.json").read_text())["message"] == "1/1 MUST"
    selection = {"REPLAY_CLAUSE": "SUB-4,SUB-1,SIG-4", "REPLAY_TARGET_CMD": MUTANT}
    red = gate(tmp_path, venv, wheel, **selection, REPLAY_OUT="red")
    assert red.returncode == 1, red.stdout[-4000:]
    assert list((tmp_path / "red" / "history").glob("*.jsonl"))
    known = gate(tmp_path, venv, wheel, **selection, REPLAY_BASELINE="red/report.json")
    assert known.returncode == 0, known.stdout[-4000:]
    assert "baseline: 3 known failures tolerated" in known.stdout


def test_the_action_runs_the_script_with_the_variables_it_reads() -> None:
    action = (ROOT / "action.yml").read_text()
    assert '"$GITHUB_ACTION_PATH/scripts/gate-adapter"' in action
    assert "using: composite" in action and "actions/upload-artifact" in action
    script = SCRIPT.read_text()
    for variable in set(re.findall(r"\b(REPLAY_[A-Z_]+):", action)):
        assert variable in script, variable


@pytest.mark.parametrize("runner", ["pipx", "uvx"])
def test_pipx_run_and_uvx_run_the_command_from_the_wheel(
    wheel: Path, tmp_path: Path, runner: str
) -> None:
    """``pipx run`` and ``uvx`` each make a throwaway environment from the wheel and run the
    command in it, green against the reference it ships: the whole suite with uvx (the run the
    issue's "done when" names: JUnit and HTML), ``--clause SUB-4`` with pipx."""
    tool = Path(sys.executable).parent / runner  # test dependencies of this distribution
    spec = ["run", "--spec", str(wheel)] if runner == "pipx" else ["--from", str(wheel)]
    env = {**clean_env(), "PIPX_HOME": str(tmp_path / "pipx"), "UV_CACHE_DIR": str(tmp_path / "uv"),
           "PIPX_BIN_DIR": str(tmp_path / "bin")}  # fmt: skip
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    junit, html = tmp_path / "junit.xml", tmp_path / "report.html"
    command = "{python} -m reference --host 127.0.0.1 --port {port} --api-key={api_key}"
    selection = ["--clause", "SUB-4"] if runner == "pipx" else []
    done = subprocess.run(
        [str(tool), *spec, "replay-conformance", *selection, "--target-cmd", command,
         "--junit-xml", str(junit), "--html", str(html)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert str(ROOT) not in done.stdout  # the target ran from the throwaway environment
    cases = list(ET.parse(junit).getroot().iter("testcase"))
    assert len(cases) > (1 if selection else 300)
    assert all(any(p.get("name") == "clause" for p in c.iter("property")) for c in cases)
    assert "<!DOCTYPE html>" in html.read_text()
