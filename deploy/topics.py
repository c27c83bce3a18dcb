"""Create PreSettle's topics on Apache Kafka and give each the retention it needs.

    python deploy/topics.py [--audit-retention-days 365] [--dry-run]

Run once before the workers start (the compose ``topics`` service and the worker
StatefulSet's init container do). Idempotent: existing topics keep their data.

``services.common.broker.ensure_topics`` (the ingress and ``make run``) creates
missing topics with the configs of ``services.common.broker.topic_configs``;
this script also aligns topics that already exist (created by an older
release) through AlterConfigs. The configs:

* the per-patient state changelog is **compacted** (``cleanup.policy=compact``):
  with the broker default (delete after 7 days) a restarted worker would rebuild
  patient state without anything older than a week, and the 31-, 90- and
  365-day rule windows would silently miss history;
* the audit topic (every decision) keeps ``--audit-retention-days``;
* the inputs (events, patient-status, feedback) keep 7 days: enough to replay
  after an incident, short enough to bound the disk;
* every topic requires ``min.insync.replicas=2`` when the replication factor is 3+.

Topics that already exist get the same configs through AlterConfigs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from services.common.broker import topic_configs  # the one definition of the topics' configs
from services.common.kafka_security import aiokafka_kwargs  # TLS / SASL, as every other client


async def apply(audit_retention_days: int, dry_run: bool, timeout_s: float = 180.0) -> int:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
    from aiokafka.errors import TopicAlreadyExistsError

    from services.common.broker import service_topics
    from services.common.settings import get_settings

    s = get_settings()
    configs = topic_configs(s, audit_retention_days)
    partitions = service_topics(s)
    if dry_run:
        for name, cfg in configs.items():
            print(f"{name}: partitions={partitions[name]} rf={s.replication_factor} {cfg}")
        return 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:  # the brokers may still be starting
        admin = AIOKafkaAdminClient(bootstrap_servers=s.bootstrap, request_timeout_ms=15000,
                                    **aiokafka_kwargs(s))  # TLS / SASL from the settings
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            break
        except Exception as exc:
            await admin.close()
            if loop.time() > deadline:
                print(f"Kafka at {s.bootstrap} not reachable: {exc!r}", file=sys.stderr)
                return 1
            await asyncio.sleep(2)
    try:
        missing = [NewTopic(name, num_partitions=partitions[name], replication_factor=s.replication_factor,
                            topic_configs=configs[name]) for name in configs if name not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # created concurrently
            print(f"created with configs: {', '.join(t.name for t in missing)}", flush=True)
        present = [name for name in configs if name in existing]
        if not present:
            return 0
        # Topics that already existed (created by the ingress or an older release): set the configs.
        try:
            responses = await admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, name, configs=configs[name]) for name in present])
        except Exception as exc:  # e.g. a development broker without AlterConfigs
            print(f"could not alter the configs of existing topics ({type(exc).__name__}: {exc}); "
                  f"set them with kafka-configs.sh: {present}", file=sys.stderr)
            return 1
        # AlterConfigs answers (error_code, error_message, resource_type, resource_name) per resource.
        errors = [(r[3], r[1] or f"error code {r[0]}") for resp in responses
                  for r in getattr(resp, "resources", []) if r[0]]
        for name, message in errors:
            print(f"could not configure {name}: {message}", file=sys.stderr)
        print(f"configured: {', '.join(n for n in present if n not in dict(errors))}", flush=True)
        return 1 if errors else 0
    finally:
        await admin.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--audit-retention-days", type=int, default=365,
                        help="how long the audit topic keeps decisions (default 365)")
    parser.add_argument("--dry-run", action="store_true", help="print the configs, change nothing")
    args = parser.parse_args(argv)
    if args.audit_retention_days < 1:
        parser.error("--audit-retention-days must be at least 1")
    return asyncio.run(apply(args.audit_retention_days, args.dry_run))


if __name__ == "__main__":
    sys.exit(main())
