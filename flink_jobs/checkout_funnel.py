"""The checkout funnel as a count window with a timeout: plain Python, no Flink, so its rules are unit-tested
on their own (tests/unit/test_checkout_funnel.py) and the streaming job's DataStream part (datastream_windows.py)
only keeps it in keyed state and sets its timer.

A user's funnel opens at their first request to one of the funnel routes (`streaming.funnel_routes`, in order)
and closes after N = len(funnel_routes) funnel requests (`closed_by = "count"`) or
`streaming.funnel_timeout_minutes` of event time after it opened (`closed_by = "timeout"`), whichever comes
first. It is `completed` when its last request was a successful (status < 400) request to the last step;
otherwise `abandoned`. A request repeated (same event_id) is counted once. A funnel request at or after the open
funnel's deadline closes it by timeout and opens the next one: the funnels depend on event time only, never on
when the watermark happened to pass the deadline, so the batch layer (`funnels_of`, dbt's
batch_checkout_funnels) finds exactly the funnels the stream closed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class FunnelStep:
    event_id: str
    event_ms: int
    route: str
    status_code: int


@dataclass(frozen=True)
class ClosedFunnel:
    window_start_ms: int  # the first step
    window_end_ms: int  # the last step (count) or the timeout
    steps: int
    deepest_step: int  # 1-based position of the furthest funnel route reached
    last_route: str
    outcome: str  # completed | abandoned
    closed_by: str  # count | timeout


@dataclass
class Funnel:
    routes: tuple[str, ...]
    timeout_ms: int
    steps: list[FunnelStep] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.routes) < 2:
            raise ValueError(f"a funnel needs at least 2 routes, got {list(self.routes)}")

    @property
    def is_open(self) -> bool:
        return bool(self.steps)

    @property
    def opened_ms(self) -> int:
        """The earliest step's event time (a step may arrive out of order, inside the watermark's bound)."""
        return min(s.event_ms for s in self.steps)

    @property
    def deadline_ms(self) -> int:
        """The event time at which an open funnel times out (its timer; it moves when an earlier step arrives)."""
        return self.opened_ms + self.timeout_ms

    def add(self, step: FunnelStep) -> ClosedFunnel | None:
        """Count a funnel request; the closed funnel when it was the N-th (the funnel is then empty again), or
        when it came at or after the deadline (the open funnel timed out; this request opens the next one)."""
        if step.route not in self.routes:
            raise ValueError(f"{step.route!r} is not a funnel route ({', '.join(self.routes)})")
        if any(s.event_id == step.event_id for s in self.steps):
            return None
        if self.is_open and step.event_ms >= self.deadline_ms:
            timed_out = self.time_out()
            self.steps.append(step)  # at least 2 routes: one request never closes a funnel by count
            return timed_out
        self.steps.append(step)
        if len(self.steps) < len(self.routes):
            return None
        return self._close(max(s.event_ms for s in self.steps), "count")

    def time_out(self) -> ClosedFunnel:
        return self._close(self.deadline_ms, "timeout")

    def _close(self, end_ms: int, closed_by: str) -> ClosedFunnel:
        last = max(self.steps, key=lambda s: s.event_ms)
        completed = last.route == self.routes[-1] and last.status_code < 400
        closed = ClosedFunnel(
            window_start_ms=self.opened_ms,
            window_end_ms=end_ms,
            steps=len(self.steps),
            deepest_step=max(self.routes.index(s.route) for s in self.steps) + 1,
            last_route=last.route,
            outcome="completed" if completed else "abandoned",
            closed_by=closed_by,
        )
        self.steps = []
        return closed


def funnels_of(routes: tuple[str, ...], timeout_ms: int, steps: Iterable[FunnelStep]) -> list[ClosedFunnel]:
    """Batch: the funnels one user's funnel requests make, taken in event-time order (ties by event_id), the
    one still open at the end timed out. The stream finds the same ones when its input arrived within the
    watermark's bound; the batch layer recomputes speed.checkout_funnels with this."""
    funnel = Funnel(routes, timeout_ms)
    closed = [c for s in sorted(steps, key=lambda s: (s.event_ms, s.event_id)) if (c := funnel.add(s)) is not None]
    if funnel.is_open:
        closed.append(funnel.time_out())
    return closed
