"""``replay-reference``: serve replay/1 on one port (HTTP API and Socket.IO)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import signal
import sys

from aiohttp import web

from reference import __version__, logs, loops
from reference.bus import open_bus
from reference.core.errors import Unavailable
from reference.core.model import Limits
from reference.server.app import ServerOptions, build_app
from reference.store import open_store

log = logging.getLogger("reference")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="replay-reference", description="Reference server for the replay/1 protocol."
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8080, help="port; 0 picks a free one (default: %(default)s)"
    )
    parser.add_argument(
        "--store",
        default="memory",
        help="'memory' (embedded, not durable), or a mongodb://, redis:// or "
        "redis+cluster://HOST:PORT[,HOST:PORT...] URL shared by every node of a cluster "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("REPLAY_API_KEY"),
        help="backend API key (default: $REPLAY_API_KEY, else a random one, printed at start)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument(
        "--websocket-compression",
        action="store_true",
        help="accept permessage-deflate on WebSockets: smaller frames for large messages on "
        "slow links, at a CPU and memory cost per socket (default: off, as in Node.js socket.io)",
    )
    parser.add_argument(
        "--event-loop",
        default="auto",
        choices=loops.CHOICES,
        help="auto: uvloop if installed (the uvloop extra), else asyncio (default: %(default)s)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    api_key = args.api_key or secrets.token_hex(24)  # hex: never starts with "-"
    limits = Limits()
    store = open_store(args.store, idempotency_window_s=limits.idempotency_window_s)
    bus = open_bus(args.store, store)  # a shared store: hear the other nodes through it
    options = ServerOptions(
        api_key=api_key, limits=limits, websocket_compression=args.websocket_compression
    )
    app = build_app(store, options, bus=bus)
    # Handlers go in before the "listening" line, so a signal sent as soon as a supervisor
    # reads it still shuts down gracefully.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    port = runner.addresses[0][1]  # the real port when --port 0 asked for a free one
    url = f"http://{args.host}:{port}"
    # These lines are the interface for scripts (and the conformance suite): keep them stable.
    print(f"replay-reference {__version__} listening on {url}", flush=True)
    print(f"store: {args.store} (durable: {str(store.durable).lower()})", flush=True)
    print(f"api key: {api_key}", flush=True)
    # After the stdout lines: supervisors (and tests) read those first, some with stderr merged.
    loop_name = type(loop).__module__.split(".")[0]  # "uvloop" or "asyncio"
    log.info("listening", extra={"url": url, "store": args.store, "loop": loop_name})
    await stop.wait()
    log.info("shutting down")
    await runner.cleanup()  # closes sockets, then the node stops and closes the store


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``replay-reference`` and ``python -m reference``."""
    args = parse_args(argv)
    logs.configure(args.log_level)
    try:
        _, new_loop = loops.loop_factory(args.event_loop)
        with asyncio.Runner(loop_factory=new_loop) as runner:
            runner.run(serve(args))
    except ValueError as exc:  # a bad --store URL, say
        print(f"replay-reference: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except (OSError, Unavailable) as exc:  # the port is taken, the store is down, say
        print(f"replay-reference: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
