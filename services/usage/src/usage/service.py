"""Storing usage events once each, and reporting on them."""

import logging
from datetime import UTC, date, datetime, time, timedelta

from common.bus import PoisonMessage
from common.context import request_id
from common.errors import BadRequest
from common.events import ChatUsageRecorded
from prometheus_client import Histogram
from pydantic import ValidationError

from usage.schemas import GroupBy, UsageRow, UsageSummary
from usage.store import UsageStore

log = logging.getLogger(__name__)

LAG = Histogram(
    "usage_consumer_lag_seconds",
    "From a turn's usage event to its storage here",
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 1800, 3600),
)

MAX_RANGE_DAYS = 366


class UsageService:
    def __init__(self, store: UsageStore):
        self.store = store

    async def handle(self, routing_key: str, body: bytes) -> None:
        """The consumer: a message that is not a usage event is poison (dead-lettered)."""
        try:
            event = ChatUsageRecorded.model_validate_json(body)
        except ValidationError as exc:
            raise PoisonMessage(f"not a {ChatUsageRecorded.routing_key} event: {exc}") from exc
        token = request_id.set(event.request_id)
        try:
            if await self.store.record(event):
                LAG.observe(max(0.0, (datetime.now(UTC) - event.occurred_at).total_seconds()))
                log.info("usage of turn in thread %s stored", event.thread_id)
            else:
                log.info("duplicate usage event %s ignored", event.event_id)
        finally:
            request_id.reset(token)

    async def summary(
        self,
        *,
        from_date: date | None,
        to_date: date | None,
        group_by: GroupBy,
        user_id: str | None = None,
    ) -> UsageSummary:
        to_date = to_date or datetime.now(UTC).date()
        from_date = from_date or to_date - timedelta(days=29)
        if from_date > to_date:
            raise BadRequest("'from' must not be after 'to'")
        if (to_date - from_date).days >= MAX_RANGE_DAYS:
            raise BadRequest(f"the range may span at most {MAX_RANGE_DAYS} days")
        rows = await self.store.summarize(
            start=datetime.combine(from_date, time.min, UTC),
            end=datetime.combine(to_date + timedelta(days=1), time.min, UTC),
            group_by=group_by,
            user_id=user_id,
        )
        groups = [UsageRow(key=str(row.pop("_id")), **row) for row in rows]
        totals = UsageRow(
            key="total",
            **{
                field: sum(getattr(g, field) for g in groups)
                for field in UsageRow.model_fields
                if field != "key"
            },
        )
        return UsageSummary(
            from_date=from_date, to_date=to_date, group_by=group_by, groups=groups, totals=totals
        )
