"""Users and the allowlist through the gateway: every rule, against the real stack."""

import asyncio
import re
import statistics
import time
import uuid
from typing import Any

import httpx
import jwt as pyjwt
import pytest
from devstack.testing import PASSWORD, Account, Accounts, Stack


def unique(name: str = "u") -> str:
    return f"{name}.{uuid.uuid4().hex[:10]}@example.com"


async def allow(client: httpx.AsyncClient, admin: str, emails: Any, level: int = 1) -> Any:
    r = await client.post(
        "/user/allowed-users",
        json={"emails": emails, "access_level": level},
        headers={"authorization": f"Bearer {admin}"},
    )
    assert r.status_code == 200, r.text
    return r.json()


# --- sign-up, sign-in, emails, passwords -------------------------------------------------


async def test_signup_and_signin_return_token_and_public_user(
    client: httpx.AsyncClient, admin_token: str
) -> None:
    email = unique("Shape")
    await allow(client, admin_token, email.upper(), level=5)
    r = await client.post(
        "/user/signup",
        json={"email": f"  {email.upper()} ", "password": PASSWORD, "first_name": "Ann"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"message", "access_token", "token_type", "expires_in", "user"}
    assert body["token_type"] == "bearer" and body["expires_in"] > 0
    user = body["user"]
    assert user["email"] == email.lower() and user["access_level"] == 5
    assert {
        "id",
        "email",
        "first_name",
        "last_name",
        "access_level",
        "created_at",
        "updated_at",
    } <= set(user)
    assert not any("password" in key or "hash" in key for key in user)
    r = await client.post("/user/signin", json={"email": email.upper(), "password": PASSWORD})
    assert r.status_code == 200 and r.json()["user"]["id"] == user["id"]


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ({"email": "not-an-email", "password": PASSWORD}, "not-an-email"),
        ({"email": "a@example.com", "password": "short1!"}, "password"),
        ({"email": "a@example.com", "password": "nouppercase1!"}, "upper-case"),
        ({"email": "a@example.com", "password": "NoDigitsHere!"}, "digit"),
        ({"email": "a@example.com", "password": "NoSymbol123a"}, "symbol"),
        ({"email": "a@example.com", "password": "Aa1!" * 100}, "password"),
        ({"email": "a@example.com"}, "password"),
        ({"email": "nul\u0000@example.com", "password": PASSWORD}, "email"),
    ],
)
async def test_signup_refuses_bad_input_with_400(
    client: httpx.AsyncClient, body: dict[str, str], word: str
) -> None:
    r = await client.post("/user/signup", json=body)
    assert r.status_code == 400, r.text
    assert word in r.json()["detail"]


async def test_signup_refuses_email_not_on_allowlist_and_duplicates(
    client: httpx.AsyncClient, admin_token: str
) -> None:
    email = unique()
    r = await client.post("/user/signup", json={"email": email, "password": PASSWORD})
    assert r.status_code == 403 and "allowlist" in r.json()["detail"]
    await allow(client, admin_token, email)
    assert (
        await client.post("/user/signup", json={"email": email, "password": PASSWORD})
    ).status_code == 200
    r = await client.post("/user/signup", json={"email": email.upper(), "password": PASSWORD})
    assert r.status_code == 400 and "already exists" in r.json()["detail"]


async def test_concurrent_signups_of_one_email_make_one_user(
    client: httpx.AsyncClient, admin_token: str
) -> None:
    email = unique("race")
    await allow(client, admin_token, email)
    results = await asyncio.gather(
        *(
            client.post("/user/signup", json={"email": email, "password": PASSWORD})
            for _ in range(8)
        )
    )
    assert sorted(r.status_code for r in results) == [200] + [400] * 7
    listed = await client.get(
        "/user/list", params={"search": email}, headers={"authorization": f"Bearer {admin_token}"}
    )
    assert listed.json()["total"] == 1


