"""RabbitMQ: durable topic exchange, persistent messages, publisher confirms, manual acks."""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage, AbstractRobustConnection

from common.events import Event

log = logging.getLogger(__name__)

#: Handles one message: (routing key, body). Raise `PoisonMessage` to dead-letter it.
Handler = Callable[[str, bytes], Awaitable[None]]


class PoisonMessage(Exception):
    """The message can never be handled (bad schema, …): dead-letter it, do not retry."""


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
        self._exchange: AbstractExchange | None = None

    async def connect(self) -> None:
        self._connection = await aio_pika.connect_robust(self._url)
        channel = await self._connection.channel(publisher_confirms=True)
        self._exchange = await channel.declare_exchange(
            self._exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )

    async def publish(self, event: Event) -> None:
        """Publish and wait for the broker's confirm; raises if it does not confirm."""
        if self._exchange is None:
            raise RuntimeError("EventBus.connect() was not called")
        message = aio_pika.Message(
            body=event.model_dump_json().encode(),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=event.event_id,
            type=event.routing_key,
        )
        await self._exchange.publish(message, routing_key=event.routing_key, timeout=self._timeout)

    async def consume(
        self,
        queue: str | None,
        routing_keys: Sequence[str],
        handler: Handler,
        *,
        prefetch: int = 50,
    ) -> None:
        """Start consuming. `queue=None` gives this process its own short-lived queue (every
        instance sees every message: for cache invalidation); a name gives a durable quorum
        queue shared by all instances, with a dead-letter queue `<name>.dead`."""
        if self._connection is None:
            raise RuntimeError("EventBus.connect() was not called")
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        exchange = await channel.declare_exchange(
            self._exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        if queue is None:
            declared = await channel.declare_queue(exclusive=True, auto_delete=True)
        else:
            dead_letters = await channel.declare_exchange(
                f"{self._exchange_name}.dead", aio_pika.ExchangeType.DIRECT, durable=True
            )
            dead = await channel.declare_queue(
                f"{queue}.dead", durable=True, arguments={"x-queue-type": "quorum"}
            )
            await dead.bind(dead_letters, routing_key=queue)
            declared = await channel.declare_queue(
                queue,
                durable=True,
                arguments={
                    "x-queue-type": "quorum",
                    "x-dead-letter-exchange": dead_letters.name,
                    "x-dead-letter-routing-key": queue,
                },
            )
        for key in routing_keys:
            await declared.bind(exchange, routing_key=key)
        await declared.consume(self._wrap(handler))

    def _wrap(self, handler: Handler) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
        async def on_message(message: AbstractIncomingMessage) -> None:
            try:
                await handler(message.routing_key or "", message.body)
            except PoisonMessage as exc:
                log.error("dead-lettering message %s: %s", message.message_id, exc)
                await message.reject(requeue=False)
            except Exception:
                log.exception("handling message %s failed; it will be retried", message.message_id)
                await asyncio.sleep(self._retry_delay)
                await message.nack(requeue=True)
            else:
                await message.ack()

        return on_message

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
