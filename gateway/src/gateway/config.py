from typing import Annotated

from common.settings import ServiceSettings
from pydantic import Field, field_validator
from pydantic_settings import NoDecode


class GatewaySettings(ServiceSettings):
    service_name: str = "gateway"
    auth_url: str = "http://127.0.0.1:8101"
    modules_url: str = "http://127.0.0.1:8102"
    chat_url: str = "http://127.0.0.1:8103"
    usage_url: str = "http://127.0.0.1:8104"

    # Served under e.g. "/dev" or "/prod" when set.
    stage_prefix: str = ""
    # Comma-separated list of allowed browser origins.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    upstream_connect_timeout_s: float = 5.0
    # Connections to each service; a stream holds one for its whole length.
    upstream_pool_size: int = 10000

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("stage_prefix")
    @classmethod
    def _normalize_prefix(cls, value: str) -> str:
        value = value.strip().strip("/")
        return f"/{value}" if value else ""
