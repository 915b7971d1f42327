"""Request and response models of the usage service."""

from datetime import date
from typing import Literal

from pydantic import BaseModel

GroupBy = Literal["user", "module", "provider", "day"]


class UsageRow(BaseModel):
    key: str
    turns: int
    input_tokens: int
    output_tokens: int
    completed: int
    failed: int
    cancelled: int


class UsageSummary(BaseModel):
    from_date: date
    to_date: date
    group_by: GroupBy
    groups: list[UsageRow]
    totals: UsageRow
