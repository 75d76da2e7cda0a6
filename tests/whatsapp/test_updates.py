"""Webhook payloads (tests/fixtures/whatsapp) parsed into typed events, and their JSON round trip."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.whatsapp.updates import (
    CustomerIdentity,
    IdentityChange,
    InboundMessage,
    MalformedWebhook,
    StatusUpdate,
    WebhookBatch,
    event_from_json_dict,
    parse_webhook,
)
from tests.whatsapp.conftest import FIXTURES, load_payload

PN_ID = "106540352242922"
PHONE = "6281234567890"
BSUID = "ID.1502576394655843"
OUR_WAMID = "wamid.HBgNNjI4MTIzNDU2Nzg5MBUCABEYEjQ0MTVGQjFCNzZBRjE0QUY4QgA="
ALL_FIXTURES = sorted(p.stem for p in FIXTURES.glob("*.json"))


def parse(name: str) -> WebhookBatch:
    return parse_webhook(load_payload(name))


def only_message(name: str) -> InboundMessage:
    batch = parse(name)
    assert batch.rejected == ()
    assert batch.ignored == ()
    (message,) = batch.events
    assert isinstance(message, InboundMessage)
    return message


def only_status(name: str) -> StatusUpdate:
    batch = parse(name)
    assert batch.rejected == ()
    (status,) = batch.events
    assert isinstance(status, StatusUpdate)
    return status


# Every fixture ------------------------------------------------------------------------------


def test_there_is_a_fixture_for_every_case() -> None:
    assert len(ALL_FIXTURES) >= 28


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_every_fixture_parses_and_every_event_survives_a_json_round_trip(name: str) -> None:
    batch = parse(name)
    assert batch.events or batch.ignored
    for event in batch.events:
        assert event.phone_number_id
        encoded = json.loads(json.dumps(event.to_json_dict()))  # what Pub/Sub carries
        assert encoded["kind"] == event.event_kind
        rebuilt = event_from_json_dict(encoded)
        assert type(rebuilt) is type(event)
        assert rebuilt == event


def test_round_trip_covers_every_event_kind() -> None:
    kinds = {event.event_kind for name in ALL_FIXTURES for event in parse(name).events}
    assert kinds == {"message", "status", "identity_change"}


def test_round_trip_keeps_aware_timestamps_and_nested_types() -> None:
    message = only_message("document")
    rebuilt = event_from_json_dict(json.loads(json.dumps(message.to_json_dict())))
    assert isinstance(rebuilt, InboundMessage)
    assert rebuilt.timestamp == datetime(2026, 1, 1, tzinfo=UTC)
    assert rebuilt.timestamp.tzinfo is not None
    assert rebuilt.media == message.media
    assert rebuilt.customer == message.customer


@pytest.mark.parametrize(
    "data",
    [
        {"kind": "carrier_pigeon", "data": {}},
        {"data": {}},
        {"kind": "message"},
        {"kind": "message", "data": {"id": "wamid.x"}},
        {"kind": "status", "data": {"id": "wamid.x", "timestamp": "yesterday"}},
    ],
)
def test_event_from_json_dict_refuses_what_it_did_not_write(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="event"):
        event_from_json_dict(data)


# Customer identity ------------------------------------------------------------------------------


def test_text_with_phone_and_bsuid() -> None:
    message = only_message("text_phone_and_bsuid")
    assert message.phone_number_id == PN_ID
    assert message.display_phone_number == "6221500800"
    assert message.type == "text"
    assert message.supported
    assert message.text == "Halo, apakah toko buka hari Minggu?"
    assert message.text_for_ai == message.text
    assert message.timestamp == datetime.fromtimestamp(1767225600, tz=UTC)
    assert message.customer == CustomerIdentity(
        bsuid=BSUID, parent_bsuid=None, phone=PHONE, username=None, profile_name="Budi Santoso"
    )
    assert message.raw is None


def test_text_from_a_username_user_without_phone() -> None:
    message = only_message("text_bsuid_username_no_phone")
    assert message.customer == CustomerIdentity(
        bsuid="ID.13491208655302741918",
        parent_bsuid="ID.ENT.11815799212886844830",
        phone=None,
        username="sari.bdg",
        profile_name="Sari",
    )
    assert message.text_for_ai == "Hi! Do you ship to Bandung?"


def test_identity_is_completed_from_the_contact_when_the_message_lacks_a_field() -> None:
    payload = load_payload("text_phone_and_bsuid")
    del payload["entry"][0]["changes"][0]["value"]["messages"][0]["from_user_id"]
    (message,) = parse_webhook(payload).messages
    assert message.customer.bsuid == BSUID  # from contacts[].user_id, matched by wa_id
    assert message.customer.phone == PHONE


def test_each_message_gets_its_own_contact_when_a_change_has_several() -> None:
    batch = parse("multi_entry_delivery")
    by_phone = {m.customer.phone: m.customer for m in batch.messages}
    assert by_phone["6281234567890"].profile_name == "Budi Santoso"
    assert by_phone["6285712345678"] == CustomerIdentity(
        bsuid="ID.9876543210123456", phone="6285712345678", profile_name="Dewi"
    )


def test_a_lone_contact_identifies_a_message_that_names_nobody() -> None:
    payload = load_payload("text_bsuid_username_no_phone")
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    del message["from_user_id"], message["from_parent_user_id"]
    (parsed,) = parse_webhook(payload).messages
    assert parsed.customer.bsuid == "ID.13491208655302741918"
    assert parsed.customer.username == "sari.bdg"


def test_a_lone_contact_that_contradicts_the_message_is_not_merged() -> None:
    payload = load_payload("text_phone_and_bsuid")
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["user_id"] = "ID.999"  # some other customer
    value["contacts"][0]["wa_id"] = "6280000000000"
    (message,) = parse_webhook(payload).messages
    assert message.customer == CustomerIdentity(bsuid=BSUID, phone=PHONE)


def test_a_message_with_neither_phone_nor_bsuid_is_rejected_alone() -> None:
    batch = parse("message_without_identity")
    (rejected,) = batch.rejected
    assert "neither a phone number nor a business-scoped user ID" in rejected.reason
    assert rejected.phone_number_id == PN_ID
    assert rejected.raw["text"] == {"body": "who am I?"}
    (message,) = batch.messages  # the other message of the same change still arrives
    assert message.text == "Masih ada stok?"


# Message types ---------------------------------------------------------------------------------


def test_image_with_caption_and_reply_context() -> None:
    message = only_message("image")
    assert message.media is not None
    assert message.media.id == "1003383421387256"
    assert message.media.mime_type == "image/jpeg"
    assert message.media.sha256 == "3ytSIPHwiIGDvyN3Y/mSu0S1MhXVJ2Ba5iDFv8G8XNM="
    assert message.text_for_ai == "Yang warna ini ada?"
    assert message.context is not None
    assert message.context.message_id == OUR_WAMID
    assert message.context.from_phone == "6221500800"
    assert not message.context.forwarded


def test_voice_note() -> None:
    message = only_message("audio_voice")
    assert message.type == "audio"
    assert message.media is not None
    assert message.media.voice
    assert message.media.mime_type == "audio/ogg; codecs=opus"
    assert message.text_for_ai is None


def test_video_document_and_sticker() -> None:
    video, document, sticker = (only_message(n) for n in ("video", "document", "sticker"))
    assert video.media is not None
    assert video.text_for_ai == "Barangnya sampai begini"
    assert document.media is not None
    assert document.media.filename == "transfer-0412.pdf"
    assert document.text_for_ai == "Bukti transfer"
    assert sticker.media is not None
    assert sticker.media.mime_type == "image/webp"
    assert not sticker.media.voice
    assert sticker.text_for_ai is None


def test_location() -> None:
    message = only_message("location")
    assert message.location is not None
    assert (message.location.latitude, message.location.longitude) == (-6.175392, 106.827153)
    assert message.text_for_ai == "location: Monas, Gambir, Jakarta Pusat (-6.175392,106.827153)"


def test_location_without_name_or_address() -> None:
    payload = load_payload("location")
    location = payload["entry"][0]["changes"][0]["value"]["messages"][0]["location"]
    del location["name"], location["address"]
    (message,) = parse_webhook(payload).messages
    assert message.text_for_ai == "location: (-6.175392,106.827153)"


def test_shared_contacts_are_kept_raw() -> None:
    message = only_message("contacts")
    assert message.supported
    (card,) = message.contacts
    assert card["name"]["formatted_name"] == "Rina Wijaya"
    assert card["phones"][0]["wa_id"] == "6281298765432"
    assert message.text_for_ai is None


def test_interactive_button_reply() -> None:
    message = only_message("interactive_button_reply")
    assert message.interactive is not None
    assert (message.interactive.type, message.interactive.id) == ("button_reply", "confirm_booking")
    assert message.text_for_ai == "Ya, pesan"
    assert message.context is not None
    assert message.context.message_id == OUR_WAMID


def test_interactive_list_reply() -> None:
    message = only_message("interactive_list_reply")
    assert message.interactive is not None
    assert message.interactive.type == "list_reply"
    assert message.interactive.id == "size_m"
    assert message.interactive.description == "Lingkar dada 100 cm"
    assert message.text_for_ai == "Ukuran M"


def test_flow_reply_is_kept_raw() -> None:
    message = only_message("interactive_nfm_reply")
    assert message.supported
    assert message.interactive is not None
    assert message.interactive.type == "nfm_reply"
    assert message.interactive.raw is not None
    assert json.loads(message.interactive.raw["response_json"])["flow_token"] == "booking-42"
    assert message.text_for_ai is None


def test_template_quick_reply_button() -> None:
    message = only_message("button")
    assert message.button is not None
    assert (message.button.payload, message.button.text) == ("STOP_PROMOS", "Berhenti promo")
    assert message.text_for_ai == "Berhenti promo"


def test_template_button_without_text_falls_back_to_payload() -> None:
    payload = load_payload("button")
    del payload["entry"][0]["changes"][0]["value"]["messages"][0]["button"]["text"]
    (message,) = parse_webhook(payload).messages
    assert message.text_for_ai == "STOP_PROMOS"


def test_reaction_and_its_removal() -> None:
    added, removed = only_message("reaction"), only_message("reaction_removed")
    assert added.reaction is not None
    assert added.reaction.message_id == OUR_WAMID
    assert added.reaction.emoji == "\N{THUMBS UP SIGN}"
    assert added.text_for_ai == "\N{THUMBS UP SIGN}"
    assert removed.reaction is not None
    assert removed.reaction.emoji is None
    assert removed.text_for_ai is None


def test_order_is_kept_raw() -> None:
    message = only_message("order")
    assert message.order is not None
    assert message.order["product_items"][0]["product_retailer_id"] == "SKU-KAOS-M"
    assert message.text_for_ai is None


def test_unsupported_message_keeps_its_errors_and_raw_payload() -> None:
    message = only_message("unsupported_with_errors")
    assert message.type == "unsupported"
    assert not message.supported
    (error,) = message.errors
    assert (error.code, error.title) == (131051, "Message type unknown")
    assert error.details == "Message type is currently not supported."
    assert message.raw is not None
    assert message.raw["id"] == message.id
    assert message.text_for_ai is None


def test_unknown_future_type_is_kept_not_dropped() -> None:
    message = only_message("unknown_future_type")
    assert message.type == "hologram"
    assert not message.supported
    assert message.raw is not None
    assert message.raw["hologram"]["duration_ms"] == 4200
    assert message.customer.phone == PHONE


def test_known_type_with_a_broken_block_is_kept_as_unsupported() -> None:
    payload = load_payload("image")
    del payload["entry"][0]["changes"][0]["value"]["messages"][0]["image"]["id"]
    (message,) = parse_webhook(payload).messages
    assert message.type == "image"
    assert not message.supported
    assert message.media is None
    assert message.raw is not None


def test_click_to_whatsapp_ad_referral_is_kept() -> None:
    payload = load_payload("text_phone_and_bsuid")
    referral = {
        "source_url": "https://fb.me/3cr4Wqqkv",
        "source_id": "120226305854810726",
        "source_type": "ad",
        "headline": "Diskon 20% minggu ini",
        "ctwa_clid": "ARAkLkA8rmlFeiCktEJQ-QTwRiyYHAFDLMNDBH0CD3qpjd0HR4irJ6LEkR7JwFF4XvnO2E4",
    }
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["referral"] = referral
    (message,) = parse_webhook(payload).messages
    assert message.referral == referral


def test_forwarded_flags() -> None:
    payload = load_payload("text_phone_and_bsuid")
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["context"] = {
        "forwarded": True,
        "frequently_forwarded": True,
    }
    (message,) = parse_webhook(payload).messages
    assert message.context is not None
    assert message.context.forwarded
    assert message.context.frequently_forwarded
    assert message.context.message_id is None


@pytest.mark.parametrize("timestamp", ["soon", None, True, [1767225600]])
def test_a_message_with_a_bad_timestamp_is_rejected(timestamp: Any) -> None:
    payload = load_payload("text_phone_and_bsuid")
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = timestamp
    batch = parse_webhook(payload)
    assert batch.events == ()
    (rejected,) = batch.rejected
    assert "timestamp" in rejected.reason


def test_a_message_without_id_is_rejected() -> None:
    payload = load_payload("text_phone_and_bsuid")
    del payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    (rejected,) = parse_webhook(payload).rejected
    assert rejected.reason == "message without an id"


# Identity changes --------------------------------------------------------------------------------


def test_user_changed_number() -> None:
    (change,) = parse("system_user_changed_number").events
    assert isinstance(change, IdentityChange)
    assert change.kind == "user_changed_number"
    assert change.phone_number_id == PN_ID
    assert change.old == CustomerIdentity(bsuid=BSUID, phone=PHONE, profile_name="Budi Santoso")
    assert change.new_phone == "6289876543210"
    assert change.new_bsuid == "ID.2718281828459045"
    assert change.new == CustomerIdentity(
        bsuid="ID.2718281828459045", phone="6289876543210", profile_name="Budi Santoso"
    )


def test_user_changed_number_without_new_bsuid_drops_the_old_one() -> None:
    """A BSUID belongs to a phone number, so the old one is no longer valid."""
    payload = load_payload("system_user_changed_number")
    del payload["entry"][0]["changes"][0]["value"]["messages"][0]["system"]["user_id"]
    (change,) = parse_webhook(payload).identity_changes
    assert change.new.bsuid is None
    assert change.new.phone == "6289876543210"


@pytest.mark.parametrize("system_type", ["user_changed_number", "customer_changed_number"])
def test_legacy_user_changed_number_with_customer_field(system_type: str) -> None:
    payload = load_payload("system_user_changed_number")
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    del message["from"], message["from_user_id"]
    message["system"] = {
        "body": "User Budi changed from 6281234567890 to 6289876543210",
        "new_wa_id": "6289876543210",
        "customer": "6281234567890",
        "type": system_type,
    }
    (change,) = parse_webhook(payload).identity_changes
    assert change.kind == "user_changed_number"
    assert change.old.phone == "6281234567890"
    assert change.new_phone == "6289876543210"


def test_user_changed_user_id() -> None:
    (change,) = parse("system_user_changed_user_id").events
    assert isinstance(change, IdentityChange)
    assert change.kind == "user_changed_user_id"
    assert change.old == CustomerIdentity(
        bsuid="ID.13491208655302741918", parent_bsuid="ID.ENT.11815799212886844830", profile_name="Sari"
    )
    assert change.new_phone is None
    assert change.new_bsuid == "ID.31415926535897932"
    assert change.new_parent_bsuid == "ID.ENT.27182818284590452353"
    assert change.new.bsuid == "ID.31415926535897932"
    assert change.new.phone is None


def test_user_changed_user_id_drops_the_phone_it_had() -> None:
    """Meta sends it when the number changed and the new one may not be shared: the old
    number is someone else's now, and must not be written to."""
    payload = load_payload("system_user_changed_user_id")
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["from"] = PHONE
    (change,) = parse_webhook(payload).identity_changes
    assert change.old.phone == PHONE
    assert change.new == CustomerIdentity(
        bsuid="ID.31415926535897932",
        parent_bsuid="ID.ENT.27182818284590452353",
        phone=None,
        profile_name="Sari",
    )


