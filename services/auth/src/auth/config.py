from common.settings import ServiceSettings
from pydantic import SecretStr


class AuthSettings(ServiceSettings):
    service_name: str = "auth"
    mongodb_db: str = "auth"
    bootstrap_admin_email: str | None = None
    bootstrap_admin_password: SecretStr | None = None

    # Failed sign-ins allowed per window before a 429, per email and per client address.
    signin_failures_per_email: int = 5
    signin_failures_per_client: int = 30
    signin_failure_window_s: int = 900
