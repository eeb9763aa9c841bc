import pytest

from forwarder.core.classify import (
    Action,
    Decision,
    Policy,
    SendResult,
    classify,
    error_code,
    group_by_receipt,
)

POLICY = Policy()


def _error(status: int, code: int | None = None, shape: str = "error.code") -> SendResult:
    if code is None:
        return SendResult(status=status, body=b"")
    bodies = {
        "code": f'{{"code": {code}}}',
        "error_code": f'{{"error_code": "{code}"}}',
        "error.code": f'{{"error": {{"code": {code}, "message": "m"}}}}',
        "errors[0].code": f'{{"errors": [{{"code": "{code}"}}]}}',
    }
    return SendResult(status=status, body=bodies[shape].encode())


TABLE = [
    (200, None, Action.ACK),
    (204, None, Action.ACK),
    (400, 3000, Action.PAUSE),
    (400, 3001, Action.PAUSE),
    (400, 3002, Action.PAUSE),
    (400, 3003, Action.PAUSE),
    (400, 3004, Action.ISOLATE),
    (400, 3010, Action.PAUSE),
    (400, None, Action.DEAD_LETTER),
    (401, None, Action.PAUSE),
    (403, None, Action.PAUSE),
    (404, None, Action.DEAD_LETTER),
    (413, None, Action.SPLIT),
    (429, 2003, Action.RETRY),
    (429, 2013, Action.RETRY),
    *[
        (500, c, Action.RETRY)
        for c in (1001, 1002, 1003, 1004, 1005, 2002, 2012, 2014, 2015, 2021, 9999)
    ],
    (500, 2001, Action.DEAD_LETTER),
    (500, 2011, Action.DEAD_LETTER),
    (500, None, Action.RETRY),
    (502, None, Action.RETRY),
    (503, None, Action.RETRY),
    (504, None, Action.RETRY),
    (418, None, Action.DEAD_LETTER),
    (422, 7, Action.DEAD_LETTER),
]


@pytest.mark.parametrize("shape", ["code", "error_code", "error.code", "errors[0].code"])
@pytest.mark.parametrize(("status", "code", "expected"), TABLE)
def test_every_row_of_the_table_in_every_body_shape(
    status: int, code: int | None, expected: Action, shape: str
) -> None:
    decision = classify(_error(status, code, shape), POLICY, 3)
    assert decision.action is expected
    if status >= 400:
        assert decision.status == status
        assert decision.code == code


def test_transport_error_is_retried() -> None:
    decision = classify(SendResult(transport_error="ConnectError"), POLICY, 1)
    assert decision.action is Action.RETRY
    assert "ConnectError" in decision.detail


@pytest.mark.parametrize(
    "body", [b"<html>oops</html>", b"", b"[1,2]", b'{"code": true}', b'{"code": "abc"}']
)
def test_unreadable_body_falls_back_to_the_status(body: bytes) -> None:
    assert error_code(body) is None
    assert classify(SendResult(status=400, body=body), POLICY, 1).action is Action.DEAD_LETTER


def test_receipts_with_failures_are_partial() -> None:
    body = b'{"receipts":[{"success":true},{"success":false,"code":3004},{"success":true}]}'
    decision = classify(SendResult(status=206, body=body), POLICY, 3)
    assert decision.action is Action.PARTIAL
    assert decision.accepted == (True, False, True)


def test_all_successful_receipts_ack() -> None:
    body = b'{"receipts":[{"success":true},{"success":true}]}'
    assert classify(SendResult(status=200, body=body), POLICY, 2).action is Action.ACK


def test_206_without_receipts_is_retried_not_acked() -> None:
    decision = classify(SendResult(status=206, body=b"<html>"), POLICY, 2)
    assert [r.action for r in decision.receipts] == [Action.RETRY, Action.RETRY]


def test_retry_after_is_carried() -> None:
    result = SendResult(status=429, body=b'{"code": 2003}', retry_after_s=3.0)
    assert classify(result, POLICY, 1).retry_after_s == 3.0


