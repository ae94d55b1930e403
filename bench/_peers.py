"""Shared by the side-by-side benchmarks: run the reference and the stock socket.io peer,
drive both with one Node.js load process (``bench/node/``), and read the servers' memory.

Both servers get their own process; the load generator is a third. Each load script prints
one JSON line per result, which ``run_load`` returns as dicts.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from _server import reference_argv

NODE_DIR = Path(__file__).resolve().parent / "node"
ROOT = NODE_DIR.parent.parent


@dataclass(frozen=True)
class Server:
    """One running server: what the load scripts need to reach it, and its process id."""

    name: str
    kind: str  # "reference" (replay/1) or "stock" (bench/node/peer.mjs)
    url: str
    api_key: str
    pid: int

    def target(self) -> dict[str, str]:
        return {"name": self.name, "kind": self.kind, "url": self.url, "api_key": self.api_key}

    def rss_kib(self) -> int:
        """The server process's resident set size now, in KiB (Linux /proc)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError(f"no VmRSS for process {self.pid}")


def node() -> str:
    """The node binary, once bench/node's dependencies are installed."""
    binary = shutil.which("node")
    if binary is None:
        raise SystemExit("these benchmarks need Node.js (node) on PATH")
    if not (NODE_DIR / "node_modules" / "socket.io-client").is_dir():
        raise SystemExit(f"run `npm ci` in {NODE_DIR} first")
    return binary


def start(argv: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    """Start a server that prints its URL at the end of its first line; return it and the URL."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    assert process.stdout is not None
    first = process.stdout.readline()
    if not first:
        process.wait()
        raise RuntimeError(f"{argv[:3]} exited ({process.returncode}) before it listened")
    return process, first.strip().rsplit(" ", 1)[1]


@contextlib.contextmanager
def servers(store: str = "memory", recovery: bool = False) -> Iterator[list[Server]]:
    """Start the reference and the stock peer (with connection state recovery if asked)."""
    api_key = secrets.token_hex(16)
    peer_argv = [node(), str(NODE_DIR / "peer.mjs")] + (["--recovery"] if recovery else [])
    started: list[subprocess.Popen[str]] = []
    try:
        reference, url = start(reference_argv(api_key, store))
        started.append(reference)
        peer, peer_url = start(peer_argv)
        started.append(peer)
        yield [
            Server("reference", "reference", url, api_key, reference.pid),
            Server("stock socket.io", "stock", peer_url, "", peer.pid),
        ]
    finally:
        for process in started:
            process.terminate()
        for process in started:
            process.wait(10)


def run_load(
    script: str,
    targets: list[Server],
    args: list[str],
    on_record: Callable[[dict[str, Any], IO[str]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run ``bench/node/SCRIPT`` against the targets; return the JSON lines it printed.

    ``on_record`` sees each record as it arrives, with the script's stdin to answer on.
    """
    argv = [node(), str(NODE_DIR / script), "--targets", json.dumps([t.target() for t in targets])]
    with subprocess.Popen(
        argv + args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=NODE_DIR
    ) as load:
        assert load.stdout is not None and load.stdin is not None
        records = []
        for line in load.stdout:
            record = json.loads(line)
            records.append(record)
            if on_record is not None:
                on_record(record, load.stdin)
        load.stdin.close()
    if load.returncode != 0:
        raise RuntimeError(f"{script} failed with exit code {load.returncode}")
    return records
