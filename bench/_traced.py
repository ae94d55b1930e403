"""Run a Python server module under memory tracing, for ``memory_profile.py`` only.

    python bench/_traced.py DUMP_DIR MODULE [ARGS...]

Runs ``python -m MODULE ARGS`` in this process after starting ``tracemalloc`` (with
``REPLAY_TRACE_FRAMES`` frames, default 25; 0 leaves tracing off). On SIGUSR1 it writes
``DUMP_DIR/<n>.snapshot`` (a tracemalloc snapshot, when tracing), ``DUMP_DIR/<n>.json``
(object counts per type from ``gc.get_objects()``, the RSS, tracemalloc's own overhead), then
``DUMP_DIR/<n>.done``, n counting from 0. The shipped server has none of this: the wrapper is
the only place a dump can be asked for.
"""

from __future__ import annotations

import collections
import gc
import json
import os
import runpy
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType


def rss_kib() -> int:
    """This process's resident set size now, in KiB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


class Dumper:
    """Writes the numbered dumps; called from the SIGUSR1 handler, between bytecodes."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        stem = self.folder / str(self.count)
        self.count += 1
        gc.collect()  # count what is alive, not garbage waiting for a collection
        types = collections.Counter(
            f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.get_objects()
        )
        tracing = tracemalloc.is_tracing()
        if tracing:
            tracemalloc.take_snapshot().dump(str(stem.with_suffix(".snapshot")))
        facts = {
            "rss_kib": rss_kib(),
            "traced_bytes": tracemalloc.get_traced_memory()[0] if tracing else None,
            "tracemalloc_overhead_bytes": tracemalloc.get_tracemalloc_memory() if tracing else None,
            "types": dict(types),
        }
        stem.with_suffix(".json").write_text(json.dumps(facts))
        stem.with_suffix(".done").write_text("")


def main() -> None:
    folder, module, *argv = sys.argv[1:]
    frames = int(os.environ.get("REPLAY_TRACE_FRAMES", "25"))
    if frames:
        tracemalloc.start(frames)
    signal.signal(signal.SIGUSR1, Dumper(Path(folder)))
    sys.argv = [module, *argv]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
