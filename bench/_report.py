"""Shared by the side-by-side benchmarks: the table, the ratio, the warnings, --json, --plot."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def bench_parser(doc: str | None) -> argparse.ArgumentParser:
    """The arguments every side-by-side benchmark takes: --store, --json, --plot."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", default="memory", help="the reference's store")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the figures as JSON")
    parser.add_argument(
        "--plot", type=Path, metavar="PATH", help="draw the figures (needs the bench extra)"
    )
    return parser


def flags(args: argparse.Namespace, *names: str) -> list[str]:
    """The named arguments, as the load scripts take them: ``--name value`` each."""
    return [item for name in names for item in (f"--{name}", str(getattr(args, name)))]


def ratio(reference: float | None, peer: float | None) -> str:
    """reference / peer, as the tables print it (``-`` when either is missing or zero)."""
    if not reference or not peer:
        return "-"
    return f"{reference / peer:.2f}x"


def number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}"
    return text + unit


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    print(title)
    for row in [header, *rows]:
        print("  ".join(str(cell).rjust(width) for cell, width in zip(row, widths, strict=True)))


def warn_if_saturated(records: Sequence[dict[str, Any]]) -> None:
    """Print a warning line for each record whose load generator was saturated."""
    for record in records:
        load = record["load"]
        if load["saturated"]:
            print(
                f"WARNING: the load generator saturated while driving {record['target']}"
                f" ({describe_load(load)}): that figure may measure it, not the server"
            )


def describe_load(load: dict[str, Any]) -> str:
    return (
        f"CPU {load['cpu']:.0%} of a core, event-loop delay p99 {load['loop_delay_p99_ms']} ms,"
        f" max {load['loop_delay_max_ms']} ms"
    )


def write_outputs(
    args: argparse.Namespace,
    benchmark: str,
    results: Sequence[dict[str, Any]],
    draw: Callable[[Any], None],
    **more: Any,
) -> None:
    """Write --json and draw --plot (``draw`` gets a matplotlib Axes)."""
    figures = {"benchmark": benchmark, "args": vars_of(args), **more, "results": results}
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures written to {args.json}")
    if args.plot is not None:
        try:
            import matplotlib

            matplotlib.use("Agg")  # files only: no display on a CI machine
            import matplotlib.pyplot as plt
        except ImportError:
            raise SystemExit(
                "--plot needs matplotlib: pip install 'socketio-replay[bench]'"
            ) from None
        figure, axes = plt.subplots(figsize=(7, 4))
        draw(axes)
        axes.legend()
        figure.tight_layout()
        figure.savefig(args.plot)
        print(f"plot written to {args.plot}")


def vars_of(args: argparse.Namespace) -> dict[str, Any]:
    """The arguments as JSON-friendly values (paths as strings)."""
    return {k: (str(v) if v is not None and not isinstance(v, int | float | str) else v)
            for k, v in vars(args).items()}  # fmt: skip
