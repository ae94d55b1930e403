"""The automatic mutation campaign: how many of the mutants a program makes of the reference
does the conformance suite kill?

    python tests/mutation/campaign.py list
    python tests/mutation/campaign.py run --budget 3600 --sample 60 --seed 15
    python tests/mutation/campaign.py run --rerun survived     # after adding cases
    python tests/mutation/campaign.py check                    # the judgements still match

cosmic-ray (operators, in-place mutation, its session database) does the mutating; this
module does the running, because the suite's verdict needs more than an exit code: a run that
times out is a kill only if the suite had reported a failure (otherwise it is a ``timeout``),
and a kill names the clause of the first failure, read from the ``--replay-report``. The
reference is copied to a scratch tree per worker and mutated there, never in the working
tree; the unmutated copy must pass first, or the campaign stops (a false kill would inflate
the rate). The sample is a seeded shuffle of all mutants, so any prefix of it is a uniform
sample and a campaign cut short by its budget is still one.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import suppress
from pathlib import Path

if __name__ == "__main__":  # run as a script: make ``mutation`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cosmic_ray.mutating import use_mutation
from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import MutationSpec, TestOutcome, WorkerOutcome, WorkItem, WorkResult

from mutation import catalog as cat
from mutation import tally

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
JUDGEMENTS = Path(__file__).with_name("judgements.toml")
COPIED = ("reference", "conformance", "spec", "pyproject.toml")
TARGET = "{python} -m reference --host 127.0.0.1 --port {port} --api-key={api_key}"
BASELINE_TIMEOUT_S = 900
GRACE_S = 60  # after SIGINT, time for pytest to stop its target and write its report


def suite_argv(report: Path, durations: Path) -> list[str]:
    """The test command: the whole suite against the scratch tree's reference, fastest cases
    first, stopping at the first failure."""
    return [
        sys.executable, "-m", "pytest", "conformance", "-x", "-q", "-p", "no:cacheprovider",
        "-p", "mutation.suite_order", f"--mutation-durations={durations}",
        "--hypothesis-profile=ci", f"--replay-report={report}", f"--target-cmd={TARGET}",
    ]  # fmt: skip


def make_scratch(parent: Path) -> Path:
    """A copy of what the suite and the reference need, to mutate in place."""
    tree = Path(tempfile.mkdtemp(prefix="tree-", dir=parent))
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tree / name, ignore=ignore)
        else:
            shutil.copy2(source, tree / name)
    return tree


def judge(
    tree: Path, timeout_s: float, durations: Path
) -> tuple[str, float, dict[str, str | None]]:
    """Run the suite in ``tree``: ``(status, seconds, found)``, where ``found`` has the first
    failure's clause and case, or the tail of the output when no report names one. A run is
    ``survived`` only when it passes with no failure in its report at all."""
    report = tree / f"report-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPLAY_")}
    env |= {"PYTHONPATH": f"{tree}{os.pathsep}{TESTS}", "PYTHONDONTWRITEBYTECODE": "1"}
    started = time.monotonic()
    process = subprocess.Popen(
        suite_argv(report, durations), cwd=tree, env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    timed_out = False
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        process.send_signal(signal.SIGINT)  # pytest stops its target and writes the report
        try:
            output, _ = process.communicate(timeout=GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
    seconds = time.monotonic() - started
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # a target the suite left behind
    found = _first_failure(report.with_suffix(".json"))
    if timed_out:
        status = "killed" if found["clause"] or found["case"] else "timeout"
    else:
        # A failed SHOULD clause leaves the exit code 0 (reported non-strict), yet the report
        # names it: the suite did notice the mutant. (The unmutated run reports none.)
        noticed = process.returncode != 0 or found["clause"] or found["case"]
        status = "killed" if noticed else "survived"
    if status != "survived" and not (found["clause"] or found["case"]):
        found["detail"] = output.decode(errors="replace")[-400:]
    for path in tree.glob(f"{report.name}*"):
        path.unlink()
    return status, seconds, found


def _first_failure(document: Path) -> dict[str, str | None]:
    if not document.is_file():
        return {"clause": None, "case": None}
    failures = json.loads(document.read_text()).get("failures", [])
    if not failures:
        return {"clause": None, "case": None}
    first = failures[0]
    return {
        "clause": first.get("clause") or next(iter(first.get("clauses") or []), None),
        "case": str(first.get("case", "")).split("::")[-1] or None,
        "detail": str(first.get("received", ""))[:200],
    }


class Campaign:
    """One campaign's state: its output folder, session database and results so far."""

    def __init__(self, out: Path, meta: dict[str, object], generated: int) -> None:
        self.out = out
        self.meta = meta
        self.generated = generated
        self.results = out / "results.jsonl"
        self.outcomes: dict[str, tally.Outcome] = {}
        if self.results.is_file():
            for line in self.results.read_text().splitlines():
                outcome = tally.Outcome(**json.loads(line))
                self.outcomes[outcome.id] = outcome
        self.lock = threading.Lock()

    def record(self, outcome: tally.Outcome, db: WorkDB) -> None:
        with self.lock:
            self.outcomes[outcome.id] = outcome
            self.results.write_text(
                "".join(json.dumps(o.__dict__) + "\n" for o in self.outcomes.values())
            )
            db.set_result(
                outcome.id,
                WorkResult(
                    worker_outcome=WorkerOutcome.NORMAL,
                    test_outcome=TestOutcome.SURVIVED if outcome.status == "survived"
                    else TestOutcome.KILLED if outcome.status == "killed"
                    else TestOutcome.INCOMPETENT,
                    output=f"{outcome.status} {outcome.clause or ''} {outcome.detail}"[:2000],
                    diff=outcome.diff,
                ),
            )  # fmt: skip
            self.write_reports()
            print(
                f"{outcome.status:8} {outcome.seconds:5.0f} s {outcome.id} {outcome.clause or ''}",
                flush=True,
            )

    def write_reports(self) -> None:
        judgements = tally.load_judgements(JUDGEMENTS)
        outcomes = list(self.outcomes.values())
        numbers = tally.tally(self.generated, outcomes, judgements)
        tally.write_reports(self.out, self.meta, numbers, outcomes, judgements)


