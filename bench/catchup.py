"""Catch-up of a backlog, side by side: the reference vs socket.io connection state recovery.

    python bench/catchup.py                   # N = 20,000 missed messages, median of 5 runs
    python bench/catchup.py --messages 5000 --runs 3 --json c.json --plot c.png

One Node.js load process (bench/node/catchup.mjs) times a socket.io-client socket receiving N
messages it missed, from its (re)connect to the last message. The reference: N messages are
published over HTTP once, then each run registers a session, connects and subscribes from the
backlog's first offset. The stock peer runs with connectionStateRecovery: each run the
socket's transport drops, N messages are broadcast to its room over HTTP while it is away,
and it reconnects and receives the packets it missed.
"""

from __future__ import annotations

import argparse
from typing import Any

import _report as report
from _peers import run_load, servers

# What stock recovery cannot do, said next to its figure (socket.io's documentation, and
# bench/node/peer.mjs's settings).
CSR_LIMITS = (
    "stock CSR limits: missed packets are kept in the server's memory only (lost on restart,"
    " not shared across nodes without an adapter that supports it), for at most"
    " maxDisconnectionDuration (2 min here, its default) and only for a socket that drops"
    " (not one that disconnects on purpose or is new); a socket gone longer gets nothing back"
    " and is told so only by socket.recovered being false."
)


def main(args: argparse.Namespace) -> None:
    with servers(args.store, recovery=True) as targets:
        records = run_load(
            "catchup.mjs", targets, report.flags(args, "messages", "runs", "payload")
        )
    ref, peer = records
    rows = [
        [
            "median messages/s",
            report.number(ref["median_per_s"]),
            report.number(peer["median_per_s"]),
            report.ratio(ref["median_per_s"], peer["median_per_s"]),
        ],
        [
            "runs (messages/s)",
            " ".join(f"{r:,}" for r in ref["runs"]),
            " ".join(f"{r:,}" for r in peer["runs"]),
            "",
        ],
        ["recovered every run", str(ref["recovered"]).lower(), str(peer["recovered"]).lower(), ""],
        [
            "backlog filled at (publishes/s)",
            report.number(ref["fill_per_s"]),
            report.number(peer["fill_per_s"]),
            "",
        ],
    ]
    report.print_table(
        f"catch-up: {args.messages:,} missed messages of ~{args.payload} B, {args.runs} runs"
        " (ratio = reference / stock)",
        ["figure", "reference (from offset)", "stock socket.io (CSR)", "ratio"],
        rows,
    )
    print(CSR_LIMITS)
    report.warn_if_saturated(records)

    def draw(axes: Any) -> None:
        for index, record in enumerate(records):
            axes.scatter([index] * len(record["runs"]), record["runs"], label=record["target"])
        axes.set_xticks(range(len(records)), [r["target"] for r in records])
        axes.set_ylabel("messages/s")
        axes.set_title(f"catch-up of {args.messages:,} missed messages (each run)")

    report.write_outputs(args, "catchup", records, draw, csr_limits=CSR_LIMITS)


if __name__ == "__main__":
    parser = report.bench_parser(__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--payload", type=int, default=64, help="bytes of padding per message")
    main(parser.parse_args())
