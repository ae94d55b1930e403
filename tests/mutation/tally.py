"""What a campaign's results add up to: outcomes, equivalence judgements, the kill rate with
its 95% Wilson interval, and the JSON and Markdown reports.

Kill rate = killed / (run - equivalent). A ``timeout`` (the suite itself hung, with no failure
reported) stays in the denominator: the suite did not catch that mutant.
"""

from __future__ import annotations

import json
import math
import statistics
import tomllib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mutation.catalog import Mutant

STATUSES = ("killed", "survived", "timeout")
Z_95 = 1.959963984540054


@dataclass
class Outcome:
    """One mutant's run of the suite."""

    id: str
    operator: str
    module: str
    line_no: int
    status: str  # one of STATUSES
    seconds: float
    diff: str
    clause: str | None = None  # the clause of the first failure, from the replay report
    case: str | None = None
    detail: str = ""

    @classmethod
    def of(cls, mutant: Mutant, status: str, seconds: float, diff: str,
           found: dict[str, str | None]) -> Outcome:  # fmt: skip
        """``mutant``'s outcome; ``found`` has the first failure's clause, case and detail."""
        assert status in STATUSES, status
        where = (mutant.id, mutant.operator, mutant.module, mutant.line_no)
        return cls(*where, status, seconds, diff, found.get("clause"), found.get("case"),
                   found.get("detail") or "")  # fmt: skip


@dataclass(frozen=True)
class Judgement:
    """A person's verdict on a surviving mutant."""

    id: str
    line: str
    equivalent: bool
    reason: str


def load_judgements(path: Path) -> dict[str, Judgement]:
    """The judgements in ``path`` (``[[judgement]]`` tables), by mutant id; raise ValueError
    for one without a reason, an ``equivalent`` flag or a ``line``, or an id given twice."""
    if not path.is_file():
        return {}
    found: dict[str, Judgement] = {}
    for entry in tomllib.loads(path.read_text()).get("judgement", []):
        if not isinstance(entry.get("equivalent"), bool):
            raise ValueError(f"{entry.get('id')}: equivalent must be true or false")
        if not str(entry.get("reason", "")).strip() or not str(entry.get("line", "")).strip():
            raise ValueError(f"{entry.get('id')}: a judgement needs a line and a reason")
        if entry["id"] in found:
            raise ValueError(f"{entry['id']}: judged twice")
        found[entry["id"]] = Judgement(
            entry["id"], entry["line"], entry["equivalent"], entry["reason"]
        )
    return found


def stale_judgements(judgements: dict[str, Judgement], mutants: list[Mutant]) -> list[str]:
    """Judgements that match no mutant of the current code, or whose line no longer matches."""
    by_id = {mutant.id: mutant for mutant in mutants}
    return [
        f"{j.id}: "
        + ("no such mutant" if j.id not in by_id else f"line is now {by_id[j.id].line!r}")
        for j in judgements.values()
        if j.id not in by_id or by_id[j.id].line != j.line
    ]


