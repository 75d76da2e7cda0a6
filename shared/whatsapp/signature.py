"""Meta's webhook signature: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`.

The HMAC must be computed over the exact bytes received, before any JSON decoding, so the
webhook handler verifies first and parses second.
"""

from __future__ import annotations

import hashlib
import hmac
import string

_PREFIX = "sha256="
_HEX_DIGITS = frozenset(string.hexdigits)


def sign(raw_body: bytes, app_secret: str) -> str:
    """The `X-Hub-Signature-256` header value Meta would send for this body."""
    if not app_secret:
        raise ValueError("an app secret is required to sign a webhook body")
    digest = hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return _PREFIX + digest


def verify_signature(raw_body: bytes, header: str | None, app_secret: str) -> bool:
    """True only for a well-formed header whose HMAC matches; never raises.

    An empty secret rejects everything: a missing setting must not turn verification off.
    """
    if not app_secret or not header:
        return False
    value = header.strip()
    if value[: len(_PREFIX)].lower() != _PREFIX:
        return False
    received = value[len(_PREFIX) :].lower()
    if len(received) != hashlib.sha256().digest_size * 2 or not _HEX_DIGITS.issuperset(received):
        return False
    expected = sign(raw_body, app_secret)[len(_PREFIX) :]
    return hmac.compare_digest(expected, received)
