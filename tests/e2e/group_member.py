"""A bare aiokafka group member that prints its assignment: ``group_member.py BOOTSTRAP TOPIC GROUP [INSTANCE]``."""

import asyncio
import sys

from aiokafka import AIOKafkaConsumer


async def main() -> None:
    bootstrap, topic, group = sys.argv[1:4]
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        group_instance_id=sys.argv[4] if len(sys.argv) > 4 else None,
        session_timeout_ms=10_000,
        heartbeat_interval_ms=3_000,
        rebalance_timeout_ms=12_000,
        max_poll_interval_ms=12_000,
    )
    await consumer.start()
    while True:
        await consumer.getmany(timeout_ms=500)
        print(",".join(str(tp.partition) for tp in sorted(consumer.assignment())), flush=True)


asyncio.run(main())
