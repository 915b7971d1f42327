from common.web import configure_logging
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from gateway.app import Gateway
from gateway.config import GatewaySettings


def create_app(settings: GatewaySettings | None = None) -> ASGIApp:
    settings = settings or GatewaySettings()
    configure_logging()
    app: ASGIApp = Gateway(settings)
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
