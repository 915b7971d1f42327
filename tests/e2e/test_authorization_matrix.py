"""Every public endpoint x every kind of caller -> the expected status, through the gateway."""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from devstack.testing import PASSWORD, Accounts

ROLES = ("anonymous", "deleted", "user", "manager", "admin")


@dataclass
class Ctx:
    client: httpx.AsyncClient
    accounts: Accounts
    admin: dict[str, str]
    module_id: str


def unique() -> str:
    return f"m.{uuid.uuid4().hex[:10]}@example.com"


async def fresh_user(ctx: Ctx) -> Any:
    return await ctx.accounts.create(1, "victim")


async def allowed_email(ctx: Ctx) -> str:
    email = unique()
    r = await ctx.client.post("/user/allowed-users", json={"emails": email}, headers=ctx.admin)
    assert r.status_code == 200
    return email


Request = Callable[[Ctx], Awaitable[tuple[str, str, dict[str, Any]]]]


async def signup(ctx: Ctx) -> tuple[str, str, dict[str, Any]]:
    return (
        "POST",
        "/user/signup",
        {"json": {"email": await allowed_email(ctx), "password": PASSWORD}},
    )


async def signin(ctx: Ctx) -> tuple[str, str, dict[str, Any]]:
    user = await fresh_user(ctx)
    return "POST", "/user/signin", {"json": {"email": user.email, "password": PASSWORD}}


async def user_list(ctx: Ctx) -> tuple[str, str, dict[str, Any]]:
    return "GET", "/user/list", {"params": {"filter_type": "all"}}


async def set_level(ctx: Ctx) -> tuple[str, str, dict[str, Any]]:
    user = await fresh_user(ctx)
    return "POST", "/user/set-access-level", {"json": {"email": user.email, "new_access_level": 5}}


async def delete_user(ctx: Ctx) -> tuple[str, str, dict[str, Any]]:
    return "DELETE", f"/user/{(await fresh_user(ctx)).id}", {}


async def add_allowed(ctx: Ctx) -> tuple[str, str, dict[str, Any]]:
    return "POST", "/user/allowed-users", {"json": {"emails": unique(), "access_level": 1}}


async def list_allowed(ctx: Ctx) -> tuple[str, str, dict[str, Any]]:
    return "GET", "/user/allowed-users", {"params": {"page": 1}}


async def allowed_level(ctx: Ctx) -> tuple[str, str, dict[str, Any]]:
    body = {"email": await allowed_email(ctx), "new_access_level": 5}
    return "PUT", "/user/allowed-users/access-level", {"json": body}


async def remove_allowed(ctx: Ctx) -> tuple[str, str, dict[str, Any]]:
    return "DELETE", f"/user/allowed-users/{await allowed_email(ctx)}", {}


async def module_list(ctx: Ctx) -> tuple[str, str, dict[str, Any]]:
    return "GET", "/module/list", {}


async def module_list_deleted(ctx: Ctx) -> tuple[str, str, dict[str, Any]]:
    return "GET", "/module/list", {"params": {"filter_deleted": "true"}}


async def module_create(ctx: Ctx) -> tuple[str, str, dict[str, Any]]:
    return "POST", "/module/create", {"json": {"title": "Matrix", "system_prompt": "You are X."}}


async def module_get(ctx: Ctx) -> tuple[str, str, dict[str, Any]]:
    return "GET", f"/module/{ctx.module_id}", {}


async def module_update(ctx: Ctx) -> tuple[str, str, dict[str, Any]]:
    return "PUT", f"/module/{ctx.module_id}", {"json": {"title": f"Matrix {uuid.uuid4().hex}"}}


async def module_delete(ctx: Ctx) -> tuple[str, str, dict[str, Any]]:
    created = await ctx.client.post(
        "/module/create", json={"title": "Doomed", "system_prompt": "You are X."}, headers=ctx.admin
    )
    return "DELETE", f"/module/{created.json()['id']}", {}


async def threads(ctx: Ctx) -> tuple[str, str, dict[str, Any]]:
    return "GET", "/chat/threads", {}


async def stream_chat(ctx: Ctx) -> tuple[str, str, dict[str, Any]]:
    body = {"messages": {"0": {"role": "user", "content": "Hello"}}, "agent_id": ctx.module_id}
    return "POST", "/stream_chat", {"json": body}


#                                     anonymous deleted user manager admin
MATRIX: list[tuple[Request, tuple[int, int, int, int, int]]] = [
    (signup, (200, 200, 200, 200, 200)),
    (signin, (200, 200, 200, 200, 200)),
    (user_list, (401, 401, 200, 200, 200)),
    (set_level, (401, 401, 403, 200, 200)),
    (delete_user, (401, 401, 403, 200, 200)),
    (add_allowed, (401, 401, 403, 403, 200)),
    (list_allowed, (401, 401, 403, 200, 200)),
    (allowed_level, (401, 401, 403, 403, 200)),
    (remove_allowed, (401, 401, 403, 403, 200)),
    (module_list, (401, 401, 200, 200, 200)),
    (module_list_deleted, (401, 401, 403, 200, 200)),
    (module_update, (401, 401, 403, 200, 200)),
    (module_delete, (401, 401, 403, 200, 200)),
    (module_create, (401, 401, 403, 200, 200)),
    (module_get, (401, 401, 200, 200, 200)),
    (stream_chat, (401, 401, 200, 200, 200)),
    (threads, (401, 401, 200, 200, 200)),
]


@pytest.fixture(scope="module")
async def callers(accounts: Accounts, admin_token: str) -> dict[str, dict[str, str]]:
    made = {
        "deleted": await accounts.create(0, "deleted"),
        "user": await accounts.create(1, "user"),
        "manager": await accounts.create(5, "manager"),
        "admin": await accounts.create(9, "admin"),
    }
    return {"anonymous": {}, **{role: a.headers for role, a in made.items()}}


@pytest.mark.parametrize(("request_of", "expected"), MATRIX, ids=[m[0].__name__ for m in MATRIX])
async def test_authorization_matrix(
    client: httpx.AsyncClient,
    accounts: Accounts,
    admin_token: str,
    callers: dict[str, dict[str, str]],
    request_of: Request,
    expected: tuple[int, ...],
) -> None:
    admin = {"authorization": f"Bearer {admin_token}"}
    created = await client.post(
        "/module/create", json={"title": "Matrix", "system_prompt": "You are X."}, headers=admin
    )
    ctx = Ctx(client, accounts, admin, created.json()["id"])
    got = {}
    for role in ROLES:
        method, path, kwargs = await request_of(ctx)
        r = await client.request(method, path, headers=callers[role], **kwargs)
        got[role] = r.status_code
        if r.status_code != 200:
            assert isinstance(r.json()["detail"], str) and r.json()["detail"]
    assert got == dict(zip(ROLES, expected, strict=True))
