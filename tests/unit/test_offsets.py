from hypothesis import given, settings
from hypothesis import strategies as st

from forwarder.core.offsets import RECORD_OVERHEAD_BYTES, OffsetTracker, record_bytes

P = ("t", 0)


def test_committable_is_first_unfinished_offset() -> None:
    tracker = OffsetTracker(max_pending=100)
    for offset in range(10, 15):
        tracker.add(P, offset)
    tracker.done(P, 11)
    tracker.done(P, 12)
    assert tracker.committable(P) == 10
    tracker.done(P, 10)
    assert tracker.committable(P) == 13
    tracker.done(P, 14)
    tracker.done(P, 13)
    assert tracker.committable(P) == 15
    assert tracker.pending(P) == 0


def test_to_commit_reports_only_moved_offsets() -> None:
    tracker = OffsetTracker(max_pending=100)
    tracker.add(P, 0)
    tracker.done(P, 0)
    assert tracker.to_commit() == {P: 1}
    tracker.mark_committed({P: 1})
    assert tracker.to_commit() == {}


def test_unknown_partition_or_revoked_offsets_are_ignored() -> None:
    tracker = OffsetTracker(max_pending=100)
    tracker.done(P, 5)
    tracker.add(P, 5)
    tracker.forget([P])
    tracker.done(P, 5)
    assert tracker.committable(P) is None


def test_partition_over_bound_is_reported_and_resumes_at_half() -> None:
    tracker = OffsetTracker(max_pending=4)
    for offset in range(4):
        tracker.add(P, offset)
    assert tracker.over_limit() == {P}
    tracker.done(P, 0)
    assert tracker.under_resume_mark([P]) == set()
    tracker.done(P, 1)
    assert tracker.under_resume_mark([P]) == {P}


def test_refetch_after_seek_forgets_pending_above() -> None:
    tracker = OffsetTracker(max_pending=100)
    for offset in range(5):
        tracker.add(P, offset)
    tracker.done(P, 3)
    tracker.add(P, 2)  # the consumer was rewound to 2
    assert tracker.pending(P) == 3
    assert tracker.committable(P) == 0


@settings(max_examples=300, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=60),
    order=st.randoms(use_true_random=False),
    cut=st.integers(min_value=0, max_value=60),
)
def test_committed_offset_never_passes_an_unfinished_record(count: int, order, cut: int) -> None:
    tracker = OffsetTracker(max_pending=1000)
    offsets = list(range(100, 100 + count))
    for offset in offsets:
        tracker.add(P, offset)
    finished = offsets[:]
    order.shuffle(finished)
    finished = finished[: min(cut, count)]
    done: set[int] = set()
    for offset in finished:
        tracker.done(P, offset)
        done.add(offset)
        committed = tracker.committable(P)
        assert committed is not None
        # Every record below the committed offset is done ...
        assert all(o in done for o in offsets if o < committed)
        # ... and the committed offset itself is the first one that is not.
        assert committed == 100 + count or committed not in done
    if len(done) == count:
        assert tracker.committable(P) == 100 + count


def test_oldest_pending_timestamp_follows_the_head_of_every_partition() -> None:
    tracker = OffsetTracker(max_pending=10)
    assert tracker.oldest_pending_timestamp_ms() is None
    tracker.add("a", 0, 1_000)
    tracker.add("a", 1, 2_000)
    tracker.add("b", 0, 1_500)
    assert tracker.oldest_pending_timestamp_ms() == 1_000
    tracker.done("a", 1)  # out of order: the head is still pending
    assert tracker.oldest_pending_timestamp_ms() == 1_000
    tracker.done("a", 0)
    assert tracker.oldest_pending_timestamp_ms() == 1_500
    tracker.add("b", 0, 9_000)  # a re-fetch after a seek replaces the stale entry
    assert tracker.oldest_pending_timestamp_ms() == 9_000
    tracker.done("b", 0)
    assert tracker.oldest_pending_timestamp_ms() is None


