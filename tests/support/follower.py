"""Run as a child process: subscribe to the log and print each position as it arrives.

Usage: python -m tests.support.follower DATABASE_URL
"""

from __future__ import annotations

import asyncio
import sys

from eventstore import EventStore


async def main(url: str) -> None:
    store = await EventStore.open(url)
    print("ready", flush=True)
    async for event in store.subscribe(after=0):
        print(event.position, flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
