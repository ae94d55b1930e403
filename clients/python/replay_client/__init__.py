"""replay_client: the client half of replay/1 over python-socketio's ``AsyncClient``.

The model is ``clients/README.md``; ``clients/python/README.md`` shows the API.

Layers
------
Each module imports only from the layers below it (``tests/test_replay_client_layers.py``
keeps this true), and nothing from ``reference`` or ``conformance``.

1. errors, records: leaf types
2. backoff, guard, policy: pure decisions
3. emitter, positions, acks, history: helpers with IO (files, SQLite, the loop, requests)
4. subscription, connection: one channel's lifecycle; the connection loop
5. client: the worker that joins them, and the API
"""

from __future__ import annotations

from replay_client.acks import AckOptions
from replay_client.backoff import BackoffOptions
from replay_client.client import ClientOptions, ReplayClient, connect
from replay_client.connection import ConnectionOptions, ConnectionStats
from replay_client.errors import ReplayClientError
from replay_client.policy import Policy, PolicyName
from replay_client.positions import FilePositions, MemoryPositions, PositionStore, SqlitePositions
from replay_client.records import (
    ErrorEvent,
    HistoryPage,
    Message,
    MessagesEvent,
    Position,
    State,
    SubscribedEvent,
    Truncation,
    UnsubscribedEvent,
)
from replay_client.subscription import Subscription, SubscriptionStats

__all__ = [
    "AckOptions",
    "BackoffOptions",
    "ClientOptions",
    "ConnectionOptions",
    "ConnectionStats",
    "ErrorEvent",
    "FilePositions",
    "HistoryPage",
    "MemoryPositions",
    "Message",
    "MessagesEvent",
    "Policy",
    "PolicyName",
    "Position",
    "PositionStore",
    "ReplayClient",
    "ReplayClientError",
    "SqlitePositions",
    "State",
    "SubscribedEvent",
    "Subscription",
    "SubscriptionStats",
    "Truncation",
    "UnsubscribedEvent",
    "connect",
]
