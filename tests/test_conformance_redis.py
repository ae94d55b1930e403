"""The conformance suite against Redis-backed references: a three-node cluster on one Redis,
and one node on an AOF Redis that the suite SIGKILLs and restarts (durability cases).

Together with ``test_conformance_runs.py`` (the in-memory default) these are the three runs CI
makes. Each starts its own ``redis-server`` on a free port (failing, not skipping, under CI
when there is none) and runs ``python -m pytest conformance`` in a subprocess.
"""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path

import pytest
from redis_server import running_redis
from suite_runs import run_suite, serving, verdicts

pytestmark = pytest.mark.slow

API_KEY = "conformance-redis-key"
NODES = 3


def reference_node(store: str) -> AbstractContextManager[str]:
    """One ``python -m reference`` process on ``store``; yields its URL."""
    return serving(
        [sys.executable, "-m", "reference", f"--api-key={API_KEY}", "--store", store,
         "--log-level", "warning"]
    )  # fmt: skip


def test_three_nodes_on_one_redis(tmp_path: Path) -> None:
    """Every clause across nodes, the cluster cases included (CLU-1 to CLU-4)."""
    with running_redis(tmp_path / "redis", aof=False) as redis, ExitStack() as nodes:
        urls = [nodes.enter_context(reference_node(redis.url())) for _ in range(NODES)]
        targets = [option for url in urls for option in ("--target", url)]
        document = run_suite(tmp_path / "cluster", *targets, f"--api-key={API_KEY}")
    status = verdicts(document)
    assert all(status[f"CLU-{n}"] == "passed" for n in range(1, 5)), status
    assert "cluster" in document["target"]["info"]["features"]  # type: ignore[index]


def test_one_node_on_aof_redis_survives_sigkill(tmp_path: Path) -> None:
    """The suite launches the node itself, so it can SIGKILL and restart it (DUR-2, DUR-4)."""
    with running_redis(tmp_path / "redis", aof=True) as redis:
        command = (
            "{python} -m reference --host 127.0.0.1 --port {port} --api-key={api_key} "
            f"--store {redis.url()}"
        )
        document = run_suite(tmp_path / "durable", f"--target-cmd={command}")
    status = verdicts(document)
    assert document["target"]["info"]["durable"] is True  # type: ignore[index]
    assert status["DUR-2"] == "passed" and status["DUR-4"] == "passed", status
