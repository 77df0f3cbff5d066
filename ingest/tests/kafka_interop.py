"""The independent Kafka client of the round-trip test (kafka-python, a pure
Python implementation of the protocol).

    python3 kafka_interop.py produce BROKER TOPIC FILE   # FILE: lines of "key<TAB>json"
    python3 kafka_interop.py consume BROKER TOPIC N      # prints N records as JSON lines
    python3 kafka_interop.py create BROKER TOPIC PARTITIONS
"""

import json
import sys

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic


def produce(broker, topic, path):
    # batch_size=1: one record per producer batch (see the note on the tansu
    # broker in tests/cli.rs); acks=all as our own producers use.
    producer = KafkaProducer(
        bootstrap_servers=broker, acks="all", retries=5, batch_size=1, linger_ms=0
    )
    sent = 0
    pending = []
    with open(path, "rb") as f:
        for line in f:
            line = line.rstrip(b"\n")
            if not line:
                continue
            key, value = line.split(b"\t", 1)
            pending.append(producer.send(topic, key=key, value=value))
            sent += 1
            if len(pending) >= 1000:
                for p in pending:
                    p.get(timeout=30)
                pending.clear()
    for p in pending:
        p.get(timeout=30)
    producer.flush(timeout=30)
    producer.close()
    print(json.dumps({"sent": sent}))


def consume(broker, topic, n):
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=60000,
    )
    got = 0
    for record in consumer:
        print(
            json.dumps(
                {
                    "partition": record.partition,
                    "offset": record.offset,
                    "key": record.key.decode() if record.key is not None else None,
                    "value": record.value.decode("utf-8", "replace"),
                }
            ),
            flush=True,
        )
        got += 1
        if got >= n:
            break
    consumer.close()
    if got < n:
        sys.exit(f"consumed {got} of {n} records before the timeout")


def create(broker, topic, partitions):
    admin = KafkaAdminClient(bootstrap_servers=broker)
    admin.create_topics([NewTopic(name=topic, num_partitions=partitions, replication_factor=1)])
    admin.close()


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "produce":
        produce(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "consume":
        consume(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif cmd == "create":
        create(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(f"unknown command {cmd}")
