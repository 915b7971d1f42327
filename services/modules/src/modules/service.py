"""The rules of training modules: who may see what, what an update changes, which events."""

import logging
from typing import Any

from common.access import AccessLevel
from common.errors import Forbidden, NotFound
from common.events import Event, ModuleDeleted, ModuleUpdated, utcnow
from common.jwt import TokenClaims
from common.outbox import Outbox
from common.pagination import Page, PageParams

from modules.schemas import ModuleCreate, ModuleOut, ModuleUpdate
from modules.store import ModulesStore

log = logging.getLogger(__name__)


class ModuleNotFound(NotFound):
    default_detail = "Training module not found"


class ModulesService:
    def __init__(self, store: ModulesStore, outbox: Outbox):
        self.store = store
        self.outbox = outbox

    async def list(
        self, user: TokenClaims, *, include_deleted: bool, search: str | None, page: PageParams
    ) -> Page[ModuleOut]:
        if include_deleted and user.lvl < AccessLevel.MANAGER:
            raise Forbidden("Only managers can list deleted modules")
        items, total = await self.store.list(
            include_deleted=include_deleted, search=search, skip=page.skip, limit=page.page_size
        )
        return Page.of(items, page, total)

    async def get(self, user: TokenClaims, module_id: str) -> ModuleOut:
        module = await self.store.get(module_id)
        if module is None or (module.deleted_at and user.lvl < AccessLevel.MANAGER):
            raise ModuleNotFound()
        return module

    async def create(self, user: TokenClaims, body: ModuleCreate) -> ModuleOut:
        module = await self.store.create(
            title=body.title, system_prompt=body.system_prompt, author=user.sub
        )
        await self._publish(ModuleUpdated(module_id=module.id, changed=["title", "system_prompt"]))
        return module

    async def update(self, user: TokenClaims, module_id: str, body: ModuleUpdate) -> dict[str, Any]:
        """Apply a partial update; returns the id and the fields whose values changed."""
        current = await self.store.get(module_id)
        if current is None or current.deleted_at is not None:
            raise ModuleNotFound()
        sent = body.model_dump(exclude_unset=True)
        changed = {k: v for k, v in sent.items() if getattr(current, k) != v}
        if not changed:
            return {"id": current.id}
        updated = await self.store.update_live(module_id, changed, user.sub)
        if updated is None:
            raise ModuleNotFound()
        await self._publish(ModuleUpdated(module_id=updated.id, changed=sorted(changed)))
        return {
            "id": updated.id,
            **changed,
            "updated_by": updated.updated_by,
            "updated_at": updated.updated_at,
        }

    async def delete(self, user: TokenClaims, module_id: str) -> ModuleOut:
        deleted = await self.store.update_live(module_id, {"deleted_at": utcnow()}, user.sub)
        if deleted is None:
            raise ModuleNotFound()
        await self._publish(ModuleDeleted(module_id=deleted.id))
        return deleted

    async def _publish(self, event: Event) -> None:
        """After the write it announces; kept in the outbox while the broker is away."""
        await self.outbox.publish(event)
