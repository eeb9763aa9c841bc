"""In-memory fakes of the pipeline's ports, and an event loop whose clock is virtual.

``FakeBroker`` holds topics as lists of records per partition and the group's committed
offsets; ``FakeSource`` consumes from it like one group member (pause, resume, seek, commit,
rebalances on demand); ``FakePublisher`` appends to it, so parked records come back through the
retry tiers as they would from Kafka. ``FakeEndpoint`` answers each request by a mode that a test
changes at will (an outage, a 429 storm, receipts, 413 above a size, 3004 for poison events).

``VirtualTimeLoop`` runs coroutines with a clock that jumps to the next timer instead of
waiting for it, so a one-hour outage runs in milliseconds. Every fake awaits only timers, never
real I/O; a loop with nothing scheduled and nothing ready would wait forever, and raises instead.
"""

from __future__ import annotations

import asyncio
import math
import selectors
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import TopicPartition

from forwarder.core.classify import SendResult
from forwarder.core.fitting import record_size
from forwarder.core.headers import origin_of
from forwarder.ports import ACKNOWLEDGED, COMMITTED, Callback, CommitResult, PublishResult

Identity = tuple[str, int, int]  # where an event was first read: topic, partition, offset


def identity_of(record: FakeRecord) -> Identity:
    """Where a record's event was first read, through retry tiers and dead letters."""
    origin = origin_of(record)
    return (origin.topic, origin.partition, origin.offset)


# ----------------------------------------------------------------- virtual time


class _VirtualSelector(selectors.DefaultSelector):
    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualTimeLoop | None = None

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(0)
        if ready:
            return ready
        if timeout is None:
            raise RuntimeError("virtual-time loop: nothing scheduled and nothing ready (deadlock)")
        assert self.loop is not None
        if timeout > 0:
            # At least one step of the float: a timer a few ulps away must still come due.
            self.loop.now = max(self.loop.now + timeout, math.nextafter(self.loop.now, math.inf))
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``time()`` advances to the next timer as soon as nothing is ready."""

    def __init__(self) -> None:
        selector = _VirtualSelector()
        super().__init__(selector)
        selector.loop = self
        self.now = 1000.0

    def time(self) -> float:
        return self.now


# ----------------------------------------------------------------- Kafka


@dataclass(frozen=True, slots=True)
class FakeRecord:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass
class FakeBroker:
    """Topics, partitions, records and one group's committed offsets, all in memory."""

    partitions: int = 3
    topics: dict[str, list[list[FakeRecord]]] = field(default_factory=dict)
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    commits: list[dict[TopicPartition, int]] = field(default_factory=list)

    def log(self, topic: str, partition: int) -> list[FakeRecord]:
        logs = self.topics.setdefault(topic, [[] for _ in range(self.partitions)])
        return logs[partition]

    def append(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        headers: Iterable[tuple[str, bytes]] = (),
        timestamp: int = 0,
    ) -> FakeRecord:
        log = self.log(topic, partition)
        record = FakeRecord(topic, partition, len(log), timestamp, key, value, tuple(headers))
        log.append(record)
        return record

    def records(self, topic: str) -> list[FakeRecord]:
        return [r for log in self.topics.get(topic, []) for r in log]


