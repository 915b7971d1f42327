"""Domain errors of the auth service."""

from common.errors import BadRequest, Forbidden, NotFound, Unauthorized


class EmailNotAllowed(Forbidden):
    default_detail = "This email is not on the allowlist; ask an administrator for access"


class EmailTaken(BadRequest):
    default_detail = "An account with this email already exists"


class AccountDeleted(BadRequest):
    default_detail = "This account has been deleted and cannot sign up again"


class InvalidCredentials(Unauthorized):
    def __init__(self) -> None:
        super().__init__("Invalid email or password")


class UserNotFound(NotFound):
    default_detail = "User not found"


class NotOnAllowlist(NotFound):
    default_detail = "This email is not on the allowlist"


class LastAdmin(BadRequest):
    default_detail = "The last active admin cannot be demoted or deleted"
