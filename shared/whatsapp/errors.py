"""Graph API errors, one class per code the sender treats specially.

The sender decides between "retry later" and "give up on this message" from `retryable`
alone, so every class states it. Meta's advice is to branch on `code` (and `details`), not on
titles, which they intend to deprecate; titles here are for people reading logs.

An exception's text is built only from what Meta answered, with any secret the caller passes
in `redact` removed, so logging an exception can never leak an access token.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

_TITLE_IN_MESSAGE = re.compile(r"^\(#\d+\)\s*(?P<title>.+)$")
_BODY_EXCERPT_CHARS = 200


class GraphError(Exception):
    """A Graph API call failed. Unknown codes land here and are permanent."""

    retryable: ClassVar[bool] = False
    codes: ClassVar[tuple[int, ...]] = ()
    default_title: ClassVar[str] = "Graph API error"

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        subcode: int | None = None,
        title: str | None = None,
        http_status: int | None = None,
        details: str | None = None,
        fbtrace_id: str | None = None,
        error_type: str | None = None,
    ) -> None:
        self.code = code
        self.subcode = subcode
        self.title = title or self.default_title
        self.message = message
        self.http_status = http_status
        self.details = details
        self.fbtrace_id = fbtrace_id
        self.error_type = error_type
        super().__init__(self._describe())

    def _describe(self) -> str:
        parts = [f"HTTP {self.http_status}" if self.http_status is not None else "no HTTP answer"]
        if self.code is not None:
            parts.append(f"code {self.code}" + (f"/{self.subcode}" if self.subcode is not None else ""))
        parts.append(f"{self.title}: {self.message}")
        if self.details:
            parts.append(f"details: {self.details}")
        if self.fbtrace_id:
            parts.append(f"fbtrace_id {self.fbtrace_id}")
        return "; ".join(parts)

    def __str__(self) -> str:
        return self._describe()


# Retryable ---------------------------------------------------------------------------------


class GraphNetworkError(GraphError):
    """No usable HTTP answer (connection refused, reset, timeout)."""

    retryable = True
    default_title = "Network error"


class GraphOutcomeUnknown(GraphNetworkError):
    """The request went out but no answer came back (read timeout, connection lost while
    waiting): Meta may have accepted it. A send is retried only once Meta had time to say so
    in a status webhook (matched by `biz_opaque_callback_data`), since Graph has no
    idempotency key."""

    default_title = "No answer to a request that was sent"


class GraphServerError(GraphError):
    """An HTTP 5xx whose body carries no code we know: Meta's side, try again."""

    retryable = True
    default_title = "Server error"


class ApiUnknownError(GraphError):
    retryable = True
    codes = (1,)
    default_title = "API Unknown"


class ApiServiceUnavailable(GraphError):
    """Graph is down or overloaded for a moment."""

    retryable = True
    codes = (2,)
    default_title = "API Service"


class AppRateLimitHit(GraphError):
    """The app made too many API calls."""

    retryable = True
    codes = (4,)
    default_title = "API Too Many Calls"


class AccountRateLimitHit(GraphError):
    """The WhatsApp Business Account made too many API calls."""

    retryable = True
    codes = (80007,)
    default_title = "Rate limit issues"


class ThroughputLimitReached(GraphError):
    """The phone number's messages-per-second throughput was exceeded."""

    retryable = True
    codes = (130429,)
    default_title = "Rate limit hit"


class SomethingWentWrong(GraphError):
    retryable = True
    codes = (131000,)
    default_title = "Something went wrong"


class ServiceUnavailable(GraphError):
    retryable = True
    codes = (131016,)
    default_title = "Service unavailable"


class PairRateLimitHit(GraphError):
    """Too many messages to the same customer in a short time: back off, then resend."""

    retryable = True
    codes = (131056,)
    default_title = "(Business Account, Consumer Account) pair rate limit hit"


# Permanent for this message -----------------------------------------------------------------


class PermissionDenied(GraphError):
    codes = (10,)
    default_title = "Permission Denied"


class InvalidParameter(GraphError):
    codes = (100,)
    default_title = "Invalid parameter"


class AccessTokenInvalid(GraphError):
    """The outlet's access token expired or was revoked: a person must reconnect it."""

    codes = (190,)
    default_title = "Access token has expired"


class TemporarilyBlocked(GraphError):
    """The account is restricted for a policy violation; retrying this message cannot help."""

    codes = (368,)
    default_title = "Temporarily blocked for policies violations"


class MessageUndeliverable(GraphError):
    codes = (131026,)
    default_title = "Message Undeliverable"


