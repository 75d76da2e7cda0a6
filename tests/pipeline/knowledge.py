"""A tenant admin and the LLM stand-in, as the knowledge and assistant tests drive them."""

from __future__ import annotations

import io
import uuid
from typing import Any

import requests
from openpyxl import Workbook
from sqlalchemy import select

from emulators.stack import LocalStack
from shared.db.models import Conversation, Customer
from shared.db.tenancy import tenant_session
from tests.pipeline.driver import Meta, id_token, new_customer, wait_for

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def price_list(rows: list[tuple[str, str, str]]) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Prices"
    sheet.append(["Service", "Unit", "Price (Rp)"])
    for row in rows:
        sheet.append(list(row))
    data = io.BytesIO()
    workbook.save(data)
    return data.getvalue()


class Admin:
    """A tenant admin using the knowledge API, as the dashboard would."""

    def __init__(self, stack: LocalStack, email: str = "admin@kopinusantara.test") -> None:
        self.url = stack.info["functions"]["knowledge-api"]
        self.headers = {"Authorization": f"Bearer {id_token(stack, email)}"}

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, f"{self.url}{path}", headers=self.headers, timeout=60, **kwargs)

    def new_knowledge_base(self, name: str) -> str:
        answer = self.call("POST", "/knowledge-bases", json={"name": name, "language": "en"})
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    def upload_signed(self, kb: str, file_name: str, data: bytes, content_type: str = XLSX) -> str:
        answer = self.call(
            "POST",
            f"/knowledge-bases/{kb}/upload-url",
            json={"file_name": file_name, "content_type": content_type, "size_bytes": len(data)},
        )
        assert answer.status_code == 201, answer.text
        signed = answer.json()
        put = requests.put(signed["url"], data=data, headers=signed["headers"], timeout=60)
        assert put.status_code < 300, put.text
        return str(signed["object_name"])

    def upload_multipart(self, kb: str, file_name: str, data: bytes, content_type: str) -> requests.Response:
        return self.call(
            "POST", f"/knowledge-bases/{kb}/documents", files={"file": (file_name, io.BytesIO(data), content_type)}
        )

    def documents(self, kb: str) -> list[dict[str, Any]]:
        answer = self.call("GET", f"/knowledge-bases/{kb}/documents")
        assert answer.status_code == 200, answer.text
        return list(answer.json()["documents"])

    def settled(self, kb: str, file_name: str, count: int = 1, timeout: float = 90) -> list[dict[str, Any]]:
        """The file's documents once `count` of them are ready or failed."""

        def done() -> list[dict[str, Any]] | None:
            mine = [d for d in self.documents(kb) if d["file_name"] == file_name]
            finished = [d for d in mine if d["status"] in ("ready", "failed")]
            return finished if len(finished) >= count else None

        return wait_for(done, timeout=timeout, interval=0.5)


def reply_to(meta: Meta, text: str, customer: dict[str, str] | None = None, timeout: float = 30) -> str:
    customer = customer or new_customer()
    before = len(meta.sends_to(customer))
    meta.say(customer, text)
    sends = wait_for(lambda: (s := meta.sends_to(customer))[before:] and s, timeout=timeout)
    return str(sends[before]["body"]["text"]["body"])


class LanguageModel:
    """The stack's LLM stand-in: told to fail or to say something, and asked what it was asked."""

    def __init__(self, stack: LocalStack) -> None:
        self.url = stack.env["OPENAI_BASE_URL"].removesuffix("/v1")

    def fail(self, kind: str, count: int | None = 1, **details: Any) -> None:
        answer = requests.post(
            f"{self.url}/control/failures", json={"kind": kind, "count": count, **details}, timeout=5
        )
        answer.raise_for_status()

    def clear(self) -> None:
        requests.delete(f"{self.url}/control/failures", timeout=5).raise_for_status()

    def calls(self) -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = requests.get(f"{self.url}/control/calls", timeout=5).json()["calls"]
        return calls


def conversation_of(stack: LocalStack, customer: dict[str, str]) -> Conversation:
    """The customer's conversation, once the webhook's event has made it."""

    def found() -> Conversation | None:
        with tenant_session(uuid.UUID(stack.info["demo"]["tenant_id"])) as session:
            conversation = session.scalars(
                select(Conversation)
                .join(Customer, Customer.id == Conversation.customer_id)
                .where(Customer.phone_number == customer["phone"])
            ).one_or_none()
            if conversation is not None:
                session.expunge(conversation)
            return conversation

    return wait_for(found, timeout=30)