def test_group_messages_and_their_statuses_are_set_aside_with_a_reason() -> None:
    """A message in a WhatsApp group must not be answered privately to its author."""
    payload = load_payload("text_phone_and_bsuid")
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["group_id"] = "120363025246125486"
    batch = parse_webhook(payload)
    assert batch.messages == ()
    assert "group" in batch.rejected[0].reason
    status_payload = load_payload("status_delivered")
    status = status_payload["entry"][0]["changes"][0]["value"]["statuses"][0]
    status.update(recipient_id="120363025246125486", recipient_type="group")
    batch = parse_webhook(status_payload)
    assert batch.statuses == ()
    assert "group" in batch.rejected[0].reason


def test_user_changed_user_id_reads_the_old_bsuid_from_the_body_when_nothing_else_has_it() -> None:
    payload = load_payload("system_user_changed_user_id")
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    del message["from_user_id"], message["system"]["previous_user_id"]
    (change,) = parse_webhook(payload).identity_changes
    assert change.old.bsuid == "ID.13491208655302741918"


def test_identity_change_without_a_new_bsuid_is_rejected() -> None:
    payload = load_payload("system_user_changed_user_id")
    del payload["entry"][0]["changes"][0]["value"]["messages"][0]["system"]["user_id"]
    batch = parse_webhook(payload)
    assert batch.events == ()
    assert "new BSUID" in batch.rejected[0].reason


