"""A faust transport whose worker consumer waits ``PRESETTLE_FETCH_MAX_WAIT_MS``.

faust's aiokafka driver hard-codes ``fetch_max_wait_ms=1500`` for the worker
consumer. A broker that answers a fetch only when that wait expires (the
embedded Tansu broker does) then adds ~750 ms to every hop. faust chooses its
transport by the broker URL's scheme from a registry that includes the
setuptools entry-point group ``faust.transports``; pyproject.toml registers
this class there under the scheme ``presettle``, so the worker uses
``presettle://host:port`` and faust itself stays unpatched.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

from services.common.settings import get_settings


def fetch_max_wait_ms() -> int:
    return get_settings().fetch_max_wait_ms


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Read by AIOKafkaConsumer.start() when it builds its fetcher.
        consumer._fetch_max_wait_ms = fetch_max_wait_ms()
        return consumer


class Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer
