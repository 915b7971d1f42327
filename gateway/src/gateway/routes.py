"""Which service serves which public path, and which paths need no token."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Route:
    prefix: str
    service: str


ROUTES = (
    Route("/user/", "auth"),
    Route("/module/", "modules"),
    Route("/stream_chat", "chat"),
    Route("/chat/", "chat"),
    Route("/usage/", "usage"),
)

PUBLIC = frozenset({("POST", "/user/signup"), ("POST", "/user/signin")})


def match(path: str) -> Route | None:
    for route in ROUTES:
        if path.startswith(route.prefix) or path == route.prefix.rstrip("/"):
            return route
    return None
