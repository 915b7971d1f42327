from typing import Annotated

from common.web import from_state
from fastapi import Depends

from auth.service import AuthService

Auth = Annotated[AuthService, Depends(from_state("auth_service"))]
