"""`python -m infra <command>`: what `make up`, `make down` and `make status` run.

    up [COMPONENT ...]     install what is missing, start the components (default: all), print the URLs
    down [COMPONENT ...]   stop them (Flink jobs with a savepoint first)
    status [--json]        what runs, where, its health, restarts and last exit; exit 0 when healthy,
                           1 when something that should run does not (or does not answer), 3 when stopped
    install [--browser]    only install (Flink venv, Kafka and connector jars; --browser: also Debian's
                           Chromium for the browser tests, what `make test` runs)
    clean                  stop everything and delete all state (var/ and the catalog's data)
    deploy JOB             deploy or upgrade one Flink job
    recover [JOB ...]      start each job that should run and has no active run from its latest checkpoint
    replay JOB DAY [DAY]   Kappa replay: the job's SQL in batch mode over raw.http_events of the days (UTC,
                           YYYY-MM-DD, end day included), overwriting those day partitions of speed.*
    maintain               compact small files, collapse re-firings, expire old snapshots (--help: options)
    dbt ARGS...            run dbt in dbt/ with the pipeline's vars (mode, window rules), e.g. `dbt build`
    lock / lock-jars       rewrite infra/requirements/*.lock or the jar checksums after a version change

Components, in start order: kafka, catalog (its database and the Iceberg tables), flink, jobs, dagster, demo,
traffic.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from config import logs
from config.logs import get_logger
from config.settings import ConfigError, Settings, load_settings
from event_log.topic import TopicError
from flink_jobs import JOBS
from infra import flink_deploy, install, stack, supervision
from infra import status as stack_status
from infra.process import ServiceError
from infra.services import postgres
from lakehouse import contract, dbt_runner, maintenance
from lakehouse.iceberg import LakeError

log = get_logger("infra.cli")


def _step(what: str, action: Callable[[], object]) -> None:
    started = time.monotonic()
    log.info("step", what=what)
    action()
    log.info("step_done", what=what, seconds=round(time.monotonic() - started, 1))


def _print_result(result: flink_deploy.DeployResult) -> None:
    restored = f", restored from {result.restored_from}" if result.restored_from else ""
    print(f"flink job {result.job}: {result.action} (job id {result.job_id or '-'}{restored})")


def up(settings: Settings, components: list[str]) -> None:
    chosen = stack.select(components)
    _step("install", lambda: install.install_all(settings))
    _step("supervisor", lambda: supervision.ensure_supervisor(settings))

    def start(service: stack.Service) -> None:
        said = service.start(settings)
        if said:
            print(said)

    for service in chosen:
        if service.wanted(settings):
            _step(service.component, lambda service=service: start(service))  # type: ignore[misc]
    print(urls(settings))


def down(settings: Settings, components: list[str]) -> None:
    failures = []
    for service in reversed(stack.select(components)):
        try:
            service.stop(settings)
        except Exception as exc:  # keep stopping the rest; report at the end
            log.error("stop_failed", component=service.component, error=str(exc)[:300])
            failures.append(service.component)
    supervision.stop_supervisor(settings)  # once nothing should run any more
    if failures:
        raise ServiceError(f"could not stop cleanly: {', '.join(failures)} (see the log lines above)")


def urls(settings: Settings) -> str:
    catalog_uri = settings.catalog_jdbc_uri if settings.iceberg.catalog == "jdbc" else str(settings.iceberg.uri)
    if settings.embedded_postgres:
        catalog_uri += f"  (user {settings.postgres.user}, password in {settings.catalog_password_file})"
    lines = [
        "",
        "The pipeline is up:",
        f"  Dagster UI        http://{settings.dagster.host}:{settings.dagster.port}",
        f"  Flink UI          {settings.flink.url}",
        f"  Kafka             {settings.kafka.servers}  (topic {settings.kafka.topic})",
        f"  Iceberg catalog   {settings.iceberg.catalog_name}: {catalog_uri}",
        f"  Warehouse         {settings.warehouse}",
    ]
    if settings.demo.enabled:
        lines.append(f"  Demo app          http://{settings.demo.host}:{settings.demo.port}")
    lines.append(f"  Logs              {settings.log_dir}")
    return "\n".join(lines)


def status(settings: Settings, as_json: bool = False) -> int:
    """Print the stack's report; exit 0 when healthy, 1 when something that should run does not or does not
    answer, 3 when nothing should run (infra/status.py)."""
    report = stack_status.collect(settings)
    print(json.dumps(report.as_dict(), indent=2) if as_json else stack_status.render(report))
    return stack_status.exit_code(report)


def _at_least(minimum: float, cast: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = cast(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}, got {text}")
        return value

    return parse


def _add_maintain_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    defaults = maintenance.Options()
    p = sub.add_parser(
        "maintain",
        help="compact small files, collapse re-firings, expire old snapshots",
        description="Per Iceberg table: rewrite each past day partition with many small files into one file "
        "(keeping only the latest firing of each window), then expire old snapshots and delete the files only "
        "they referenced. Prints a JSON summary; see lakehouse/maintenance.py.",
    )
    tables = [spec.identifier for spec in contract.TABLES]
    p.add_argument("--table", choices=tables, metavar="TABLE", help="only this table: " + ", ".join(tables))
    p.add_argument(
        "--min-files",
        type=_at_least(1, int),
        default=defaults.min_files,
        help="rewrite a day partition holding at least this many data files (default: %(default)s)",
    )
    p.add_argument(
        "--retain-hours",
        type=_at_least(0, float),
        default=defaults.retain_hours,
        help="expire snapshots older than this; the current one is always kept (default: %(default)s)",
    )
    p.add_argument("--include-today", action="store_true", help="rewrite today's (UTC) partitions too")
    p.add_argument("--dry-run", action="store_true", help="only report what would be done")


def maintain(settings: Settings, args: argparse.Namespace) -> int:
    """Print the summary as JSON; exit status 1 when some partition could not be rewritten."""
    options = maintenance.Options(
        min_files=int(args.min_files),
        retain_hours=float(args.retain_hours),
        include_today=args.include_today,
        dry_run=args.dry_run,
    )
    tables = [spec for spec in contract.TABLES if spec.identifier == args.table] if args.table else []
    summary = maintenance.run(settings, options, tables)
    print(json.dumps(summary, indent=2))
    return 1 if any(t["status"].startswith("failed") for t in summary["tables"].values()) else 0


def _day(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day (YYYY-MM-DD): {text!r}") from None


def replay(settings: Settings, job: str, first: datetime, last: datetime | None) -> None:
    end = (last or first) + timedelta(days=1)
    if end <= first:
        raise ConfigError(f"replay: the last day {last:%Y-%m-%d} is before the first {first:%Y-%m-%d}")
    job_id = flink_deploy.replay(settings, job, int(first.timestamp() * 1000), int(end.timestamp() * 1000))
    print(f"replayed {job} over [{first:%Y-%m-%d}, {end:%Y-%m-%d}) (Flink job {job_id})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("up", "down"):
        p = sub.add_parser(name)
        p.add_argument("components", nargs="*", metavar="COMPONENT")
    p = sub.add_parser("status", help="what runs and whether it is healthy (exit 0 healthy, 1 not, 3 stopped)")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p = sub.add_parser("install", help="only install what the services need")
    p.add_argument(
        "--browser", action="store_true", help="also Debian's Chromium for the browser tests (apt-get, as root)"
    )
    sub.add_parser("clean")
    p = sub.add_parser("deploy")
    p.add_argument("job", choices=sorted(JOBS))
    p = sub.add_parser(
        "recover", help="start each job that should run and has no active run from its latest checkpoint"
    )
    p.add_argument("jobs", nargs="*", metavar="JOB", help=f"default: all ({', '.join(sorted(JOBS))})")
    p.add_argument("--by", default="cli", help="who recovers, recorded in the job's state (default: %(default)s)")
    p.add_argument("--reason", default="asked on the command line", help="why, recorded beside it")
    sub.add_parser("lock")
    sub.add_parser("lock-jars")
    p = sub.add_parser("replay", help="Kappa replay of whole days (UTC) from raw.http_events")
    p.add_argument("job", choices=flink_deploy.REPLAYABLE)
    p.add_argument("first_day", type=_day, metavar="DAY")
    p.add_argument("last_day", type=_day, nargs="?", metavar="LAST_DAY", help="default: DAY")
    _add_maintain_parser(sub)
    p = sub.add_parser("dbt", help="run dbt in dbt/ with the pipeline's vars", add_help=False)
    p.add_argument("dbt_args", nargs=argparse.REMAINDER, metavar="ARGS")
    args = parser.parse_args(argv)
    logs.configure()
    try:
        settings = load_settings()
        if args.command == "up":
            up(settings, args.components)
        elif args.command == "down":
            down(settings, args.components)
        elif args.command == "status":
            return status(settings, as_json=args.json)
        elif args.command == "install":
            install.install_all(settings, browser=args.browser)
        elif args.command == "clean":
            down(settings, [])
            postgres.remove_data(settings)
            shutil.rmtree(settings.var_dir / "tmp", ignore_errors=True)
        elif args.command == "deploy":
            _print_result(flink_deploy.deploy(settings, args.job))
        elif args.command == "recover":
            for job in args.jobs or JOBS:
                flink_deploy.spec(job)  # an unknown job fails here, naming the known ones
                _print_result(flink_deploy.recover(settings, job, by=args.by, reason=args.reason))
        elif args.command == "lock":
            install.lock_python()
        elif args.command == "lock-jars":
            install.lock_jars()
        elif args.command == "replay":
            replay(settings, args.job, args.first_day, args.last_day)
        elif args.command == "maintain":
            return maintain(settings, args)
        elif args.command == "dbt":
            return dbt_runner.run(settings, args.dbt_args).returncode
    except (ConfigError, ServiceError, install.InstallError, LakeError, TopicError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
