"""The demo web service (FastAPI with the interceptor) and the traffic generator that drives it."""

from __future__ import annotations

import sys

import httpx

from config.settings import REPO_ROOT, Settings
from infra import supervision
from infra.process import ManagedProcess, PortSpec
from infra.services.base import Probe, ServiceBase, Unit, answers


def is_healthy(settings: Settings) -> bool:
    url = f"http://{settings.demo.host}:{settings.demo.port}/healthz"
    return httpx.get(url, timeout=3).status_code == 200


def app_process(settings: Settings) -> ManagedProcess:
    return ManagedProcess(
        name="demo-app",
        argv=[sys.executable, "-m", "demo.app"],
        log_file=settings.log_dir / "demo-app.log",
        run_dir=settings.run_dir,
        ports=[PortSpec(settings.demo.host, settings.demo.port, "demo.port")],
        env={"PYTHONUNBUFFERED": "1"},
        cwd=REPO_ROOT,
        health=lambda: is_healthy(settings),
        start_timeout=60,
    )


def traffic_process(settings: Settings) -> ManagedProcess:
    return ManagedProcess(
        name="traffic",
        argv=[sys.executable, "-m", "demo.traffic"],
        log_file=settings.log_dir / "traffic.log",
        run_dir=settings.run_dir,
        env={"PYTHONUNBUFFERED": "1"},
        cwd=REPO_ROOT,
    )


def processes(settings: Settings) -> list[ManagedProcess]:
    return [app_process(settings), traffic_process(settings)]


class DemoApp(ServiceBase):
    """The demo shop (FastAPI with the interceptor), when demo.enabled."""

    component = "demo"

    def wanted(self, settings: Settings) -> bool:
        return settings.demo.enabled

    def start(self, settings: Settings) -> str | None:
        supervision.run(settings, app_process(settings))
        return None

    def stop(self, settings: Settings) -> None:
        supervision.stop(settings, app_process(settings))

    def units(self, settings: Settings) -> list[Unit]:
        return [Unit(app_process(settings))]

    def probes(self, settings: Settings) -> list[Probe]:
        where = f"http://{settings.demo.host}:{settings.demo.port}"
        return [Probe(app_process(settings).name, where, answers(is_healthy, settings))]


class Traffic(ServiceBase):
    """The traffic generator that drives the demo shop, when traffic.enabled and demo.enabled."""

    component = "traffic"

    def wanted(self, settings: Settings) -> bool:
        return settings.traffic.enabled and settings.demo.enabled

    def start(self, settings: Settings) -> str | None:
        supervision.run(settings, traffic_process(settings))
        return None

    def stop(self, settings: Settings) -> None:
        supervision.stop(settings, traffic_process(settings))

    def units(self, settings: Settings) -> list[Unit]:
        return [Unit(traffic_process(settings), after=(app_process(settings).name,))]

    def probes(self, settings: Settings) -> list[Probe]:
        return [Probe(traffic_process(settings).name, "-", lambda: "ok")]
