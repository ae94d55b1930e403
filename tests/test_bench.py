"""Each side-by-side benchmark in bench/ runs at a tiny size: it prints both servers' figures
and writes valid JSON with a result for each. No timing is asserted: the figures are the
benchmarks' business, these tests only keep the instruments working.

They need node and bench/node's dependencies (``npm ci`` there); without them they skip, or
fail when ``CI`` is set.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"

pytestmark = pytest.mark.slow

TINY = {
    "fanout.py": ["--subscribers", "3", "--rates", "20,40", "--duration", "1"],
    "memory.py": ["--sockets", "20", "--settle", "0.2"],
    "catchup.py": ["--messages", "200", "--runs", "3"],
    "publish.py": ["--messages", "200", "--concurrency", "4", "--subscribers", "2"],
}


def _require_node() -> None:
    missing = []
    if shutil.which("node") is None:
        missing.append("node")
    if not (BENCH / "node" / "node_modules" / "socket.io-client").is_dir():
        missing.append("bench/node's dependencies (npm ci in bench/node)")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the benchmarks' smoke tests; missing: {missing}")
        pytest.skip(f"missing: {', '.join(missing)}")


def _bench(script: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run bench/SCRIPT with the arguments; it must succeed."""
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *argv],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.parametrize("script", sorted(TINY))
def test_benchmark_prints_both_servers_and_valid_json(script: str, tmp_path: Path) -> None:
    _require_node()
    figures = tmp_path / "figures.json"
    done = _bench(script, *TINY[script], "--json", str(figures))
    header = next(line for line in done.stdout.splitlines() if "figure" in line)
    assert "reference" in header and "stock socket.io" in header and "ratio" in header
    assert re.search(r"\d\.\d\dx", done.stdout.split(header, 1)[1])  # a ratio was computed
    written = json.loads(figures.read_text())
    assert written["benchmark"] == script.removesuffix(".py")
    kinds = [record["kind"] for record in written["results"]]
    assert kinds.count("reference") == kinds.count("stock") >= 1, kinds
    for record in written["results"]:
        assert "saturated" in record["load"]
    if script == "fanout.py":  # every rate ran against both servers
        assert sorted({r["rate"] for r in written["results"]}) == [20, 40]
    if script == "catchup.py":
        assert all(len(r["runs"]) == 3 for r in written["results"])
        assert "maxDisconnectionDuration" in done.stdout


def test_plot_draws_a_png(tmp_path: Path) -> None:
    """--plot draws with matplotlib (the bench extra, which the test extra includes)."""
    _require_node()
    plot = tmp_path / "publish.png"
    _bench("publish.py", "--messages", "50", "--plot", str(plot))
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_node_side_passes_its_own_tests() -> None:
    """bench/node's ``node --test``: the stock peer's routes and recovery, the summaries."""
    _require_node()
    done = subprocess.run(
        [shutil.which("node") or "node", "--test", "test/"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=BENCH / "node",
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_batch_publish_runs_tiny_on_memory_and_its_own_redis(tmp_path: Path) -> None:
    """bench/batch_publish.py, single-server: needs no node; ``--store redis`` starts its own
    redis-server (skipped without one, failed on CI)."""
    figures = tmp_path / "batch.json"
    done = _bench("batch_publish.py", "--messages", "500", "--batch", "100", "--json", str(figures))
    assert "messages/s" in done.stdout
    written = json.loads(figures.read_text())
    assert written["benchmark"] == "batch_publish" and written["messages"] == 500
    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the Redis batch benchmark; redis-server is missing")
        pytest.skip("redis-server is not installed")
    done = _bench("batch_publish.py", "--messages", "500", "--batch", "100", "--store", "redis")
    assert "store redis" in done.stdout


def test_cluster_throughput_runs_tiny_on_one_redis_and_a_cluster(tmp_path: Path) -> None:
    """bench/cluster_throughput.py, single-server: starts its own Redis and Redis Cluster
    (skipped without redis-server and redis-cli, failed on CI)."""
    missing = [name for name in ("redis-server", "redis-cli") if shutil.which(name) is None]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the cluster benchmark; missing: {missing}")
        pytest.skip(f"missing: {', '.join(missing)}")
    figures = tmp_path / "cluster.json"
    done = _bench(
        "cluster_throughput.py", "--messages", "300", "--channels", "12", "--json", str(figures)
    )
    assert "3-shard cluster" in done.stdout and "one Redis" in done.stdout
    written = json.loads(figures.read_text())
    assert [r["store"] for r in written["results"]] == ["redis", "redis+cluster"]
    assert all(r["publishes_per_s"] > 0 for r in written["results"])


def test_memory_profile_prints_each_step(tmp_path: Path) -> None:
    """memory_profile.py: per-socket figures, top lines, libraries and types for each step."""
    _require_node()
    figures = tmp_path / "profile.json"
    done = _bench("memory_profile.py", "--sockets", "10", "--settle", "0.2", "--frames", "5",
                  "--top", "3", "--json", str(figures))  # fmt: skip
    for step in ("connect (session + socket)", "subscribe", "total"):
        for part in ("top lines", "by library", "live objects gained"):
            assert f"{step}: {part}" in done.stdout
    states = json.loads(figures.read_text())["results"]
    assert [s["state"] for s in states] == ["listening", "connected", "subscribed"]
    assert all(s["rss_kib"] > 0 and s["traced_bytes"] > 0 for s in states)


def test_memory_profile_compares_allocator_settings(tmp_path: Path) -> None:
    _require_node()
    figures = tmp_path / "malloc.json"
    done = _bench("memory_profile.py", "--malloc", "--sockets", "5", "--settle", "0.1",
                  "--json", str(figures))  # fmt: skip
    assert "MALLOC_ARENA_MAX=1" in done.stdout and "PYTHONMALLOC=malloc" in done.stdout
    variants = json.loads(figures.read_text())["results"]
    assert {"default", "PYTHONMALLOC=malloc"} <= {v["setting"] for v in variants}


def test_transports_measures_each_transport(tmp_path: Path) -> None:
    """transports.py: a bare python-socketio server per transport, memory and fan-out each."""
    _require_node()
    figures = tmp_path / "transports.json"
    done = _bench("transports.py", "--sockets", "10", "--settle", "0.2", "--subscribers", "2",
                  "--rate", "20", "--duration", "1", "--json", str(figures))  # fmt: skip
    assert re.search(r"transport +per socket +p50 +p99", done.stdout)  # the table's header
    results = json.loads(figures.read_text())["results"]
    assert [r["target"] for r in results] == ["aiohttp", "websockets", "websockets-sansio",
                                              "wsproto"]  # fmt: skip
    for record in results:
        assert record["kind"] == "bare" and record["missing"] == 0
        assert "kib_per_socket" in record and "p99_ms" in record
