"""Sending one outbound message (or a read receipt) through the Graph API, as a Cloud Tasks
task. The answer decides retries: 2xx ends the task, anything else makes the queue retry it
with exponential backoff (functions/functions.yaml, queue whatsapp-send).

Never twice: the message row is locked for the duration of the Graph call and only a
`queued` message is sent, so a retried or duplicated task finds it `sent` and stops. Graph
has no idempotency key, so when a send went out and no answer came back (a read timeout), the
retries wait CONFIRM_WAIT for Meta's status webhook, which names the message in
`biz_opaque_callback_data` (statuses.py then records it as sent), before sending again. (If
the instance dies between Meta's answer and our commit, a retry can still send twice; that
window is a few milliseconds.)
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from shared.cloud import logs, outbound, pubsub
from shared.cloud.settings import settings
from shared.conversations import dashboard
from shared.conversations.pending import SEND_QUEUE as QUEUE
from shared.db.models import Conversation, Customer, Message, Outlet
from shared.db.tenancy import tenant_session
from shared.sending.access_tokens import decrypt_access_token
from shared.whatsapp.errors import GraphError, GraphOutcomeUnknown
from shared.whatsapp.graph import GraphClient, Recipient
from shared.whatsapp.window import window_open

log = logging.getLogger(__name__)

__all__ = ["QUEUE", "TaskResult", "handle_task", "mark_failed"]

ORDER_WAIT = timedelta(minutes=10)  # how long a later reply waits for an earlier one to go out
CONFIRM_WAIT = timedelta(seconds=60)  # Meta's `sent` status comes within seconds of accepting
MISSING_RETRIES = 3  # a task can outrun the commit of its message; after this, it was rolled back
OUTSIDE_WINDOW = (131047, "Re-engagement message: outside the 24-hour customer service window (not sent)")
_session = outbound.session()  # connection reuse across tasks on this instance

# Built once: a constant statement costs SQLAlchemy no rebuilding or re-keying per task.
_TO_SEND = (
    select(Message, Conversation, Outlet, Customer)
    .join(Conversation, Conversation.id == Message.conversation_id)
    .join(Outlet, Outlet.id == Message.outlet_id)
    .join(Customer, Customer.id == Conversation.customer_id)
    .where(Message.id == bindparam("message_id"))
    .with_for_update(of=Message)
)
_EARLIER_QUEUED = (
    select(Message.id)
    .where(
        Message.conversation_id == bindparam("conversation_id"),
        Message.direction == "outbound",
        Message.status == "queued",
        Message.created_at < bindparam("created_at"),
        Message.created_at > bindparam("since"),
    )
    .limit(1)
)
_TO_MARK_READ = (
    select(Message.wa_message_id, Outlet.phone_number_id, Outlet.access_token_ciphertext)
    .join(Outlet, Outlet.id == Message.outlet_id)
    .where(Message.id == bindparam("message_id"))
)


@dataclass(frozen=True, slots=True)
class TaskResult:
    status: int  # the HTTP status the task answers with: 2xx done, else retried
    detail: str

    def response(self) -> tuple[dict[str, str], int]:
        return {"result": self.detail}, self.status


def handle_task(payload: dict[str, Any], retry_count: int, max_attempts: int) -> TaskResult:
    """One task from the whatsapp-send queue: {"tenant_id", "kind": send|read, "message_id"}."""
    try:
        tenant_id = uuid.UUID(str(payload["tenant_id"]))
        message_id = uuid.UUID(str(payload["message_id"]))
        kind = payload.get("kind", "send")
    except (KeyError, ValueError, TypeError):
        return TaskResult(400, "task payload needs tenant_id, kind and message_id")
    final = retry_count + 1 >= max_attempts
    with logs.tenant_scope(tenant_id):
        if kind == "read":
            result = mark_read(tenant_id, message_id, bool(payload.get("typing_indicator")), final)
        elif kind == "send":
            result = send(tenant_id, message_id, retry_count, final)
        else:
            result = TaskResult(400, f"unknown task kind {kind!r}")
        log.info(
            "task %s: %s",
            kind,
            result.detail,
            extra={"message_id": str(message_id), "status": result.status, "retry_count": retry_count},
        )
    return result


def _client(token: str) -> GraphClient:
    config = settings()
    return GraphClient(config.whatsapp_graph_api_url, config.whatsapp_graph_api_version, token, session=_session)


def send(tenant_id: uuid.UUID, message_id: uuid.UUID, retry_count: int, final: bool) -> TaskResult:
    with tenant_session(tenant_id) as session:
        row = session.execute(_TO_SEND, {"message_id": message_id}).first()
        if row is None:
            if retry_count < MISSING_RETRIES:
                return TaskResult(503, "message not visible yet")
            return TaskResult(200, "no such message (its transaction was rolled back)")
        message, conversation, outlet, customer = row
        if message.status != "queued" or message.direction != "outbound":
            return TaskResult(200, f"already {message.status}")
        if not final and _earlier_reply_pending(session, message):
            # On its last attempt a reply goes out all the same: late and out of order beats never.
            return TaskResult(503, "an earlier reply of this conversation has not gone out yet")
        if not final and _awaiting_confirmation(message):
            return TaskResult(503, "an earlier attempt may have gone out: waiting for Meta's status")
        if message.type != "template" and not window_open(conversation.last_customer_message_at):
            mark_failed(message, *OUTSIDE_WINDOW)
            result = TaskResult(200, "outside the 24-hour window: not sent")
        else:
            result = _deliver(message, outlet, customer, final)
        snapshot = dashboard.message_document(tenant_id, message) if message.status != "queued" else None
        sent = message.status == "sent"
        conversation_id = message.conversation_id
    if snapshot is not None:
        dashboard.write_messages(tenant_id, conversation_id, [snapshot])
    if sent:
        _announce(tenant_id, snapshot)
    return result


def _deliver(message: Message, outlet: Outlet, customer: Customer, final: bool) -> TaskResult:
    if outlet.access_token_ciphertext is None:
        mark_failed(message, 190, "The outlet has no WhatsApp access token")
        return TaskResult(200, "no access token: not sent")
    client = _client(decrypt_access_token(outlet.access_token_ciphertext))
    recipient = Recipient(phone=customer.phone_number, bsuid=customer.bsuid)
    payload = message.payload or {}
    tracking = str(message.id)  # Meta echoes it in the status webhooks of this send
    try:
        if message.type == "text":
            wamid = client.send_text(outlet.phone_number_id, recipient, message.body or "", tracking=tracking)
        elif message.type == "template":
            wamid = client.send_template(
                outlet.phone_number_id,
                recipient,
                payload["template"],
                payload.get("language", "id"),
                payload.get("components"),
                tracking=tracking,
            )
        else:
            wamid = client.send_media(
                outlet.phone_number_id,
                recipient,
                message.type,
                payload["media_id"],
                caption=message.body,
                filename=payload.get("filename"),
                tracking=tracking,
            )
    except GraphOutcomeUnknown as error:
        message.payload = {**payload, "unconfirmed_at": datetime.now(UTC).isoformat()}
        return _failed_attempt(message, error, final)
    except GraphError as error:
        return _failed_attempt(message, error, final)
    message.status = "sent"
    message.wa_message_id = wamid
    message.sent_at = datetime.now(UTC)
    message.error_code = message.error_title = None
    return TaskResult(200, "sent")


def _failed_attempt(message: Message, error: GraphError, final: bool) -> TaskResult:
    log.warning(
        "Graph API refused a send: %s",
        error,
        extra={"message_id": str(message.id), "code": error.code, "retryable": error.retryable},
    )
    if error.retryable and not final:
        attempts = int((message.payload or {}).get("send_attempts", 0)) + 1
        message.payload = {
            **(message.payload or {}),
            "send_attempts": attempts,
            "last_error": {"code": error.code, "title": error.title},
        }
        return TaskResult(503, f"retryable error {error.code}: will retry")
    mark_failed(message, error.code, error.title)
    return TaskResult(200, f"failed permanently with {error.code}")


def mark_failed(message: Message, code: int | None, title: str | None) -> None:
    """Not sent, for good: WhatsApp's code and title (or ours) say why."""
    message.status = "failed"
    message.error_code = code
    message.error_title = title
    message.failed_at = datetime.now(UTC)


