"""``python -m bench.reliability [--budget SECONDS] [--part NAME ...] [--json PATH]``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from bench.reliability import PARTS
from bench.reliability.result import PartResult


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="reliability", description=__doc__)
    parser.add_argument(
        "--budget", type=float, default=60.0, help="seconds per part (default: %(default)s)"
    )
    parser.add_argument(
        "--part", action="append", choices=sorted(PARTS), help="run only this part (repeatable)"
    )
    parser.add_argument("--json", type=Path, help="also write every part's counts here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results: list[PartResult] = []
    for name in args.part or list(PARTS):
        result = asyncio.run(PARTS[name](args.budget))
        for anomaly in result.anomalies:
            print(f"{name}: anomaly: {anomaly}", file=sys.stderr)
        results.append(result)
    if args.json is not None:
        args.json.write_text(json.dumps([r.to_json() for r in results], indent=2) + "\n")
    for result in results:  # the summary comes last
        print(result.line())
    return 1 if any(r.anomalies for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
