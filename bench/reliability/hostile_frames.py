"""Engine.IO and Socket.IO frames built by hand, drawn from a seeded random generator.

Why not Hypothesis: its strategies are drawn inside a test it drives (how many examples, when
to shrink), which does not fit a run bounded by wall-clock time across many concurrent
connections, and ``.example()`` is meant for the REPL only. A seeded ``random.Random`` gives a
reproducible stream (the seed is in the part's counts) and every anomaly is reported with the
frames that preceded it, which is what shrinking would have bought.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass

REPLAY_EVENTS = [
    *("replay:subscribe", "replay:unsubscribe", "replay:ack", "replay:publish", "replay:history"),
    *("replay:nope", "disconnect", "connect", "newListener"),
]
NOISE_CHANNEL = "noise"


@dataclass(frozen=True)
class InvalidText:
    """A WebSocket text frame whose payload is not UTF-8."""

    payload: bytes


# A frame to send: text, bytes (a binary frame), or a text frame that is not UTF-8.
Frame = str | bytes | InvalidText


class FrameMaker:
    """Draws hostile frames; ``connection()`` is the frames one hostile connection sends."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self._makers: list[Callable[[], Frame]] = [
            self.engine_frame,
            self.socket_packet,
            self.socket_packet,
            self.socket_packet,
            self.binary_frame,
            self.invalid_text,
        ]

    def connection(self) -> list[Frame]:
        """One to twenty frames, sometimes one repeated as a flood."""
        r = self.random
        frames = [r.choice(self._makers)() for _ in range(r.randint(1, 20))]
        if r.random() < 0.1:
            frames += [frames[-1]] * r.randint(10, 200)
        if r.random() < 0.002:  # a text frame of up to 10 MB
            frames.append("42" + "x" * r.randint(1_000_000, 10_000_000))
        return frames

    def engine_frame(self) -> str:
        r = self.random
        kind = r.choice(["", "x", "7", "9", "b", "0", "1", "2", "3", "5", "6", "-", "٣", "\x00"])
        tail = r.choice(["", "probe", "!!!", "AAAA", "{}", "\x1e3"])
        return kind + tail

    def socket_packet(self) -> str:
        r = self.random
        kind = r.choice("0123456" * 3 + "789x-/")
        attachments = r.choice(["", "", "", "1-", "0-", "99999-", f"{r.randint(2, 30)}-"])
        namespace = r.choice(["", "", "", "/nope,", "/,", "/" + "n" * r.randint(1, 300) + ","])
        ack = r.choice(["", "", str(r.randint(0, 10**6)), "9" * r.randint(15, 150)])
        return "4" + kind + attachments + namespace + ack + self.body()

    def body(self) -> str:
        r = self.random
        choice = r.randrange(9)
        if choice == 0:
            return ""
        if choice == 1:  # truncated JSON
            text = json.dumps([r.choice(REPLAY_EVENTS), {"channel": NOISE_CHANNEL}])
            return text[: r.randrange(len(text))]
        if choice == 2:  # a placeholder, maybe naming no attachment
            num = r.choice([0, 1, -1, 99, "a"])
            return json.dumps([r.choice(REPLAY_EVENTS), {"_placeholder": True, "num": num}])
        if choice == 3:  # a lone surrogate
            return '["replay:publish",{"channel":"noise","data":"\\ud800"}]'
        if choice == 4:  # deep nesting
            depth = r.choice([10, 64, 1000, 50_000])
            return '["replay:publish",{"channel":"noise","data":' + "[" * depth + "]" * depth + "}]"
        if choice == 5:  # event names that are not strings
            return json.dumps([r.choice([5, None, [], {}, True])])
        if choice == 6:  # a CONNECT payload
            return json.dumps({"token": r.choice(["", "nope", 5])})
        return json.dumps([r.choice(REPLAY_EVENTS), self.payload()])

    def payload(self) -> object:
        r = self.random
        return r.choice([
            {"channel": NOISE_CHANNEL, "data": r.random()},
            {"channel": NOISE_CHANNEL, "from": r.choice([0, -1, "x", 10**30])},
            {"channel": r.choice(["", "a" * 2000, "\x00"])},
            {"channel": NOISE_CHANNEL, "offset": r.randint(-5, 10**20), "epoch": "e"},
            [1, 2, 3],
            "string",
        ])  # fmt: skip

    def binary_frame(self) -> bytes:
        return self.random.randbytes(self.random.randint(0, 64))

    def invalid_text(self) -> InvalidText:
        return InvalidText(
            b'42["replay:publish",{"data":"\xff\xfe' + self.random.randbytes(4) + b'"}]'
        )
