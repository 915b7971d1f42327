"""Settings every service shares; each service subclasses `ServiceSettings`."""

from typing import Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "dev-only-insecure-jwt-secret-change-me-please"
MIN_SECRET_LENGTH = 32


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    app_env: Literal["dev", "test", "prod"] = "dev"
    service_name: str = "service"

    mongodb_url: str = "mongodb://127.0.0.1:27017"
    mongodb_db: str = "roleplay"
    mongodb_timeout_ms: int = 5000
    redis_url: str = "redis://127.0.0.1:6379/0"
    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    events_exchange: str = "roleplay.events"
    auth_url: str = "http://127.0.0.1:8101"

    jwt_secret_key: SecretStr = SecretStr(DEV_JWT_SECRET)
    jwt_issuer: str = "roleplay-auth"
    jwt_audience: str = "roleplay-api"
    jwt_ttl_seconds: int = 3600

    max_body_bytes: int = 1_000_000
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"
    access_log: bool = True

    @model_validator(mode="after")
    def _refuse_weak_secret_outside_dev(self) -> "ServiceSettings":
        secret = self.jwt_secret_key.get_secret_value()
        if self.app_env != "dev" and (secret == DEV_JWT_SECRET or len(secret) < MIN_SECRET_LENGTH):
            raise ValueError(
                f"JWT_SECRET_KEY must be set to a random value of at least {MIN_SECRET_LENGTH} "
                f"characters when APP_ENV={self.app_env}"
            )
        return self
