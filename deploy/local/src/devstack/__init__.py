"""Native local launcher: FerretDB, Redis, RabbitMQ, the fake LLM upstream and every service.

``python -m devstack run`` starts it all in the foreground; see deploy/local/README.md.
"""

from .config import SERVICES, ConfigError, ServiceSpec, StackConfig
from .install import InstallError, install
from .stack import Stack, StartError, run

__all__ = [
    "SERVICES",
    "ConfigError",
    "InstallError",
    "ServiceSpec",
    "Stack",
    "StackConfig",
    "StartError",
    "install",
    "run",
]