class FakeSource:
    """One consumer-group member that owns every partition of the topics it subscribes to."""

    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self._topics: list[str] = []
        self._assigned: set[TopicPartition] = set()
        self._paused: set[TopicPartition] = set()
        self._positions: dict[TopicPartition, int] = {}
        self._on_revoked: Callback | None = None
        self._on_assigned: Callback | None = None
        self._rebalance: set[TopicPartition] | None = None
        self.fail_commits = False
        # While set, a fetch with nothing to return and a commit wait until it is cleared,
        # whatever their timeout: a getmany stuck in a rebalance, a coordinator not answering.
        self.stuck = False
        self._unstuck = asyncio.Event()
        self._given_away: set[TopicPartition] = set()  # now owned by another member
        self.revocations: list[tuple[float, float]] = []  # virtual start, end of each callback
        self._late = False

    async def start(
        self, topics: Sequence[str], on_revoked: Callback, on_assigned: Callback
    ) -> None:
        self._topics = list(topics)
        self._on_revoked, self._on_assigned = on_revoked, on_assigned
        self._rebalance = set()

    def rebalance(
        self, revoked: Iterable[TopicPartition] = (), give_away: bool = False, late: bool = False
    ) -> None:
        """At the next fetch: revoke these partitions, then assign everything again (but the
        revoked partitions when ``give_away``: another member took them). ``late``: that fetch
        reads its records first and the rebalance runs before it returns them, as when
        aiokafka's ``getmany`` returned records just before a rebalance whose callbacks ran
        before the loop took them."""
        self._rebalance = set(revoked) | (self._rebalance or set())
        self._late = self._late or late
        if give_away:
            self._given_away |= set(revoked)

    def take_back(self) -> None:
        """The partitions given away come back to this member at the next fetch."""
        self._given_away.clear()
        self._rebalance = self._rebalance or set()

    def _all_partitions(self) -> set[TopicPartition]:
        every = {TopicPartition(t, p) for t in self._topics for p in range(self.broker.partitions)}
        return every - self._given_away

    def unstick(self) -> None:
        self.stuck = False
        self._unstuck.set()

    async def _wait_while_stuck(self) -> None:
        if self.stuck:
            self._unstuck.clear()
            await self._unstuck.wait()

    async def fetch(
        self, timeout_s: float, max_records: int
    ) -> Mapping[TopicPartition, Sequence[FakeRecord]]:
        late, self._late = self._late, False
        if self._rebalance is not None and not late:
            await self._run_rebalance()
        result: dict[TopicPartition, list[FakeRecord]] = {}
        budget = max_records
        for tp in sorted(self._assigned - self._paused):
            log = self.broker.log(tp.topic, tp.partition)
            start = self._positions[tp]
            taken = log[start : start + budget]
            if taken:
                result[tp] = taken
                self._positions[tp] = start + len(taken)
                budget -= len(taken)
            if budget <= 0:
                break
        if late and self._rebalance is not None:
            await self._run_rebalance()
        if not result:
            if self.stuck:
                await self._wait_while_stuck()
            else:
                await asyncio.sleep(timeout_s)
        return result

    async def _run_rebalance(self) -> None:
        revoked, self._rebalance = (self._rebalance or set()) & self._assigned, None
        assert self._on_revoked is not None and self._on_assigned is not None
        started = asyncio.get_running_loop().time()
        await self._on_revoked(revoked)
        self.revocations.append((started, asyncio.get_running_loop().time()))
        self._assigned -= revoked
        self._paused -= revoked
        new = self._all_partitions() - self._assigned
        for tp in new:
            self._positions[tp] = self.broker.committed.get(tp, 0)
        self._assigned |= new
        await self._on_assigned(new)

    def assignment(self) -> set[TopicPartition]:
        return set(self._assigned)

    def paused(self) -> set[TopicPartition]:
        return set(self._paused)

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        self._paused |= set(partitions) & self._assigned

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        self._paused -= set(partitions)

    def highwater(self, partition: TopicPartition) -> int | None:
        return len(self.broker.log(partition.topic, partition.partition))

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self._positions[partition] = offset

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> CommitResult:
        await asyncio.sleep(0)
        await self._wait_while_stuck()
        if self.fail_commits:
            return CommitResult(False, "CommitFailedError")
        if not set(offsets) <= self._assigned:
            # aiokafka's commit() raises IllegalStateError for a partition not assigned, and
            # commits none of the others.
            return CommitResult(False, "IllegalStateError")
        self.broker.committed.update(offsets)
        self.broker.commits.append(dict(offsets))
        return COMMITTED

    async def end_offsets(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.broker.log(tp.topic, tp.partition)) for tp in partitions}

    async def stop(self) -> None:
        self._assigned.clear()


