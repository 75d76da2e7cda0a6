"""Envelope encryption of outlet access tokens: a data key per token, wrapped by the local key
here (by Cloud KMS in production, through the same code path)."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator

import pytest

from shared.cloud.settings import settings
from shared.sending.access_tokens import AccessTokenError, decrypt_access_token, encrypt_access_token

TOKEN = "EAAGm0PX4ZCpsBAKZA" + "x" * 150


def _key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


@pytest.fixture(autouse=True)
def local_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("LOCAL_TOKEN_KEY", _key())
    monkeypatch.delenv("KMS_KEY_NAME", raising=False)
    settings.cache_clear()
    yield
    monkeypatch.undo()
    settings.cache_clear()


def test_a_token_comes_back_and_is_not_in_its_ciphertext() -> None:
    sealed = encrypt_access_token(TOKEN)
    assert decrypt_access_token(sealed) == TOKEN
    assert TOKEN.encode() not in sealed
    assert b"EAAG" not in sealed
    assert sealed.startswith(b"env1:local:")


def test_every_token_gets_its_own_data_key() -> None:
    first, second = encrypt_access_token(TOKEN), encrypt_access_token(TOKEN)
    assert first != second
    assert first[:60] != second[:60]  # the wrapped keys differ, not only the nonces


def test_another_key_or_a_changed_byte_does_not_decrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    sealed = encrypt_access_token(TOKEN)
    damaged = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(AccessTokenError, match="does not decrypt"):
        decrypt_access_token(damaged)
    monkeypatch.setenv("LOCAL_TOKEN_KEY", _key())
    settings.cache_clear()
    with pytest.raises(AccessTokenError, match="does not decrypt") as raised:
        decrypt_access_token(sealed)
    assert TOKEN not in str(raised.value)


def test_a_kms_wrapped_key_is_never_tried_locally() -> None:
    sealed = encrypt_access_token(TOKEN).replace(b"env1:local:", b"env1:kms:", 1)
    with pytest.raises(AccessTokenError, match="KMS_KEY_NAME is not set"):
        decrypt_access_token(sealed)


def test_without_any_key_nothing_is_encrypted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCAL_TOKEN_KEY")
    settings.cache_clear()
    with pytest.raises(AccessTokenError, match="neither KMS_KEY_NAME nor LOCAL_TOKEN_KEY"):
        encrypt_access_token(TOKEN)
