from common.settings import ServiceSettings
from pydantic import SecretStr


class AuthSettings(ServiceSettings):
    service_name: str = "auth"
    mongodb_db: str = "auth"
    bootstrap_admin_email: str | None = None
    bootstrap_admin_password: SecretStr | None = None
