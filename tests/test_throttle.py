"""Back-pressure parsing, the wait budget and rate limits: pure logic, no server."""

from __future__ import annotations

import pytest

from mxshift.store.imap import _with_appendlimit
from mxshift.store.throttle import (RateLimiter, ThrottledOut, ThrottleSettings, WaitBudget,
                                    classify, suggested_wait)


@pytest.mark.parametrize("text, kind, wait, reconnect", [
    ("Request is throttled. Suggested Backoff Time: 52347 milliseconds", "throttled",
     52.347, False),
    ("[UNAVAILABLE] Request is throttled. Suggested Backoff Time: 1500 ms", "throttled",
     1.5, False),
    ("Session invalidated - AccessTokenExpired", "token-expired", None, True),
    ("[UNAVAILABLE] Server Unavailable. 15", "throttled", None, False),
    ("User is authenticated but not connected.", "throttled", None, False),
    ("[INUSE] Mailbox in use", "throttled", None, False),
    ("[OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)", "throttled",
     None, False),
    ("[ALERT] Too many simultaneous connections. (Failure)", "throttled", None, False),
    ("[LIMIT] Too many commands", "throttled", None, False),
])
def test_back_pressure_is_recognised(text, kind, wait, reconnect) -> None:
    bp = classify(text, command="UID FETCH")
    assert bp is not None and bp.kind == kind and bp.reconnect is reconnect
    assert bp.wait == (pytest.approx(wait) if wait is not None else None)


@pytest.mark.parametrize("text, command", [
    ("[LIMIT] Mail size is larger than the maximum size", "APPEND"),  # the message's fault
    ("[OVERQUOTA] Quota exceeded (mailbox for user is full)", "APPEND"),
    ("[TRYCREATE] Mailbox doesn't exist: X", "APPEND"),
    ("[NONEXISTENT] Mailbox doesn't exist: X", "SELECT"),
    ("Invalid messageset", "UID FETCH"),
])
def test_real_errors_are_not_back_pressure(text, command) -> None:
    assert classify(text, command=command) is None


def test_a_lost_connection_reconnects_and_keeps_a_suggested_wait() -> None:
    bp = classify("Request is throttled. Suggested Backoff Time: 2000 milliseconds", lost=True)
    assert bp is not None and bp.kind == "lost" and bp.reconnect and bp.wait == 2.0
    eof = classify("socket error: EOF", lost=True)
    assert eof is not None and eof.kind == "lost" and eof.wait is None


def test_suggested_wait_units() -> None:
    assert suggested_wait("Suggested Backoff Time: 3 seconds") == 3.0
    assert suggested_wait("suggested backoff time: 250 milliseconds") == 0.25
    assert suggested_wait("no hint here") is None


def test_wait_budget_honours_the_server_doubles_its_own_guess_and_gives_up_clearly() -> None:
    budget = WaitBudget(ThrottleSettings(max_total_wait=30, default_wait=2), "imap.test")
    told = classify("Suggested Backoff Time: 4000 milliseconds")
    guess = classify("[UNAVAILABLE] busy")
    assert told is not None and guess is not None
    assert budget.next_wait(told) == 4.0
    assert budget.next_wait(guess) == 4.0    # second in a row: 2 * 2
    assert budget.next_wait(guess) == 8.0
    budget.succeeded()
    assert budget.next_wait(guess) == 2.0    # a success resets the doubling
    assert budget.total == 18.0
    with pytest.raises(ThrottledOut) as err:
        budget.next_wait(classify("Suggested Backoff Time: 20000 milliseconds"))  # type: ignore[arg-type]
    text = str(err.value)
    assert "imap.test" in text and "max_total_wait" in text and "30 s" in text
    assert "Suggested Backoff Time" in text  # the server's own words, for the operator


def test_a_lost_connection_is_retried_at_once_the_first_time() -> None:
    budget = WaitBudget(ThrottleSettings(default_wait=3), "h")
    lost = classify("EOF", lost=True)
    assert lost is not None
    assert budget.next_wait(lost) == 0.0
    assert budget.next_wait(lost) == 6.0


def test_rate_limiter_spaces_messages_and_bytes() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    lim = RateLimiter(ThrottleSettings(messages_per_second=2, bytes_per_second=1000),
                      clock=lambda: now[0], sleep=sleep)
    assert lim.acquire(1, 100) == 0.0
    assert lim.acquire(1, 100) == pytest.approx(0.5)     # 2 messages/s
    assert lim.acquire(1, 2000) == pytest.approx(0.5)    # the bytes of the last one
    assert lim.acquire(1, 10) == pytest.approx(1.5)      # 2000 bytes at 1000/s, from 100.5
    assert sum(slept) == pytest.approx(2.5)


def test_rate_limiter_bytes_per_day_waits_for_the_window() -> None:
    now = [0.0]
    lim = RateLimiter(ThrottleSettings(bytes_per_day=1000), clock=lambda: now[0],
                      sleep=lambda s: None)
    assert lim.delay(1, 600) == 0.0
    now[0] = 3600.0
    assert lim.delay(1, 300) == 0.0
    assert lim.delay(1, 200) == pytest.approx(86400.0 - 3600.0)  # until the first leaves


def test_provider_size_limit_becomes_appendlimit() -> None:
    assert "APPENDLIMIT=100" in _with_appendlimit(frozenset({"IMAP4REV1"}), 100)
    assert _with_appendlimit(frozenset({"APPENDLIMIT=50"}), 100) == {"APPENDLIMIT=50"}
    assert _with_appendlimit(frozenset({"APPENDLIMIT=500"}), 100) == {"APPENDLIMIT=100"}