def _work_item(mutant: cat.Mutant) -> WorkItem:
    spec = MutationSpec(mutant.module, mutant.operator, mutant.occurrence, *mutant.span)
    return WorkItem.single(mutant.id, spec)


def choose(
    mutants: list[cat.Mutant], args: argparse.Namespace, done: dict[str, tally.Outcome]
) -> list[cat.Mutant]:
    """The mutants to run, in order: the given ids, the earlier ones with a status to re-run,
    or the seeded sample."""
    by_id = {m.id: m for m in mutants}
    if args.ids:
        missing = [i for i in args.ids if i not in by_id]
        if missing:
            raise SystemExit(f"no such mutant: {', '.join(missing)}")
        return [by_id[i] for i in args.ids]
    if args.rerun:
        return [by_id[i] for i, o in done.items() if o.status == args.rerun and i in by_id]
    order = list(mutants)
    random.Random(args.seed).shuffle(order)
    chosen = order[: args.sample] if args.sample else order
    return [m for m in chosen if m.id not in done]


def run(args: argparse.Namespace) -> int:
    """Baseline, then mutants until the sample or the budget is used up."""
    began = time.monotonic()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="mutation-"))
    try:
        trees: queue.Queue[Path] = queue.Queue()
        first = make_scratch(scratch)
        mutants = cat.catalog(first)
        durations = scratch / "durations.json"
        status, seconds, found = judge(first, args.timeout or BASELINE_TIMEOUT_S, durations)
        print(
            f"baseline: {'passed' if status == 'survived' else status} in {seconds:.0f} s",
            flush=True,
        )
        if status != "survived":
            print(f"the unmutated reference fails the suite: {found}", file=sys.stderr)
            return 2
        timeout_s = args.timeout or max(3 * seconds, 300)
        meta: dict[str, object] = {
            "command": " ".join(suite_argv(Path("REPORT"), Path("DURATIONS"))),
            "seed": args.seed,
            "sample": args.sample,
            "baseline_seconds": seconds,
            "timeout_seconds": timeout_s,
            "operators": list(cat.operator_names()),
            "scope": cat.scope(first),
        }
        earlier = out / "meta.json"
        if (args.ids or args.rerun) and earlier.is_file():  # a re-run keeps the sample's meta
            meta = {**json.loads(earlier.read_text()), "rerun_baseline_seconds": seconds}
        earlier.write_text(json.dumps(meta, indent=2) + "\n")
        campaign = Campaign(out, meta, len(mutants))
        todo = choose(mutants, args, campaign.outcomes)
        print(f"{len(mutants)} mutants generated; running {len(todo)}", flush=True)
        trees.put(first)
        for _ in range(args.parallel - 1):
            trees.put(make_scratch(scratch))
        pending: queue.Queue[cat.Mutant] = queue.Queue()
        for mutant in todo:
            pending.put(mutant)
        with use_db(str(out / "session.sqlite")) as db:
            known = _job_ids(db)
            db.add_work_items(_work_item(m) for m in todo if m.id not in known)

            def worker() -> None:
                tree = trees.get()
                while time.monotonic() - began < args.budget:
                    try:
                        mutant = pending.get_nowait()
                    except queue.Empty:
                        return
                    difference = cat.diff(tree, mutant)
                    op = cat.operator(mutant.operator)
                    with use_mutation(tree / mutant.module, op, mutant.occurrence) as (_, code):
                        assert code is not None, mutant.id
                        status, seconds, found = judge(tree, timeout_s, durations)
                    campaign.record(
                        tally.Outcome.of(mutant, status, seconds, difference, found), db
                    )

            threads = [threading.Thread(target=worker) for _ in range(args.parallel)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            campaign.write_reports()
        print((out / "report.md").read_text().split("\n## ", 1)[0], flush=True)
        return 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _job_ids(db: WorkDB) -> set[str]:
    return {item.job_id for item in db.work_items}


def list_mutants(args: argparse.Namespace) -> int:
    """Print the mutants (or only how many per operator and module)."""
    mutants = cat.catalog(ROOT)
    if args.ids:
        for mutant in mutants:
            print(mutant.id)
        return 0
    from collections import Counter

    print(f"{len(mutants)} mutants in {len(cat.scope(ROOT))} modules")
    for name, count in Counter(m.family for m in mutants).most_common():
        print(f"  {count:5} {name}")
    return 0


def report(args: argparse.Namespace) -> int:
    """Rewrite the reports of ``--out`` from its results, with the judgements as they are now."""
    out = Path(args.out).resolve()
    meta = json.loads((out / "meta.json").read_text())
    campaign = Campaign(out, meta, len(cat.catalog(ROOT)))
    with use_db(str(out / "session.sqlite")) as db:
        for outcome in list(campaign.outcomes.values()):
            if outcome.status == "survived" and (outcome.clause or outcome.case):
                outcome.status = "killed"  # recorded before a failed SHOULD counted as a kill
                campaign.record(outcome, db)
    campaign.write_reports()
    print((out / "report.md").read_text().split("\n## ", 1)[0])
    return 0


def check(_args: argparse.Namespace) -> int:
    """Exit 1 if a judgement lacks a reason or matches no current mutant."""
    try:
        judgements = tally.load_judgements(JUDGEMENTS)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 1
    stale = tally.stale_judgements(judgements, cat.catalog(ROOT))
    for line in stale:
        print(line, file=sys.stderr)
    print(f"{len(judgements)} judgements, {len(stale)} stale")
    return 1 if stale else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="campaign", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    runner = commands.add_parser("run", help="baseline, then mutants")
    runner.add_argument("--budget", type=float, default=3600, help="seconds; no new mutant after")
    runner.add_argument("--sample", type=int, default=0, help="mutants to sample (0: all)")
    runner.add_argument("--seed", type=int, default=15)
    runner.add_argument("--parallel", type=int, default=1, help="mutants at a time")
    runner.add_argument("--timeout", type=float, default=0, help="per run (0: 3x the baseline)")
    runner.add_argument("--ids", nargs="*", default=[], help="run these mutants, in this order")
    runner.add_argument("--rerun", choices=tally.STATUSES, help="re-run earlier results with it")
    runner.add_argument("--out", default=str(ROOT / "reports" / "mutation"))
    runner.set_defaults(handler=run)
    lister = commands.add_parser("list", help="count the mutants")
    lister.add_argument("--ids", action="store_true", help="print every id")
    lister.set_defaults(handler=list_mutants)
    reporter = commands.add_parser("report", help="rewrite the reports from the results")
    reporter.add_argument("--out", default=str(ROOT / "reports" / "mutation"))
    reporter.set_defaults(handler=report)
    checker = commands.add_parser("check", help="validate judgements.toml")
    checker.set_defaults(handler=check)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
