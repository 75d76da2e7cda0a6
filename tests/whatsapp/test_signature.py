"""X-Hub-Signature-256 verification of webhook bodies."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from shared.whatsapp.signature import sign, verify_signature

SECRET = "app-secret-for-tests"
BODY = b'{"object":"whatsapp_business_account","entry":[]}'
# Computed independently: printf '%s' BODY | openssl dgst -sha256 -hmac SECRET
KNOWN = "sha256=1ca363dab318df784e1963b29dca91e2098e6cf2fbf0d3c14e09580a90684a61"


def test_sign_matches_an_independently_computed_hmac() -> None:
    assert sign(BODY, SECRET) == KNOWN


def test_a_correct_signature_is_accepted() -> None:
    assert verify_signature(BODY, KNOWN, SECRET)


def test_upper_case_hex_and_surrounding_spaces_are_accepted() -> None:
    assert verify_signature(BODY, "  sha256=" + KNOWN.removeprefix("sha256=").upper() + " ", SECRET)


def test_wrong_secret_is_rejected() -> None:
    assert not verify_signature(BODY, KNOWN, "another-secret")


def test_tampered_body_is_rejected() -> None:
    assert not verify_signature(BODY.replace(b"[]", b"[{}]"), KNOWN, SECRET)


def test_body_is_compared_byte_for_byte() -> None:
    """Re-serialised JSON (other spacing) is a different body: verify before decoding."""
    assert not verify_signature(b'{"object": "whatsapp_business_account", "entry": []}', KNOWN, SECRET)


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_header_is_rejected(header: str | None) -> None:
    assert not verify_signature(BODY, header, SECRET)


@pytest.mark.parametrize(
    "header",
    [
        KNOWN.removeprefix("sha256="),  # no scheme
        "sha1=" + hmac.new(SECRET.encode(), BODY, hashlib.sha1).hexdigest(),  # X-Hub-Signature, the old one
        "sha256=",
        "sha256=" + "z" * 64,
        KNOWN[:-2],  # truncated
        KNOWN + "00",  # too long
        "sha256 " + KNOWN.removeprefix("sha256="),
    ],
)
def test_malformed_header_is_rejected(header: str) -> None:
    assert not verify_signature(BODY, header, SECRET)


def test_empty_secret_rejects_even_a_matching_signature() -> None:
    """A missing APP_SECRET setting must not switch verification off."""
    signed_with_empty_key = "sha256=" + hmac.new(b"", BODY, hashlib.sha256).hexdigest()
    assert not verify_signature(BODY, signed_with_empty_key, "")


def test_signing_without_a_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        sign(BODY, "")