def _awaiting_confirmation(message: Message) -> bool:
    """An earlier attempt got no answer, and Meta may still confirm it went out."""
    unconfirmed = (message.payload or {}).get("unconfirmed_at")
    if not isinstance(unconfirmed, str):
        return False
    return datetime.now(UTC) - datetime.fromisoformat(unconfirmed) < CONFIRM_WAIT


def _earlier_reply_pending(session: Session, message: Message) -> bool:
    """Replies go out in the order they were written: wait while an earlier one is queued."""
    earlier = session.scalar(
        _EARLIER_QUEUED,
        {
            "conversation_id": message.conversation_id,
            "created_at": message.created_at,
            "since": datetime.now(UTC) - ORDER_WAIT,
        },
    )
    return earlier is not None


def _announce(tenant_id: uuid.UUID, snapshot: dict[str, Any] | None) -> None:
    """Tell analytics a message went out. Best effort: the send itself already happened."""
    try:
        pubsub.publish(
            [pubsub.Outgoing(pubsub.OUTGOING_MESSAGES, snapshot or {}, attributes={"tenant_id": str(tenant_id)})]
        )
    except Exception:
        log.exception("could not publish the outgoing-message event")


def mark_read(tenant_id: uuid.UUID, message_id: uuid.UUID, typing_indicator: bool, final: bool) -> TaskResult:
    """Blue ticks (and "typing...") on the customer's message while the reply is prepared."""
    with tenant_session(tenant_id) as session:
        row = session.execute(_TO_MARK_READ, {"message_id": message_id}).first()
    if row is None or row.wa_message_id is None:
        return TaskResult(200, "nothing to mark read")
    if row.access_token_ciphertext is None:
        return TaskResult(200, "no access token")
    token = decrypt_access_token(row.access_token_ciphertext)
    phone_number_id, wa_message_id = row.phone_number_id, row.wa_message_id
    try:
        _client(token).mark_read(phone_number_id, wa_message_id, typing_indicator)
    except GraphError as error:
        if error.retryable and not final:
            return TaskResult(503, f"retryable error {error.code}")
        log.warning("could not mark a message read: %s", error)
        return TaskResult(200, "not marked read")
    return TaskResult(200, "marked read")
