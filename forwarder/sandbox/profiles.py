"""What the sandbox's personalization service knows: profiles built from the events it ingested.

So the end-to-end story is real: a user's answer reflects exactly the events the forwarder
delivered for that user. Rules (over the last 30 days):

- ``viewed_products_30d``: the user's viewed products (``product_view``), latest first;
- ``purchase_count_30d``: the user's ``purchase`` events;
- ``section``: ``premium_users`` with 3 purchases or more, else ``cart_abandoners`` with products
  added to the cart and not bought since, else ``new_users`` when nothing is known of the user,
  else ``default``;
- ``recommended_products``: the most viewed products of all users, minus those the user bought.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

WINDOW_S = 30 * 86400
PREMIUM_PURCHASES = 3
RECOMMENDED = 5
VIEWED_KEPT = 20
TOP_KEPT = 50  # enough that RECOMMENDED remain after removing what a user bought
TOP_EVERY_S = 1.0


@dataclass
class Profile:
    views: list[tuple[float, str]] = field(default_factory=list)
    purchases: list[float] = field(default_factory=list)
    bought: set[str] = field(default_factory=set)
    cart: set[str] = field(default_factory=set)
    events: int = 0


class Profiles:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._users: dict[str, Profile] = {}
        self._views: Counter[str] = Counter()
        self._top_products: list[str] = []
        self._top_at = float("-inf")

    def _top(self, now: float) -> list[str]:
        """The most viewed products, recounted at most once a second: a full count per answer
        would cost the sandbox milliseconds at 200 answers/s, slowing the ingest it serves too."""
        if now - self._top_at >= TOP_EVERY_S or not self._top_products:
            self._top_products = [p for p, _ in self._views.most_common(TOP_KEPT)]
            self._top_at = now
        return self._top_products

    def add(self, events: Iterable[Mapping[str, Any]], now: float | None = None) -> None:
        now = time.time() if now is None else now
        for event in events:
            user = event.get("user_id")
            if not isinstance(user, str) or not user:
                continue
            profile = self._users.get(user)
            if profile is None:
                profile = self._users[user] = Profile()
            profile.events += 1
            kind, product = event.get("event_type"), event.get("product_id")
            if kind == "product_view" and isinstance(product, str):
                profile.views.append((now, product))
                del profile.views[:-VIEWED_KEPT]
                self._views[product] += 1
            elif kind == "add_to_cart" and isinstance(product, str):
                profile.cart.add(product)
            elif kind == "purchase":
                profile.purchases.append(now)
                items = event.get("items")
                for item in items if isinstance(items, list) else ():
                    if isinstance(item, dict) and isinstance(item.get("product_id"), str):
                        profile.bought.add(item["product_id"])
                profile.cart.clear()

    def answer(self, user_id: str, now: float | None = None) -> dict[str, Any]:
        """``section`` and ``outputs`` for one user, as the personalization service answers."""
        now = time.time() if now is None else now
        profile = self._users.get(user_id, Profile())
        since = now - WINDOW_S
        viewed: list[str] = []
        for when, product in reversed(profile.views):
            if when >= since and product not in viewed:
                viewed.append(product)
        purchases = sum(1 for when in profile.purchases if when >= since)
        if purchases >= PREMIUM_PURCHASES:
            section = "premium_users"
        elif profile.cart - profile.bought:
            section = "cart_abandoners"
        elif profile.events == 0:
            section = "new_users"
        else:
            section = "default"
        recommended = [p for p in self._top(now) if p not in profile.bought][:RECOMMENDED]
        outputs: dict[str, Any] = {
            "recommended_products": recommended,
            "customer_tier": "premium" if section == "premium_users" else "standard",
            "purchase_count_30d": purchases,
            "viewed_products_30d": viewed,
        }
        if section == "premium_users":
            outputs["exclusive_offers"] = ["offer_10", "offer_20"]
        return {"section": section, "outputs": outputs}
