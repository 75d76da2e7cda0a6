"""Outlets' WhatsApp access tokens, envelope-encrypted at rest.

Each token gets its own random 256-bit data key; the token is sealed with AES-256-GCM under
it, and the data key is wrapped: by Cloud KMS in production (KMS_KEY_NAME), by AES-256-GCM
under LOCAL_TOKEN_KEY locally. Both take the same path and differ only in the wrapping, and
the ciphertext says which wrapped it, so a locally wrapped key is never sent to KMS. Only the
sender unwraps, right before calling the Graph API; the database never holds a usable key.

    env1:<wrapper>:<wrapped key length, 2 bytes><wrapped key><nonce, 12 bytes><sealed token>
"""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.cloud.settings import settings

_VERSION = b"env1:"
_KMS = b"kms:"
_LOCAL = b"local:"
_AAD = b"whatsapp-crm/outlet-access-token"
_KEY_AAD = b"whatsapp-crm/outlet-access-token-key"


class AccessTokenError(RuntimeError):
    """The token cannot be encrypted or decrypted with the keys this instance has."""


def encrypt_access_token(token: str) -> bytes:
    data_key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(12)
    sealed = AESGCM(data_key).encrypt(nonce, token.encode(), _AAD)
    wrapper, wrapped = _wrap(data_key)
    return _VERSION + wrapper + len(wrapped).to_bytes(2, "big") + wrapped + nonce + sealed


def decrypt_access_token(ciphertext: bytes) -> str:
    if not ciphertext.startswith(_VERSION):
        raise AccessTokenError("unknown access token ciphertext format")
    body = ciphertext[len(_VERSION) :]
    wrapper = next((w for w in (_KMS, _LOCAL) if body.startswith(w)), None)
    if wrapper is None:
        raise AccessTokenError("unknown key wrapper")
    body = body[len(wrapper) :]
    size = int.from_bytes(body[:2], "big")
    wrapped, nonce, sealed = body[2 : 2 + size], body[2 + size : 14 + size], body[14 + size :]
    try:
        return AESGCM(_unwrap(wrapper, wrapped)).decrypt(nonce, sealed, _AAD).decode()
    except AccessTokenError:
        raise
    except Exception as exc:  # a wrong key or a damaged ciphertext: say which, show nothing
        raise AccessTokenError("the access token does not decrypt with this instance's key") from exc


def _wrap(data_key: bytes) -> tuple[bytes, bytes]:
    config = settings()
    if config.kms_key_name:
        from google.cloud import kms

        response = kms.KeyManagementServiceClient().encrypt(
            request={"name": config.kms_key_name, "plaintext": data_key, "additional_authenticated_data": _KEY_AAD}
        )
        return _KMS, bytes(response.ciphertext)
    nonce = os.urandom(12)
    return _LOCAL, nonce + AESGCM(_local_key()).encrypt(nonce, data_key, _KEY_AAD)


def _unwrap(wrapper: bytes, wrapped: bytes) -> bytes:
    if wrapper == _KMS:
        config = settings()
        if not config.kms_key_name:
            raise AccessTokenError("the token's key was wrapped by Cloud KMS but KMS_KEY_NAME is not set")
        from google.cloud import kms

        response = kms.KeyManagementServiceClient().decrypt(
            request={"name": config.kms_key_name, "ciphertext": wrapped, "additional_authenticated_data": _KEY_AAD}
        )
        return bytes(response.plaintext)
    return AESGCM(_local_key()).decrypt(wrapped[:12], wrapped[12:], _KEY_AAD)


def _local_key() -> bytes:
    key = settings().local_token_key
    if key is None:
        raise AccessTokenError("neither KMS_KEY_NAME nor LOCAL_TOKEN_KEY is set")
    raw = base64.urlsafe_b64decode(key.get_secret_value())
    if len(raw) != 32:
        raise AccessTokenError("LOCAL_TOKEN_KEY must be 32 bytes, urlsafe-base64 encoded")
    return raw
