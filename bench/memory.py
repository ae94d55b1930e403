"""Memory per subscribed socket, side by side: the reference vs a stock socket.io server.

    python bench/memory.py                 # N = 2,000 sockets
    python bench/memory.py --sockets 200 --json m.json --plot m.png

Reads each server's RSS (Linux /proc) once it listens, then again once one Node.js load
process (bench/node/memory.mjs) holds N socket.io-client sockets connected and subscribed to
one channel (the reference: a replay/1 session each, replay:subscribe from "latest"; the stock
peer: each socket joined to one room), and divides the growth by N.
"""

from __future__ import annotations

import argparse
import time
from typing import IO, Any

import _report as report
from _peers import run_load, servers


def main(args: argparse.Namespace) -> None:
    with servers(args.store) as targets:
        time.sleep(args.settle)  # let both finish starting before the baseline
        before = {t.name: t.rss_kib() for t in targets}
        after: dict[str, int] = {}

        def on_ready(record: dict[str, Any], stdin: IO[str]) -> None:
            time.sleep(args.settle)  # the last subscribes' garbage, timers and buffers settle
            after[record["target"]] = next(
                t for t in targets if t.name == record["target"]
            ).rss_kib()
            stdin.write("next\n")
            stdin.flush()

        records = run_load("memory.mjs", targets, report.flags(args, "sockets"), on_ready)
    results = []
    for record in records:
        name = record["target"]
        grown = after[name] - before[name]
        results.append(
            {
                **record,
                "rss_before_kib": before[name],
                "rss_after_kib": after[name],
                "kib_per_socket": grown / record["sockets"],
            }
        )
    ref, peer = results
    rows = [
        [
            label,
            report.number(ref[key], " KiB"),
            report.number(peer[key], " KiB"),
            report.ratio(ref[key], peer[key]),
        ]
        for label, key in (
            ("RSS before", "rss_before_kib"),
            (f"RSS at {args.sockets:,} sockets", "rss_after_kib"),
            ("per subscribed socket", "kib_per_socket"),
        )
    ]
    report.print_table(
        f"memory: {args.sockets:,} connected, subscribed sockets (RSS growth / N;"
        " ratio = reference / stock)",
        ["figure", "reference", "stock socket.io", "ratio"],
        rows,
    )
    for record in results:  # a busy load process only slows the connects; RSS is unaffected
        print(
            f"load generator while connecting to {record['target']}:"
            f" {report.describe_load(record['load'])}, {record['connect_s']:.1f} s"
        )

    def draw(axes: Any) -> None:
        names = [r["target"] for r in results]
        axes.bar(names, [r["kib_per_socket"] for r in results], label="KiB per subscribed socket")
        axes.set_ylabel("KiB")
        axes.set_title(f"server RSS growth per socket at {args.sockets:,} sockets")

    report.write_outputs(args, "memory", results, draw)


if __name__ == "__main__":
    parser = report.bench_parser(__doc__)
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument("--settle", type=float, default=2.0, help="seconds before each RSS read")
    main(parser.parse_args())