def test_overrides_win_over_defaults() -> None:
    policy = Policy.with_overrides(
        {"400:3001": Action.DEAD_LETTER, "500:9999": Action.PAUSE, "401": Action.DEAD_LETTER}
    )
    assert classify(_error(400, 3001), policy, 1).action is Action.DEAD_LETTER
    assert classify(_error(500, 9999), policy, 1).action is Action.PAUSE
    assert classify(_error(401), policy, 1).action is Action.DEAD_LETTER
    assert classify(_error(400, 3002), policy, 1).action is Action.PAUSE


@pytest.mark.parametrize("status", [200, 206])
@pytest.mark.parametrize(
    "body",
    [
        b'{"receipts":[{"success":true}]}',
        b'{"receipts":[{"success":true},{"success":true},{"success":true}]}',
        b'{"receipts":[]}',
        b'{"receipts":{"success":true}}',
    ],
)
def test_receipts_not_one_per_event_fail_the_whole_batch(status: int, body: bytes) -> None:
    decision = classify(SendResult(status=status, body=body), POLICY, 2)
    assert decision.action is Action.PARTIAL, "never an ack"
    assert [r.action for r in decision.receipts] == [Action.RETRY, Action.RETRY]
    assert decision.accepted == (False, False)


def test_a_failed_receipt_with_a_code_is_routed_by_the_policy_for_that_code() -> None:
    body = (
        b'{"receipts":[{"success":true},{"success":false,"code":3004},'
        b'{"success":false,"error":{"code":"3001"}},{"success":false,"code":1003},'
        b'{"success":false},{"success":false,"status":404}]}'
    )
    decision = classify(SendResult(status=200, body=body), POLICY, 6)
    assert decision.action is Action.PARTIAL
    got = [(r.action, r.status, r.code) for r in decision.receipts]
    assert got == [
        (Action.ACK, 200, None),
        (Action.ISOLATE, 400, 3004),
        (Action.PAUSE, 400, 3001),
        (Action.RETRY, 500, 1003),
        (Action.RETRY, 200, None),
        (Action.DEAD_LETTER, 404, None),
    ]
    overridden = Policy.with_overrides({"400:3004": Action.RETRY})
    assert classify(SendResult(status=200, body=body), overridden, 6).receipts[1].action is (
        Action.RETRY
    )


def test_code_labels_are_the_table_s_codes_those_of_the_policy_or_other() -> None:
    policy = Policy.with_overrides({"500:5000": Action.RETRY, "503": Action.PAUSE})
    assert policy.code_label(None) == ""
    assert policy.code_label(3004) == "3004"
    assert policy.code_label(5000) == "5000"
    assert policy.code_label(5001) == "other"
    assert POLICY.code_label(5000) == "other"
    assert {POLICY.code_label(c) for c in range(100_000)} == {
        *(str(c) for c in POLICY.known_codes),
        "other",
    }
    assert len(POLICY.known_codes) == 21


def test_receipts_group_events_by_action_and_retry_under_the_first_retried_receipt() -> None:
    ack, pause = Decision(Action.ACK, 200), Decision(Action.PAUSE, 401, 1001)
    retry_a, retry_b = Decision(Action.RETRY, 500, 2001), Decision(Action.RETRY, 503, 2002)
    bad, big = Decision(Action.DEAD_LETTER, 400, 3004), Decision(Action.SPLIT, 413)
    answer = Decision(
        Action.PARTIAL, 206, receipts=(ack, retry_a, bad, pause, retry_b, bad, big, ack)
    )
    groups = group_by_receipt(list("abcdefgh"), answer)
    assert groups.accepted == ["a", "h"]
    assert groups.held == ["d"]
    assert groups.retried == ["b", "e"]
    assert groups.retry_decision == retry_a
    assert groups.refused == {bad: ["c", "f"], big: ["g"]}


def test_receipts_that_do_not_match_the_events_one_to_one_are_a_bug() -> None:
    answer = Decision(Action.PARTIAL, 206, receipts=(Decision(Action.ACK, 200),))
    with pytest.raises(ValueError, match="zip"):
        group_by_receipt(["a", "b"], answer)
