"""Issue and verify access tokens (PyJWT, HS256 pinned, every registered claim checked)."""

import time
import uuid

import jwt as pyjwt
from pydantic import BaseModel, ValidationError

from common.access import AccessLevel
from common.errors import Unauthorized
from common.settings import ServiceSettings

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "sub", "iss", "aud", "jti"]


class TokenClaims(BaseModel):
    sub: str
    email: str
    lvl: AccessLevel
    iss: str
    aud: str
    iat: int
    exp: int
    jti: str


def issue_token(settings: ServiceSettings, *, user_id: str, email: str, level: int) -> str:
    now = int(time.time())
    claims = {
        "sub": user_id,
        "email": email,
        "lvl": int(level),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + settings.jwt_ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    return pyjwt.encode(claims, settings.jwt_secret_key.get_secret_value(), algorithm=ALGORITHM)


def verify_token(settings: ServiceSettings, token: str) -> TokenClaims:
    """Return the token's claims, or raise `Unauthorized` for any defect."""
    try:
        payload = pyjwt.decode(
            token,
            settings.jwt_secret_key.get_secret_value(),
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": REQUIRED_CLAIMS},
        )
        return TokenClaims.model_validate(payload)
    except pyjwt.ExpiredSignatureError as exc:
        raise Unauthorized("Token has expired") from exc
    except (pyjwt.InvalidTokenError, ValidationError) as exc:
        raise Unauthorized("Invalid token") from exc


def bearer_token(authorization: str | None) -> str:
    """Extract the token from an `Authorization: Bearer …` header value."""
    if not authorization:
        raise Unauthorized("Missing bearer token")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Missing bearer token")
    return token.strip()
