"""RabbitMQ: durable topic exchange, persistent messages, publisher confirms, manual acks.

The bus connects in the background and keeps trying while the broker is away, so a
service starts (and serves) without RabbitMQ; aio-pika's robust connection then restores
channels, queues and consumers by itself after every broker restart.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import (
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from prometheus_client import Counter

from common.events import Event

log = logging.getLogger(__name__)

PUBLISHED = Counter("events_published_total", "Events confirmed by the broker", ["routing_key"])
PUBLISH_FAILED = Counter(
    "events_publish_failed_total", "Publishes the broker did not confirm", ["routing_key"]
)
CONSUMED = Counter(
    "events_consumed_total", "Messages handled, by outcome", ["routing_key", "outcome"]
)

#: Handles one message: (routing key, body). Raise `PoisonMessage` to dead-letter it.
Handler = Callable[[str, bytes], Awaitable[None]]


class PoisonMessage(Exception):
    """The message can never be handled (bad schema, …): dead-letter it, do not retry."""


class BrokerUnavailable(Exception):
    """Not connected to RabbitMQ (yet, or any more)."""


@dataclass(frozen=True)
class _Subscription:
    queue: str | None
    routing_keys: tuple[str, ...]
    handler: Handler
    prefetch: int


class EventBus:
    def __init__(
        self,
        url: str,
        exchange: str,
        *,
        publish_timeout: float = 5.0,
        retry_delay_s: float = 1.0,
    ):
        self._url = url
        self._exchange_name = exchange
        self._timeout = publish_timeout
        self._retry_delay = retry_delay_s
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._subscriptions: list[_Subscription] = []
        self._ready = asyncio.Event()
        self._connecting: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return (
            self._ready.is_set()
            and self._connection is not None
            and not self._connection.is_closed
            and self._channel is not None
            and not self._channel.is_closed
        )

    async def connect(self, *, wait_s: float = 0.0) -> None:
        """Start connecting in the background; wait up to `wait_s` for the first connection."""
        if self._connecting is None:
            self._connecting = asyncio.create_task(self._connect_until_up())
        if wait_s:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._ready.wait()), wait_s)

    async def _connect_until_up(self) -> None:
        delay = 0.5
        while True:
            try:
                self._connection = await aio_pika.connect_robust(self._url)
                break
            except Exception as exc:
                log.warning("RabbitMQ unreachable (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        channel = await self._connection.channel(publisher_confirms=True)
        assert isinstance(channel, AbstractRobustChannel)
        self._channel = channel
        self._exchange = await channel.declare_exchange(
            self._exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        for subscription in self._subscriptions:
            await self._start(subscription)
        self._ready.set()
        log.info("connected to RabbitMQ")

    async def publish(self, event: Event) -> None:
        await self.publish_raw(event.routing_key, event.model_dump_json().encode(), event.event_id)

    async def publish_raw(self, routing_key: str, body: bytes, message_id: str) -> None:
        """Publish and wait for the broker's confirm; raises if it does not confirm."""
        if not self.connected or self._exchange is None:
            PUBLISH_FAILED.labels(routing_key).inc()
            raise BrokerUnavailable("not connected to RabbitMQ")
        message = aio_pika.Message(
            body=body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id,
            type=routing_key,
        )
        try:
            await self._exchange.publish(message, routing_key=routing_key, timeout=self._timeout)
        except Exception:
            PUBLISH_FAILED.labels(routing_key).inc()
            raise
        PUBLISHED.labels(routing_key).inc()

    async def consume(
        self,
        queue: str | None,
        routing_keys: Sequence[str],
        handler: Handler,
        *,
        prefetch: int = 50,
    ) -> None:
        """Consume now if connected, else as soon as the bus connects.

        `queue=None` gives this process its own short-lived queue (every instance sees
        every message: for cache invalidation); a name gives a durable quorum queue shared
        by all instances (each message handled once), with a dead-letter queue
        `<name>.dead` for messages that can never be handled.
        """
        subscription = _Subscription(queue, tuple(routing_keys), handler, prefetch)
        self._subscriptions.append(subscription)
        if self._ready.is_set():
            await self._start(subscription)

    async def _start(self, sub: _Subscription) -> None:
        assert self._connection is not None
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=sub.prefetch)
        exchange = await channel.declare_exchange(
            self._exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        if sub.queue is None:
            queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        else:
            dead_letters = await channel.declare_exchange(
                f"{self._exchange_name}.dead", aio_pika.ExchangeType.DIRECT, durable=True
            )
            dead = await channel.declare_queue(
                f"{sub.queue}.dead", durable=True, arguments={"x-queue-type": "quorum"}
            )
            await dead.bind(dead_letters, routing_key=sub.queue)
            queue = await channel.declare_queue(
                sub.queue,
                durable=True,
                arguments={
                    "x-queue-type": "quorum",
                    "x-dead-letter-exchange": dead_letters.name,
                    "x-dead-letter-routing-key": sub.queue,
                },
            )
        for key in sub.routing_keys:
            await queue.bind(exchange, routing_key=key)
        await queue.consume(self._wrap(sub.handler))

    def _wrap(self, handler: Handler) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
        async def on_message(message: AbstractIncomingMessage) -> None:
            key = message.routing_key or ""
            try:
                await handler(key, message.body)
            except PoisonMessage as exc:
                CONSUMED.labels(key, "dead-lettered").inc()
                log.error("dead-lettering message %s: %s", message.message_id, exc)
                await message.reject(requeue=False)
            except Exception:
                CONSUMED.labels(key, "retried").inc()
                log.exception("handling message %s failed; it will be retried", message.message_id)
                await asyncio.sleep(self._retry_delay)
                await message.nack(requeue=True)
            else:
                CONSUMED.labels(key, "handled").inc()
                await message.ack()

        return on_message

    async def close(self) -> None:
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
        self._ready.clear()
