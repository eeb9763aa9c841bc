"""Dead letters and tier records too large for their topic (issue 27 item 1), in virtual time.

A broker refuses a record over the topic's max.message.bytes with a final error; the writer
used to retry it for ever while that final error stopped fetching on every partition. Now the
record is fitted to the topic (compressed or cut, with headers saying so) and nothing else is
held up.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import os

import orjson
import pytest

from forwarder.core import fitting
from forwarder.core.fitting import record_size
from forwarder.core.headers import header_value
from forwarder.ports import PublishResult
from tests.harness import TOPIC, Harness

DLQ = f"{TOPIC}.dlq"
KAFKA_DEFAULT = 1_048_588


def _big_event(size: int, compressible: bool) -> bytes:
    note = "x" * size if compressible else base64.b64encode(os.urandom(size * 3 // 4)).decode()
    event = {
        "event_id": "big",
        "event_type": "page_view",
        "user_id": "u",
        "timestamp": "2026-06-01T00:00:00Z",
        "page_url": "https://shop.example/p",
        "note": note,
    }
    return orjson.dumps(event)


@pytest.mark.parametrize("learnt", ["at_start", "on_refusal", "unreadable"])
def test_a_dead_letter_over_the_topic_limit_is_cut_and_nothing_else_stops(learnt: str) -> None:
    h = Harness(seed=11)
    h.publisher.limits[DLQ] = KAFKA_DEFAULT
    if learnt == "at_start":
        h.publisher.known[DLQ] = KAFKA_DEFAULT
    h.publisher.configs_readable = learnt != "unreadable"
    big = _big_event(2_000_000, compressible=False)
    try:
        h.start()
        h.produce(30)
        h.produce_value(big)
        h.produce(30)
        h.run_until(h.all_finished, 120, "every record delivered or dead-lettered and committed")
        assert len(h.delivered()) == 60
        (letter,) = h.dead_letters()
        assert record_size(letter.key, letter.value, letter.headers) <= KAFKA_DEFAULT
        assert big.startswith(letter.value or b"") and len(letter.value or b"") > 500_000
        assert header_value(letter.headers, fitting.VALUE_TRUNCATED) == b"true"
        assert header_value(letter.headers, fitting.VALUE_ORIGINAL_BYTES) == str(len(big)).encode()
        digest = hashlib.sha256(big).hexdigest().encode()
        assert header_value(letter.headers, fitting.VALUE_SHA256) == digest
        assert header_value(letter.headers, "forwarder.error.reason") == b"too_large"
        assert header_value(letter.headers, "forwarder.original.offset") == b"10"
        assert h.readiness()[0], h.readiness()
    finally:
        h.stop()


def test_a_compressible_dead_letter_is_written_whole_compressed() -> None:
    h = Harness(seed=12)
    h.publisher.limits[DLQ] = h.publisher.known[DLQ] = KAFKA_DEFAULT
    big = _big_event(3_000_000, compressible=True)
    try:
        h.start()
        h.produce_value(big)
        h.produce(10)
        h.run_until(h.all_finished, 60, "every record finished")
        (letter,) = h.dead_letters()
        assert header_value(letter.headers, fitting.VALUE_ENCODING) == b"gzip"
        assert gzip.decompress(letter.value or b"") == big
    finally:
        h.stop()


def test_a_tier_record_too_large_for_its_tier_is_dead_lettered_not_wedged() -> None:
    h = Harness(seed=13)
    tier = f"{TOPIC}.retry.1"
    h.publisher.limits[tier] = 50_000  # lowered by hand after start-up: not known yet
    big = _big_event(200_000, compressible=False)
    h.endpoint.failing_ids = {"big"}  # its batches fail while the others are accepted: parked
    try:
        h.start()
        h.produce_value(big)
        for _ in range(60):  # traffic, so that the endpoint is seen working meanwhile
            if h.dead_letters():
                break
            h.produce(5)
            h.run_for(0.5)
        h.run_until(h.all_finished, 120, "every record finished")
        assert list(h.dead_letter_reasons().values()) == ["too_large"]
        (letter,) = h.dead_letters()
        assert letter.value == big, "the dead-letter topic takes it whole"
        assert all(r.value != big for r in h.broker.records(tier)), "it never fit the tier"
    finally:
        h.stop()


def test_an_error_about_one_record_holds_up_that_record_only() -> None:
    h = Harness(seed=14)
    refused = PublishResult(False, "CorruptRecordException", False, record_level=True)
    h.publisher.record_failure = lambda topic, value: refused if topic == DLQ else None
    try:
        h.start()
        h.produce(60, malformed_every=20)  # 3 dead letters, each refused for now
        h.run_until(lambda: len(h.delivered()) == 57, 60, "the valid events delivered")
        assert h.readiness()[0], "one record's error must not make the topic unwritable"
        h.produce(30)
        h.run_until(lambda: len(h.delivered()) == 87, 60, "fetching goes on")
        h.publisher.record_failure = None
        h.run_until(h.all_finished, 60, "the refused records written once the fault is gone")
    finally:
        h.stop()
