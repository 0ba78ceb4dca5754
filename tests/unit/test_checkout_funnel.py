"""The checkout funnel's rules (flink_jobs/checkout_funnel.py): a count window with a timeout."""

from __future__ import annotations

import pytest

from flink_jobs.checkout_funnel import ClosedFunnel, Funnel, FunnelStep, funnels_of

ROUTES = ("/cart/items", "/checkout", "/payments")
TIMEOUT = 30 * 60_000


def step(event_id: str, ms: int, route: str, status: int = 200) -> FunnelStep:
    return FunnelStep(event_id, ms, route, status)


def test_closes_by_count_completed_when_the_last_step_succeeds() -> None:
    funnel = Funnel(ROUTES, TIMEOUT)
    assert funnel.add(step("a", 1_000, "/cart/items", 201)) is None
    assert funnel.add(step("b", 5_000, "/checkout")) is None
    assert funnel.add(step("c", 9_000, "/payments")) == ClosedFunnel(
        1_000, 9_000, 3, 3, "/payments", "completed", "count"
    )
    assert not funnel.is_open


def test_closes_by_count_abandoned_when_the_last_step_failed_or_is_not_the_last_route() -> None:
    declined = Funnel(ROUTES, TIMEOUT)
    for s in (step("a", 0, "/cart/items"), step("b", 1, "/checkout")):
        declined.add(s)
    closed = declined.add(step("c", 2, "/payments", 402))
    assert closed is not None and (closed.outcome, closed.closed_by) == ("abandoned", "count")

    looping = Funnel(ROUTES, TIMEOUT)
    for s in (step("a", 0, "/cart/items"), step("b", 1, "/cart/items")):
        looping.add(s)
    closed = looping.add(step("c", 2, "/cart/items"))
    assert closed == ClosedFunnel(0, 2, 3, 1, "/cart/items", "abandoned", "count")


def test_times_out_at_its_deadline_with_what_it_had() -> None:
    funnel = Funnel(ROUTES, TIMEOUT)
    funnel.add(step("a", 10_000, "/cart/items"))
    funnel.add(step("b", 20_000, "/checkout", 409))
    assert funnel.deadline_ms == 10_000 + TIMEOUT
    assert funnel.time_out() == ClosedFunnel(10_000, 10_000 + TIMEOUT, 2, 2, "/checkout", "abandoned", "timeout")
    assert not funnel.is_open


def test_an_earlier_step_arriving_late_moves_the_start_and_the_deadline() -> None:
    funnel = Funnel(ROUTES, TIMEOUT)
    funnel.add(step("b", 20_000, "/checkout"))
    funnel.add(step("a", 15_000, "/cart/items"))
    assert (funnel.opened_ms, funnel.deadline_ms) == (15_000, 15_000 + TIMEOUT)
    closed = funnel.add(step("c", 18_000, "/payments"))
    # the last step in event time is /checkout (20 s), not the /payments that arrived last
    assert closed == ClosedFunnel(15_000, 20_000, 3, 3, "/checkout", "abandoned", "count")


def test_a_repeated_event_is_one_step() -> None:
    funnel = Funnel(ROUTES, TIMEOUT)
    funnel.add(step("a", 0, "/cart/items"))
    assert funnel.add(step("a", 0, "/cart/items")) is None
    assert len(funnel.steps) == 1


def test_a_route_outside_the_funnel_is_refused() -> None:
    with pytest.raises(ValueError, match="not a funnel route"):
        Funnel(ROUTES, TIMEOUT).add(step("x", 0, "/products"))


def test_a_request_at_the_deadline_times_the_funnel_out_and_opens_the_next() -> None:
    funnel = Funnel(ROUTES, TIMEOUT)
    funnel.add(step("a", 0, "/cart/items"))
    funnel.add(step("b", 60_000, "/checkout"))
    closed = funnel.add(step("c", TIMEOUT, "/payments"))
    assert closed == ClosedFunnel(0, TIMEOUT, 2, 2, "/checkout", "abandoned", "timeout")
    assert [s.event_id for s in funnel.steps] == ["c"]
    assert funnel.deadline_ms == 2 * TIMEOUT


def test_a_funnel_needs_two_routes() -> None:
    with pytest.raises(ValueError, match="at least 2 routes"):
        Funnel(("/checkout",), TIMEOUT)


def test_funnels_of_a_users_requests_in_any_order() -> None:
    requests = [
        step("d", TIMEOUT + 5_000, "/cart/items"),  # opens the second funnel
        step("b", 2_000, "/checkout"),
        step("a", 1_000, "/cart/items"),
        step("c", 3_000, "/payments", 201),  # third step: the first funnel closes by count
        step("e", TIMEOUT + 9_000, "/checkout", 500),  # still open at the end: times out
    ]
    assert funnels_of(ROUTES, TIMEOUT, requests) == [
        ClosedFunnel(1_000, 3_000, 3, 3, "/payments", "completed", "count"),
        ClosedFunnel(TIMEOUT + 5_000, 2 * TIMEOUT + 5_000, 2, 2, "/checkout", "abandoned", "timeout"),
    ]
    assert funnels_of(ROUTES, TIMEOUT, []) == []
