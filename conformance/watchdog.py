"""Kill a launched target when the suite dies without stopping it.

``CommandNode`` stops its target on every normal exit and on Ctrl-C, but a suite killed with
SIGKILL (a CI job's timeout, the OOM killer) runs no cleanup, and the target would keep its
port and its store. So each launched target gets this watchdog: a separate process, in its
own session, that holds the read end of a pipe from the suite. The suite writes
:data:`DISMISS` when it has stopped the target itself. End of file without it means the suite
is gone, and the watchdog kills the target's whole process group.

The watchdog runs this file as a script (``python watchdog.py PGID``), so it needs nothing
installed; :func:`guard` starts one and :func:`dismiss` stands it down.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

DISMISS = b"stopped\n"
DISMISS_TIMEOUT_S = 5.0


def guard(pgid: int) -> subprocess.Popen[bytes]:
    """Start a watchdog that kills process group ``pgid`` if this process dies unannounced."""
    return subprocess.Popen(
        [sys.executable, "-I", os.path.abspath(__file__), str(pgid)],  # stdlib only
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # no Ctrl-C of this process's terminal reaches it
    )


def dismiss(dog: subprocess.Popen[bytes] | None) -> None:
    """Tell ``dog`` that its group was stopped on purpose (call once the group is reaped)."""
    if dog is None or dog.stdin is None:
        return
    with contextlib.suppress(BrokenPipeError):  # it died: nothing left to tell
        dog.stdin.write(DISMISS)
    with contextlib.suppress(BrokenPipeError):
        dog.stdin.close()
    try:
        dog.wait(DISMISS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        dog.kill()
        dog.wait()


def watch(pgid: int) -> None:
    """Wait for the suite's word or its death; on its death, SIGKILL process group ``pgid``."""
    if sys.stdin.buffer.readline() == DISMISS:
        return
    with contextlib.suppress(ProcessLookupError):  # the target is gone already
        os.killpg(pgid, signal.SIGKILL)


if __name__ == "__main__":
    watch(int(sys.argv[1]))
