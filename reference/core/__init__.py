"""The protocol core: pure decisions, no network, no database.

Everything here is plain functions and frozen dataclasses, importable without aiohttp,
python-socketio or a database driver, and tested in memory (h11's "sans-IO" idea). The IO
shell in ``reference.server`` and the drivers in ``reference.store`` only move data between
the network, this core and the store.
"""