def wilson(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval for a proportion (95% by default)."""
    if trials == 0:
        return (0.0, 1.0)
    p = successes / trials
    centre = p + z * z / (2 * trials)
    spread = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    denominator = 1 + z * z / trials
    return ((centre - spread) / denominator, (centre + spread) / denominator)


@dataclass
class Tally:
    """The numbers of a campaign."""

    generated: int
    run: int
    killed: int
    survived: int
    timeouts: int
    equivalent: int
    gaps: int  # survivors judged not equivalent
    unjudged: int
    kill_rate: float | None
    interval: tuple[float, float]
    median_seconds: dict[str, float] = field(default_factory=dict)


def tally(generated: int, outcomes: list[Outcome], judgements: dict[str, Judgement]) -> Tally:
    """Count ``outcomes`` against ``judgements`` (judgements apply to survivors only)."""
    counts = Counter(o.status for o in outcomes)
    survivors = [o for o in outcomes if o.status == "survived"]
    equivalent = sum(1 for o in survivors if o.id in judgements and judgements[o.id].equivalent)
    gaps = sum(1 for o in survivors if o.id in judgements and not judgements[o.id].equivalent)
    judged = len(outcomes) - equivalent
    medians = {
        status: statistics.median(o.seconds for o in outcomes if o.status == status)
        for status in STATUSES
        if counts[status]
    }
    return Tally(
        generated=generated,
        run=len(outcomes),
        killed=counts["killed"],
        survived=counts["survived"],
        timeouts=counts["timeout"],
        equivalent=equivalent,
        gaps=gaps,
        unjudged=len(survivors) - equivalent - gaps,
        kill_rate=counts["killed"] / judged if judged else None,
        interval=wilson(counts["killed"], judged),
        median_seconds=medians,
    )


def classification(outcome: Outcome, judgements: dict[str, Judgement]) -> str:
    """How a mutant stands: its status, or for a survivor its judgement."""
    if outcome.status != "survived":
        return outcome.status
    judgement = judgements.get(outcome.id)
    if judgement is None:
        return "survived, not yet judged"
    return ("equivalent: " if judgement.equivalent else "GAP: ") + judgement.reason


def write_reports(out: Path, meta: dict[str, object], numbers: Tally, outcomes: list[Outcome],
                  judgements: dict[str, Judgement]) -> None:  # fmt: skip
    """``out/report.json`` and ``out/report.md``."""
    document = {
        **meta,
        "tally": asdict(numbers),
        "mutants": [
            {**asdict(o), "classification": classification(o, judgements)} for o in outcomes
        ],
    }
    (out / "report.json").write_text(json.dumps(document, indent=2) + "\n")
    (out / "report.md").write_text(markdown(meta, numbers, outcomes, judgements))


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def markdown(meta: dict[str, object], numbers: Tally, outcomes: list[Outcome],
             judgements: dict[str, Judgement]) -> str:  # fmt: skip
    """The report as Markdown: the numbers, a table per operator, every survivor's diff."""
    low, high = numbers.interval
    lines = [
        "# Mutation campaign",
        "",
        f"Command: `{meta.get('command', '')}`",
        f"Sample: seed {meta.get('seed')}, {numbers.run} run of {numbers.generated} generated "
        f"(baseline {meta.get('baseline_seconds', 0):.0f} s).",
        "",
        "| generated | run | killed | survived | equivalent | gaps | not judged | timeouts "
        "| kill rate | 95% Wilson |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {numbers.generated} | {numbers.run} | {numbers.killed} | {numbers.survived} | "
        f"{numbers.equivalent} | {numbers.gaps} | {numbers.unjudged} | {numbers.timeouts} | "
        f"{_percent(numbers.kill_rate)} | {_percent(low)} to {_percent(high)} |",
        "",
        "Median seconds per mutant: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in numbers.median_seconds.items()),
        "",
        "| operator | run | killed | survived | timeouts |",
        "|---|---|---|---|---|",
    ]
    by_operator: dict[str, Counter[str]] = {}
    for o in outcomes:
        by_operator.setdefault(o.operator, Counter())[o.status] += 1
    for name, counts in sorted(by_operator.items()):
        lines.append(
            f"| {name} | {sum(counts.values())} | {counts['killed']} | {counts['survived']} "
            f"| {counts['timeout']} |"
        )
    lines += ["", "## Killed", "", "| mutant | clause | case | time |", "|---|---|---|---|"]
    for o in outcomes:
        if o.status == "killed":
            lines.append(
                f"| `{o.id}` | {o.clause or '?'} | `{o.case or o.detail[:60]}` "
                f"| {o.seconds:.0f} s |"
            )
    lines += ["", "## Survivors and timeouts", ""]
    for o in outcomes:
        if o.status != "killed":
            lines += [
                f"### `{o.id}`",
                "",
                classification(o, judgements),
                "",
                "```diff",
                o.diff,
                "```",
                "",
            ]
    return "\n".join(lines) + "\n"
