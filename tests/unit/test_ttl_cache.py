"""The answer cache: entries live ttl_s, the least recently used goes first when full."""

from forwarder.core.ttl_cache import TtlLruCache


def test_an_entry_is_served_until_its_ttl_then_forgotten() -> None:
    cache: TtlLruCache[str, int] = TtlLruCache(10.0, 5)
    cache.put("a", 1, 0.0)
    assert cache.get("a", 9.9) == 1
    assert cache.get("a", 10.0) is None
    assert len(cache) == 0


def test_the_least_recently_used_entry_is_evicted_at_the_size_bound() -> None:
    cache: TtlLruCache[str, int] = TtlLruCache(60.0, 2)
    cache.put("a", 1, 0.0)
    cache.put("b", 2, 0.0)
    assert cache.get("a", 1.0) == 1  # a is now the most recent
    cache.put("c", 3, 2.0)
    assert cache.get("b", 2.0) is None
    assert cache.get("a", 2.0) == 1
    assert cache.get("c", 2.0) == 3
    assert len(cache) == 2


def test_a_ttl_of_zero_turns_the_cache_off() -> None:
    cache: TtlLruCache[str, int] = TtlLruCache(0.0, 10)
    cache.put("a", 1, 0.0)
    assert cache.get("a", 0.0) is None


def test_putting_again_refreshes_the_age() -> None:
    cache: TtlLruCache[str, int] = TtlLruCache(10.0, 10)
    cache.put("a", 1, 0.0)
    cache.put("a", 2, 8.0)
    assert cache.get("a", 15.0) == 2
