"""One JSON error shape for every staff API, with stable codes a client can branch on:
`{"error": {"code": "...", "message": "...", "details": [...]}}`.

The codes are a contract (documented in the README): a message may be reworded, a code may
not change meaning.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

INVALID_REQUEST = "invalid_request"  # 400: path, query, header or body failed validation
UNAUTHENTICATED = "unauthenticated"  # 401
FORBIDDEN = "forbidden"  # 403: the role may not use this route
NOT_FOUND = "not_found"  # 404: no such route, or nothing with this id for this caller
METHOD_NOT_ALLOWED = "method_not_allowed"  # 405
CONFLICT = "conflict"  # 409: the resource's state does not allow it
WINDOW_CLOSED = "window_closed"  # 409: free-form message after WhatsApp's 24-hour window
PLAN_LIMIT = "plan_limit"  # 409: the tier's outlets, knowledge bases or storage are used up
BODY_TOO_LARGE = "body_too_large"  # 413
WHATSAPP_REJECTED = "whatsapp_rejected"  # 422: Meta refused an outlet's access token or number
RATE_LIMITED = "rate_limited"  # 429: the tenant's requests this minute are used up
SERVICE_SUSPENDED = "service_suspended"  # 429: the quota and the deposit are used up
INTERNAL = "internal"  # 500: logged with its trace id, nothing more is returned
UNAVAILABLE = "unavailable"  # 503: a dependency is briefly down; retry

# What each HTTP status means when nothing more specific is said.
DEFAULT_CODES = {
    400: INVALID_REQUEST,
    401: UNAUTHENTICATED,
    403: FORBIDDEN,
    404: NOT_FOUND,
    405: METHOD_NOT_ALLOWED,
    409: CONFLICT,
    413: BODY_TOO_LARGE,
    422: WHATSAPP_REJECTED,
    429: RATE_LIMITED,
    500: INTERNAL,
    503: UNAVAILABLE,
}


class ApiError(Exception):
    """Raised anywhere below a route handler: answered in the one error shape."""

    def __init__(self, status: int, message: str, code: str | None = None, details: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code or DEFAULT_CODES.get(status, INTERNAL)
        self.message = message
        self.details = details or []

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class ErrorInfo(BaseModel):
    code: str = Field(description="Stable: one of the codes in the README's error table.")
    message: str = Field(description="For people; may be reworded.")
    details: list[dict[str, Any]] = Field(
        default_factory=list, description="For invalid_request, one entry per field: loc, message, type."
    )


class ErrorResponse(BaseModel):
    """Every error any staff API answers."""

    error: ErrorInfo
