"""Domain errors of the auth service."""

from common.errors import BadRequest, Forbidden, Unauthorized


class EmailNotAllowed(Forbidden):
    default_detail = "This email is not on the allowlist; ask an administrator for access"


class EmailTaken(BadRequest):
    default_detail = "An account with this email already exists"


class InvalidCredentials(Unauthorized):
    def __init__(self) -> None:
        super().__init__("Invalid email or password")
