"""Live fan-out, side by side: the reference vs a stock socket.io room broadcast.

    python bench/fanout.py          # K = 100 subscribers; 100 and 300 publishes/s, 10 s each
    python bench/fanout.py --subscribers 20 --rates 50,500 --duration 5 --json f.json --plot f.png

One Node.js load process (bench/node/fanout.mjs) connects K socket.io-client subscribers to
each server in turn and publishes over HTTP at a fixed rate, each message stamped with its send
time; publish-to-deliver latency is measured in that process's clock. The reference's
subscribers speak replay/1 (session over HTTP, replay:subscribe from "latest"); the stock
peer's join a room that each HTTP publish is broadcast to with io.to(room).emit.
"""

from __future__ import annotations

import argparse
from typing import Any

import _report as report
from _peers import run_load, servers


def main(args: argparse.Namespace) -> None:
    with servers(args.store) as targets:
        records = run_load(
            "fanout.mjs", targets, report.flags(args, "subscribers", "rates", "duration")
        )
    rows = []
    for rate in sorted({r["rate"] for r in records}):
        ref, peer = (
            next(r for r in records if r["rate"] == rate and r["kind"] == k)
            for k in ("reference", "stock")
        )
        for name, key, unit in (
            ("p50", "p50_ms", " ms"),
            ("p99", "p99_ms", " ms"),
            ("max", "max_ms", " ms"),
            ("deliveries/s", "deliveries_per_s", ""),
        ):
            rows.append(
                [
                    f"{rate:g}/s",
                    name,
                    report.number(ref[key], unit),
                    report.number(peer[key], unit),
                    report.ratio(ref[key], peer[key]),
                ]
            )
        for record in (ref, peer):
            if record["missing"] or record["disconnected"] or record["failed_publishes"]:
                print(
                    f"incomplete: {record['target']} at {rate:g}/s: {record['missing']:,}"
                    f" deliveries missing, {record['disconnected']} sockets disconnected,"
                    f" {record['failed_publishes']} publishes failed"
                )
    report.print_table(
        f"live fan-out: {args.subscribers} subscribers, {args.duration:g} s per rate,"
        " publish-to-deliver latency (ratio = reference / stock)",
        ["rate", "figure", "reference", "stock socket.io", "ratio"],
        rows,
    )
    report.warn_if_saturated(records)
    for record in records:  # open loop: a run whose publishes fell behind did not hold its rate
        if record["publish_rate"] < 0.95 * record["rate"]:
            print(
                f"WARNING: publishes to {record['target']} went out at"
                f" {record['publish_rate']:g}/s,"
                f" below the {record['rate']:g}/s asked (answers came back too slowly)"
            )

    def draw(axes: Any) -> None:
        rates = sorted({r["rate"] for r in records})
        for kind, style in (("reference", "o-"), ("stock", "s--")):
            for key in ("p50_ms", "p99_ms"):
                ys = [
                    next(r[key] for r in records if r["rate"] == x and r["kind"] == kind)
                    for x in rates
                ]
                axes.plot(rates, ys, style, label=f"{kind} {key[:3]}")
        axes.set_xlabel("publishes/s")
        axes.set_ylabel("publish-to-deliver latency (ms)")
        axes.set_yscale("log")
        axes.set_title(f"live fan-out to {args.subscribers} subscribers")

    report.write_outputs(args, "fanout", records, draw)


if __name__ == "__main__":
    parser = report.bench_parser(__doc__)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--rates", default="100,300", help="publishes/s, comma-separated")
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds of publishing per rate"
    )
    main(parser.parse_args())
