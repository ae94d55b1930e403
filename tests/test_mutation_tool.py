"""The mutation campaign tool (``tests/mutation/``) itself: its operators, its mutant ids, its
arithmetic and the judgements file. Fast: nothing here runs the suite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cosmic_ray.mutating import mutate_code
from mutation import catalog as cat
from mutation import operators, tally
from mutation.campaign import JUDGEMENTS, ROOT, choose, parse_args


@pytest.fixture(scope="module")
def mutants() -> list[cat.Mutant]:
    return cat.catalog(ROOT)


@pytest.mark.parametrize("name", list(operators.OWN))
def test_own_operators_make_their_examples(name: str) -> None:
    operator = operators.OWN[name]()
    for example in operators.OWN[name].examples():
        mutated = mutate_code(example.pre_mutation_code, operator, example.occurrence)
        assert mutated == example.post_mutation_code


def test_checks_without_an_exit_and_keyword_arguments_are_left_alone() -> None:
    assert mutate_code("if x:\n    y = 1\n", operators.RemoveCheck(), 0) is None
    assert mutate_code("f(a, b=1)\n", operators.SwapArguments(), 0) is None
    assert mutate_code("f(a, a)\n", operators.SwapArguments(), 0) is None
    assert mutate_code("x = 1\n", operators.RemoveStatement(), 0) is None


def test_every_operator_name_resolves() -> None:
    for name in operators.operator_names():
        assert isinstance(cat.operator(name), operators.Operator)


def test_the_scope_is_the_memory_default(mutants: list[cat.Mutant]) -> None:
    modules = cat.scope(ROOT)
    assert "reference/store/memory.py" in modules
    assert "reference/server/socket_api.py" in modules
    assert not [m for m in modules if "redis" in m or "mongo" in m or m in cat.EXCLUDED]
    assert {m.module for m in mutants} <= set(modules)


def test_ids_are_unique_and_stable(mutants: list[cat.Mutant]) -> None:
    assert len({m.id for m in mutants}) == len(mutants)
    assert [m.id for m in cat.catalog(ROOT)] == [m.id for m in mutants]


def test_an_id_changes_when_its_line_changes(tmp_path: Path) -> None:
    names = ("core/NumberReplacer",)
    (tmp_path / "m.py").write_text("x = 1\ny = 2\n")
    before = [m.id for m in cat.mutants_of(tmp_path, "m.py", names)]
    (tmp_path / "m.py").write_text("x = 1\ny = 3\n")
    after = [m.id for m in cat.mutants_of(tmp_path, "m.py", names)]
    assert before[:2] == after[:2]  # x = 1, +1 and -1
    assert not set(before[2:]) & set(after[2:])


def test_the_diff_shows_the_mutated_line(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("async def f():\n    await g(1)\n")
    (mutant,) = cat.mutants_of(tmp_path, "m.py", ("replay/DropAwait",))
    assert cat.diff(tmp_path, mutant).splitlines()[-2:] == ["-    await g(1)", "+    g(1)"]
    assert mutant.id.startswith("m.py:DropAwait:0:")


def test_logging_and_type_checking_lines_are_not_mutated(tmp_path: Path) -> None:
    source = "if TYPE_CHECKING:\n    f(1)\nlog.info(2)\ng(3)\n"
    (tmp_path / "m.py").write_text(source)
    found = list(cat.mutants_of(tmp_path, "m.py", ("core/NumberReplacer",)))
    assert [m.line for m in found] == ["g(3)", "g(3)"]


def test_a_sample_is_a_prefix_of_every_larger_one(mutants: list[cat.Mutant]) -> None:
    small = choose(mutants, parse_args(["run", "--sample", "10", "--seed", "3"]), {})
    large = choose(mutants, parse_args(["run", "--sample", "40", "--seed", "3"]), {})
    other = choose(mutants, parse_args(["run", "--sample", "10", "--seed", "4"]), {})
    assert large[:10] == small and other != small


def test_wilson_interval() -> None:
    low, high = tally.wilson(8, 10)
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)
    assert tally.wilson(0, 0) == (0.0, 1.0)
    low, high = tally.wilson(50, 50)
    assert high == pytest.approx(1.0) and 0.92 < low < 0.93


def _outcome(name: str, status: str, seconds: float = 1.0) -> tally.Outcome:
    return tally.Outcome(name, "core/X", "m.py", 1, status, seconds, "")


def test_kill_rate_leaves_equivalent_survivors_out() -> None:
    outcomes = [
        *(_outcome(f"k{i}", "killed", 2.0) for i in range(7)),
        _outcome("eq", "survived", 100.0),
        _outcome("gap", "survived", 110.0),
        _outcome("new", "survived", 120.0),
        _outcome("hung", "timeout", 300.0),
    ]
    judgements = {
        "eq": tally.Judgement("eq", "x", True, "no observable difference: a because b"),
        "gap": tally.Judgement("gap", "x", False, "a client sees c"),
        "gone": tally.Judgement("gone", "x", True, "judges a mutant not run"),
    }
    numbers = tally.tally(1000, outcomes, judgements)
    assert (numbers.run, numbers.killed, numbers.survived, numbers.timeouts) == (11, 7, 3, 1)
    assert (numbers.equivalent, numbers.gaps, numbers.unjudged) == (1, 1, 1)
    assert numbers.kill_rate == pytest.approx(7 / 10)
    assert numbers.median_seconds == {"killed": 2.0, "survived": 110.0, "timeout": 300.0}


def test_judgements_need_a_reason_and_a_line(tmp_path: Path) -> None:
    path = tmp_path / "judgements.toml"
    path.write_text('[[judgement]]\nid = "a"\nline = "x"\nequivalent = true\nreason = " "\n')
    with pytest.raises(ValueError, match="reason"):
        tally.load_judgements(path)
    path.write_text('[[judgement]]\nid = "a"\nline = "x"\nequivalent = "yes"\nreason = "r"\n')
    with pytest.raises(ValueError, match="true or false"):
        tally.load_judgements(path)


def test_a_judgement_of_a_changed_line_is_stale() -> None:
    mutant = cat.Mutant("m.py", "core/X", 0, 1, "x = 1")
    judged = tally.Judgement(mutant.id, "x = 2", True, "r")
    gone = tally.Judgement("m.py:X:9:00000000", "y", True, "r")
    stale = tally.stale_judgements({judged.id: judged, gone.id: gone}, [mutant])
    assert stale == [f"{mutant.id}: line is now 'x = 1'", f"{gone.id}: no such mutant"]


def test_every_committed_judgement_matches_a_current_mutant(mutants: list[cat.Mutant]) -> None:
    judgements = tally.load_judgements(JUDGEMENTS)
    assert judgements, "the campaign's survivors are judged in tests/mutation/judgements.toml"
    assert tally.stale_judgements(judgements, mutants) == []
    for judgement in judgements.values():
        assert judgement.equivalent or judgement.reason  # a gap names what a client sees
        if judgement.equivalent:
            assert judgement.reason.startswith("no observable difference"), judgement.id


def test_the_report_lists_survivors_with_their_diff(tmp_path: Path) -> None:
    outcomes = [_outcome("k", "killed"), _outcome("s", "survived")]
    outcomes[1].diff = "-a\n+b"
    numbers = tally.tally(5, outcomes, {})
    tally.write_reports(tmp_path, {"seed": 1}, numbers, outcomes, {})
    text = (tmp_path / "report.md").read_text()
    assert "### `s`" in text and "-a\n+b" in text and "survived, not yet judged" in text
    assert "| 5 | 2 | 1 | 1 | 0 | 0 | 1 | 0 | 50.0% |" in text


def test_serve_imports_the_mutated_module_instead_of_its_file() -> None:
    probe = (
        "from mutation.serve import install\n"
        "install('reference/core/jcs.py:NumberReplacer:7:3267ec01')\n"
        "from reference.core.jcs import _float_delta\n"
        "print(_float_delta(0.5), _float_delta(5.0))\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.stdout.split() == ["-1", "-2"], done.stderr  # unmutated: 0 and -2
