from common.settings import ServiceSettings


class ModulesSettings(ServiceSettings):
    service_name: str = "modules"
    mongodb_db: str = "modules"
