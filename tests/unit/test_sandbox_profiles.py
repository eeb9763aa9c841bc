"""The sandbox's personalization answers: derived from the events it ingested (pure)."""

from forwarder.sandbox.config import Faults
from forwarder.sandbox.faults import service_s
from forwarder.sandbox.profiles import Profiles


def _events(user: str, *kinds: tuple[str, str]) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    for kind, product in kinds:
        event: dict[str, object] = {"user_id": user, "event_type": kind, "product_id": product}
        if kind == "purchase":
            event["items"] = [{"product_id": product}]
        events.append(event)
    return events


def test_sections_follow_the_rules_over_ingested_events() -> None:
    profiles = Profiles()
    profiles.add(_events("viewer", ("product_view", "a"), ("product_view", "b")), now=100.0)
    profiles.add(_events("cart", ("add_to_cart", "c")), now=100.0)
    profiles.add(_events("vip", *[("purchase", f"p{i}") for i in range(3)]), now=100.0)
    assert profiles.answer("viewer", now=100.0)["section"] == "default"
    assert profiles.answer("cart", now=100.0)["section"] == "cart_abandoners"
    vip = profiles.answer("vip", now=100.0)
    assert vip["section"] == "premium_users"
    assert vip["outputs"]["purchase_count_30d"] == 3
    assert vip["outputs"]["exclusive_offers"]
    assert profiles.answer("stranger", now=100.0)["section"] == "new_users"


def test_views_latest_first_and_recommendations_skip_what_the_user_bought() -> None:
    profiles = Profiles()
    profiles.add(_events("u", ("product_view", "a"), ("product_view", "b"), ("product_view", "a")))
    profiles.add(_events("w", ("product_view", "b"), ("product_view", "b"), ("purchase", "b")))
    assert profiles.answer("u")["outputs"]["viewed_products_30d"] == ["a", "b"]
    assert profiles.answer("u")["outputs"]["recommended_products"] == ["b", "a"]
    assert profiles.answer("w")["outputs"]["recommended_products"] == ["a"]


def test_events_older_than_30_days_no_longer_count() -> None:
    profiles = Profiles()
    profiles.add(_events("u", ("purchase", "x")), now=0.0)
    assert profiles.answer("u", now=31 * 86400.0)["outputs"]["purchase_count_30d"] == 0


def test_capacity_models_service_time_grows_with_the_requests_in_service() -> None:
    faults = Faults(capacity=4, service_ms=100)
    assert [round(service_s(faults, busy), 3) for busy in (1, 2, 4)] == [0.1, 0.125, 0.175]
    assert service_s(Faults(service_ms=50), 10) == 0.05  # no capacity: a fixed service time
