"""Request and response models of the auth service."""

import re
from datetime import datetime
from typing import Annotated, Literal

from common.access import GRANTABLE_LEVELS, AccessLevel
from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field

MIN_PASSWORD = 8
MAX_PASSWORD = 128


def normalize_email(value: str) -> str:
    """Trimmed, lower-cased and syntactically valid, or ValueError naming the value."""
    candidate = value.strip().lower()
    try:
        validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"invalid email {value!r}") from exc
    return candidate


def _check_password(value: str) -> str:
    problems = []
    if not re.search(r"[a-z]", value):
        problems.append("a lower-case letter")
    if not re.search(r"[A-Z]", value):
        problems.append("an upper-case letter")
    if not re.search(r"[0-9]", value):
        problems.append("a digit")
    if not re.search(r"[^A-Za-z0-9]", value):
        problems.append("a symbol")
    if problems:
        raise ValueError("password must contain " + ", ".join(problems))
    return value


def _check_grantable(value: int) -> int:
    if value not in GRANTABLE_LEVELS:
        raise ValueError("access level must be 1 (user), 5 (manager) or 9 (admin)")
    return value


Email = Annotated[str, Field(max_length=320), AfterValidator(normalize_email)]
Password = Annotated[
    str, Field(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD), AfterValidator(_check_password)
]
GrantableLevel = Annotated[int, AfterValidator(_check_grantable)]


def _check_level(value: int) -> int:
    if value not in set(AccessLevel):
        raise ValueError("access level must be 0 (deleted), 1 (user), 5 (manager) or 9 (admin)")
    return value


Level = Annotated[int, AfterValidator(_check_level)]
Name = Annotated[str, Field(max_length=100)]


class SignUpRequest(BaseModel):
    email: Email
    password: Password
    first_name: Name = ""
    last_name: Name = ""


class SignInRequest(BaseModel):
    email: Annotated[str, Field(max_length=320)]
    password: Annotated[str, Field(max_length=MAX_PASSWORD)]


class UserOut(BaseModel):
    id: str
    email: str
    first_name: str
    last_name: str
    access_level: AccessLevel
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None


class TokenResponse(BaseModel):
    message: str
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    user: UserOut


def _split_emails(value: object) -> object:
    return value.split(",") if isinstance(value, str) else value


def _clean_emails(value: list[str]) -> list[str]:
    emails = [item.strip() for item in value if item.strip()]
    if not emails:
        raise ValueError("at least one email is required")
    if len(emails) > 1000:
        raise ValueError("at most 1000 emails per request")
    return emails


class AllowlistAddRequest(BaseModel):
    emails: Annotated[list[str], BeforeValidator(_split_emails), AfterValidator(_clean_emails)] = (
        Field(description='Comma-separated string ("a@x.com, b@y.com") or a JSON list of emails')
    )
    access_level: GrantableLevel = AccessLevel.USER


class AllowedUserOut(BaseModel):
    email: str
    access_level: AccessLevel
    created_at: datetime


class AllowlistAddResult(BaseModel):
    added: list[str]
    already_allowed: list[str]
    invalid: list[str]


UserFilter = Literal["all", "active", "deleted"]


class SetAccessLevelRequest(BaseModel):
    email: Email
    new_access_level: Level


class AllowedLevelRequest(BaseModel):
    email: Email
    new_access_level: GrantableLevel


class UserChanged(BaseModel):
    message: str
    user: UserOut


class Message(BaseModel):
    message: str


class LevelOut(BaseModel):
    access_level: AccessLevel
