"""RabbitMQ publishing: durable topic exchange, persistent messages, publisher confirms."""

import logging

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractRobustConnection

from common.events import Event

log = logging.getLogger(__name__)


class EventBus:
    def __init__(self, url: str, exchange: str, *, publish_timeout: float = 5.0):
        self._url = url
        self._exchange_name = exchange
        self._timeout = publish_timeout
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

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