def test_other_system_messages_are_kept_as_unsupported_messages() -> None:
    payload = load_payload("system_user_changed_number")
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message["system"] = {"body": "Customer security code changed", "type": "customer_identity_changed"}
    (kept,) = parse_webhook(payload).messages
    assert kept.type == "system"
    assert not kept.supported
    assert kept.raw is not None
    assert kept.raw["system"]["type"] == "customer_identity_changed"


# Statuses ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "state"), [("status_sent", "sent"), ("status_delivered", "delivered")])
def test_sent_and_delivered_statuses(name: str, state: str) -> None:
    status = only_status(name)
    assert status.id == OUR_WAMID
    assert status.status == state
    assert status.phone_number_id == PN_ID
    assert status.recipient == CustomerIdentity(phone=PHONE)
    assert status.conversation is not None
    assert status.conversation["origin"]["type"] == "service"
    assert status.pricing is not None
    assert status.pricing["pricing_model"] == "PMP"
    assert status.error_code is None
    assert status.error_title is None


def test_read_status_takes_username_from_contacts() -> None:
    status = only_status("status_read")
    assert status.status == "read"
    assert status.timestamp == datetime.fromtimestamp(1767225700, tz=UTC)
    assert status.recipient == CustomerIdentity(
        bsuid=BSUID, phone=PHONE, username="budi.s", profile_name="Budi Santoso"
    )


