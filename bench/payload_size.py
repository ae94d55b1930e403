"""Measuring a 64 KiB ``data`` for ``max_payload_bytes`` (LIM-3): what each way costs.

    python bench/payload_size.py

Prints, per payload shape, the best of 5 runs (each the mean of 20 calls) of: the 1.0 measure
(compact ``json.dumps`` length), ``rfc8785.dumps`` length, and the reference's
``json.dumps`` + ``jcs.canonical_size``, with and without its no-float shortcut.
"""

from __future__ import annotations

import json
import re
import timeit
from collections.abc import Callable

import rfc8785

from reference.core import jcs


def dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def compact(value: object) -> int:
    return len(dumps(value).encode("utf-8"))


def library(value: object) -> int:
    return len(rfc8785.dumps(value))  # type: ignore[arg-type]


def reference(value: object) -> int:
    return jcs.canonical_size(value, dumps(value))


def records(size: int) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    while compact(out) < size:
        n = len(out)
        out.append({"id": n, "name": f"user{n}", "score": 1.25 + n, "tags": ["a"], "ok": True})
    return out


PAYLOADS: dict[str, object] = {
    "one string": "x" * 65534,
    "multibyte": "é中🎉" * 7000,
    "32K ints": [1] * 32767,
    "16K floats": [1.5] * 16383,
    "records": records(64000),
}


def best_ms(measure: Callable[[object], int], value: object) -> float:
    return min(timeit.repeat(lambda: measure(value), number=20, repeat=5)) / 20 * 1e3


def main() -> None:
    always = re.compile("")  # matches any text: the walk runs every time
    for name, value in PAYLOADS.items():
        assert library(value) == reference(value), name
        row = [f"{name:11} {compact(value):6} B"]
        for label, measure in (("1.0", compact), ("rfc8785", library), ("ref", reference)):
            row.append(f"{label} {best_ms(measure, value):6.2f} ms")
        shortcut = jcs._MAYBE_FLOAT
        jcs._MAYBE_FLOAT = always
        try:
            row.append(f"ref, no shortcut {best_ms(reference, value):6.2f} ms")
        finally:
            jcs._MAYBE_FLOAT = shortcut
        print("  ".join(row))


if __name__ == "__main__":
    main()
