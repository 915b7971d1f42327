from typing import Annotated, Any

from common.pagination import Page, PageQuery
from common.security import CurrentUser, ManagerUser
from common.web import from_state
from fastapi import APIRouter, Depends, Path, Query

from modules.schemas import ModuleCreate, ModuleOut, ModuleUpdate
from modules.service import ModulesService

router = APIRouter(prefix="/module", tags=["modules"])


Modules = Annotated[ModulesService, Depends(from_state("modules_service"))]
ModuleId = Annotated[str, Path(max_length=64)]


@router.get("/list", response_model=Page[ModuleOut])
async def list_modules(
    modules: Modules,
    user: CurrentUser,
    page: PageQuery,
    search: Annotated[
        str | None, Query(max_length=200, description="Case-insensitive substring of the title")
    ] = None,
    filter_deleted: Annotated[
        bool, Query(description="Also list deleted modules (managers and admins only)")
    ] = False,
) -> Page[ModuleOut]:
    return await modules.list(user, include_deleted=filter_deleted, search=search, page=page)


@router.post("/create", response_model=ModuleOut)
async def create_module(body: ModuleCreate, modules: Modules, user: ManagerUser) -> ModuleOut:
    return await modules.create(user, body)


@router.get("/{agent_id}", response_model=ModuleOut)
async def get_module(agent_id: ModuleId, modules: Modules, user: CurrentUser) -> ModuleOut:
    return await modules.get(user, agent_id)


@router.put(
    "/{agent_id}",
    responses={200: {"description": "The module id and the fields whose values changed"}},
)
async def update_module(
    agent_id: ModuleId, body: ModuleUpdate, modules: Modules, user: ManagerUser
) -> dict[str, Any]:
    """Partial update: send `title` and/or `system_prompt`; answers with what changed."""
    return await modules.update(user, agent_id, body)


@router.delete("/{agent_id}", response_model=ModuleOut)
async def delete_module(agent_id: ModuleId, modules: Modules, user: ManagerUser) -> ModuleOut:
    """Soft delete: the module is kept (with `deleted_at`) but can no longer be used."""
    return await modules.delete(user, agent_id)
