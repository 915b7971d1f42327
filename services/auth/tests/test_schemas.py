import pytest
from auth.schemas import AllowlistAddRequest, SignUpRequest, normalize_email
from pydantic import ValidationError


def test_emails_are_trimmed_and_lower_cased() -> None:
    assert normalize_email("  Jane.Doe@Example.COM ") == "jane.doe@example.com"
    with pytest.raises(ValueError, match="not-an-email"):
        normalize_email("not-an-email")


@pytest.mark.parametrize(
    "password",
    ["Short1!", "alllowercase1!", "ALLUPPERCASE1!", "NoDigits!!", "NoSymbol123", "A1!a" * 40],
)
def test_weak_or_oversized_passwords_are_refused(password: str) -> None:
    with pytest.raises(ValidationError):
        SignUpRequest(email="a@example.com", password=password)


def test_strong_password_passes() -> None:
    assert (
        SignUpRequest(email="A@example.com", password="StrongPassword1!").email == "a@example.com"
    )


def test_allowlist_takes_a_comma_string_or_a_list() -> None:
    assert AllowlistAddRequest(emails="a@x.com, b@y.com ,").emails == ["a@x.com", "b@y.com"]
    assert AllowlistAddRequest(emails=["a@x.com"]).emails == ["a@x.com"]
    for bad in ("", " , ", []):
        with pytest.raises(ValidationError):
            AllowlistAddRequest(emails=bad)
    with pytest.raises(ValidationError):
        AllowlistAddRequest(emails="a@x.com", access_level=3)
