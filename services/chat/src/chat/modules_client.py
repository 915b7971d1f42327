"""Fetches training modules from the modules service over HTTP."""

import aiohttp
from common.errors import AppError, NotFound, ServiceUnavailable
from pydantic import BaseModel


class Module(BaseModel):
    id: str
    title: str
    system_prompt: str


class ModulesClient:
    def __init__(self, base_url: str, session: aiohttp.ClientSession):
        self._base_url = base_url.rstrip("/")
        self._session = session

    async def get(self, module_id: str, authorization: str) -> Module:
        """The module as the caller may see it; the caller's own token is passed on."""
        url = f"{self._base_url}/module/{module_id}"
        try:
            async with self._session.get(url, headers={"authorization": authorization}) as resp:
                if resp.status == 404:
                    raise NotFound("Training module not found")
                if resp.status != 200:
                    detail = (await resp.json()).get("detail", "The modules service failed")
                    raise AppError(detail, status=resp.status if resp.status < 500 else 503)
                return Module.model_validate(await resp.json())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ServiceUnavailable("The modules service is unavailable") from exc
