"""Run as a child process: append forever and note each acknowledged append in a side file.

Usage: python -m tests.support.appender DATABASE_URL SIDE_FILE
Each line of SIDE_FILE is `<position> <stream> <n>`, written only after the append returned.
"""

from __future__ import annotations

import asyncio
import sys

from eventstore import NewEvent
from tests.support.databases import open_migrated_store


async def main(url: str, side_file: str) -> None:
    store = await open_migrated_store(url)
    # Blocking on purpose: each ack is written before the next append starts.
    with open(side_file, "a", buffering=1) as acks:  # noqa: ASYNC230
        n = 0
        while True:
            stream = f"acked-{n % 50}"
            result = await store.append(
                stream, [NewEvent("Acked", {"n": n})], expected_version=None
            )
            acks.write(f"{result.positions[0]} {stream} {n}\n")
            n += 1


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