def test_status_for_a_message_sent_to_a_bsuid() -> None:
    status = only_status("status_bsuid_only")
    assert status.recipient == CustomerIdentity(
        bsuid="ID.13491208655302741918", parent_bsuid="ID.ENT.11815799212886844830"
    )


def test_failed_status_exposes_the_error() -> None:
    status = only_status("status_failed")
    assert status.status == "failed"
    assert status.error_code == 131047
    assert status.error_title == "Re-engagement message"
    assert status.errors[0].details is not None
    assert "24 hours" in status.errors[0].details


def test_unknown_status_values_are_kept() -> None:
    payload = load_payload("status_sent")
    payload["entry"][0]["changes"][0]["value"]["statuses"][0]["status"] = "played"
    (status,) = parse_webhook(payload).statuses
    assert status.status == "played"


# Deliveries as a whole ---------------------------------------------------------------------------


def test_multi_entry_delivery_yields_everything_in_order_with_its_phone_number_id() -> None:
    batch = parse("multi_entry_delivery")
    assert batch.rejected == ()
    assert batch.ignored == ()
    assert [(type(e).__name__, e.phone_number_id) for e in batch.events] == [
        ("InboundMessage", PN_ID),
        ("InboundMessage", PN_ID),
        ("StatusUpdate", PN_ID),
        ("InboundMessage", "109876543210987"),
        ("StatusUpdate", "109876543210987"),
        ("StatusUpdate", "109876543210987"),
    ]
    assert len(batch.messages) == 3
    assert len(batch.statuses) == 3
    assert batch.identity_changes == ()
    assert [s.status for s in batch.statuses] == ["delivered", "read", "sent"]
    assert batch.messages[2].display_phone_number == "6281100220033"


