"""Outlets' WhatsApp access tokens, encrypted at rest.

Production encrypts with Cloud KMS (KMS_KEY_NAME); the local runtime with AES-256-GCM under
LOCAL_TOKEN_KEY. The ciphertext says which was used, so a token encrypted locally is never
sent to KMS by mistake. Only the sender decrypts, right before calling the Graph API.
"""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.cloud.settings import settings

_LOCAL = b"local-aesgcm:"
_KMS = b"kms:"
_AAD = b"whatsapp-crm/outlet-access-token"


class AccessTokenError(RuntimeError):
    """The token cannot be encrypted or decrypted with the keys this instance has."""


def encrypt_access_token(token: str) -> bytes:
    config = settings()
    if config.kms_key_name:
        from google.cloud import kms

        client = kms.KeyManagementServiceClient()
        response = client.encrypt(
            request={
                "name": config.kms_key_name,
                "plaintext": token.encode(),
                "additional_authenticated_data": _AAD,
            }
        )
        return _KMS + bytes(response.ciphertext)
    nonce = os.urandom(12)
    return _LOCAL + nonce + AESGCM(_local_key()).encrypt(nonce, token.encode(), _AAD)


def decrypt_access_token(ciphertext: bytes) -> str:
    config = settings()
    if ciphertext.startswith(_KMS):
        if not config.kms_key_name:
            raise AccessTokenError("token was encrypted with Cloud KMS but KMS_KEY_NAME is not set")
        from google.cloud import kms

        client = kms.KeyManagementServiceClient()
        response = client.decrypt(
            request={
                "name": config.kms_key_name,
                "ciphertext": ciphertext[len(_KMS) :],
                "additional_authenticated_data": _AAD,
            }
        )
        return bytes(response.plaintext).decode()
    if ciphertext.startswith(_LOCAL):
        body = ciphertext[len(_LOCAL) :]
        try:
            return AESGCM(_local_key()).decrypt(body[:12], body[12:], _AAD).decode()
        except Exception as exc:
            raise AccessTokenError("token does not decrypt with LOCAL_TOKEN_KEY") from exc
    raise AccessTokenError("unknown access token ciphertext format")


def _local_key() -> bytes:
    key = settings().local_token_key
    if key is None:
        raise AccessTokenError("neither KMS_KEY_NAME nor LOCAL_TOKEN_KEY is set")
    raw = base64.urlsafe_b64decode(key.get_secret_value())
    if len(raw) != 32:
        raise AccessTokenError("LOCAL_TOKEN_KEY must be 32 bytes, urlsafe-base64 encoded")
    return raw
