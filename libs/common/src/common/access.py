"""Access levels shared by every service."""

from enum import IntEnum


class AccessLevel(IntEnum):
    DELETED = 0
    USER = 1
    MANAGER = 5
    ADMIN = 9


#: Levels an allowlist entry or a live user may hold (a deleted user is level 0).
GRANTABLE_LEVELS = frozenset({AccessLevel.USER, AccessLevel.MANAGER, AccessLevel.ADMIN})
