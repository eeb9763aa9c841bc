"""One personalization service's activation: its queue, workers, cache, limiter and health.

A trigger whose answer is cached skips the queue (still latest-wins per user). Workers publish
those first, then take the next queued trigger and answer it from the cache, from an identical
request in flight (single flight), or by calling the service under the two-level rate limit:
one record per trigger, written latest-wins per user (``forwarder.engine.personalization.output``: an
answer older than one already written for its user is dropped). Failures:

- 429: nothing goes to this service before ``Retry-After`` (the limiter is blocked), then the
  trigger is tried again, as long as it is younger than ``max_age_s``;
- 500/503/timeout/transport: ``ATTEMPTS`` tries with jittered backoff, then the fallback record;
- 401/404: the service is misconfigured: nothing is published, pending triggers are dropped, new
  ones are refused, and one probe task asks again with backoff until it answers otherwise.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Protocol

import structlog

from forwarder.adapters.personalization_client import CallResult, PersonalizationClient
from forwarder.config import PersonalizationService, Secret
from forwarder.core.activation_records import (
    Answer,
    CallError,
    error_of,
    parse_answer,
    request_body,
    trigger_of,
)
from forwarder.core.backoff import retry_delay_s
from forwarder.core.latest_wins import QUEUE_FULL, STALE, SUPERSEDED, LatestWinsQueue, Trigger
from forwarder.core.rate_reserve import ReserveLimiter
from forwarder.core.service_health import Change, ServiceHealth
from forwarder.core.ttl_cache import TtlLruCache
from forwarder.engine.personalization.output import AnswerOutput
from forwarder.ports import Publisher
from forwarder.telemetry.metrics import Metrics
from forwarder.telemetry.retry_after_report import RetryAfterReport

ATTEMPTS = 3
BACKOFF_INITIAL_S = 0.2
BACKOFF_MAX_S = 2.0
MAX_THROTTLED = 20  # 429s for one trigger before its fallback (max_age_s usually ends it first)
KNOWN_STATUSES = frozenset((200, 400, 401, 403, 404, 429, 500, 502, 503, 504))
Key = tuple[str, tuple[tuple[str, Any], ...]]
# What a call ends with: an answer, an error (fallback), or None (publish nothing).
Outcome = Answer | CallError | None


class Client(Protocol):
    """What the runner calls the service through (``PersonalizationClient``)."""

    async def call(self, body: dict[str, Any], *, test: bool = False) -> CallResult: ...

    async def aclose(self) -> None: ...


def status_label(result: CallResult) -> str:
    if result.status is None:
        kind = (result.transport_error or "transport").split(":", 1)[0]
        return "timeout" if kind == "timeout" else "transport"
    if result.status in KNOWN_STATUSES:
        return str(result.status)
    return f"{result.status // 100}xx"


class ServiceRunner:
    def __init__(
        self,
        service: PersonalizationService,
        api_key: Secret,
        publisher: Publisher,
        metrics: Metrics,
        rng: random.Random,
        health: ServiceHealth | None = None,
        max_retry_after_s: float = 300.0,
    ) -> None:
        self.service = service
        # retry.max_retry_after_s: a Retry-After of a day must not silence the service a day.
        self._max_retry_after_s = max_retry_after_s
        self.name = service.name
        self.triggers = frozenset(service.triggers)
        self._api_key = api_key
        self._metrics = metrics
        self._rng = rng
        self._log = structlog.get_logger("forwarder.engine.personalization").bind(service=self.name)
        self.queue = LatestWinsQueue(service.queue_max_entries, service.max_age_s)
        self.cache: TtlLruCache[Key, Answer] = TtlLruCache(
            service.cache_ttl_s, service.cache_max_entries
        )
        # Evenly spaced (no smoothing slack): the server's own limit absorbs arrival jitter.
        self.limiter = ReserveLimiter(
            service.requests_per_second, service.burst_per_second, service.burst_seconds, 0.0
        )
        self.health = health or ServiceHealth()
        self._flights: dict[Key, asyncio.Future[tuple[Outcome, float, float]]] = {}
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: Client | None = None
        self._probing = False
        self._user_field = service.user_field
        self._context = service.context
        self._dropped: dict[str, Any] = {}
        self._batch_drops: dict[str, int] = {}
        self._ready: OrderedDict[str, tuple[Trigger, Answer]] = OrderedDict()
        self._seq = 0  # the order triggers were accepted in: Trigger.seq
        self._output = AnswerOutput(service, publisher, metrics, self._drop, self._spawn)
        self._publish = self._output.publish
        self._queue_gauge = metrics.p13n_queue.labels(self.name)
        metrics.p13n_misconfigured.labels(self.name).set(0)

    # ------------------------------------------------------------ feeding (synchronous)

    def offer(self, event: Mapping[str, Any], uuid: str, now: float) -> None:
        """Queue a trigger from an accepted event; never blocks, never calls out."""
        self._seq += 1
        trigger = trigger_of(event, self._user_field, self._context, uuid, now, self._seq)
        if trigger is None:
            cause: str | None = "no_user"
        elif self.health.misconfigured:
            cause = "misconfigured"
        else:
            cached = self.cache.get(trigger.request_key, now)
            cause = (
                self.queue.offer(trigger) if cached is None else self._ready_offer(trigger, cached)
            )
        if cause is not None:
            self._batch_drops[cause] = self._batch_drops.get(cause, 0) + 1

    def _ready_offer(self, trigger: Trigger, answer: Answer) -> str | None:
        """A trigger the cache answers: it skips the queue and the limiter, still latest-wins.

        Looked up here rather than when its turn comes: under load the queue is long, and a
        user's next turn would come after the cached answer expired.
        """
        user = trigger.user_id
        superseded = self.queue.discard(user) or user in self._ready
        self._ready[user] = (trigger, answer)
        if superseded:
            return SUPERSEDED
        if len(self._ready) > self.service.queue_max_entries:
            self._ready.popitem(last=False)
            return QUEUE_FULL
        return None

    def offered(self) -> None:
        """After a batch of offers: metrics and the workers' wake-up, once per batch."""
        for cause, count in self._batch_drops.items():
            self._drop(cause, count)
        self._batch_drops.clear()
        self._queue_gauge.set(len(self.queue) + len(self._ready))
        if self.queue or self._ready:
            self._wake.set()

    def _drop(self, cause: str, count: int = 1) -> None:
        if count:
            counter = self._dropped.get(cause)
            if counter is None:  # bound children once: labels() costs a lock and a lookup
                counter = self._dropped[cause] = self._metrics.p13n_dropped.labels(self.name, cause)
            counter.inc(count)

    # ------------------------------------------------------------ lifecycle

    def start(self, client: Client | None = None) -> None:
        """Start the workers, calling the service through ``client`` (a test's) or a real one."""
        self._client = client or PersonalizationClient(
            self.service, self._api_key, RetryAfterReport(self._metrics)
        )
        for _ in range(self.service.max_in_flight):
            self._spawn(self._worker())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------ workers

    async def _worker(self) -> None:
        while True:
            try:
                if self._ready:
                    _user, (ready, answer) = self._ready.popitem(last=False)
                    self._metrics.p13n_cache.labels(self.name, "hit").inc()
                    await self._publish(ready, answer, "cache", time.time(), 0.0, None)
                    continue
                trigger, stale = self.queue.pop(time.monotonic())
                self._drop(STALE, stale)
                self._queue_gauge.set(len(self.queue) + len(self._ready))
                if trigger is None:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                await self._handle(trigger)
            except Exception:  # a bug: logged and counted; the next trigger goes on
                self._metrics.p13n_errors.inc()
                self._log.exception("personalization_trigger_failed")

    async def _handle(self, trigger: Trigger) -> None:
        key = trigger.request_key
        cached = self.cache.get(key, time.monotonic())
        lookups = self._metrics.p13n_cache
        if cached is not None:
            lookups.labels(self.name, "hit").inc()
            await self._publish(trigger, cached, "cache", time.time(), 0.0, None)
            return
        lookups.labels(self.name, "miss").inc()
        flight = self._flights.get(key)
        if flight is not None:
            self._metrics.p13n_coalesced.labels(self.name).inc()
            outcome, requested_at, latency_ms = await asyncio.shield(flight)
        else:
            flight = asyncio.get_running_loop().create_future()
            self._flights[key] = flight
            try:
                outcome, requested_at, latency_ms = await self._call(trigger)
            except BaseException:
                # Joiners get an error, not a cancellation that would end their worker.
                flight.set_exception(RuntimeError("the request this trigger joined failed"))
                flight.exception()  # retrieved: no "never retrieved" warning without joiners
                raise
            else:
                flight.set_result((outcome, requested_at, latency_ms))
            finally:
                del self._flights[key]
        if outcome is None:
            return
        if isinstance(outcome, Answer):
            await self._publish(trigger, outcome, "service", requested_at, latency_ms, None)
        else:
            self._metrics.p13n_fallbacks.labels(self.name).inc()
            await self._publish(trigger, None, "fallback", requested_at, latency_ms, outcome)

    async def _take_token(self) -> None:
        while True:
            wait = self.limiter.try_take(time.monotonic())
            if wait <= 0:
                return
            await asyncio.sleep(wait)

    async def _call(self, trigger: Trigger) -> tuple[Outcome, float, float]:
        requested_at, started = time.time(), time.monotonic()
        tries = throttled = 0
        while True:
            if self.health.misconfigured:
                self._drop("misconfigured")
                return None, requested_at, 0.0
            await self._take_token()
            if time.monotonic() - trigger.accepted_at > self.service.max_age_s:
                self._drop(STALE)
                return None, requested_at, 0.0
            result = await self._request(trigger)
            latency_ms = (time.monotonic() - started) * 1000
            if result.status == 200:
                if self.health.observe(200) is Change.LEFT:
                    # Another worker's 401 made it misconfigured while this call was in flight.
                    self._resumed()
                answer = parse_answer(result.body)
                if isinstance(answer, Answer):
                    self.cache.put(trigger.request_key, answer, time.monotonic())
                return answer, requested_at, latency_ms
            if self._note_health(result, trigger):
                self._drop("misconfigured")
                return None, requested_at, latency_ms
            error = self._error(result)
            if result.status == 429:
                throttled += 1
                wait = min(result.retry_after_s or 1.0, self._max_retry_after_s)
                self.limiter.block_until(time.monotonic() + wait)
                if throttled < MAX_THROTTLED:
                    continue
                return error, requested_at, latency_ms
            tries += 1
            retryable = result.status is None or result.status >= 500
            if not retryable or tries >= ATTEMPTS:
                self._log.warning(
                    "personalization_fallback",
                    status=result.status,
                    error=error.code,
                    tries=tries,
                )
                return error, requested_at, latency_ms
            # A 503's Retry-After is honoured as a 429's is: capped, a day must not stall a worker.
            retry_after = result.retry_after_s
            if retry_after is not None:
                retry_after = min(retry_after, self._max_retry_after_s)
            await asyncio.sleep(
                retry_delay_s(
                    tries, BACKOFF_INITIAL_S, BACKOFF_MAX_S, self._rng.uniform, retry_after
                )
            )

    async def _request(self, trigger: Trigger) -> CallResult:
        assert self._client is not None, "start() first"
        result = await self._client.call(request_body(trigger))
        self._metrics.p13n_requests.labels(self.name, status_label(result)).inc()
        self._metrics.p13n_request_seconds.labels(self.name).observe(result.elapsed_s)
        return result

    @staticmethod
    def _error(result: CallResult) -> CallError:
        if result.status is None:
            message = result.transport_error or "transport error"
            return CallError(None, message.split(":", 1)[0], message)
        return error_of(result.status, result.body)

    # ------------------------------------------------------------ health

    def _note_health(self, result: CallResult, trigger: Trigger) -> bool:
        """Track 401/404; True when the service is (now) misconfigured."""
        change = self.health.observe(result.status)
        if change is Change.ENTERED:
            self._metrics.p13n_misconfigured.labels(self.name).set(1)
            self._drop("misconfigured", self.queue.clear())
            self._log_misconfigured(result)
            if not self._probing:
                self._probing = True
                self._spawn(self._probe(trigger))
        elif change is Change.LEFT:
            self._resumed()
        return self.health.misconfigured

    def _log_misconfigured(self, result: CallResult) -> None:
        if self.health.should_log(time.monotonic()):
            self._log.error(
                "personalization_service_misconfigured",
                status=result.status,
                cause="API key refused" if result.status == 401 else "unknown service or segment",
                action="check the key's CDP access, name and parent_segment_id; probing",
                url_path=self.service.path,
            )

    def _resumed(self) -> None:
        self._metrics.p13n_misconfigured.labels(self.name).set(0)
        self._log.info("personalization_service_resumed")

    async def _probe(self, trigger: Trigger) -> None:
        """Ask again with backoff (the request of the trigger that found the fault)."""
        try:
            while self.health.misconfigured:
                await asyncio.sleep(self.health.next_probe_delay(self._rng.uniform))
                await self._take_token()
                result = await self._request(trigger)
                change = self.health.observe(result.status)
                if change is Change.LEFT:
                    self._resumed()
                elif self.health.misconfigured:
                    self._log_misconfigured(result)
        finally:
            self._probing = False

    def readiness_note(self) -> str | None:
        if self.health.misconfigured:
            return f"{self.name} ({self.health.cause})"
        return None
