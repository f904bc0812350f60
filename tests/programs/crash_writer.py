"""The writer the crash test kills: several concurrent clients remembering and superseding at full
speed on one database, printing one acknowledgement line per write that returned.

    python crash_writer.py DB CYCLE CLIENTS

A line is printed only after the write's transaction committed, so every line the test read
names a write the database must still hold after a SIGKILL at any instant.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys

from memory_mcp import HierarchicalMemory, MemoryConfig

WORDS = ["kayak", "violin", "quartz", "saffron", "glacier", "harbor", "lantern", "meadow", "nebula", "orchid",
         "pepper", "quiver", "raven", "sonnet", "tundra", "umbra", "velvet", "walnut", "yarrow", "zephyr"]


def ack(**fields: object) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


async def client(memory: HierarchicalMemory, cycle: int, number: int) -> None:
    rng = random.Random(cycle * 100 + number)
    user = f"user{number % 3}"
    latest = None
    step = 0
    while True:
        step += 1
        text = f"{user} cycle {cycle} client {number} step {step}: " + " ".join(rng.sample(WORDS, 4))
        if latest is None or rng.random() < 0.6:
            latest = await memory.add(text, user_id=user, session_id=rng.choice([None, "s1", "s2"]))
            ack(op="add", id=latest.id, user=user)
        else:
            new = await memory.supersede(latest.id, text)
            ack(op="supersede", old=latest.id, new=new.id, user=user)
            latest = new


async def main(db: str, cycle: int, clients: int) -> None:
    # Paraphrase merging off (unique texts are told apart only by a few words), embedding in the
    # background (writes start before the model is loaded), and the vector index saved often,
    # so kills land before, during and after index saves.
    config = MemoryConfig(db_path=db, duplicate_similarity=1.0, background_embedding=True, index_save_every=25)
    memory = await HierarchicalMemory.create(config)
    await asyncio.gather(*(client(memory, cycle, n) for n in range(clients)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
