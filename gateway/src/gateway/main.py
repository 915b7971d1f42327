from common.observability import Observability, configure_logging
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from gateway.app import Gateway
from gateway.config import GatewaySettings


def create_app(settings: GatewaySettings | None = None) -> ASGIApp:
    settings = settings or GatewaySettings()
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
    app: ASGIApp = Observability(
        Gateway(settings), service=settings.service_name, access_log=settings.access_log
    )
    if settings.cors_origins:
        app = CORSMiddleware(
            app,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["x-thread-id", "x-request-id"],
            allow_credentials=True,
        )
    return app