class _Rec:
    def __init__(self, offset: int, timestamp: int) -> None:
        self.offset = offset
        self.timestamp = timestamp
        self.value = b"x" * offset


@settings(max_examples=200)
@given(
    fetches=st.lists(
        st.lists(st.integers(min_value=0, max_value=60), min_size=0, max_size=8),
        min_size=1,
        max_size=6,
    ),
    finished=st.sets(st.integers(min_value=0, max_value=60)),
)
def test_adding_a_whole_fetch_equals_adding_its_records_one_by_one(
    fetches: list[list[int]], finished: set[int]
) -> None:
    one_by_one = OffsetTracker(max_pending=1000)
    at_once = OffsetTracker(max_pending=1000)
    for fetch in fetches:
        records = [_Rec(o, 0 if o % 3 == 0 else 1000 + o) for o in sorted(set(fetch))]
        for record in records:
            size = record_bytes(record)  # type: ignore[arg-type]
            one_by_one.add(P, record.offset, record.timestamp or 7, size)
        at_once.add_all(P, records, 7)  # type: ignore[arg-type]
        for offset in finished:
            one_by_one.done(P, offset)
            at_once.done(P, offset)
        assert at_once.committable(P) == one_by_one.committable(P)
        assert at_once.pending(P) == one_by_one.pending(P)
        assert at_once.oldest_pending_timestamp_ms() == one_by_one.oldest_pending_timestamp_ms()
        assert at_once.held_bytes == one_by_one.held_bytes


@settings(max_examples=300)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["fetch", "done"]), st.integers(0, 40), st.integers(0, 5)),
        max_size=40,
    )
)
def test_bytes_held_are_those_of_the_records_not_yet_done_whatever_the_order(
    steps: list[tuple[str, int, int]],
) -> None:
    tracker = OffsetTracker(max_pending=1000, max_bytes=10_000)
    held: dict[int, int] = {}  # the model: offset -> bytes of each record read, not yet done
    # Records are marked done once they were read and are still tracked (a record can be done
    # twice: a late result after a re-read), as the pipeline does.
    finished: set[int] = set()
    for step, offset, count in steps:
        if step == "fetch":  # records offset..offset+count, maybe re-read after a seek
            records = [_Rec(o, 0) for o in range(offset, offset + count)]
            if records:
                held = {o: b for o, b in held.items() if o < offset}
                held.update({r.offset: record_bytes(r) for r in records})  # type: ignore[arg-type]
            tracker.add_all(P, records, 1)  # type: ignore[arg-type]
            if records:  # a re-read forgets what it overlaps: no late result comes for those
                finished = {o for o in finished if o < offset}
        elif offset in held or offset in finished:
            tracker.done(P, offset)
            held.pop(offset, None)
            finished.add(offset)
        assert tracker.held_bytes == sum(held.values())
        assert tracker.over_bytes() == (tracker.held_bytes >= 10_000)
    tracker.forget([P])
    assert tracker.held_bytes == 0


def test_a_record_holds_its_value_twice_plus_an_overhead() -> None:
    assert record_bytes(_Rec(2000, 0)) == 2 * 2000 + 60 + RECORD_OVERHEAD_BYTES  # type: ignore[arg-type]
    tracker = OffsetTracker(max_pending=1000, max_bytes=3 * record_bytes(_Rec(2000, 0)))  # type: ignore[arg-type]
    tracker.add_all(P, [_Rec(2000, 0), _Rec(2001, 0)], 1)  # type: ignore[arg-type]
    assert not tracker.over_bytes()
    tracker.add(P, 2002, 1, record_bytes(_Rec(2002, 0)))  # type: ignore[arg-type]
    assert tracker.over_bytes() and not tracker.under_bytes_resume_mark()
    tracker.done(P, 2001)
    tracker.done(P, 2002)
    assert tracker.under_bytes_resume_mark()


