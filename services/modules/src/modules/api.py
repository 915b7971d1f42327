from typing import Annotated

from common.errors import NotFound
from common.pagination import Page, PageQuery
from common.security import CurrentUser, ManagerUser
from fastapi import APIRouter, Depends, Query, Request

from modules.schemas import ModuleCreate, ModuleOut
from modules.store import ModulesStore

router = APIRouter(prefix="/module", tags=["modules"])


def _store(request: Request) -> ModulesStore:
    store: ModulesStore = request.app.state.store
    return store


Store = Annotated[ModulesStore, Depends(_store)]


@router.get("/list", response_model=Page[ModuleOut])
async def list_modules(
    store: Store,
    _: CurrentUser,
    page: PageQuery,
    search: Annotated[str | None, Query(max_length=200)] = None,
) -> Page[ModuleOut]:
    items, total = await store.list(
        include_deleted=False, search=search, skip=page.skip, limit=page.page_size
    )
    return Page.of(items, page, total)


@router.post("/create", response_model=ModuleOut)
async def create_module(body: ModuleCreate, store: Store, user: ManagerUser) -> ModuleOut:
    return await store.create(title=body.title, system_prompt=body.system_prompt, author=user.sub)


@router.get("/{agent_id}", response_model=ModuleOut)
async def get_module(agent_id: str, store: Store, _: CurrentUser) -> ModuleOut:
    module = await store.get(agent_id)
    if module is None or module.deleted_at is not None:
        raise NotFound("Training module not found")
    return module
