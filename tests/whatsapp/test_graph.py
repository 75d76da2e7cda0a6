"""GraphClient against the Graph API simulator running in this process."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from shared.whatsapp import errors as e
from shared.whatsapp.errors import GraphError
from shared.whatsapp.graph import GraphClient, Recipient
from tests.whatsapp.conftest import RunningSimulator

TOKEN = "EAAGm0PX4ZCpsBAKZC-secret-token-value"
PN_ID = "106540352242922"
PHONE = "6281234567890"
BSUID = "ID.1502576394655843"
INBOUND = "wamid.HBgNNjI4MTIzNDU2Nzg5MBUCABIYFDNBMEQ0RjE3QjQ4NjQyNjFBNz01AA=="


@pytest.fixture
def client(simulator: RunningSimulator) -> GraphClient:
    return GraphClient(simulator.url, "v23.0", TOKEN, timeout=5)


def calls(simulator: RunningSimulator, **params: str) -> list[dict[str, Any]]:
    answer = requests.get(f"{simulator.url}/_sim/calls", params=params, timeout=5)
    answer.raise_for_status()
    result: list[dict[str, Any]] = answer.json()["calls"]
    return result


def fail_next(simulator: RunningSimulator, **spec: Any) -> None:
    requests.post(f"{simulator.url}/_sim/failures", json=spec, timeout=5).raise_for_status()


# Recipient ------------------------------------------------------------------------------------


def test_recipient_needs_a_phone_or_a_bsuid() -> None:
    with pytest.raises(ValueError, match="phone number or a business-scoped user ID"):
        Recipient()
    with pytest.raises(ValueError, match="phone number or a business-scoped user ID"):
        Recipient(phone="", bsuid="")


def test_phone_wins_over_bsuid() -> None:
    assert Recipient(phone=PHONE, bsuid=BSUID).addressing() == {"to": PHONE}
    assert Recipient(bsuid=BSUID).addressing() == {"recipient": BSUID}


# Sends ------------------------------------------------------------------------------------------


def test_send_text_to_a_phone(client: GraphClient, simulator: RunningSimulator) -> None:
    wamid = client.send_text(PN_ID, Recipient(phone=PHONE, bsuid=BSUID), "Halo Budi!", reply_to=INBOUND)
    (call,) = calls(simulator)
    assert call["wamid"] == wamid
    assert wamid.startswith("wamid.")
    assert call["api_version"] == "v23.0"
    assert call["phone_number_id"] == PN_ID
    assert call["status"] == 200
    assert call["body"] == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": PHONE,
        "type": "text",
        "text": {"body": "Halo Budi!", "preview_url": False},
        "context": {"message_id": INBOUND},
    }


def test_send_text_to_a_bsuid_only_customer(client: GraphClient, simulator: RunningSimulator) -> None:
    client.send_text(PN_ID, Recipient(bsuid=BSUID), "Hi Sari", preview_url=True)
    (call,) = calls(simulator)
    assert call["body"]["recipient"] == BSUID
    assert "to" not in call["body"]
    assert call["body"]["text"]["preview_url"] is True
    assert "context" not in call["body"]


def test_each_send_gets_a_new_wamid(client: GraphClient) -> None:
    ids = {client.send_text(PN_ID, Recipient(phone=PHONE), f"message {i}") for i in range(3)}
    assert len(ids) == 3


def test_send_media(client: GraphClient, simulator: RunningSimulator) -> None:
    client.send_media(PN_ID, Recipient(phone=PHONE), "document", "1812493586026451", "Invoice", "inv-42.pdf")
    client.send_media(PN_ID, Recipient(bsuid=BSUID), "audio", "1426458538679483")
    document, audio = calls(simulator)
    assert document["body"]["type"] == "document"
    assert document["body"]["document"] == {
        "id": "1812493586026451",
        "caption": "Invoice",
        "filename": "inv-42.pdf",
    }
    assert audio["body"]["audio"] == {"id": "1426458538679483"}
    assert audio["body"]["recipient"] == BSUID


@pytest.mark.parametrize(
    ("media_type", "caption", "filename", "message"),
    [
        ("hologram", None, None, "media type"),
        ("audio", "words", None, "caption"),
        ("sticker", "words", None, "caption"),
        ("image", None, "a.jpg", "filename"),
    ],
)
def test_send_media_refuses_what_whatsapp_would_refuse(
    client: GraphClient,
    simulator: RunningSimulator,
    media_type: str,
    caption: str | None,
    filename: str | None,
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        client.send_media(PN_ID, Recipient(phone=PHONE), media_type, "123", caption, filename)
    assert calls(simulator) == []


def test_send_template(client: GraphClient, simulator: RunningSimulator) -> None:
    components = [{"type": "body", "parameters": [{"type": "text", "text": "Budi"}]}]
    client.send_template(PN_ID, Recipient(phone=PHONE), "order_shipped", "id", components)
    client.send_template(PN_ID, Recipient(bsuid=BSUID), "hello_world", "en_US")
    with_components, bare = calls(simulator)
    assert with_components["body"]["template"] == {
        "name": "order_shipped",
        "language": {"code": "id"},
        "components": components,
    }
    assert bare["body"]["template"] == {"name": "hello_world", "language": {"code": "en_US"}}


def test_mark_read_with_and_without_typing_indicator(client: GraphClient, simulator: RunningSimulator) -> None:
    client.mark_read(PN_ID, INBOUND, typing_indicator=True)
    client.mark_read(PN_ID, INBOUND, typing_indicator=False)
    typing, plain = calls(simulator)
    assert typing["kind"] == "mark_read"
    assert typing["status"] == 200
    assert typing["wamid"] is None
    assert typing["body"] == {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": INBOUND,
        "typing_indicator": {"type": "text"},
    }
    assert plain["body"] == {"messaging_product": "whatsapp", "status": "read", "message_id": INBOUND}


def test_the_token_is_sent_as_a_bearer_header_only(serve_wsgi: Callable[[Any], str]) -> None:
    seen: list[dict[str, str]] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append({"auth": environ.get("HTTP_AUTHORIZATION", ""), "query": environ.get("QUERY_STRING", "")})
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"messages": [{"id": "wamid.X"}]}']

    url = serve_wsgi(app)
    assert GraphClient(url + "/", "/v23.0/", TOKEN).send_text(PN_ID, Recipient(phone=PHONE), "x") == "wamid.X"
    assert seen == [{"auth": f"Bearer {TOKEN}", "query": ""}]


# Failures ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "cls", "http_status", "retryable"),
    [
        (131047, e.ReEngagementRequired, 400, False),
        (130429, e.ThroughputLimitReached, 400, True),
        (131056, e.PairRateLimitHit, 400, True),
        (131000, e.SomethingWentWrong, 500, True),
        (131016, e.ServiceUnavailable, 503, True),
        (190, e.AccessTokenInvalid, 401, False),
        (131062, e.BsuidRecipientNotSupported, 400, False),
        (132001, e.TemplateNotFound, 404, False),
        (368, e.TemporarilyBlocked, 403, False),
    ],
)
def test_injected_error_codes_raise_the_right_class(
    client: GraphClient,
    simulator: RunningSimulator,
    code: int,
    cls: type[GraphError],
    http_status: int,
    retryable: bool,
) -> None:
    fail_next(simulator, count=1, error_code=code)
    with pytest.raises(cls) as caught:
        client.send_text(PN_ID, Recipient(phone=PHONE), "Halo")
    error = caught.value
    assert (error.code, error.http_status, error.retryable) == (code, http_status, retryable)
    assert error.fbtrace_id
    assert error.details
    assert TOKEN not in str(error)
    assert TOKEN not in repr(error)
    (call,) = calls(simulator)
    assert (call["status"], call["error_code"], call["wamid"]) == (http_status, code, None)
    client.send_text(PN_ID, Recipient(phone=PHONE), "Halo lagi")  # the injected failure is used up


@pytest.mark.parametrize("http_status", [500, 502, 503])
def test_injected_5xx_without_code_is_a_retryable_server_error(
    client: GraphClient, simulator: RunningSimulator, http_status: int
) -> None:
    fail_next(simulator, count=1, http_status=http_status)
    with pytest.raises(e.GraphServerError) as caught:
        client.send_text(PN_ID, Recipient(phone=PHONE), "Halo")
    assert caught.value.retryable
    assert caught.value.http_status == http_status


def test_injected_4xx_without_code_is_permanent(client: GraphClient, simulator: RunningSimulator) -> None:
    fail_next(simulator, count=1, http_status=400)
    with pytest.raises(GraphError) as caught:
        client.send_text(PN_ID, Recipient(phone=PHONE), "Halo")
    assert type(caught.value) is GraphError
    assert not caught.value.retryable


def test_failures_last_for_count_sends(client: GraphClient, simulator: RunningSimulator) -> None:
    fail_next(simulator, count=2, error_code=130429)
    for _ in range(2):
        with pytest.raises(e.ThroughputLimitReached):
            client.send_text(PN_ID, Recipient(phone=PHONE), "Halo")
    client.send_text(PN_ID, Recipient(phone=PHONE), "Halo")
    assert [c["status"] for c in calls(simulator)] == [400, 400, 200]


def test_mark_read_is_spared_unless_asked(client: GraphClient, simulator: RunningSimulator) -> None:
    fail_next(simulator, count=1, error_code=131000)
    client.mark_read(PN_ID, INBOUND, typing_indicator=False)
    with pytest.raises(e.SomethingWentWrong):
        client.send_text(PN_ID, Recipient(phone=PHONE), "Halo")
    fail_next(simulator, count=1, error_code=131000, include_read=True)
    with pytest.raises(e.SomethingWentWrong):
        client.mark_read(PN_ID, INBOUND, typing_indicator=True)


def test_a_bad_request_is_reported_as_invalid_parameter(client: GraphClient) -> None:
    with pytest.raises(e.InvalidParameter) as caught:
        client.send_text(PN_ID, Recipient(phone=PHONE), "   ")
    assert "text.body" in (caught.value.details or "")
    assert not caught.value.retryable


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_connection_refused_is_a_retryable_network_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends: nobody listens there
    client = GraphClient(f"http://127.0.0.1:{port}", "v23.0", TOKEN, timeout=2)
    with pytest.raises(e.GraphNetworkError) as caught:
        client.send_text(PN_ID, Recipient(phone=PHONE), "Halo")
    assert caught.value.retryable
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    assert TOKEN not in str(caught.value)
    assert TOKEN not in repr(caught.value)


def test_timeout_is_a_retryable_network_error(silent_port: int) -> None:
    client = GraphClient(f"http://127.0.0.1:{silent_port}", "v23.0", TOKEN, timeout=0.3)
    with pytest.raises(e.GraphNetworkError, match="Timeout"):
        client.mark_read(PN_ID, INBOUND, typing_indicator=True)


def test_no_answer_to_a_sent_request_is_an_unknown_outcome(silent_port: int) -> None:
    """The request reached the other side and no answer came: Meta may have sent it."""
    client = GraphClient(f"http://127.0.0.1:{silent_port}", "v23.0", TOKEN, timeout=0.3)
    with pytest.raises(e.GraphOutcomeUnknown) as caught:
        client.send_text(PN_ID, Recipient(phone=PHONE), "Halo")
    assert caught.value.retryable
    assert TOKEN not in str(caught.value)


def test_a_refused_connection_is_known_not_to_have_sent() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = GraphClient(f"http://127.0.0.1:{port}", "v23.0", TOKEN, timeout=2)
    with pytest.raises(e.GraphNetworkError) as caught:
        client.send_text(PN_ID, Recipient(phone=PHONE), "Halo")
    assert not isinstance(caught.value, e.GraphOutcomeUnknown)


def test_a_stalled_send_is_accepted_and_its_tracking_comes_back_in_the_calls(
    client: GraphClient, simulator: RunningSimulator
) -> None:
    fail_next(simulator, count=1, stall_seconds=1)
    slow = GraphClient(simulator.url, "v23.0", TOKEN, timeout=0.3)
    with pytest.raises(e.GraphOutcomeUnknown):
        slow.send_text(PN_ID, Recipient(phone=PHONE), "Halo", tracking="message-1")
    wamid = client.send_text(PN_ID, Recipient(phone=PHONE), "Halo lagi", tracking="message-2")  # stalls once only
    sends = [c for c in _wait_for_calls(simulator, 2) if c["kind"] == "send"]
    assert [(c["status"], c["body"]["biz_opaque_callback_data"]) for c in sends] == [
        (200, "message-2"),
        (200, "message-1"),  # recorded when its late answer went
    ]
    assert sends[0]["wamid"] == wamid


def _wait_for_calls(simulator: RunningSimulator, count: int) -> list[dict[str, Any]]:
    for _ in range(50):
        found = calls(simulator)
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"expected {count} calls, got {calls(simulator)}")


def test_a_malformed_url_is_a_permanent_error() -> None:
    client = GraphClient("http://", "v23.0", TOKEN)
    with pytest.raises(GraphError) as caught:
        client.send_text(PN_ID, Recipient(phone=PHONE), "Halo")
    assert not caught.value.retryable
    assert TOKEN not in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [b'{"messaging_product": "whatsapp", "messages": []}', b"OK", b'["wamid.X"]', b'{"success": false}'],
)
def test_a_2xx_without_a_message_id_is_permanent(serve_wsgi: Callable[[Any], str], body: bytes) -> None:
    """Meta may have sent it: retrying could send it twice."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]

    client = GraphClient(serve_wsgi(app), "v23.0", TOKEN)
    with pytest.raises(GraphError) as caught:
        client.send_text(PN_ID, Recipient(phone=PHONE), "Halo")
    assert type(caught.value) is GraphError
    assert not caught.value.retryable
    with pytest.raises(GraphError, match=r"success|JSON object"):
        client.mark_read(PN_ID, INBOUND, typing_indicator=False)


def test_the_token_never_shows(client: GraphClient) -> None:
    assert TOKEN not in repr(client)
    assert TOKEN not in str(client)
    with pytest.raises(ValueError, match="access token"):
        GraphClient("http://127.0.0.1:1", "v23.0", "")
