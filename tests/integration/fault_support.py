"""Helpers of the fault suite (``-m faults``): traffic that counts only what the brokers
acknowledged, where the leaders and the group coordinator are, a commit audit, and the figures
each scenario states (events, lost, duplicated, time to recover).

Loss is counted by ``uuid`` at the sandbox, read straight from its recorder (it runs in the
test's event loop): an event is lost when the brokers acknowledged it (``acks=all``) and the
sandbox never accepted its ``uuid``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from forwarder.commands.traffic import TrafficGenerator
from forwarder.sandbox import RunningSandbox

from .support import read_all, uuid_of, wait_for

# (uuid, partition, offset) of every event a commit audit knows the place of.
Located = Iterable[tuple[str, int, int]]

COMMIT_S = 1.0  # kafka.commit_interval_ms of the forwarder (the default)
IN_FLIGHT_EVENTS = 8 * 500  # limits.max_in_flight x batch.max_events (the defaults)


@dataclass(frozen=True, slots=True)
class Acked:
    partition: int
    offset: int
    sent_at: float  # monotonic


class AckedTraffic:
    """Valid events produced at ``rate`` per second, ``acks=all`` and idempotent, until stopped.

    Only acknowledged events count (``acked``, by uuid, with their partition and offset for the
    commit audit): a send that failed while a broker was down may or may not be in the log, so
    it is neither expected nor lost (``failed`` counts them). Falling behind (sends blocked by an
    outage) never turns into a burst afterwards: the schedule restarts from now.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        generator: TrafficGenerator,
        rate: float,
        count: int | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        self._count = count  # stop by itself after this many sends (None: until stopped)
        self._topic = topic
        self._generator = generator
        self._rate = rate
        self.acked: dict[str, Acked] = {}
        self.sent: set[str] = set()  # every uuid handed to the producer, acknowledged or not
        self.pending: dict[str, float] = {}  # uuid -> sent_at, not yet acknowledged nor failed
        self.failed = 0
        self.errors: Counter[str] = Counter()  # failed sends by exception class
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=10,
            # Longer than any outage here: aiokafka expires a batch waiting for a leader after
            # this long even when idempotent, and the sequence gap it leaves makes every later
            # send to that partition fail with OutOfOrderSequenceNumber.
            request_timeout_ms=60_000,
        )
        await self._producer.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        assert self._producer is not None
        started, sent, total = time.monotonic(), 0, 0
        while self._count is None or total < self._count:
            ahead = started + sent / self._rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
            elif ahead < -1.0:  # an outage held the sends: carry on at the rate, no burst
                started, sent = time.monotonic(), 0
            item = self._generator.next()
            assert item.event_id is not None
            uid = uuid_of(item.event_id)
            sent += 1
            total += 1
            self.sent.add(uid)
            at = time.monotonic()
            try:
                future = await self._producer.send(self._topic, value=item.value, key=item.key)
            except KafkaError as exc:
                self.failed += 1
                self.errors[type(exc).__name__] += 1
                continue
            self.pending[uid] = at
            future.add_done_callback(lambda f, uid=uid, at=at: self._settled(f, uid, at))

    def _settled(self, future: asyncio.Future[object], uid: str, at: float) -> None:
        self.pending.pop(uid, None)
        if future.cancelled() or future.exception() is not None:
            self.failed += 1
            self.errors[
                "cancelled" if future.cancelled() else type(future.exception()).__name__
            ] += 1
            return
        meta = future.result()
        self.acked[uid] = Acked(meta.partition, meta.offset, at)  # type: ignore[attr-defined]

    @property
    def producing(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """Stop producing; wait for every outstanding send to be acknowledged or to fail."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._producer is not None:
            await self._producer.stop()  # flushes what is buffered

    def located(self) -> Located:
        return [(u, a.partition, a.offset) for u, a in list(self.acked.items())]

    def sent_before(self, moment: float) -> tuple[set[str], int]:
        """Acknowledged uuids sent before ``moment``, and how many sends before it are open."""
        done = {u for u, a in self.acked.items() if a.sent_at < moment}
        return done, sum(1 for at in self.pending.values() if at < moment)


async def recovery_s(
    traffic: AckedTraffic, sandbox: RunningSandbox, since: float, timeout: float, what: str
) -> float:
    """Seconds from ``since`` (a fault) until every acknowledged event sent before it is at the
    sandbox: how long the forwarder took to get back to where it was when the fault hit."""
    counts = sandbox.sandbox.recorder.counts

    async def caught_up() -> bool:
        wanted, open_sends = traffic.sent_before(since)
        return open_sends == 0 and all(u in counts for u in wanted)

    await wait_for(caught_up, timeout, what, every=0.25)
    return time.monotonic() - since


@contextlib.asynccontextmanager
async def admin_client(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def _describe(bootstrap: str, topics: list[str], timeout: float) -> list[dict[str, object]]:
    """Topic descriptions, asked again while the admin client's metadata names a dead node."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            async with admin_client(bootstrap) as admin:
                described: list[dict[str, object]] = await admin.describe_topics(topics)
                return described
        except (KafkaError, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def leaders(bootstrap: str, topic: str, timeout: float = 30) -> dict[int, int]:
    """Partition -> node id of its leader, once every partition has one.

    Just after a topic is created, the node answering may not know it yet and describes it
    with no partitions (a CI run failed on that).
    """
    found: dict[int, int] = {}

    async def led() -> bool:
        nonlocal found
        (described,) = await _describe(bootstrap, [topic], timeout)
        partitions = described["partitions"]
        found = {p["partition"]: p["leader"] for p in partitions}  # type: ignore[attr-defined]
        return bool(found) and min(found.values()) >= 0

    await wait_for(led, timeout, f"a leader for every partition of {topic}", every=0.25)
    return found


async def coordinator(bootstrap: str, group: str) -> int:
    """Node id of the group's coordinator."""
    async with admin_client(bootstrap) as admin:
        node: int = await admin.find_coordinator(group)
        return node


async def wait_in_sync(bootstrap: str, topics: list[str], replicas: int, timeout: float) -> None:
    """Wait until every partition of ``topics`` has ``replicas`` in-sync replicas again."""

    async def in_sync() -> bool:
        try:
            described = await _describe(bootstrap, topics, 5)
        except (KafkaError, OSError):
            return False
        return all(
            len(p["isr"]) == replicas and p["leader"] >= 0
            for topic in described
            for p in topic["partitions"]  # type: ignore[attr-defined]
        )

    await wait_for(in_sync, timeout, f"{replicas} in-sync replicas for {topics}", every=0.5)


async def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offsets of ``topic``'s partitions."""
    async with admin_client(bootstrap) as admin:
        offsets = await admin.list_consumer_group_offsets(group)
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


async def end_offsets(bootstrap: str, topic: str, partitions: Iterable[int]) -> dict[int, int]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


class CommitAudit:
    """Samples the group's committed offsets while a scenario runs and checks each sample at
    once against the sandbox: every acknowledged event below a committed offset must already
    be delivered. A commit ahead of delivery is the one mistake at-least-once cannot survive
    (the next owner would skip the event), and a restart hides it: so it is checked live.

    A sample that cannot be taken (the brokers are down) is skipped and counted.
    """

    def __init__(
        self,
        bootstrap: str,
        group: str,
        topic: str,
        located: Callable[[], Located],
        sandbox: RunningSandbox,
        every: float = 1.0,
    ) -> None:
        self._bootstrap, self._group, self._topic = bootstrap, group, topic
        self._located = located
        self._counts = sandbox.sandbox.recorder.counts
        self._every = every
        self.samples = 0
        self.skipped = 0
        self.wrong: list[str] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                offsets = await asyncio.wait_for(
                    committed(self._bootstrap, self._group, self._topic), 8
                )
            except (KafkaError, OSError, TimeoutError):
                self.skipped += 1
            else:
                self.check(offsets)
            await asyncio.sleep(self._every)

    def check(self, offsets: dict[int, int]) -> None:
        """Every acknowledged event below a committed offset is at the sandbox now."""
        self.samples += 1
        counts = self._counts
        for uid, partition, offset in self._located():
            limit = offsets.get(partition, -1)
            if offset < limit and uid not in counts:
                self.wrong.append(
                    f"partition {partition} committed at {limit} before offset "
                    f"{offset} ({uid}) was delivered"
                )

    def __str__(self) -> str:
        return (
            f"{self.samples} commit samples ({self.skipped} skipped while Kafka was away), "
            f"{len(self.wrong)} ahead of delivery{': ' + self.wrong[0] if self.wrong else ''}"
        )


async def located_in_topic(bootstrap: str, topic: str) -> list[tuple[str, int, int]]:
    """(uuid, partition, offset) of every event with an ``event_id`` now in ``topic``."""
    located = []
    for record in await read_all(bootstrap, topic):
        event_id = orjson.loads(record.value).get("event_id")
        if isinstance(event_id, str):
            located.append((uuid_of(event_id), record.partition, record.offset))
    return located


async def wait_all_committed(
    bootstrap: str, group: str, topic: str, partitions: int, timeout: float
) -> None:
    """Wait until the group's committed offsets reach the log end of every partition."""

    async def at_end() -> bool:
        offsets = await committed(bootstrap, group, topic)
        return offsets == await end_offsets(bootstrap, topic, range(partitions))

    await wait_for(at_end, timeout, f"{group} committed to the end of {topic}", every=0.5)


def peak_per_s(sandbox: RunningSandbox) -> int:
    """The most distinct events the sandbox first accepted within one wall-clock second."""
    seconds = Counter(int(at) for at in sandbox.sandbox.recorder.first_seen.values())
    return max(seconds.values(), default=0)


def duplicate_bound(windows: int, sandbox: RunningSandbox) -> tuple[int, str]:
    """The most duplicates ``windows`` re-reads can explain, and how it was reckoned: each
    repeats at most what was accepted but not yet committed, one commit interval of throughput
    plus the requests in flight."""
    peak = peak_per_s(sandbox)
    bound = windows * (int(peak * COMMIT_S) + IN_FLIGHT_EVENTS)
    return bound, (
        f"{bound} = {windows} re-reads x ({peak} events/s x {COMMIT_S} s + "
        f"{IN_FLIGHT_EVENTS} in flight)"
    )


@dataclass
class Figures:
    """What a scenario measured, in its assertion messages and printed for docs/reliability.md."""

    scenario: str
    events: int
    lost: int
    duplicated: int
    recovery_s: dict[str, float] = field(default_factory=dict)
    notes: dict[str, object] = field(default_factory=dict)

    @classmethod
    def of(
        cls, scenario: str, expected: set[str], sandbox: RunningSandbox, **notes: object
    ) -> Figures:
        counts = sandbox.sandbox.recorder.counts
        lost = sum(1 for u in expected if u not in counts)
        duplicated = sum(counts[u] - 1 for u in expected if u in counts)
        return cls(scenario, len(expected), lost, duplicated, notes=dict(notes))

    def __str__(self) -> str:
        recovery = ", ".join(f"{k} {v:.1f} s" for k, v in self.recovery_s.items())
        notes = ", ".join(f"{k} {v}" for k, v in self.notes.items())
        return (
            f"{self.scenario}: {self.events} events, {self.lost} lost, "
            f"{self.duplicated} duplicated"
            + (f"; time to recover: {recovery}" if recovery else "")
            + (f"; {notes}" if notes else "")
        )

    def report(self) -> None:
        print(f"FAULT FIGURES {self}")
