"""Sending through the WhatsApp Cloud API (Graph API `/{phone_number_id}/messages`), and
connecting a number: reading it (`GET /{phone_number_id}`) and subscribing our app to its
business account's webhooks (`POST /{waba_id}/subscribed_apps`).

Every failure is raised as a GraphError subclass whose `retryable` tells the sender whether
to try again. The access token is only ever put in the Authorization header of a request: it
is not kept on the session, not shown in the client's repr, and removed from any text that
ends up in an exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests
from urllib3.exceptions import NewConnectionError

from shared.whatsapp.errors import (
    GraphError,
    GraphNetworkError,
    GraphOutcomeUnknown,
    error_from_response,
    redact_text,
)

MEDIA_TYPES = frozenset({"image", "audio", "video", "document", "sticker"})
CAPTIONED_MEDIA_TYPES = frozenset({"image", "video", "document"})
# Failures of the network itself; any other requests error (a bad URL) is a permanent GraphError.
_NETWORK_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


def _never_sent(exc: Exception) -> bool:
    """The request cannot have reached Meta: no connection was ever made."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.ConnectionError) and isinstance(reason, NewConnectionError)


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who to send to. Meta's 2026 rule: `to` with the phone when known, else `recipient` with the BSUID."""

    phone: str | None = None
    bsuid: str | None = None

    def __post_init__(self) -> None:
        if not self.phone and not self.bsuid:
            raise ValueError("a recipient needs a phone number or a business-scoped user ID")

    def addressing(self) -> dict[str, str]:
        if self.phone:
            return {"to": self.phone}
        assert self.bsuid is not None
        return {"recipient": self.bsuid}


class GraphClient:
    """One business's credentials against one Graph API base URL and version."""

    def __init__(
        self,
        base_url: str,
        api_version: str,
        access_token: str,
        session: requests.Session | None = None,
        timeout: float = 10,
    ) -> None:
        if not access_token:
            raise ValueError("an access token is required")
        self._base_url = base_url.rstrip("/")
        self._api_version = api_version.strip("/")
        self._token = access_token
        self._session = session or requests.Session()
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"GraphClient(base_url={self._base_url!r}, api_version={self._api_version!r})"

    def send_text(
        self,
        phone_number_id: str,
        recipient: Recipient,
        body: str,
        reply_to: str | None = None,
        preview_url: bool = False,
        tracking: str | None = None,
    ) -> str:
        """Send a text message; returns the wamid Meta accepted it under. `tracking` comes back
        in the message's status webhooks (`biz_opaque_callback_data`)."""
        content = {"body": body, "preview_url": preview_url}
        return self._send(phone_number_id, recipient, "text", content, reply_to, tracking)

    def send_media(
        self,
        phone_number_id: str,
        recipient: Recipient,
        media_type: str,
        media_id: str,
        caption: str | None = None,
        filename: str | None = None,
        tracking: str | None = None,
    ) -> str:
        """Send already-uploaded media by its id; returns the wamid."""
        if media_type not in MEDIA_TYPES:
            raise ValueError(f"media type must be one of {sorted(MEDIA_TYPES)}, not {media_type!r}")
        if caption is not None and media_type not in CAPTIONED_MEDIA_TYPES:
            raise ValueError(f"WhatsApp does not allow a caption on {media_type}")
        if filename is not None and media_type != "document":
            raise ValueError("only a document has a filename")
        content: dict[str, Any] = {"id": media_id}
        if caption is not None:
            content["caption"] = caption
        if filename is not None:
            content["filename"] = filename
        return self._send(phone_number_id, recipient, media_type, content, None, tracking)

    def send_template(
        self,
        phone_number_id: str,
        recipient: Recipient,
        name: str,
        language_code: str,
        components: list[dict[str, Any]] | None = None,
        tracking: str | None = None,
    ) -> str:
        """Send an approved template (the only kind allowed outside the 24-hour window); returns the wamid."""
        content: dict[str, Any] = {"name": name, "language": {"code": language_code}}
        if components:
            content["components"] = components
        return self._send(phone_number_id, recipient, "template", content, None, tracking)

    def mark_read(self, phone_number_id: str, message_id: str, typing_indicator: bool) -> None:
        """Show the customer blue ticks and, optionally, "typing..." until we reply (or 25 s)."""
        payload: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": message_id,
        }
        if typing_indicator:
            payload["typing_indicator"] = {"type": "text"}
        answer = self._post(phone_number_id, payload)
        if answer.get("success") is not True:
            raise GraphError(f"mark-read answered without success: {self._redact(str(answer)[:200])}", http_status=200)

    def phone_number(self, phone_number_id: str) -> dict[str, Any]:
        """The number as Meta knows it: display_phone_number, verified_name, quality_rating, ...
        A wrong token raises AccessTokenInvalid (190); an id the token cannot see, a 100."""
        fields = "display_phone_number,verified_name,quality_rating,code_verification_status"
        return self._request("GET", f"{phone_number_id}?fields={fields}", None)

    def subscribe_app(self, waba_id: str) -> None:
        """Subscribe our app to the business account's webhooks, so its messages reach us."""
        answer = self._request("POST", f"{waba_id}/subscribed_apps", {})
        if answer.get("success") is not True:
            raise GraphError(
                f"subscribed_apps answered without success: {self._redact(str(answer)[:200])}", http_status=200
            )

    def _send(
        self,
        phone_number_id: str,
        recipient: Recipient,
        msg_type: str,
        content: dict[str, Any],
        reply_to: str | None,
        tracking: str | None,
    ) -> str:
        payload: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            **recipient.addressing(),
            "type": msg_type,
            msg_type: content,
        }
        if reply_to:
            payload["context"] = {"message_id": reply_to}
        if tracking:
            payload["biz_opaque_callback_data"] = tracking
        answer = self._post(phone_number_id, payload)
        messages = answer.get("messages")
        first = messages[0] if isinstance(messages, list) and messages else None
        wamid = first.get("id") if isinstance(first, dict) else None
        if not isinstance(wamid, str) or not wamid:
            # Accepted or not is unknown: permanent, so that a retry cannot send it twice.
            raise GraphError(f"send answered without a message id: {self._redact(str(answer)[:200])}", http_status=200)
        return wamid

    def _post(self, phone_number_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", f"{phone_number_id}/messages", payload)

    def _request(self, method: str, path: str, payload: dict[str, Any] | None) -> dict[str, Any]:
        url = f"{self._base_url}/{self._api_version}/{path}"
        try:
            response = self._session.request(
                method,
                url,
                json=payload,
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=self._timeout,
            )
        except _NETWORK_ERRORS as exc:
            # `from None`: the requests exception holds the prepared request, header and all.
            error = GraphNetworkError if _never_sent(exc) else GraphOutcomeUnknown
            raise error(self._redact(f"{type(exc).__name__}: {exc}")) from None
        except requests.RequestException as exc:
            raise GraphError(self._redact(f"{type(exc).__name__}: {exc}")) from None
        if not 200 <= response.status_code < 300:
            raise error_from_response(response.status_code, response.content, redact=(self._token,))
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            excerpt = self._redact(response.text[:200])
            raise GraphError(
                f"HTTP {response.status_code} with a body that is not a JSON object: {excerpt!r}",
                http_status=response.status_code,
            )
        return answer

    def _redact(self, text: str) -> str:
        return redact_text(text, (self._token,))