class RecipientNotInAllowedList(GraphError):
    """Test numbers can only message the numbers added to their allowed list."""

    codes = (131030,)
    default_title = "Recipient phone number not in allowed list"


class AccountLocked(GraphError):
    codes = (131031,)
    default_title = "Business Account locked"


class ReEngagementRequired(GraphError):
    """The 24-hour customer service window is closed: only a template can reopen it."""

    codes = (131047,)
    default_title = "Re-engagement message"


class UnsupportedMessageType(GraphError):
    codes = (131051,)
    default_title = "Unsupported message type"


class MediaDownloadError(GraphError):
    codes = (131052,)
    default_title = "Media download error"


class MediaUploadError(GraphError):
    codes = (131053,)
    default_title = "Media upload error"


class BsuidRecipientNotSupported(GraphError):
    """This message kind (e.g. some authentication templates) needs a phone number, not a BSUID."""

    codes = (131062,)
    default_title = "Business-scoped User ID (BSUID) recipients are not supported for this message"


class TemplateParamCountMismatch(GraphError):
    codes = (132000,)
    default_title = "Template Param Count Mismatch"


class TemplateNotFound(GraphError):
    """The template does not exist in that language, or is not approved."""

    codes = (132001,)
    default_title = "Template does not exist"


_CODED: tuple[type[GraphError], ...] = (
    ApiUnknownError,
    ApiServiceUnavailable,
    AppRateLimitHit,
    AccountRateLimitHit,
    ThroughputLimitReached,
    SomethingWentWrong,
    ServiceUnavailable,
    PairRateLimitHit,
    PermissionDenied,
    InvalidParameter,
    AccessTokenInvalid,
    TemporarilyBlocked,
    MessageUndeliverable,
    RecipientNotInAllowedList,
    AccountLocked,
    ReEngagementRequired,
    UnsupportedMessageType,
    MediaDownloadError,
    MediaUploadError,
    BsuidRecipientNotSupported,
    TemplateParamCountMismatch,
    TemplateNotFound,
)
_BY_CODE: dict[int, type[GraphError]] = {code: cls for cls in _CODED for code in cls.codes}


def error_class_for_code(code: int | None) -> type[GraphError] | None:
    """The class for a Graph error code, or None when we give the code no special meaning."""
    return _BY_CODE.get(code) if code is not None else None


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """Remove every non-empty secret from text."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


def error_from_response(
    http_status: int,
    body: bytes | str | Mapping[str, Any] | None,
    *,
    redact: Iterable[str] = (),
) -> GraphError:
    """The exception for a non-2xx Graph answer; any body shape, including HTML or nothing.

    A known code decides the class whatever the HTTP status; otherwise a 5xx is a retryable
    GraphServerError and anything else a permanent GraphError.
    """
    secrets = tuple(redact)
    error = _error_object(body)
    if error is None:
        excerpt = _text_of(body)[:_BODY_EXCERPT_CHARS].strip()
        message = f"unexpected error body: {excerpt!r}" if excerpt else "empty error body"
        fallback = GraphServerError if http_status >= 500 else GraphError
        return fallback(redact_text(message, secrets), http_status=http_status)

    code = _as_int(error.get("code"))
    message = _as_str(error.get("message")) or "no message"
    error_data = error.get("error_data")
    details = _as_str(error_data.get("details")) if isinstance(error_data, Mapping) else None
    match = _TITLE_IN_MESSAGE.match(message)
    cls = error_class_for_code(code) or (GraphServerError if http_status >= 500 else GraphError)
    return cls(
        redact_text(message, secrets),
        code=code,
        subcode=_as_int(error.get("error_subcode")),
        title=redact_text(match.group("title"), secrets) if match else None,
        http_status=http_status,
        details=redact_text(details, secrets) if details else None,
        fbtrace_id=_as_str(error.get("fbtrace_id")),
        error_type=_as_str(error.get("type")),
    )


def _text_of(body: bytes | str | Mapping[str, Any] | None) -> str:
    if body is None:
        return ""
    if isinstance(body, bytes):
        return body.decode("utf-8", errors="replace")
    if isinstance(body, str):
        return body
    return json.dumps(body, default=str)


def _error_object(body: bytes | str | Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if isinstance(body, Mapping):
        parsed: Any = body
    else:
        try:
            parsed = json.loads(_text_of(body))
        except ValueError:
            return None
    error = parsed.get("error") if isinstance(parsed, Mapping) else None
    return error if isinstance(error, Mapping) else None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _as_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