def test_changes_for_other_fields_are_ignored_not_rejected() -> None:
    batch = parse("non_messages_field")
    assert batch.events == ()
    assert batch.rejected == ()
    (ignored,) = batch.ignored
    assert ignored.field == "message_template_status_update"
    assert ignored.entry_id == "102290129340398"


def test_bad_items_are_rejected_without_losing_the_rest() -> None:
    payload = load_payload("multi_entry_delivery")
    entries = payload["entry"]
    entries.append("not an entry")
    entries.append({"id": "1", "changes": [{"field": "messages", "value": "nope"}]})
    entries.append({"id": "2", "changes": [{"field": "messages", "value": {"messages": []}}]})
    entries[0]["changes"][0]["value"]["statuses"] = {"not": "a list"}
    entries[0]["changes"][1]["value"]["statuses"].append("not a status")
    entries[0]["changes"][1]["value"]["statuses"].append({"id": "wamid.x", "timestamp": "1"})
    batch = parse_webhook(payload)
    assert len(batch.events) == 6
    reasons = [r.reason for r in batch.rejected]
    assert reasons == [
        "statuses is not a list",
        "statuses item is not an object",
        "status without a status value",
        "entry without a changes list",
        "change without a value object",
        "messages change without metadata.phone_number_id",
    ]