async def test_wrong_password_and_unknown_email_look_the_same(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    known = await accounts.create(1)
    unknown_times, wrong_times = [], []
    for i in range(4):
        for email, times in ((unique("ghost"), unknown_times), (known.email, wrong_times)):
            start = time.perf_counter()
            r = await client.post("/user/signin", json={"email": email, "password": f"Wrong{i}!pw"})
            times.append(time.perf_counter() - start)
            assert r.status_code == 401
            assert r.json() == {"detail": "Invalid email or password"}
    # Both pay one argon2 verification; neither answers in a fraction of the other's time.
    ratio = statistics.median(unknown_times) / statistics.median(wrong_times)
    assert 0.4 < ratio < 2.5, (unknown_times, wrong_times)


async def test_repeated_failed_signins_are_limited_per_email(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    victim = await accounts.create(1)
    for _ in range(5):
        r = await client.post("/user/signin", json={"email": victim.email, "password": "Bad1!bad"})
        assert r.status_code == 401
    r = await client.post("/user/signin", json={"email": victim.email, "password": PASSWORD})
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) > 0
    assert "Too many" in r.json()["detail"]


async def test_request_bodies_have_a_size_limit(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/user/signin",
        content=b'{"email": "' + b"a" * 2_000_000 + b'"}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413 and "too large" in r.json()["detail"]


# --- lists, search, pagination ------------------------------------------------------------


async def test_lists_paginate_and_search_literally(
    client: httpx.AsyncClient, admin_token: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    emails = [f"p{i}.{tag}@example.com" for i in range(5)] + [f"dot.{tag}+x@example.com"]
    await allow(client, admin_token, emails)
    admin = {"authorization": f"Bearer {admin_token}"}
    r = await client.get(
        "/user/allowed-users",
        params={"search": tag.upper(), "page": 2, "page_size": 4},
        headers=admin,
    )
    assert r.status_code == 200
    body = r.json()
    assert (body["total"], body["total_pages"], body["page"], body["page_size"]) == (6, 2, 2, 4)
    assert len(body["items"]) == 2
    # regex metacharacters are literal text
    r = await client.get("/user/allowed-users", params={"search": f"{tag}+x"}, headers=admin)
    assert [i["email"] for i in r.json()["items"]] == [f"dot.{tag}+x@example.com"]
    r = await client.get("/user/allowed-users", params={"search": ".*"}, headers=admin)
    assert r.json()["total"] == 0
    start = time.perf_counter()
    r = await client.get("/user/list", params={"search": "(a+)+$" * 20}, headers=admin)
    assert r.status_code == 200 and r.json()["total"] == 0
    assert time.perf_counter() - start < 5
    for params in (
        {"page": 0},
        {"page_size": 0},
        {"page_size": 101},
        {"page": "x"},
        {"filter_type": "gone"},
    ):
        r = await client.get("/user/list", params=params, headers=admin)
        assert r.status_code == 400, (params, r.text)
        assert isinstance(r.json()["detail"], str)


async def test_user_list_filters_active_and_deleted(
    client: httpx.AsyncClient, accounts: Accounts, admin_token: str
) -> None:
    gone = await accounts.create(0, name="gone")
    here = await accounts.create(1, name="here")
    admin = {"authorization": f"Bearer {admin_token}"}

    async def emails(filter_type: str) -> set[str]:
        r = await client.get(
            "/user/list",
            params={"filter_type": filter_type, "page_size": 100, "search": "@example.com"},
            headers=admin,
        )
        assert r.status_code == 200
        found = set()
        for page in range(1, r.json()["total_pages"] + 1):
            p = await client.get(
                "/user/list",
                params={"filter_type": filter_type, "page": page, "page_size": 100},
                headers=admin,
            )
            found |= {u["email"] for u in p.json()["items"]}
        return found

    assert gone.email in await emails("deleted") and here.email not in await emails("deleted")
    assert here.email in await emails("active") and gone.email not in await emails("active")
    assert {gone.email, here.email} <= await emails("all")


# --- allowlist ------------------------------------------------------------------------------


async def test_allowlist_reports_added_existing_and_invalid(
    client: httpx.AsyncClient, admin_token: str
) -> None:
    a, b = unique("a"), unique("b")
    first = await allow(client, admin_token, f"{a}, {b.upper()}, nope, ", level=5)
    assert first == {"added": [a, b], "already_allowed": [], "invalid": ["nope"]}
    second = await allow(client, admin_token, [a, "x@@y"], level=5)
    assert second == {"added": [], "already_allowed": [a], "invalid": ["x@@y"]}
    r = await client.post(
        "/user/allowed-users",
        json={"emails": a, "access_level": 3},
        headers={"authorization": f"Bearer {admin_token}"},
    )
    assert r.status_code == 400 and "access level" in r.json()["detail"]


async def test_allowlist_level_change_and_removal(
    client: httpx.AsyncClient, admin_token: str
) -> None:
    admin = {"authorization": f"Bearer {admin_token}"}
    email = unique("al")
    await allow(client, admin_token, email, level=1)
    r = await client.put(
        "/user/allowed-users/access-level",
        json={"email": email.upper(), "new_access_level": 5},
        headers=admin,
    )
    assert r.status_code == 200 and r.json()["access_level"] == 5
    r = await client.post("/user/signup", json={"email": email, "password": PASSWORD})
    assert r.json()["user"]["access_level"] == 5
    # removing from the allowlist stops future sign-ups, not the existing account
    r = await client.delete(f"/user/allowed-users/{email}", headers=admin)
    assert r.status_code == 200
    assert (
        await client.post("/user/signin", json={"email": email, "password": PASSWORD})
    ).status_code == 200
    assert (await client.delete(f"/user/allowed-users/{email}", headers=admin)).status_code == 404
    r = await client.put(
        "/user/allowed-users/access-level",
        json={"email": unique(), "new_access_level": 5},
        headers=admin,
    )
    assert r.status_code == 404


# --- access-level rules --------------------------------------------------------------------


async def set_level(
    client: httpx.AsyncClient, actor: Account | str, email: str, level: int
) -> httpx.Response:
    token = actor if isinstance(actor, str) else actor.token
    return await client.post(
        "/user/set-access-level",
        json={"email": email, "new_access_level": level},
        headers={"authorization": f"Bearer {token}"},
    )


async def test_manager_acts_only_below_own_level(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    manager = await accounts.create(5, "mgr")
    peer = await accounts.create(5, "peer")
    admin = await accounts.create(9, "adm")
    user = await accounts.create(1, "usr")
    assert (await set_level(client, manager, peer.email, 1)).status_code == 403
    assert (await set_level(client, manager, admin.email, 1)).status_code == 403
    r = await set_level(client, manager, user.email, 9)
    assert r.status_code == 403 and "above your own" in r.json()["detail"]
    r = await set_level(client, manager, user.email, 5)
    assert r.status_code == 200 and r.json()["user"]["access_level"] == 5
    assert (await client.delete(f"/user/{peer.id}", headers=manager.headers)).status_code == 403
    target = await accounts.create(1, "tgt")
    r = await client.delete(f"/user/{target.id}", headers=manager.headers)
    assert r.status_code == 200
    assert r.json()["user"]["access_level"] == 0 and r.json()["user"]["deleted_at"]


async def test_nobody_changes_or_deletes_themselves(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    admin = await accounts.create(9, "self")
    assert (await set_level(client, admin, admin.email, 5)).status_code == 403
    assert (await client.delete(f"/user/{admin.id}", headers=admin.headers)).status_code == 403


async def test_levels_are_exactly_0_1_5_9_and_unknown_targets_are_404(
    client: httpx.AsyncClient, accounts: Accounts, admin_token: str
) -> None:
    user = await accounts.create(1)
    for bad in (2, 10, -1, "x"):
        r = await set_level(client, admin_token, user.email, bad)  # type: ignore[arg-type]
        assert r.status_code == 400, r.text
    assert (await set_level(client, admin_token, unique(), 5)).status_code == 404
    admin = {"authorization": f"Bearer {admin_token}"}
    assert (await client.delete("/user/ffffffffffffffffffffffff", headers=admin)).status_code == 404
    assert (await client.delete("/user/not-an-id", headers=admin)).status_code == 404


async def test_deleted_user_cannot_sign_in_or_sign_up_again(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    gone = await accounts.create(0)
    r = await client.post("/user/signin", json={"email": gone.email, "password": PASSWORD})
    assert r.status_code == 401
    r = await client.post("/user/signup", json={"email": gone.email, "password": PASSWORD})
    assert r.status_code == 400 and "deleted" in r.json()["detail"]


async def test_deleted_or_demoted_user_loses_rights_on_the_next_request(
    client: httpx.AsyncClient, accounts: Accounts, admin_token: str, stack: Stack
) -> None:
    manager = await accounts.create(5)
    ok = await client.post(
        "/module/create", json={"title": "t", "system_prompt": "p"}, headers=manager.headers
    )
    assert ok.status_code == 200
    assert (await set_level(client, admin_token, manager.email, 1)).status_code == 200
    r = await client.post(
        "/module/create", json={"title": "t", "system_prompt": "p"}, headers=manager.headers
    )
    assert r.status_code == 403
    # the service itself also sees the new level, not the token's
    async with httpx.AsyncClient(base_url=stack.service("modules")) as direct:
        r = await direct.post(
            "/module/create", json={"title": "t", "system_prompt": "p"}, headers=manager.headers
        )
        assert r.status_code == 403
    await client.delete(f"/user/{manager.id}", headers={"authorization": f"Bearer {admin_token}"})
    r = await client.get("/module/list", headers=manager.headers)
    assert r.status_code == 401 and "deleted" in r.json()["detail"]


async def test_user_state_is_rebuilt_when_redis_loses_it(
    client: httpx.AsyncClient, accounts: Accounts, admin_token: str, stack: Stack
) -> None:
    from redis.asyncio import Redis

    user = await accounts.create(5)
    redis = Redis.from_url(stack.redis_url)
    try:
        await redis.delete(f"user:level:{user.id}")
        r = await client.post(
            "/module/create", json={"title": "t", "system_prompt": "p"}, headers=user.headers
        )
        assert r.status_code == 200
        assert await redis.get(f"user:level:{user.id}") == b"5"
    finally:
        await redis.aclose()


# --- tokens ---------------------------------------------------------------------------------


def forge(
    stack: Stack, account: Account, *, key: str | None = None, alg: str = "HS256", **claims: Any
) -> str:
    now = int(time.time())
    payload = {
        "sub": account.id,
        "email": account.email,
        "lvl": 9,
        "iss": "roleplay-auth",
        "aud": "roleplay-api",
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }
    payload.update(claims)
    return pyjwt.encode(payload, key if key is not None else stack.jwt_secret, algorithm=alg)


async def test_gateway_and_services_refuse_bad_tokens(
    client: httpx.AsyncClient, accounts: Accounts, stack: Stack
) -> None:
    user = await accounts.create(1)
    header, payload, signature = user.token.split(".")
    tampered_payload = pyjwt.utils.base64url_encode(
        pyjwt.utils.base64url_decode(payload).replace(b'"lvl":1', b'"lvl":9')
    ).decode()
    bad_tokens = {
        "none": pyjwt.encode({"sub": user.id, "lvl": 9}, None, algorithm="none"),
        "other algorithm": forge(stack, user, alg="HS512", key=stack.jwt_secret + "0" * 10),
        "wrong key": forge(stack, user, key="k" * 64),
        "tampered": f"{header}.{tampered_payload}.{signature}",
        "expired": forge(stack, user, exp=int(time.time()) - 5),
        "wrong issuer": forge(stack, user, iss="evil"),
        "wrong audience": forge(stack, user, aud="other"),
        "no jti": pyjwt.encode(
            {
                "sub": user.id,
                "lvl": 1,
                "iss": "roleplay-auth",
                "aud": "roleplay-api",
                "iat": 1,
                "exp": 2**31,
            },
            stack.jwt_secret,
            algorithm="HS256",
        ),
        "garbage": "abc.def.ghi",
    }
    async with httpx.AsyncClient(base_url=stack.service("modules")) as direct:
        for name, token in bad_tokens.items():
            for c in (client, direct):
                r = await c.get("/module/list", headers={"authorization": f"Bearer {token}"})
                assert r.status_code == 401, (name, c.base_url, r.text)
                assert r.json()["detail"]
        # a service never trusts a bare identity header
        r = await direct.get("/module/list", headers={"x-user-id": user.id, "x-user-level": "9"})
        assert r.status_code == 401
    # a token forged with the right key but a higher level still gets the user's real level
    forged = forge(stack, user, lvl=9)
    r = await client.post(
        "/user/allowed-users",
        json={"emails": unique(), "access_level": 9},
        headers={"authorization": f"Bearer {forged}"},
    )
    assert r.status_code == 403


# --- the last admin: see services/auth/tests/integration/test_admin_rules.py -------------


# --- the API document ----------------------------------------------------------------------


async def test_openapi_documents_every_user_endpoint(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.service("auth")) as direct:
        doc = (await direct.get("/openapi.json")).json()
    expected = {
        ("post", "/user/signup"),
        ("post", "/user/signin"),
        ("get", "/user/list"),
        ("post", "/user/set-access-level"),
        ("delete", "/user/{user_id}"),
        ("post", "/user/allowed-users"),
        ("get", "/user/allowed-users"),
        ("put", "/user/allowed-users/access-level"),
        ("delete", "/user/allowed-users/{email}"),
    }
    found = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert expected <= found
    assert not any(p.startswith("/internal") for p in doc["paths"])
    for method, path in expected:
        op = doc["paths"][path][method]
        schema = op["responses"]["200"]["content"]["application/json"]["schema"]
        assert "$ref" in schema, (method, path)
        if method in ("post", "put"):
            assert "$ref" in op["requestBody"]["content"]["application/json"]["schema"]
    assert re.search("password", str(doc["components"]["schemas"]["SignUpRequest"]))
    assert "password_hash" not in str(doc["components"]["schemas"]["UserOut"])
