"""Graph error bodies mapped to exception classes, and whether each is worth retrying."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.whatsapp import errors as e
from shared.whatsapp.errors import GraphError, error_class_for_code, error_from_response

TOKEN = "EAAGm0PX4ZCpsBAKZC-never-show-me"


def meta_body(code: int, message: str, details: str | None = None, subcode: int | None = None) -> bytes:
    """An error body as Graph sends it."""
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    error["fbtrace_id"] = "AjQ5H3s1Yf4a8mX2nQe0bZc"
    return json.dumps({"error": error}).encode()


CASES = [
    # code, HTTP status Meta uses, class, retryable
    (1, 400, e.ApiUnknownError, True),
    (2, 503, e.ApiServiceUnavailable, True),
    (4, 400, e.AppRateLimitHit, True),
    (80007, 400, e.AccountRateLimitHit, True),
    (130429, 400, e.ThroughputLimitReached, True),
    (131000, 500, e.SomethingWentWrong, True),
    (131016, 503, e.ServiceUnavailable, True),
    (131056, 400, e.PairRateLimitHit, True),
    (10, 403, e.PermissionDenied, False),
    (100, 400, e.InvalidParameter, False),
    (190, 401, e.AccessTokenInvalid, False),
    (368, 403, e.TemporarilyBlocked, False),
    (131026, 400, e.MessageUndeliverable, False),
    (131030, 400, e.RecipientNotInAllowedList, False),
    (131031, 403, e.AccountLocked, False),
    (131047, 400, e.ReEngagementRequired, False),
    (131051, 400, e.UnsupportedMessageType, False),
    (131052, 400, e.MediaDownloadError, False),
    (131053, 400, e.MediaUploadError, False),
    (131062, 400, e.BsuidRecipientNotSupported, False),
    (132000, 400, e.TemplateParamCountMismatch, False),
    (132001, 404, e.TemplateNotFound, False),
]


@pytest.mark.parametrize(("code", "http_status", "cls", "retryable"), CASES)
def test_each_listed_code_gets_its_class(code: int, http_status: int, cls: type[GraphError], retryable: bool) -> None:
    body = meta_body(code, f"(#{code}) {cls.default_title}", details="what Meta says", subcode=2494010)
    error = error_from_response(http_status, body)
    assert type(error) is cls
    assert error.retryable is retryable
    assert error.code == code
    assert error.subcode == 2494010
    assert error.http_status == http_status
    assert error.title == cls.default_title
    assert error.details == "what Meta says"
    assert error.fbtrace_id == "AjQ5H3s1Yf4a8mX2nQe0bZc"
    assert error.error_type == "OAuthException"
    assert error_class_for_code(code) is cls


def test_every_special_class_is_covered_above() -> None:
    coded = {cls for cls in vars(e).values() if isinstance(cls, type) and issubclass(cls, GraphError) and cls.codes}
    assert coded == {case[2] for case in CASES}


def test_the_code_decides_even_against_the_http_status() -> None:
    """A permanent code stays permanent on a 5xx; a retryable one stays retryable on a 4xx."""
    assert type(error_from_response(500, meta_body(131047, "(#131047) Re-engagement message"))) is (
        e.ReEngagementRequired
    )
    assert error_from_response(400, meta_body(131000, "Something went wrong")).retryable


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_without_a_known_code_is_retryable(status: int) -> None:
    error = error_from_response(status, meta_body(999999, "Unexpected"))
    assert type(error) is e.GraphServerError
    assert error.retryable
    assert error.code == 999999


@pytest.mark.parametrize("body", [b"<html><body>502 Bad Gateway</body></html>", b"", None, "upstream timeout"])
def test_5xx_with_a_body_that_is_not_graph_json_is_retryable(body: bytes | str | None) -> None:
    error = error_from_response(502, body)
    assert type(error) is e.GraphServerError
    assert error.retryable
    assert error.code is None


@pytest.mark.parametrize("status", [400, 403, 404, 429])
def test_unknown_4xx_is_a_permanent_graph_error(status: int) -> None:
    error = error_from_response(status, meta_body(131009, "(#131009) Parameter value is not valid"))
    assert type(error) is GraphError
    assert not error.retryable
    assert error.title == "Parameter value is not valid"


def test_4xx_with_a_body_that_is_not_json_is_permanent() -> None:
    error = error_from_response(400, b"\xff\xfe not json")
    assert type(error) is GraphError
    assert not error.retryable
    assert "unexpected error body" in str(error)


def test_body_can_be_text_or_an_already_decoded_dict() -> None:
    as_text = error_from_response(400, meta_body(131047, "(#131047) Re-engagement message").decode())
    as_dict = error_from_response(400, {"error": {"code": 131047, "message": "Re-engagement message"}})
    assert type(as_text) is type(as_dict) is e.ReEngagementRequired


def test_code_sent_as_a_string_is_understood() -> None:
    assert type(error_from_response(400, {"error": {"code": "131026", "message": "x"}})) is e.MessageUndeliverable


def test_json_without_an_error_object_is_handled() -> None:
    error = error_from_response(400, {"message": "nope"})
    assert type(error) is GraphError
    assert error.code is None


def test_title_falls_back_to_the_class_title_when_the_message_has_none() -> None:
    error = error_from_response(400, meta_body(131047, "Message failed to send"))
    assert error.title == "Re-engagement message"
    assert error.message == "Message failed to send"


def test_str_and_repr_say_what_happened() -> None:
    error = error_from_response(400, meta_body(131047, "(#131047) Re-engagement message", "24 hours passed"))
    text = str(error)
    for part in (
        "HTTP 400",
        "code 131047",
        "Re-engagement message",
        "24 hours passed",
        "AjQ5H3s1Yf4a8mX2nQe0bZc",
    ):
        assert part in text
    assert "131047" in repr(error)


def test_secrets_are_redacted_from_everything_the_exception_shows() -> None:
    body = meta_body(190, f"(#190) Invalid OAuth access token {TOKEN}", details=f"token {TOKEN} expired")
    error = error_from_response(401, body, redact=[TOKEN])
    assert type(error) is e.AccessTokenInvalid
    for shown in (str(error), repr(error), error.message, error.details or "", error.title, str(error.args)):
        assert TOKEN not in shown
    assert "[redacted]" in error.message


def test_secrets_are_redacted_from_an_unparsable_body_too() -> None:
    error = error_from_response(500, f"proxy error for Bearer {TOKEN}", redact=[TOKEN])
    assert TOKEN not in str(error)


def test_network_errors_are_retryable_and_have_no_http_status() -> None:
    error = e.GraphNetworkError("ConnectionError: refused")
    assert error.retryable
    assert "no HTTP answer" in str(error)


def test_unknown_codes_have_no_class() -> None:
    assert error_class_for_code(424242) is None
    assert error_class_for_code(None) is None
