from common.settings import ServiceSettings


class UsageSettings(ServiceSettings):
    service_name: str = "usage"
    mongodb_db: str = "usage"
    # One durable queue shared by every usage instance: each event is stored once.
    usage_queue: str = "usage.chat-turns"
    usage_prefetch: int = 100
