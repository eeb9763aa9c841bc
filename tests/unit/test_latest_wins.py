"""The pending-trigger queue: per user only the newest, bounded, stale ones dropped, each counted."""

from forwarder.core.latest_wins import QUEUE_FULL, SUPERSEDED, LatestWinsQueue, Trigger


def trig(user: str, at: float = 0.0, event_id: str = "e") -> Trigger:
    return Trigger(user, (("page_url", "/p"),), "page_view", event_id, f"u-{event_id}", None, at)


def test_a_newer_trigger_replaces_its_users_pending_one_and_keeps_its_place() -> None:
    queue = LatestWinsQueue(10, 60)
    assert queue.offer(trig("a", event_id="a1")) is None
    assert queue.offer(trig("b", event_id="b1")) is None
    assert queue.offer(trig("a", event_id="a2")) == SUPERSEDED
    assert len(queue) == 2
    first, _ = queue.pop(0.0)
    second, _ = queue.pop(0.0)
    assert first is not None and second is not None
    assert (first.event_id, second.event_id) == ("a2", "b1")
    assert queue.pop(0.0) == (None, 0)


def test_a_full_queue_drops_its_oldest_user() -> None:
    queue = LatestWinsQueue(2, 60)
    queue.offer(trig("a"))
    queue.offer(trig("b"))
    assert queue.offer(trig("c")) == QUEUE_FULL
    users = [queue.pop(0.0)[0] for _ in range(2)]
    assert [t.user_id for t in users if t] == ["b", "c"]


def test_triggers_older_than_max_age_are_dropped_when_their_turn_comes() -> None:
    queue = LatestWinsQueue(10, 5.0)
    queue.offer(trig("a", at=0.0))
    queue.offer(trig("b", at=0.0))
    queue.offer(trig("c", at=4.0))
    trigger, stale = queue.pop(6.0)
    assert trigger is not None and trigger.user_id == "c"
    assert stale == 2


def test_clear_counts_what_it_dropped() -> None:
    queue = LatestWinsQueue(10, 5.0)
    queue.offer(trig("a"))
    queue.offer(trig("b"))
    assert queue.clear() == 2
    assert len(queue) == 0


def test_identical_requests_share_a_key_and_other_context_does_not() -> None:
    one, two = trig("a", event_id="1"), trig("a", event_id="2")
    other = Trigger("a", (("page_url", "/q"),), "page_view", "3", "u3", None, 0.0)
    assert one.request_key == two.request_key
    assert one.request_key != other.request_key


def test_published_order_refuses_an_older_trigger_of_the_same_user_only() -> None:
    from forwarder.core.latest_wins import PublishedOrder

    order = PublishedOrder(max_users=2)
    assert order.admit("a", 2)
    assert not order.admit("a", 1)  # an older trigger of a, answered after a newer one
    assert order.admit("b", 1)  # other users are not compared
    assert order.superseded("a", 1) and not order.superseded("a", 2)
    assert order.admit("c", 5)  # a, the least recently published, is forgotten (bounded)
    assert order.admit("a", 1)
