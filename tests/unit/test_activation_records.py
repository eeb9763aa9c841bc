"""Activation as data: triggers from events, answers parsed, the output record's shape."""

import orjson

from forwarder.core.activation_records import (
    Answer,
    BoundedLabels,
    CallError,
    error_of,
    output_record,
    parse_answer,
    request_body,
    trigger_of,
)

EVENT = {
    "event_id": "e1",
    "event_type": "product_view",
    "user_id": "u1",
    "product_id": "sku-1",
    "page_url": "/p/1",
    "time": 1700000000,
}


def test_a_trigger_takes_the_user_field_and_the_configured_context() -> None:
    trigger = trigger_of(
        EVENT,
        "user_id",
        {"current_product_id": "product_id", "device_type": "device_type"},
        "uu",
        5.0,
    )
    assert trigger is not None
    assert trigger.context == (("current_product_id", "sku-1"),)  # absent fields are left out
    assert request_body(trigger) == {"current_product_id": "sku-1", "user_id": "u1"}
    assert (trigger.event_id, trigger.uuid, trigger.time) == ("e1", "uu", 1700000000)
    assert trigger_of(EVENT, "td_client_id", {}, "uu", 5.0) is None


def test_the_output_record_has_the_design_shape() -> None:
    trigger = trigger_of(EVENT, "user_id", {}, "uu", 0.0)
    assert trigger is not None
    answer = Answer("premium_users", {"recommended_products": ["p1"]})
    record = orjson.loads(output_record(trigger, answer, "service", 0.0, 12.34))
    assert record == {
        "user_id": "u1",
        "section": "premium_users",
        "outputs": {"recommended_products": ["p1"]},
        "source": "service",
        "trigger": {
            "event_id": "e1",
            "uuid": "uu",
            "event_type": "product_view",
            "time": 1700000000,
        },
        "requested_at": "1970-01-01T00:00:00.000Z",
        "latency_ms": 12.3,
        "error": None,
    }
    fallback = orjson.loads(
        output_record(
            trigger, None, "fallback", 0.0, 1.0, CallError(503, None, "HTTP 503"), {"x": 1}
        )
    )
    assert fallback["section"] == "fallback"
    assert fallback["outputs"] == {"x": 1}
    assert fallback["error"] == {"status": 503, "code": None, "message": "HTTP 503"}


def test_answers_and_errors_are_parsed_without_raising() -> None:
    good = parse_answer(b'{"user_id":"u","section":"default","outputs":{"a":1}}')
    assert good == Answer("default", {"a": 1})
    assert isinstance(parse_answer(b"not json"), CallError)
    assert isinstance(parse_answer(b'{"section": 1}'), CallError)
    assert error_of(500, b'{"error":{"code":"E1","message":"boom"}}') == CallError(
        500, "E1", "boom"
    )
    assert error_of(503, b"<html>") == CallError(503, None, "HTTP 503")


def test_section_labels_are_capped_and_the_rest_is_other() -> None:
    labels = BoundedLabels(2)
    assert [labels.label(s) for s in ("a", "b", "c", "a")] == ["a", "b", "other", "a"]
