import pytest
from chat.config import ChatSettings, Providers
from chat.schemas import ChatRequest
from common.errors import BadRequest
from pydantic import ValidationError


def test_seed_dict_messages_are_ordered_by_key() -> None:
    body = {
        "messages": {
            "1": {"role": "assistant", "content": "b"},
            "0": {"role": "user", "content": "a"},
            "2": {"role": "user", "content": "c"},
        }
    }
    request = ChatRequest.model_validate(body)
    assert [m.content for m in request.messages] == ["a", "b", "c"]


def test_list_messages_are_accepted() -> None:
    request = ChatRequest.model_validate({"messages": [{"role": "user", "content": "a"}]})
    assert request.messages[0].role == "user"


@pytest.mark.parametrize(
    "messages",
    [
        {},
        [],
        {"0": {"role": "system", "content": "be nice"}},
        {"0": {"role": "user", "content": ""}},
        {"0": {"role": "user", "content": "a"}, "2": {"role": "user", "content": "b"}},
        {"a": {"role": "user", "content": "a"}},
    ],
)
def test_bad_messages_are_refused(messages: object) -> None:
    with pytest.raises(ValidationError):
        ChatRequest.model_validate({"messages": messages})


def test_every_design_alias_is_configured_and_unknown_is_400() -> None:
    providers = Providers(ChatSettings().load_providers(), "openai", None)
    aliases = {
        "openai",
        "openai-4-general",
        "openai-35-fine-tune",
        "openai-35-general",
        "anthropic",
    }
    assert aliases <= set(providers.table)
    assert providers.resolve(None) == ("openai", providers.table["openai"])
    assert providers.resolve("anthropic")[1].vendor == "anthropic"
    with pytest.raises(BadRequest, match="Unknown provider"):
        providers.resolve("gpt-5-turbo-max")
