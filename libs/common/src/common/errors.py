"""One error base with an HTTP status, and the handlers that render `{"detail": ...}`."""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pymongo.errors import ConnectionFailure, ServerSelectionTimeoutError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class AppError(Exception):
    """An expected failure: rendered as `status` with `{"detail": detail}`."""

    status: int = 500
    default_detail: str = "Internal server error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ):
        self.detail = detail or self.default_detail
        if status is not None:
            self.status = status
        self.headers = headers
        super().__init__(self.detail)


class BadRequest(AppError):
    status = 400
    default_detail = "Bad request"


class Unauthorized(AppError):
    status = 401
    default_detail = "Not authenticated"

    def __init__(self, detail: str | None = None):
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(AppError):
    status = 403
    default_detail = "Not allowed"


class NotFound(AppError):
    status = 404
    default_detail = "Not found"


class PayloadTooLarge(AppError):
    status = 413
    default_detail = "Request body too large"


class TooManyRequests(AppError):
    status = 429
    default_detail = "Too many requests"


class BadGateway(AppError):
    status = 502
    default_detail = "Upstream failed"


class ServiceUnavailable(AppError):
    status = 503
    default_detail = "A dependency is unavailable"


class GatewayTimeout(AppError):
    status = 504
    default_detail = "Upstream timed out"


def describe_validation_error(exc: RequestValidationError) -> str:
    """Turn pydantic's error list into one readable sentence."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        msg = str(err.get("msg", "invalid value"))
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts) or "Invalid request"


def install_error_handlers(app: FastAPI) -> None:
    async def app_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AppError)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return JSONResponse({"detail": describe_validation_error(exc)}, status_code=400)

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return JSONResponse(
            {"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )

    async def database_down(_: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable: %s", exc)
        return JSONResponse({"detail": "Database unavailable"}, status_code=503)

    app.add_exception_handler(AppError, app_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(ServerSelectionTimeoutError, database_down)
    app.add_exception_handler(ConnectionFailure, database_down)

    async def cache_down(_: Request, exc: Exception) -> JSONResponse:
        log.warning("redis unavailable: %s", exc)
        return JSONResponse({"detail": "Cache unavailable"}, status_code=503)

    app.add_exception_handler(RedisConnectionError, cache_down)
    app.add_exception_handler(RedisTimeoutError, cache_down)
