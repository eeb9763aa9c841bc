"""Delivery: post a batch, classify the answer, then ack, retry, split, park or dead-letter.

Every event handed to :meth:`Delivery.submit` ends in exactly one place: accepted by the
endpoint, written to a retry tier, or written to the dead-letter topic. Only then is
``on_done`` called for its record (for a whole batch's records at once when the endpoint
accepts them), which is what lets the pipeline commit their offsets.

Between its tries a batch waits in the dispatcher (``forwarder.core.dispatch``), not in a
sender: ``max_in_flight`` senders each take the next batch, make one request and put the batch
back with its backoff if it failed. A fault is charged to the smallest scope that explains it:

- **Event**: a batch that keeps failing with a retriable answer while other batches to the
  same destination are accepted is split until the events that fail alone are alone; only
  they walk the retry tiers to the dead-letter topic.
- **Destination**: a ``database.table`` failing while others work is degraded: its batches walk
  their own schedule and it holds at most ``limits.destination_share`` of the senders.
- **Endpoint**: while it is *down* (failing as a whole) or *paused* (a systemic answer such as
  a bad token), batches wait in memory, one small probe at a time finds out whether it is
  back, and no event spends its retry budget. So an outage of any length ends in a catch-up,
  never in dead letters.

Per-event receipts are answers about events, not about the endpoint: each failed one is routed
by its own code (``classify``), and only a pause code among them pauses the endpoint. Writes to
the retry and dead-letter topics go through ``forwarder.engine.topic_writer``, retried until the
broker acknowledges them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import time
from collections.abc import Callable, Sequence

import structlog

from forwarder.config import RetryConfig
from forwarder.core.backoff import retry_delay_s
from forwarder.core.batcher import body_of
from forwarder.core.budget import RetryBudget, Step
from forwarder.core.classify import (
    Action,
    Decision,
    Policy,
    about_endpoint,
    classify,
    describe,
    group_by_receipt,
    status_label,
    unreachable,
)
from forwarder.core.decode import Event
from forwarder.core.dispatch import Dispatcher, Job
from forwarder.core.headers import Failure
from forwarder.core.health import Admission, EndpointHealth, Outcome
from forwarder.core.records import RecordLike
from forwarder.core.topics import TopicMap
from forwarder.engine.health_report import HealthReport
from forwarder.engine.limiter import Limiter
from forwarder.engine.parking import Parking
from forwarder.engine.topic_writer import TopicWriter
from forwarder.engine.waiters import Waiters
from forwarder.ports import Publisher, Sink
from forwarder.telemetry.metrics import Metrics

LOG_INTERVAL_S = 30.0
# The shortest wait for a backoff to end: below the clock's resolution a sender would spin.
MIN_WAIT_S = 0.001
THROTTLE_STATUSES = (429, 503)
_OUTCOMES = {
    Action.RETRY: Outcome.FAILED,
    Action.PAUSE: Outcome.SYSTEMIC,
}


class Delivery:
    def __init__(
        self,
        sink: Sink,
        publisher: Publisher,
        topics: TopicMap,
        policy: Policy,
        retry: RetryConfig,
        health: EndpointHealth,
        limiter: Limiter,
        metrics: Metrics,
        on_done: Callable[[Sequence[RecordLike]], None],
        *,
        probe_events: int = 10,
        destination_share: float = 0.5,
        rng: random.Random | None = None,
        wall_clock: Callable[[], float] = time.time,
        on_accepted: Callable[[str, Sequence[Event]], None] | None = None,  # personalization
    ) -> None:
        self._sink = sink
        self._publisher = publisher
        self._topics = topics
        self._policy = policy
        self._retry = retry
        self.health = health
        self._limiter = limiter
        self._metrics = metrics
        self._on_done = on_done
        self._probe_events = max(1, probe_events)
        self._on_accepted = on_accepted
        self._rng = rng or random.Random()
        self._wall = wall_clock
        self._log = structlog.get_logger("forwarder.engine.delivery")
        self._waiters = Waiters()
        self._changes_seen = 0
        self._report = HealthReport(metrics, policy, self._log, LOG_INTERVAL_S)
        self._capped_logged_at = float("-inf")
        self._capped_since_log = 0  # Retry-After answers capped since the last log line
        self._parking = Parking(
            TopicWriter(publisher, metrics, on_done, self._rng), topics, policy, metrics, wall_clock
        )
        self.publish_trouble = self._parking.writer.trouble
        self._share = destination_share
        self.dispatch = Dispatcher(int(limiter.limit * destination_share))

    # ----------------------------------------------------------------- sending

    def submit(self, destination: str, events: list[Event], created: float) -> None:
        """A new batch: it waits for a sender in the dispatcher."""
        self._metrics.batch_events.observe(len(events))
        self.dispatch.add(self._job(destination, events, created, 0))
        self._wake()

    def _job(self, destination: str, events: list[Event], created: float, tries: int) -> Job:
        return Job(
            destination,
            events,
            created,
            RetryBudget(self._retry.attempts, tries),
            outages=self.health.outages,
        )

    async def next_job(self) -> tuple[Job, bool]:
        """Wait for a batch this sender may try now; True when its try is a probe."""
        loop = asyncio.get_running_loop()
        health = self.health
        while True:
            now = loop.time()
            if not health.blocked:
                job = self.dispatch.take(now, health.destinations.failing)
                if job is not None:
                    return job, False
                wake = self.dispatch.next_ready(now)
            elif not self.dispatch:
                wake = math.inf
            elif health.admit(now) is Admission.PROBE:
                probe = self.dispatch.take_probe()
                if probe is not None:
                    return probe, True
                health.probe_abandoned()
                wake = math.inf
            else:
                wake = health.next_probe_in(now) + now  # inf while a probe is in flight
            await self._waiters.wait(None if math.isinf(wake) else max(wake - now, MIN_WAIT_S))

    async def attempt(self, job: Job, probe: bool) -> None:
        """One request of ``job``; what is left of it goes back to the dispatcher."""
        try:
            await self._attempt(job, probe)
        finally:
            # No wake here: this sender asks for its next batch at once, and takes what the
            # slot it frees allows.
            self.dispatch.done(job)

    async def _attempt(self, job: Job, probe: bool) -> None:
        loop = asyncio.get_running_loop()
        health = self.health
        destination = job.destination
        if health.outages != job.outages:
            # An outage began since its last try (declared by other requests, maybe while it
            # waited out its backoff): the tries before it were the endpoint's failures.
            job.outages = health.outages
            job.budget.give_back()
        events = job.events
        chunk, rest = (
            (events[: self._probe_events], events[self._probe_events :]) if probe else (events, [])
        )
        decision, sent_at = await self._request(destination, chunk, probe, job.suspect)
        action = decision.action
        if action is Action.ACK:
            self._ack(destination, chunk)
            self._requeue(job, rest, loop.time())
            return
        if action is Action.PAUSE or (action is Action.RETRY and health.blocked):
            job.budget.give_back()  # the endpoint, not the batch: wait for it
            self._requeue(job, events, loop.time())
            return
        if action is Action.PARTIAL:
            held, retried, retry_decision = await self._settle_receipts(
                destination, chunk, decision, job.budget.tries
            )
            if held or not retried:  # held: a pause code in a receipt, wait for the endpoint
                self._requeue(job, held + retried + rest, loop.time())
                return
            chunk, decision, action = retried, retry_decision, Action.RETRY
        if action is Action.RETRY:
            job.events = chunk + rest
            await self._failed(job, decision, sent_at)
            return
        self._requeue(job, rest, loop.time())
        if action in (Action.ISOLATE, Action.SPLIT):
            await self._split(job, chunk, decision, job.budget.tries)
            return
        # DEAD_LETTER: the endpoint will never take these events as they are.
        await self._dead_letter_all(destination, chunk, decision, job.budget.tries, "rejected")

    async def _failed(self, job: Job, decision: Decision, sent_at: float) -> None:
        """A retriable failure: retry after a backoff, hold, split off the failing events, or
        park on the next retry tier."""
        loop = asyncio.get_running_loop()
        health = self.health
        destination = job.destination
        if job.first_failed is None:
            job.first_failed = sent_at
            # Records back from a retry tier were parked because their failures were their
            # own: what they fail now is no sign of an outage either.
            role = self._topics.role
            job.suspect = job.suspect or any(role(e.record.topic).tier for e in job.events)
        now = loop.time()
        step = job.budget.failed(
            sent_at, lambda since: health.unresolved(destination, since, job.events[0].uuid, now)
        )
        if decision.retry_after_s is not None and decision.status in THROTTLE_STATUSES:
            self._limiter.slow_down(decision.retry_after_s)
        if step is not Step.PARK:
            self._metrics.retried.labels(
                "0", status_label(decision.status), self._policy.code_label(decision.code)
            ).inc(len(job.events))
            delay = self._delay(job.budget.failures - 1, decision)
            self.dispatch.later(job, loop.time() + delay)
            self._wake()
            return
        alone = job.suspect or health.destinations.worked_since(destination, job.first_failed)
        if len(job.events) > 1:
            if not health.destinations.degraded(destination):
                # Some of these events may fail alone (other batches to the table are
                # accepted, or nothing else was tried): halve until the ones that fail alone
                # are alone, each half with a fresh budget; the others are delivered.
                await self._split(job, job.events, decision, 0, suspect=alone)
                return
            if not (job.halved or job.suspect):
                # A degraded table, or a table whose only batch holds one bad event: one try
                # for each half says which (an accepted half ends the table's degradation).
                await self._split(job, job.events, decision, self._retry.attempts - 1)
                return
        await self._park(destination, job.events, decision, job.budget.tries)

    def _requeue(self, job: Job, events: list[Event], now: float) -> None:
        if events:
            job.events = events
            self.dispatch.later(job, now)
            self._wake()

    async def _split(
        self, job: Job, events: list[Event], decision: Decision, tries: int, suspect: bool = False
    ) -> None:
        if len(events) == 1:
            reason = "rejected" if decision.action is Action.ISOLATE else "too_large"
            self._metrics.isolated.inc()
            await self._dead_letter_all(job.destination, events, decision, tries, reason)
            return
        middle = len(events) // 2
        self._metrics.isolation_requests.inc(2)
        now = asyncio.get_running_loop().time()
        for half in (events[:middle], events[middle:]):
            piece = self._job(job.destination, half, job.created, tries)
            piece.suspect, piece.halved = suspect, True
            self.dispatch.later(piece, now)
            self._wake()

    def _wake(self) -> None:
        """A batch is ready (or will be sooner than the waiters thought): wake one sender."""
        self._waiters.wake_one()

    async def _request(
        self, destination: str, events: list[Event], probe: bool, suspect: bool = False
    ) -> tuple[Decision, float]:
        """One request; its decision and when it went out (after the limiter let it)."""
        loop = asyncio.get_running_loop()
        try:
            await self._limiter.acquire()
        except BaseException:
            if probe:
                self.health.probe_abandoned()
            raise
        sent_at = loop.time()
        self._metrics.in_flight.inc()
        try:
            result = await self._sink.send(destination, body_of(events))
        except BaseException:
            if probe:
                self.health.probe_abandoned()
            raise
        finally:
            self._limiter.release()
            self._metrics.in_flight.dec()
        decision = classify(result, self._policy, len(events))
        if (
            decision.retry_after_s is not None
            and decision.retry_after_s > self._retry.max_retry_after_s
        ):
            decision = self._cap_retry_after(destination, decision, loop.time())
        about = about_endpoint(decision)
        outcome = _OUTCOMES.get(about.action, Outcome.WORKING)
        cause = describe(about.status, about.code)
        if about.status is None:
            cause = about.detail
        self.health.observe(
            outcome,
            loop.time(),
            probe=probe,
            cause=cause,
            code=about.code,
            destination=destination,
            batch=events[0].uuid,
            sent_at=sent_at,
            unreachable=unreachable(result),
            suspect=suspect,
        )
        if not probe and self._limiter.observed(
            outcome, result, destination, sent_at, loop.time()
        ):  # adaptive: a failing table's share follows the limit
            self.dispatch.share_cap = max(1, int(self._limiter.limit * self._share))
        status = "transport" if decision.status is None else str(decision.status)
        self._metrics.requests.labels(status, self._policy.code_label(decision.code)).inc()
        self._metrics.request_seconds.observe(result.elapsed_s)
        if probe:
            self._metrics.probes.labels(outcome.value).inc()
        self._health_changed(loop.time())
        self._report.update_destination(self.health, destination, loop.time())
        return decision, sent_at

    def _cap_retry_after(self, destination: str, decision: Decision, now: float) -> Decision:
        """A ``Retry-After`` beyond ``retry.max_retry_after_s`` holds back only that long."""
        cap = self._retry.max_retry_after_s
        self._capped_since_log += 1
        if now - self._capped_logged_at >= LOG_INTERVAL_S:
            self._capped_logged_at = now
            self._log.warning(
                "retry_after_capped",
                destination=destination,
                status=decision.status,
                code=decision.code,
                retry_after_s=decision.retry_after_s,
                capped_to_s=cap,
                times=self._capped_since_log,
                key="retry.max_retry_after_s",
            )
            self._capped_since_log = 0
        return dataclasses.replace(decision, retry_after_s=cap)

    def _delay(self, tries: int, decision: Decision) -> float:
        return retry_delay_s(
            tries,
            self._retry.backoff_initial_ms / 1000,
            self._retry.backoff_max_ms / 1000,
            self._rng.uniform,
            decision.retry_after_s,
        )

    async def _settle_receipts(
        self, destination: str, events: list[Event], decision: Decision, tries: int
    ) -> tuple[list[Event], list[Event], Decision]:
        """Per-event answers: ack the accepted, dead-letter the refused at once.

        Returns the events held by a pause code, those to retry, and the decision to retry
        them under (the first retried receipt's).
        """
        groups = group_by_receipt(events, decision)
        self._ack(destination, groups.accepted)
        if groups.refused:
            await asyncio.gather(
                *(
                    self._dead_letter_all(
                        destination,
                        group,
                        receipt,
                        tries,
                        "too_large" if receipt.action is Action.SPLIT else "rejected",
                    )
                    for receipt, group in groups.refused.items()
                )
            )
        return groups.held, groups.retried, groups.retry_decision or decision

    def _ack(self, destination: str, events: Sequence[Event]) -> None:
        if not events:
            return
        self._metrics.forwarded.labels(destination).inc(len(events))
        self._on_done([event.record for event in events])
        if self._on_accepted is not None:  # personalization: after the endpoint accepted them
            self._on_accepted(destination, events)

    async def _park(
        self, destination: str, events: list[Event], decision: Decision, tries: int
    ) -> None:
        await self._parking.park(destination, events, decision, tries)

    async def _dead_letter_all(
        self, destination: str, events: list[Event], decision: Decision, tries: int, reason: str
    ) -> None:
        await self._parking.dead_letter_all(destination, events, decision, tries, reason)

    async def dead_letter(
        self, record: RecordLike, failure: Failure, attempts: int, destination: str | None
    ) -> None:
        await self._parking.dead_letter(record, failure, attempts, destination)

    def _health_changed(self, now: float) -> None:
        """On a change of the endpoint's state, or a probe's answer, wake every sender waiting:
        what they may send changed. Report the endpoint's state."""
        health = self.health
        if health.changes != self._changes_seen or health.blocked:
            self._changes_seen = health.changes
            self._waiters.wake_all()
        self._report.update(self.health, now)