def test_change_level_errors_are_reported() -> None:
    payload = load_payload("non_messages_field")
    payload["entry"][0]["changes"] = [
        {
            "field": "messages",
            "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "6221500800", "phone_number_id": PN_ID},
                "errors": [{"code": 131000, "title": "Something went wrong", "message": "Something went wrong"}],
            },
        }
    ]
    (rejected,) = parse_webhook(payload).rejected
    assert rejected.reason == "webhook-level error 131000: Something went wrong"


def test_parsing_does_not_modify_the_payload() -> None:
    payload = load_payload("multi_entry_delivery")
    before = copy.deepcopy(payload)
    parse_webhook(payload)
    assert payload == before


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([], "must be a JSON object"),
        ("{}", "must be a JSON object"),
        ({"entry": []}, "expected 'whatsapp_business_account'"),
        ({"object": "page", "entry": []}, "'page'"),
        ({"object": "whatsapp_business_account"}, "entry must be a list"),
        ({"object": "whatsapp_business_account", "entry": {"id": "1"}}, "entry must be a list"),
    ],
)
def test_wrong_top_level_shapes_raise(payload: Any, message: str) -> None:
    with pytest.raises(MalformedWebhook, match=message):
        parse_webhook(payload)


def test_malformed_webhook_is_a_value_error() -> None:
    assert issubclass(MalformedWebhook, ValueError)


def test_empty_entry_list_is_an_empty_batch() -> None:
    batch = parse_webhook({"object": "whatsapp_business_account", "entry": []})
    assert batch == WebhookBatch((), (), ())
