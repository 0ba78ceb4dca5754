"""`ThresholdsResource`: the limits the streaming checks judge by (the `checks` section of pipeline.yaml)."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from config.settings import ChecksSection, load_settings


class ThresholdsResource(dg.ConfigurableResource):
    """The checks' limits. A field left unset is read from the configuration (pipeline.yaml, PIPELINE_CHECKS__*)
    each time the checks are evaluated, so a changed limit applies without reloading the code location; a field
    set (run config in the launchpad) judges by that value instead."""

    freshness_minutes: int | None = Field(default=None, description="checks.freshness_minutes")
    max_consumer_lag: int | None = Field(default=None, description="checks.max_consumer_lag")
    max_dead_letter_rate: float | None = Field(default=None, description="checks.max_dead_letter_rate")
    max_late_rate: float | None = Field(default=None, description="checks.max_late_rate")
    rate_window_minutes: int | None = Field(default=None, description="checks.rate_window_minutes")

    def limits(self) -> ChecksSection:
        """The configured limits, with the fields that are set laid over them."""
        given = {
            "freshness_minutes": self.freshness_minutes,
            "max_consumer_lag": self.max_consumer_lag,
            "max_dead_letter_rate": self.max_dead_letter_rate,
            "max_late_rate": self.max_late_rate,
            "rate_window_minutes": self.rate_window_minutes,
        }
        return load_settings(checks={key: value for key, value in given.items() if value is not None}).checks