class FakePublisher:
    """Appends to the broker; fails while told to, as a retriable or a final error.

    Size limits as Kafka's: a record over its topic's ``limits`` (max.message.bytes) or
    ``max_request`` is refused with ``MessageSizeTooLargeError``. ``record_limit`` answers what
    the forwarder knows (``known``: learnt at start-up), and a refusal teaches it the topic's
    limit unless ``configs_readable`` is False (no DESCRIBE_CONFIGS). ``record_failure`` may
    refuse single records (an error about that record, or any other).
    """

    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.failure: PublishResult | None = None  # the answer while failing
        self.fail_topics: set[str] | None = None  # None: every topic
        self.failures = 0
        self.unreachable = ""  # what check() answers: "" while the brokers answer
        self.max_request = 8 * 1024 * 1024
        self.limits: dict[str, int] = {}
        self.known: dict[str, int] = {}
        self.configs_readable = True
        self.record_failure: Callable[[str, bytes | None], PublishResult | None] | None = None

    async def start(self) -> None:
        return None

    async def publish(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
    ) -> PublishResult:
        await asyncio.sleep(0.001)
        if self.failure is not None and (self.fail_topics is None or topic in self.fail_topics):
            self.failures += 1
            return self.failure
        refused = self.record_failure(topic, value) if self.record_failure else None
        if refused is not None:
            self.failures += 1
            return refused
        limit = min(self.limits.get(topic, self.max_request), self.max_request)
        if record_size(key, value, headers) > limit:
            self.failures += 1
            if self.configs_readable:
                self.known[topic] = limit
            return PublishResult(False, "MessageSizeTooLargeError", False, record_level=True)
        partition = origin_of(_Headers(headers)).partition % self.broker.partitions
        self.broker.append(topic, partition, key, value, headers)
        return ACKNOWLEDGED

    def record_limit(self, topic: str) -> int:
        return min(self.known.get(topic, self.max_request), self.max_request)

    async def check(self) -> str:
        await asyncio.sleep(0.001)
        return self.unreachable

    async def stop(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class _Headers:
    """Enough of a record for ``origin_of`` to read the headers just built."""

    headers: Sequence[tuple[str, bytes]]
    topic: str = ""
    partition: int = 0
    offset: int = 0
    timestamp: int = 0
    key: bytes | None = None
    value: bytes | None = None


# ----------------------------------------------------------------- the endpoint


@dataclass
class FakeEndpoint:
    """Answers by ``mode``; records every request's time, destination and event ids.

    Modes: ``ok`` (204), ``receipts`` (200 with a receipt per event, every ``receipt_fail_every``
    -th failing as ``receipt_failure`` says; ``receipt_shortfall`` receipts fewer than events,
    the events without one not accepted), ``flaky`` (every ``flaky_every``-th request 500/1003), ``down`` (503),
    ``refused`` (a transport error), ``throttled`` (429/2003 with ``Retry-After``, 1 s unless ``retry_after_s``),
    ``unauthorized`` (400/3001, a pause code), ``hanging`` (no answer: a transport timeout after
    ``hang_s``). ``destination_answers`` answers every request to those destinations so,
    ``hanging_destinations`` makes theirs hang in any mode; ``capacity`` limits the requests
    served at once (a 429/2013 above it, see the field). Whatever the mode, a body over ``max_body``
    bytes is a 413, a batch holding a poison event (``"poison": true``) is a 400/3004, and one
    holding an event whose ``event_id`` is in ``failing_ids`` is a 500/1003 (a backend failing
    on that batch while the endpoint works for the others).
    """

    mode: str = "ok"
    latency_s: float = 0.005
    max_body: int = 1_000_000
    receipt_fail_every: int = 7
    receipt_failure: dict[str, Any] = field(default_factory=lambda: {"success": False})
    receipt_shortfall: int = 0
    flaky_every: int = 3
    retry_after_s: float = 1.0  # of ``throttled``
    failing_ids: set[str] = field(default_factory=set)
    answer: SendResult | None = None  # when set, the answer to every request, whatever the mode
    destination_answers: dict[str, SendResult] = field(default_factory=dict)
    hang_s: float = 10.0
    hanging_destinations: set[str] = field(default_factory=set)
    # When above 0: at most this many requests served at once, each taking longer the more are
    # (``latency_s`` alone, up to twice that when full); one more is a 429/2013 at once.
    capacity: int = 0
    active: int = 0
    peak_active: int = 0
    requests: list[tuple[float, str, int]] = field(default_factory=list)  # time, status, events
    sent: list[tuple[float, list[str]]] = field(default_factory=list)  # time, event ids
    accepted: Counter[str] = field(default_factory=Counter)  # event_id -> times accepted
    accepted_time: dict[str, float] = field(default_factory=dict)  # event_id -> first 204
    _count: int = 0

    async def send(self, destination: str, body: bytes) -> SendResult:
        if not self.capacity:
            return await self._send(destination, body, self.latency_s)
        if self.active >= self.capacity:
            now = asyncio.get_running_loop().time()
            self.requests.append((now, "429", len(orjson.loads(body)["events"])))
            return SendResult(429, b'{"code":2013}')
        self.active += 1
        self.peak_active = max(self.peak_active, self.active)
        try:
            load = (self.active - 1) / self.capacity
            return await self._send(destination, body, self.latency_s * (1 + load))
        finally:
            self.active -= 1

    async def _send(self, destination: str, body: bytes, latency_s: float) -> SendResult:
        loop = asyncio.get_running_loop()
        sent_at = loop.time()
        self._count += 1
        events: list[dict[str, Any]] = orjson.loads(body)["events"]
        self.sent.append((sent_at, [e.get("event_id", "") for e in events]))
        if self.mode == "hanging" or destination in self.hanging_destinations:
            await asyncio.sleep(self.hang_s)
            self.requests.append((sent_at, "transport", len(events)))
            return SendResult(transport_error="ReadTimeout posting to /db/table")
        if destination in self.destination_answers:
            result = self.destination_answers[destination]
        else:
            result = self._answer(body, events)
        self.requests.append((sent_at, str(result.status or "transport"), len(events)))
        await asyncio.sleep(latency_s)
        if result.status == 204:
            for event in events:
                self.accepted_time.setdefault(event.get("event_id", ""), loop.time())
        return result

    def _answer(self, body: bytes, events: list[dict[str, Any]]) -> SendResult:
        if self.answer is not None:
            return self.answer
        mode = self.mode
        if mode == "refused":
            return SendResult(transport_error="ConnectError posting to /db/table")
        if mode == "down":
            return SendResult(503, b'{"error":{"code":1001}}')
        if mode == "throttled":
            return SendResult(429, b'{"code":2003}', retry_after_s=self.retry_after_s)
        if mode == "unauthorized":
            return SendResult(400, b'{"code":3001}')
        if mode == "flaky" and self._count % self.flaky_every == 0:
            return SendResult(500, b'{"code":1003}')
        if self.failing_ids and any(e.get("event_id") in self.failing_ids for e in events):
            return SendResult(500, b'{"code":1003}')
        if len(body) > self.max_body:
            return SendResult(413)
        if any(e.get("poison") for e in events):
            return SendResult(400, b'{"code":3004}')
        if mode == "receipts":
            receipts: list[dict[str, Any]] = []
            for index, event in enumerate(events[: max(0, len(events) - self.receipt_shortfall)]):
                ok = (self._count + index) % self.receipt_fail_every != 0
                receipts.append({"success": True} if ok else self.receipt_failure)
                if ok:
                    self.accepted[event["event_id"]] += 1
            return SendResult(200, orjson.dumps({"receipts": receipts}))
        for event in events:
            self.accepted[event["event_id"]] += 1
        return SendResult(204)

    async def aclose(self) -> None:
        return None
