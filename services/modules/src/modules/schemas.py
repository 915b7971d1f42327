"""Request and response models of the modules service."""

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Title = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_not_blank)]
SystemPrompt = Annotated[str, Field(min_length=1, max_length=32_000), AfterValidator(_not_blank)]


class ModuleCreate(BaseModel):
    title: Title
    system_prompt: SystemPrompt


class ModuleOut(BaseModel):
    id: str
    title: str
    system_prompt: str
    created_by: str
    updated_by: str
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None


class ModuleUpdate(BaseModel):
    """A partial update: only the fields sent are changed."""

    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    system_prompt: SystemPrompt | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> "ModuleUpdate":
        sent = self.model_dump(exclude_unset=True)
        if not sent:
            raise ValueError("send at least one of title, system_prompt")
        if any(value is None for value in sent.values()):
            raise ValueError("title and system_prompt cannot be null")
        return self
