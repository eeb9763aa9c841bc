"""``dlq replay`` keeps its progress per selection: the default group derived from the options."""

from __future__ import annotations

from datetime import UTC, datetime

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
