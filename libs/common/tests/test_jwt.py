import time

import jwt as pyjwt
import pytest
from common.errors import Unauthorized
from common.jwt import bearer_token, issue_token, verify_token
from common.settings import ServiceSettings

SECRET = "s" * 64


def settings(**overrides: object) -> ServiceSettings:
    return ServiceSettings(jwt_secret_key=SECRET, **overrides)  # type: ignore[arg-type]


def test_issued_token_verifies_with_its_claims() -> None:
    s = settings()
    claims = verify_token(s, issue_token(s, user_id="u1", email="a@b.co", level=5))
    assert (claims.sub, claims.email, claims.lvl) == ("u1", "a@b.co", 5)
    assert claims.exp - claims.iat == s.jwt_ttl_seconds
    assert claims.jti


def _forge(payload: dict[str, object], key: str = SECRET, alg: str = "HS256") -> str:
    now = int(time.time())
    base = {
        "sub": "u1",
        "email": "a@b.co",
        "lvl": 9,
        "iss": "roleplay-auth",
        "aud": "roleplay-api",
        "iat": now,
        "exp": now + 60,
        "jti": "j",
    }
    return pyjwt.encode({**base, **payload}, key, algorithm=alg)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (_forge({"exp": int(time.time()) - 10}), "expired"),
        (_forge({"iss": "someone-else"}), "issuer"),
        (_forge({"aud": "other-api"}), "audience"),
        (_forge({}, key="x" * 64), "signature"),
        (_forge({}, alg="HS512"), "algorithm"),
        (pyjwt.encode({"sub": "u1"}, SECRET, algorithm="HS256"), "missing claims"),
        (pyjwt.encode({"sub": "u1", "lvl": 9}, None, algorithm="none"), "alg none"),
        ("not.a.token", "garbage"),
    ],
)
def test_defective_tokens_are_refused(token: str, reason: str) -> None:
    with pytest.raises(Unauthorized):
        verify_token(settings(), token)


def test_bearer_header_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer   abc ") == "abc"
    for bad in (None, "", "Basic abc", "Bearer ", "abc"):
        with pytest.raises(Unauthorized):
            bearer_token(bad)


def test_weak_secret_refused_outside_dev() -> None:
    with pytest.raises(ValueError, match="JWT_SECRET_KEY"):
        ServiceSettings(app_env="prod")
    with pytest.raises(ValueError, match="JWT_SECRET_KEY"):
        ServiceSettings(app_env="prod", jwt_secret_key="short")  # type: ignore[arg-type]
    assert ServiceSettings(app_env="prod", jwt_secret_key=SECRET)  # type: ignore[arg-type]
    assert ServiceSettings(app_env="dev")
