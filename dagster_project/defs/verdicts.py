"""A check's outcome (`Verdict`), computed once and given either as the result of a check run or as a sensor's
evaluation without a run."""

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import dagster as dg


@dataclass(frozen=True)
class Verdict:
    """One check's outcome."""

    asset_key: dg.AssetKey
    check_name: str
    passed: bool
    description: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def check_key(self) -> dg.AssetCheckKey:
        return dg.AssetCheckKey(self.asset_key, self.check_name)

    def _fields(self) -> dict[str, Any]:
        return {
            "asset_key": self.asset_key,
            "check_name": self.check_name,
            "passed": self.passed,
            "description": self.description,
            "metadata": dict(self.metadata),
        }

    def result(self) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(**self._fields())

    def evaluation(self) -> dg.AssetCheckEvaluation:
        return dg.AssetCheckEvaluation(**self._fields())


def selected_results(
    context: dg.AssetCheckExecutionContext, verdicts: Iterable[Verdict]
) -> Iterator[dg.AssetCheckResult]:
    """The results of the checks the run selected (a user may execute one check of a multi-asset check)."""
    selected = context.selected_asset_check_keys
    return (verdict.result() for verdict in verdicts if verdict.check_key in selected)
