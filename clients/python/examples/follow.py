"""Follow a channel until offset COUNT, resuming where the last run stopped.

python follow.py URL API_KEY CHANNEL COUNT POSITIONS_FILE
"""

from __future__ import annotations

import asyncio
import sys

import aiohttp

from replay_client import FilePositions, Message, MessagesEvent, connect


async def follow(url: str, api_key: str, channel: str, count: int, positions: str) -> None:
    async with aiohttp.ClientSession() as http:

        async def get_token() -> str:
            # Your backend's job: register (or re-register) the session, return its token.
            # Called before every connection attempt: each registration rotates the token.
            body = {
                "session_id": "follow-example",
                "client_id": "example",
                "grants": [{"channels": channel, "actions": ["subscribe", "history"]}],
            }
            headers = {"Authorization": f"Bearer {api_key}"}
            async with http.post(f"{url}/replay/v1/sessions", json=body, headers=headers) as r:
                return str((await r.json())["token"])

        client = await connect(url, get_token)
        try:
            async for page in client.history(channel, limit=2):  # what is retained, by pages
                print("history page:", [m.offset for m in page.messages], "head", page.head)

            done = asyncio.Event()

            async def on_messages(messages: list[Message], ctx: MessagesEvent) -> None:
                for message in messages:  # the position advances once this returns
                    print("message", message.offset, message.data)
                if messages[-1].offset >= count:
                    done.set()

            sub = client.subscribe(
                channel,
                on_messages=on_messages,
                on_unresumable="restart",  # a new epoch or lost history: start over, told
                positions=FilePositions(positions),  # resume here after a restart
            )
            sub.on("subscribed", lambda e: print("subscribed from", e.from_, e.recovered))
            sub.on("error", lambda e: print("error", e.code, e.message))
            await done.wait()
        finally:
            await client.close()


if __name__ == "__main__":
    url, api_key, channel, count, positions = sys.argv[1:6]
    asyncio.run(follow(url, api_key, channel, int(count), positions))
