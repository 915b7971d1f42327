from datetime import date
from typing import Annotated

from common.security import CurrentUser, ManagerUser
from common.web import from_state
from fastapi import APIRouter, Depends, Query

from usage.schemas import GroupBy, UsageSummary
from usage.service import UsageService

router = APIRouter(prefix="/usage", tags=["usage"])


Usage = Annotated[UsageService, Depends(from_state("usage_service"))]
From = Annotated[date | None, Query(alias="from", description="First day (UTC), inclusive")]
To = Annotated[date | None, Query(alias="to", description="Last day (UTC), inclusive")]
Group = Annotated[GroupBy, Query(description="user, module, provider or day")]


@router.get("/summary", response_model=UsageSummary)
async def summary(
    usage: Usage, _: ManagerUser, from_: From = None, to: To = None, group_by: Group = "user"
) -> UsageSummary:
    """Turns, tokens and failed/cancelled counts per group; defaults to the last 30 days."""
    return await usage.summary(from_date=from_, to_date=to, group_by=group_by)


@router.get("/me", response_model=UsageSummary)
async def my_usage(
    usage: Usage, user: CurrentUser, from_: From = None, to: To = None, group_by: Group = "day"
) -> UsageSummary:
    """The caller's own usage."""
    return await usage.summary(from_date=from_, to_date=to, group_by=group_by, user_id=user.sub)
