"""Where the reference's memory per socket goes: tracemalloc and object counts, per socket.

    python bench/memory_profile.py                      # N = 2,000 sockets, 25 frames
    python bench/memory_profile.py --sockets 200 --top 20 --json p.json
    python bench/memory_profile.py --frames 0 --env MALLOC_ARENA_MAX=1   # RSS and types only
    python bench/memory_profile.py --malloc                # RSS under several allocator settings

Runs the reference under ``bench/_traced.py`` twice, without tracing and then with
tracemalloc from the start, and dumps at three states: listening, N sockets connected (a
replay/1 session each, nothing subscribed) and the same sockets subscribed to one channel
(the load is ``bench/node/memory.mjs --phases``). For each step it prints, per socket: RSS
growth (of the untraced run), traced Python growth and the rest (allocator overhead and
slack, buffers outside Python's allocators); the top allocating lines; the bytes grouped by
library; and the live objects gained per type. Each dump runs ``gc.collect()`` first, so
garbage is not counted (``memory.py`` counts it). A dump blocks the server for seconds at
N = 2,000 with 25 frames; past the ping timeout (45 s) its sockets drop.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import _report as report
from _peers import ROOT, Server, node, run_load, start

BENCH = Path(__file__).resolve().parent
LIBRARIES = ("aiohttp", "engineio", "socketio", "asyncio")
#: aiohttp's own dependencies count as aiohttp: they hold its headers, URLs and signals
AIOHTTP_PARTS = ("multidict", "yarl", "propcache", "aiosignal", "frozenlist", "aiohappyeyeballs")
#: allocator settings ``--malloc`` compares (glibc malloc; CPython's pymalloc)
MALLOC_VARIANTS = (
    {},
    {"MALLOC_ARENA_MAX": "1"},
    {"MALLOC_ARENA_MAX": "2"},
    {"PYTHONMALLOC": "malloc"},
    {"MALLOC_TRIM_THRESHOLD_": "0"},
)


@dataclass(frozen=True)
class Dump:
    """One state of the server: its RSS, traced bytes, object counts, snapshot."""

    state: str
    rss_kib: int
    traced_bytes: int | None
    overhead_bytes: int | None
    types: dict[str, int]
    snapshot: tracemalloc.Snapshot | None


def library(filename: str) -> str | None:
    """The library a source file belongs to, or None for the rest of the standard library."""
    path = Path(filename)
    if path.is_relative_to(ROOT / "reference"):
        return "reference"
    parts = path.parts
    for name in LIBRARIES:
        if name in parts:
            return name
    if any(part in parts for part in AIOHTTP_PARTS):
        return "aiohttp"
    return "other" if "site-packages" in parts else None


def owner(traceback: tracemalloc.Traceback, stdlib_too: bool) -> str:
    """The library of the innermost frame that has one (asyncio counts when ``stdlib_too``)."""
    for frame in reversed(traceback):  # oldest first: the innermost frame is the last
        lib = library(frame.filename)
        if lib is not None and (stdlib_too or lib != "asyncio"):
            return lib
    return "other"


def dump(process: subprocess.Popen[str], folder: Path, index: int, state: str) -> Dump:
    """Ask the traced server for dump ``index`` and read it back."""
    asked = time.monotonic()
    process.send_signal(signal.SIGUSR1)
    done = folder / f"{index}.done"
    deadline = time.monotonic() + 300
    while not done.exists():
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"the traced server wrote no dump {index}")
        time.sleep(0.1)
    # on stderr, as the dump blocks the server: longer than a ping interval drops its sockets
    print(f"dump {index} ({state}): {time.monotonic() - asked:.1f} s", file=sys.stderr)
    facts = json.loads((folder / f"{index}.json").read_text())
    shot = folder / f"{index}.snapshot"
    return Dump(
        state,
        facts["rss_kib"],
        facts["traced_bytes"],
        facts["tracemalloc_overhead_bytes"],
        facts["types"],
        tracemalloc.Snapshot.load(str(shot)) if shot.exists() else None,
    )


def profile(
    sockets: int, frames: int, settle: float, env: dict[str, str], keep: Path | None = None
) -> list[Dump]:
    """Run the traced reference through listening, connected and subscribed; dump each (into
    ``keep`` if given, else a temporary folder)."""
    api_key = secrets.token_hex(16)
    with contextlib.ExitStack() as stack:
        if keep is None:
            keep = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        keep.mkdir(parents=True, exist_ok=True)
        folder, tmp = keep, str(keep)
        argv = [sys.executable, str(BENCH / "_traced.py"), tmp, "reference", "--port", "0",
                "--api-key", api_key, "--log-level", "warning"]  # fmt: skip
        process, url = start(argv, {**env, "REPLAY_TRACE_FRAMES": str(frames)})
        try:
            time.sleep(settle)
            dumps = [dump(process, folder, 0, "listening")]
            target = Server("reference", "reference", url, api_key, process.pid)

            def on_record(record: dict[str, Any], stdin: IO[str]) -> None:
                time.sleep(settle)
                state = "connected" if record["event"] == "connected" else "subscribed"
                dumps.append(dump(process, folder, len(dumps), state))
                stdin.write("next\n")
                stdin.flush()

            run_load("memory.mjs", [target], ["--sockets", str(sockets), "--phases"], on_record)
        finally:
            process.terminate()
            process.wait(30)
    return dumps


def per_socket(
    before: Dump, after: Dump, sockets: int, untraced: tuple[Dump, Dump] | None = None
) -> dict[str, float | None]:
    """Growth from ``before`` to ``after`` in KiB per socket: RSS (from the ``untraced`` run's
    dumps when given: tracing and the dumps themselves swell a traced run's RSS), traced
    bytes, and the RSS the traced bytes do not explain (the allocators' headers, free lists
    and fragmentation; buffers outside Python's allocators)."""

    def grown(first: int | None, last: int | None) -> float | None:
        return None if first is None or last is None else (last - first) / sockets / 1024

    rss_before, rss_after = untraced or (before, after)
    rss = grown(rss_before.rss_kib * 1024, rss_after.rss_kib * 1024)
    traced = grown(before.traced_bytes, after.traced_bytes)
    rest = None if rss is None or traced is None else rss - traced
    return {"rss": rss, "traced": traced, "rest": rest}


def top_lines(before: Dump, after: Dump, sockets: int, top: int) -> list[list[str]]:
    """The lines whose allocations grew most, in bytes and blocks per socket."""
    assert before.snapshot is not None and after.snapshot is not None
    diffs = after.snapshot.compare_to(before.snapshot, "lineno")
    rows = []
    for diff in diffs[:top]:
        frame = diff.traceback[0]
        where = f"{_short(frame.filename)}:{frame.lineno}"
        rows.append(
            [
                where,
                report.number(diff.size_diff / sockets, " B"),
                report.number(diff.count_diff / sockets),
            ]
        )
    return rows


def by_library(before: Dump, after: Dump, sockets: int) -> list[list[str]]:
    """Bytes gained per socket, by the library of the innermost frame that has one (with and
    without asyncio: a task or a future asyncio made for engineio counts as engineio's)."""
    assert before.snapshot is not None and after.snapshot is not None
    diffs = after.snapshot.compare_to(before.snapshot, "traceback")
    inner: Counter[str] = Counter()
    caller: Counter[str] = Counter()
    for diff in diffs:
        inner[owner(diff.traceback, True)] += diff.size_diff
        caller[owner(diff.traceback, False)] += diff.size_diff
    names = sorted(set(inner) | set(caller), key=lambda n: -inner[n])
    return [
        [
            name,
            report.number(inner[name] / sockets, " B"),
            report.number(caller[name] / sockets, " B"),
        ]
        for name in names
    ]


def gained_types(before: Dump, after: Dump, sockets: int, top: int) -> list[list[str]]:
    """The types whose live object count grew most, per socket."""
    gained = Counter(after.types)
    gained.subtract(before.types)
    return [[name, f"{count / sockets:.2f}"] for name, count in gained.most_common(top)]


def _short(filename: str) -> str:
    for marker in ("site-packages/", "python3.11/", str(ROOT) + "/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


STEPS = ("connect (session + socket)", "subscribe", "total")


def _steps(dumps: list[Dump]) -> Iterable[tuple[str, Dump, Dump]]:
    listening, connected, subscribed = dumps
    return zip(
        STEPS, (listening, connected, listening), (connected, subscribed, subscribed), strict=True
    )


def print_profile(dumps: list[Dump], untraced: list[Dump], sockets: int, top: int) -> None:
    rows = []
    for (label, before, after), (_, *rss) in zip(_steps(dumps), _steps(untraced), strict=True):
        figures = per_socket(before, after, sockets, (rss[0], rss[1]))
        rows.append([label, *(report.number(figures[k], " KiB") for k in figures)])
    report.print_table(
        f"memory per socket, {sockets:,} sockets (RSS from a run without tracing; rest = RSS -"
        " traced: allocator overhead and slack, buffers outside Python's allocators)",
        ["step", "RSS", "traced", "rest"],
        rows,
    )
    for label, before, after in _steps(dumps):
        print()
        if before.snapshot is not None:
            report.print_table(
                f"{label}: top lines",
                ["file:line", "bytes/socket", "blocks/socket"],
                top_lines(before, after, sockets, top),
            )
            print()
            report.print_table(
                f"{label}: by library",
                ["library", "innermost frame", "outside asyncio"],
                by_library(before, after, sockets),
            )
            print()
        report.print_table(
            f"{label}: live objects gained",
            ["type", "per socket"],
            gained_types(before, after, sockets, top),
        )


def print_malloc(sockets: int, settle: float) -> list[dict[str, Any]]:
    """RSS per socket (no tracing) under each allocator setting in ``MALLOC_VARIANTS``."""
    results, rows = [], []
    for env in MALLOC_VARIANTS:
        dumps = profile(sockets, 0, settle, env)
        steps = {label: per_socket(b, a, sockets)["rss"] for label, b, a in _steps(dumps)}
        name = " ".join(f"{k}={v}" for k, v in env.items()) or "default"
        results.append({"setting": name, "env": env, "kib_per_socket": steps})
        rows.append([name, *(report.number(v, " KiB") for v in steps.values())])
    report.print_table(
        f"RSS per socket by allocator setting, {sockets:,} sockets (no tracing)",
        ["setting", *STEPS],
        rows,
    )
    return results


def main(args: argparse.Namespace) -> None:
    node()
    if args.malloc:
        results = print_malloc(args.sockets, args.settle)
    else:
        env = dict(item.split("=", 1) for item in args.env)
        untraced = profile(args.sockets, 0, args.settle, env)
        dumps = profile(args.sockets, args.frames, args.settle, env, args.keep)
        print_profile(dumps, untraced, args.sockets, args.top)
        results = [
            {
                "state": d.state,
                "rss_kib": u.rss_kib,
                "traced_rss_kib": d.rss_kib,
                "traced_bytes": d.traced_bytes,
                "tracemalloc_overhead_bytes": d.overhead_bytes,
            }
            for d, u in zip(dumps, untraced, strict=True)
        ]
    report.write_outputs(args, "memory_profile", results, lambda axes: None)


if __name__ == "__main__":
    parser = report.bench_parser(__doc__)
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument("--frames", type=int, default=25, help="tracemalloc frames; 0: off")
    parser.add_argument("--top", type=int, default=15, help="rows in each top list")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds before each dump")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment for the server (e.g. MALLOC_ARENA_MAX=1)",
    )
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep the dumps in DIR")
    parser.add_argument(
        "--malloc",
        action="store_true",
        help="compare RSS per socket under several allocator settings",
    )
    main(parser.parse_args())
