"""Reference server for the replay/1 protocol (aiohttp + python-socketio)."""

from __future__ import annotations

__version__ = "0.1.0"
