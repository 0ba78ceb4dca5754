"""The bookkeeping the sensors share: a JSON cursor, when an event is worth recording again, and whether a
recovery they requested is still on its way."""

import json
from typing import Any

import dagster as dg

from dagster_project.defs.keys import RECOVERY_TAG

OBSERVE_AT_LEAST_EVERY_SECONDS = 300
RETRY_RECOVERY_AFTER_SECONDS = 120
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def read_cursor(context: dg.SensorEvaluationContext) -> dict[str, Any]:
    return dict(json.loads(context.cursor)) if context.cursor else {}


def due(
    seen: dict[str, Any],
    fingerprint: Any,
    now: float,
    min_gap: float = 0,
    max_gap: float = OBSERVE_AT_LEAST_EVERY_SECONDS,
) -> bool:
    """Whether to record an event again (and then remember it in `seen`): what it reports changed and the last
    one is at least `min_gap` seconds old, or the last one is `max_gap` old."""
    elapsed = now - seen.get("at", 0)
    if (seen.get("fingerprint") != fingerprint and elapsed >= min_gap) or elapsed >= max_gap:
        seen.update(fingerprint=fingerprint, at=now)
        return True
    return False


def recovery_in_flight(context: dg.SensorEvaluationContext, recovered: str) -> bool:
    """Whether a run recovering `recovered` (its RECOVERY_TAG) is queued or running."""
    runs = context.instance.get_runs(filters=dg.RunsFilter(tags={RECOVERY_TAG: recovered}, statuses=IN_FLIGHT), limit=1)
    return bool(runs)
