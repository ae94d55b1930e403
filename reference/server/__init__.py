"""The IO shell: aiohttp routes, python-socketio handlers and delivery tasks.

Nothing here decides protocol questions; it fetches what ``reference.core`` needs from the
store, asks the core, and moves the answer onto the network.
"""
