"""One protocol for the parts of the local stack, so `up`, `down`, `status` and the supervisor iterate over them
(`infra/stack.py` holds them in start order) instead of naming each.

A service starts (waiting until it is healthy, or checking that an external one answers), stops, names the
processes the supervisor keeps alive for it (none when it is someone else's: an external Kafka, a remote Flink
cluster, another catalog database) and says how `make status` checks each of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from config.settings import Settings
from infra.process import ManagedProcess


@dataclass(frozen=True)
class Unit:
    """A process the supervisor keeps alive, what must run before it is started again, and what to do once it
    was started again."""

    process: ManagedProcess
    after: tuple[str, ...] = ()
    on_restart: Callable[[], None] | None = None


@dataclass(frozen=True)
class Probe:
    """How `make status` checks one process, or an endpoint that is someone else's (`external`): where it
    serves, and a check that returns a short text and raises when it is not healthy."""

    name: str
    where: str
    check: Callable[[], str]
    external: bool = False


def answers(check: Callable[[Settings], bool], settings: Settings) -> Callable[[], str]:
    """A probe's check from a yes/no health function."""

    def run() -> str:
        if not check(settings):
            raise RuntimeError("not answering")
        return "ok"

    return run


class Service(Protocol):
    """A part of the stack, as `python -m infra up|down COMPONENT` names it."""

    component: str

    def wanted(self, settings: Settings) -> bool:
        """Whether `up` starts it under these settings (the demo app can be switched off, for one)."""
        ...

    def start(self, settings: Settings) -> str | None:
        """Start it and wait until it is healthy; what the user should read about it, if anything."""
        ...

    def stop(self, settings: Settings) -> None: ...

    def units(self, settings: Settings) -> list[Unit]:
        """The processes the supervisor keeps alive for it, in start order."""
        ...

    def probes(self, settings: Settings) -> list[Probe]: ...


class ServiceBase:
    """What most services share: `up` always starts them; no process of their own, nothing to probe."""

    component = ""

    def wanted(self, settings: Settings) -> bool:
        return True

    def units(self, settings: Settings) -> list[Unit]:
        return []

    def probes(self, settings: Settings) -> list[Probe]:
        return []