class _PartRec(_Rec):
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        super().__init__(offset, 1000 + offset)
        self.topic = topic
        self.partition = partition


@settings(max_examples=300)
@given(
    fetched=st.lists(st.tuples(st.sampled_from(["t", "u"]), st.integers(0, 2)), max_size=8),
    batches=st.lists(
        st.lists(
            st.tuples(st.sampled_from(["t", "u"]), st.integers(0, 2), st.integers(0, 12)),
            max_size=10,
        ),
        max_size=6,
    ),
)
def test_a_batch_done_at_once_equals_its_records_done_one_by_one(
    fetched: list[tuple[str, int]], batches: list[list[tuple[str, int, int]]]
) -> None:
    one_by_one = OffsetTracker(max_pending=1000)
    at_once = OffsetTracker(max_pending=1000)
    for topic, partition in set(fetched):  # partitions never fetched stay unknown
        records = [_PartRec(topic, partition, o) for o in range(10)]
        for tracker in (one_by_one, at_once):
            tracker.add_all((topic, partition), records, 7)  # type: ignore[arg-type]
    for batch in batches:  # records of several partitions, in any order, some twice or unknown
        records = [_PartRec(*coordinates) for coordinates in batch]
        for record in records:
            one_by_one.done((record.topic, record.partition), record.offset)
        at_once.done_records(records)  # type: ignore[arg-type]
        assert at_once.to_commit() == one_by_one.to_commit()
        assert at_once.held_bytes == one_by_one.held_bytes
        assert at_once.oldest_pending_timestamp_ms() == one_by_one.oldest_pending_timestamp_ms()
        assert {p: at_once.pending(p) for p in at_once.partitions} == {
            p: one_by_one.pending(p) for p in one_by_one.partitions
        }


@settings(max_examples=500)
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("fetch"), st.lists(st.integers(0, 50), min_size=1, max_size=12)),
            st.tuples(st.just("done"), st.lists(st.integers(0, 50), max_size=12)),
        ),
        max_size=30,
    )
)
def test_the_tracker_agrees_with_a_record_by_record_model_through_gaps_and_re_reads(
    steps: list[tuple[str, list[int]]],
) -> None:
    tracker = OffsetTracker(max_pending=1000)
    # The model: every record read and still tracked (offset -> bytes, Kafka time), those
    # done among them, and one past the last record read.
    tracked: dict[int, tuple[int, int]] = {}
    done: set[int] = set()
    next_offset: int | None = None
    for step, offsets in steps:
        if step == "fetch":  # a fetch, with gaps (compaction); it may re-read (a seek)
            records = [_Rec(o, 1000 + o) for o in sorted(set(offsets))]
            start = records[0].offset
            tracked = {o: v for o, v in tracked.items() if o < start}
            done = {o for o in done if o < start}
            tracked.update({r.offset: (record_bytes(r), r.timestamp) for r in records})  # type: ignore[arg-type]
            next_offset = records[-1].offset + 1
            tracker.add_all(P, records, 1)  # type: ignore[arg-type]
        else:  # a batch of results, some for records unknown or done already
            records = [_PartRec(P[0], P[1], o) for o in offsets]
            done |= {o for o in offsets if o in tracked}
            tracker.done_records(records)  # type: ignore[arg-type]
        unfinished = [o for o in tracked if o not in done]
        head = min(unfinished, default=None)
        tracked = {o: v for o, v in tracked.items() if head is not None and o >= head}
        done = {o for o in done if o in tracked}
        assert tracker.committable(P) == (head if head is not None else next_offset)
        assert tracker.pending(P) == len(tracked)
        assert tracker.held_bytes == sum(tracked[o][0] for o in unfinished)
        assert tracker.oldest_pending_timestamp_ms() == (
            tracked[head][1] if head is not None else None
        )
