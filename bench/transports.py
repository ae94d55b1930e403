"""python-socketio's transports side by side: memory per socket and a fan-out latency.

    python bench/transports.py                # N = 2,000 sockets; fan-out K = 100 at 100/s, 10 s
    python bench/transports.py --sockets 200 --subscribers 20 --rate 50 --duration 3 --json t.json

Serves a bare python-socketio server (``bench/_bare_server.py``: no replay logic; sockets
connect with auth and join a room) once per transport: aiohttp as the reference uses it, and
ASGI under uvicorn with each of its WebSocket implementations (websockets, websockets' sans-I/O
layer, wsproto). One Node.js load process holds N sockets on each in turn (``memory.mjs``,
RSS growth / N as in ``memory.py``), then runs the fan-out load (``fanout.mjs``) at one rate
against each. Tells whether moving the reference off aiohttp would pay.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import _report as report
from _bare_server import TRANSPORTS
from _peers import Server, run_load, start

BENCH = Path(__file__).resolve().parent


@contextlib.contextmanager
def bare_servers(transports: list[str]) -> Iterator[list[Server]]:
    """Start one bare python-socketio server per transport, each its own process."""
    api_key = secrets.token_hex(16)
    started: list[Server] = []
    processes = []
    try:
        for transport in transports:
            argv = [sys.executable, str(BENCH / "_bare_server.py"), "--transport", transport,
                    "--api-key", api_key]  # fmt: skip
            process, url = start(argv)
            processes.append(process)
            started.append(Server(transport, "bare", url, api_key, process.pid))
        yield started
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(10)


def memory(targets: list[Server], sockets: int, settle: float) -> dict[str, float]:
    """KiB of RSS growth per connected socket in the room, per transport."""
    time.sleep(settle)
    before = {t.name: t.rss_kib() for t in targets}
    grown: dict[str, float] = {}

    def on_ready(record: dict[str, Any], stdin: IO[str]) -> None:
        time.sleep(settle)
        server = next(t for t in targets if t.name == record["target"])
        grown[server.name] = (server.rss_kib() - before[server.name]) / record["sockets"]
        stdin.write("next\n")
        stdin.flush()

    run_load("memory.mjs", targets, ["--sockets", str(sockets)], on_ready)
    return grown


def main(args: argparse.Namespace) -> None:
    transports = args.transports.split(",")
    with bare_servers(transports) as targets:
        per_socket = memory(targets, args.sockets, args.settle)
        fanout = run_load(
            "fanout.mjs",
            targets,
            ["--subscribers", str(args.subscribers), "--rates", str(args.rate),
             "--duration", str(args.duration)],
        )  # fmt: skip
    results = [{**record, "kib_per_socket": per_socket[record["target"]]} for record in fanout]
    rows = [
        [
            r["target"],
            report.number(r["kib_per_socket"], " KiB"),
            report.number(r["p50_ms"], " ms"),
            report.number(r["p99_ms"], " ms"),
            report.number(r["deliveries_per_s"]),
        ]
        for r in results
    ]
    report.print_table(
        f"bare python-socketio by transport: RSS growth per socket at {args.sockets:,} sockets;"
        f" fan-out to {args.subscribers} at {args.rate}/s for {args.duration:g} s",
        ["transport", "per socket", "p50", "p99", "deliveries/s"],
        rows,
    )
    report.warn_if_saturated(results)

    def draw(axes: Any) -> None:
        axes.bar([r["target"] for r in results], [r["kib_per_socket"] for r in results],
                 label="KiB per socket")  # fmt: skip
        axes.set_ylabel("KiB")
        axes.set_title(f"bare python-socketio: RSS growth per socket at {args.sockets:,}")

    report.write_outputs(args, "transports", results, draw)


if __name__ == "__main__":
    parser = report.bench_parser(__doc__)
    parser.add_argument("--transports", default=",".join(TRANSPORTS),
                        help="comma-separated, of: " + ", ".join(TRANSPORTS))  # fmt: skip
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument("--settle", type=float, default=2.0, help="seconds before each RSS read")
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--rate", type=int, default=100, help="publishes/s in the fan-out")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of publishing")
    main(parser.parse_args())
