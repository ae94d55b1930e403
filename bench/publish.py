"""Backend publish throughput over HTTP, side by side: the reference vs the stock peer's
HTTP-to-broadcast route.

    python bench/publish.py                   # 20,000 publishes, 32 in flight, no subscribers
    python bench/publish.py --concurrency 8 --subscribers 10 --json p.json --plot p.png

One Node.js load process (bench/node/publish.mjs) posts M single publishes with C in flight
to each server (the reference: POST /replay/v1/channels/{channel}/messages, stored; the stock
peer: POST /publish/{room}, io.to(room).emit, nothing stored).
"""

from __future__ import annotations

import argparse
from typing import Any

import _report as report
from _peers import run_load, servers


def main(args: argparse.Namespace) -> None:
    with servers(args.store) as targets:
        records = run_load(
            "publish.mjs",
            targets,
            report.flags(args, "messages", "concurrency", "subscribers", "payload"),
        )
    ref, peer = records
    rows = [
        [
            label,
            report.number(ref[key], unit),
            report.number(peer[key], unit),
            report.ratio(ref[key], peer[key]),
        ]
        for label, key, unit in (
            ("publishes/s", "publishes_per_s", ""),
            ("answer p50", "answer_p50_ms", " ms"),
            ("answer p99", "answer_p99_ms", " ms"),
        )
    ]
    report.print_table(
        f"backend publish: {args.messages:,} publishes of ~{args.payload} B, {args.concurrency} in"
        f" flight, {args.subscribers} subscribers (ratio = reference / stock)",
        ["figure", "reference", "stock socket.io", "ratio"],
        rows,
    )
    report.warn_if_saturated(records)

    def draw(axes: Any) -> None:
        axes.bar(
            [r["target"] for r in records],
            [r["publishes_per_s"] for r in records],
            label=f"publishes/s, {args.concurrency} in flight",
        )
        axes.set_ylabel("publishes/s")
        axes.set_title("backend publish over HTTP")

    report.write_outputs(args, "publish", records, draw)


if __name__ == "__main__":
    parser = report.bench_parser(__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--subscribers", type=int, default=0)
    parser.add_argument("--payload", type=int, default=64, help="bytes of padding per message")
    main(parser.parse_args())
