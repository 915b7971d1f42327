from typing import Annotated

from fastapi import Depends, Request

from auth.service import AuthService


def _service(request: Request) -> AuthService:
    service: AuthService = request.app.state.auth_service
    return service


Auth = Annotated[AuthService, Depends(_service)]
