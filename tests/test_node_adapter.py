"""The Node.js adapter (``adapters/node``), judged as any other implementation: its own unit
tests (``node --test``), then the whole conformance suite against it, on the memory store
launched by ``--target-cmd`` (the SIGKILL-restart cases included) and as a two-process
cluster on one real ``redis-server``.

Marked ``slow``. Without ``node``, ``npm`` or ``redis-server`` the tests skip, or fail when
the ``CI`` environment variable is set: CI must run them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any

import pytest
from redis_server import running_redis
from suite_runs import ROOT, run_suite, serving, verdicts

pytestmark = pytest.mark.slow

PACKAGE = ROOT / "adapters" / "node"
SERVER = PACKAGE / "bin" / "replay-server.js"
API_KEY = "conformance-node-key"
CLUSTER_NODES = 2


def _need(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        reason = f"{tool} is not installed"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


@pytest.fixture(scope="module")
def node() -> str:
    """``node``, with the package's dependencies installed (``npm ci`` once)."""
    binary = _need("node")
    if not (PACKAGE / "node_modules" / "socket.io").is_dir():
        npm = _need("npm")
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=PACKAGE, check=True, timeout=600,
        )  # fmt: skip
    return binary


def _claimed_skips(document: dict[str, object]) -> list[str]:
    """Cases skipped although the target claims their feature: only the suite's own
    "no black-box way" skips (a durable=false store keeps no session across a restart) are
    expected, and they name no feature the target lacks."""
    target: Any = document["target"]
    cases: list[dict[str, Any]] = document["cases"]  # type: ignore[assignment]
    features = set(target["info"]["features"])
    skipped = []
    for case in cases:
        reason = str(case.get("reason", ""))
        needed = reason.removeprefix("not claimed: feature ").split()[:1]
        if (
            case.get("outcome") == "skipped"
            and reason.startswith("not claimed: feature ")
            and bool(needed)
            and needed[0] in features
        ):
            skipped.append(case["nodeid"])
    return skipped


def test_unit_tests(node: str) -> None:
    done = subprocess.run(
        [node, "--test", "test/"],
        cwd=PACKAGE,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


def test_memory_store_by_target_cmd(node: str, tmp_path: Path) -> None:
    command = f"{node} {SERVER} --host 127.0.0.1 --port {{port}} --api-key {{api_key}}"
    document = run_suite(tmp_path / "memory", f"--target-cmd={command}")
    status = verdicts(document)
    assert document["target"]["info"]["durable"] is False  # type: ignore[index]
    assert status["DUR-3"] == "passed", status  # the SIGKILL-restart cases ran
    assert not _claimed_skips(document)


def _adapter_node(node: str, store: str) -> AbstractContextManager[str]:
    return serving(
        [node, str(SERVER), "--host", "127.0.0.1", "--api-key", API_KEY, "--store", store]
    )


def test_two_processes_on_one_redis(node: str, tmp_path: Path) -> None:
    """Every clause across two Node processes sharing one Redis (CLU-1 to CLU-4)."""
    with running_redis(tmp_path / "redis", aof=False) as redis, ExitStack() as nodes:
        urls = [nodes.enter_context(_adapter_node(node, redis.url())) for _ in range(CLUSTER_NODES)]
        targets = [option for url in urls for option in ("--target", url)]
        document = run_suite(tmp_path / "cluster", *targets, f"--api-key={API_KEY}")
    status = verdicts(document)
    assert "cluster" in document["target"]["info"]["features"]  # type: ignore[index]
    assert all(status[f"CLU-{n}"] == "passed" for n in range(1, 5)), status
    assert not _claimed_skips(document)
