"""A fake LLM upstream speaking the OpenAI and Anthropic streaming wire formats."""

from .app import FakeUpstream, create_app
from .settings import Settings, load_settings

__all__ = ["FakeUpstream", "Settings", "create_app", "load_settings"]
