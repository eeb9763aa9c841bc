"""``dlq replay`` keeps its progress per selection: the default group derived from the options."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from forwarder.core import dead_letters as dl
from forwarder.core.dead_letters import Selection, progress_group

BASE = "forwarder.replay"


def test_the_same_options_resume_the_same_group_whatever_their_order() -> None:
    one = progress_group(BASE, Selection(statuses=(404, 400), reasons=("rejected",)))
    two = progress_group(BASE, Selection(reasons=("rejected",), statuses=(400, 404)))
    assert one == two
    assert one.startswith(f"{BASE}.") and len(one) == len(BASE) + 17


def test_every_option_that_changes_what_is_replayed_where_gets_its_own_group() -> None:
    when = datetime(2026, 11, 22, 10, tzinfo=UTC)
    groups = [
        progress_group(BASE, Selection()),
        progress_group(BASE, Selection(statuses=(404,))),
        progress_group(BASE, Selection(codes=(404,))),
        progress_group(BASE, Selection(statuses=(404,), since=when)),
        progress_group(BASE, Selection(statuses=(404,), until=when)),
        progress_group(BASE, Selection(reasons=("schema_violation",))),
        progress_group(BASE, Selection(reasons=("schema_violation",)), revalidate=True),
        progress_group(BASE, Selection(reasons=("schema_violation",)), to="elsewhere"),
        progress_group(BASE, Selection(destinations=("db.t",))),
    ]
    assert len(set(groups)) == len(groups), groups
    assert groups[0] == f"{BASE}.all"


def _letter(value: bytes, limit: int, carried: list[tuple[str, bytes]] | None = None) -> Any:
    from forwarder.core.fitting import fit
    from forwarder.core.headers import Failure, dead_letter_headers
    from tests.fakes import FakeRecord

    source = FakeRecord("clicks", 2, 40, 1_700_000_000_000, b"k", value, tuple(carried or ()))
    headers = dead_letter_headers(
        source, Failure("too_large", "big"), attempts=0, destination=None, now=1_780_000_000.0
    )
    fitted = fit(limit, source.key, source.value, headers)
    assert fitted is not None
    stored = FakeRecord("clicks.dlq", 0, 5, 0, fitted.key, fitted.value, tuple(fitted.headers))
    return source, stored, dl.parse(stored)


def test_a_cut_dead_letter_is_counted_and_never_holds_a_replayable_value() -> None:
    import os

    source, stored, letter = _letter(os.urandom(20_000), 5_000, [("trace", b"t1")])
    assert letter.truncated and letter.original_bytes == 20_000
    assert dl.stored_value(stored, letter) is None
    assert dl.matches(source.value, letter) and not dl.matches(source.value[:-1], letter)
    stats = dl.Stats()
    stats.add(letter, stored.value)
    assert stats.truncated == 1 and stats.as_json()["groups"][0]["truncated"] == 1
    # Replayed from the source record read again: its own headers and the origin.
    headers = dict(dl.replay_headers(stored, letter, "clicks.dlq", source))
    assert headers["trace"] == b"t1" and headers["forwarder.original.offset"] == b"40"
    assert "forwarder.value.truncated" not in headers


def test_a_compressed_dead_letter_holds_its_original() -> None:
    value = b'{"note": "' + b"x" * 20_000 + b'"}'
    _source, stored, letter = _letter(value, 5_000)
    assert not letter.truncated
    assert dl.stored_value(stored, letter) == value
    stats = dl.Stats()
    stats.add(letter, stored.value)
    assert stats.compressed == 1
    assert stats.as_json()["groups"][0]["samples"][0].startswith('{"note": "xxx')
