"""The dispatcher alone: which waiting batch a free sender takes next (pure, no loop)."""

from __future__ import annotations

from forwarder.core.budget import RetryBudget
from forwarder.core.decode import Event
from forwarder.core.dispatch import Dispatcher, Job
from tests.fakes import FakeRecord


def _job(destination: str, created: float, partition: int = 0, events: int = 1) -> Job:
    records = [FakeRecord("t", partition, i, 0, None, b"{}") for i in range(events)]
    batch = [Event(r, destination, b"{}", f"u{created}-{r.offset}") for r in records]
    return Job(destination, batch, created, RetryBudget(3))


def _never(_: str) -> bool:
    return False


def test_batches_are_taken_oldest_ready_first() -> None:
    d = Dispatcher(share_cap=4)
    fresh, retried, waiting = _job("a", 3.0), _job("b", 1.0), _job("c", 0.0)
    d.add(fresh)
    d.later(retried, ready_at=5.0)
    d.later(waiting, ready_at=9.0)
    assert d.take(6.0, _never) is retried, "a retried batch whose backoff ended comes first"
    assert d.take(6.0, _never) is fresh
    assert d.take(6.0, _never) is None, "the last one is still in its backoff"
    assert d.next_ready(6.0) == 9.0


def test_a_failing_destination_holds_at_most_its_share_even_alone() -> None:
    d = Dispatcher(share_cap=2)
    for i in range(4):
        d.add(_job("bad", float(i)))
    taken = [d.take(0.0, lambda dest: dest == "bad") for _ in range(4)]
    assert [t is not None for t in taken] == [True, True, False, False]
    d.done(taken[0])  # type: ignore[arg-type]
    assert d.take(0.0, lambda dest: dest == "bad") is not None


def test_a_healthy_destination_exceeds_its_share_only_while_no_other_waits() -> None:
    d = Dispatcher(share_cap=1)
    first, second, other = _job("a", 0.0), _job("a", 1.0), _job("b", 2.0)
    d.add(first)
    d.add(second)
    d.add(other)
    assert d.take(0.0, _never) is first
    assert d.take(0.0, _never) is other, "b waits: a is at its share"
    assert d.take(0.0, _never) is second, "nothing else waits: a may take one more"


def test_probes_cycle_through_every_waiting_batch_never_the_same_twice_in_a_row() -> None:
    d = Dispatcher(share_cap=4)
    jobs = [_job("a", float(i)) for i in range(3)]
    for job in jobs:
        d.later(job, ready_at=100.0)  # in their backoff: probes do not wait for it
    probed = []
    for _ in range(6):
        job = d.take_probe()
        assert job is not None
        probed.append(job)
        d.done(job)
        d.later(job, ready_at=100.0)  # it failed
    assert probed == jobs + jobs
    late = _job("b", 50.0)
    d.add(late)
    assert d.take_probe() is late, "a batch never probed goes before those that were"


def test_dropping_revoked_partitions_keeps_the_other_events() -> None:
    d = Dispatcher(share_cap=4)
    mixed = _job("a", 0.0, partition=0, events=2)
    mixed.events += _job("a", 0.0, partition=1, events=3).events
    d.add(mixed)
    d.later(_job("b", 1.0, partition=1), ready_at=0.0)
    assert d.drop({("t", 1)}) == 4
    assert len(d) == 1 and len(mixed.events) == 2
