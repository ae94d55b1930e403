"""Kill a launched target when the suite dies without stopping it.

``CommandNode`` stops its target on every normal exit and on Ctrl-C, but a suite killed with
SIGKILL (a CI job's timeout, the OOM killer) runs no cleanup, and the target would keep its
port and its store. So each launched target gets this watchdog: a separate process, in its
own session, that holds the read end of a pipe from the suite. The suite writes
:data:`DISMISS` when it has stopped the target itself. End of file without it means the suite
is gone, and the watchdog kills the target's whole process group.

Run as ``python -m conformance.watchdog PGID``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

DISMISS = b"stopped\n"


def watch(pgid: int) -> None:
    """Wait for the suite's word or its death; on its death, SIGKILL process group ``pgid``."""
    if sys.stdin.buffer.readline() == DISMISS:
        return
    with contextlib.suppress(ProcessLookupError):  # the target is gone already
        os.killpg(pgid, signal.SIGKILL)


if __name__ == "__main__":
    watch(int(sys.argv[1]))
