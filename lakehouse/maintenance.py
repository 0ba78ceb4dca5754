"""Table maintenance, `python -m infra maintain`: per Iceberg table of the contract,

1. rewrite each past day partition that has at least `min_files` data files into one file (the Flink sinks
   commit a few small files per checkpoint), and in the same rewrite keep only the latest firing of each window
   of a table of window firings (`TableSpec.refirings`, the rule the lake's reader views apply, so after
   maintenance a plain scan shows one row per window); a partition of such a table is rewritten for its
   re-firings alone too;
2. expire the snapshots older than `retain_hours` and delete the files only they referenced, so the small files
   replaced by step 1 are released once no kept snapshot needs them. Always kept: the current snapshot, and
   each Flink sink's last commit with everything after it (a stopped job restores from it), unless that commit
   is older than the topic's retention (`kafka.retention_hours`).

Only days before today (UTC) are rewritten unless `include_today`: today's partition is still being written.

The Flink jobs keep appending meanwhile. A rewrite reads a partition at snapshot S and overwrites it with a
transaction based on S. pyiceberg (0.12, serializable isolation, the default) refuses that commit when another
writer added files matching the partition's filter after S (`ValidationException`), and rebases it when the
other commits touched other partitions only; a refused partition is read again and retried, up to `attempts`
times. A table whose isolation level was set to anything but serializable is not rewritten. Nothing a writer
committed is ever dropped (tests/unit/test_maintenance.py commits a concurrent append between the read and the
overwrite and checks every row).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy.exc
from pyiceberg.catalog import Catalog
from pyiceberg.conversions import from_bytes
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError, ValidationException
from pyiceberg.expressions import BooleanExpression, parser
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table
from pyiceberg.table.snapshots import IsolationLevel, Operation, Snapshot
from pyiceberg.transforms import DayTransform
from pyiceberg.types import IntegerType, LongType

from config.logs import get_logger
from config.settings import Settings
from lakehouse import contract, iceberg
from lakehouse.contract import Refirings, TableSpec
from lakehouse.iceberg import LakeError

if TYPE_CHECKING:
    import pyarrow as pa

log = get_logger("lakehouse.maintenance")

EPOCH = date(1970, 1, 1)
FLINK_CHECKPOINT = "flink.max-committed-checkpoint-id"  # in the summary of each commit of Iceberg's Flink sink

# Called right before a partition's overwrite is committed with (table spec, day, attempt): a seam for the
# tests, which commit a concurrent append there.
BeforeCommit = Callable[[TableSpec, date, int], None]


@dataclass(frozen=True)
class Options:
    min_files: int = 2
    retain_hours: float = 24.0
    include_today: bool = False
    dry_run: bool = False
    attempts: int = 4  # per partition: the first try plus retries after a concurrent commit
    retry_wait_seconds: float = 1.0  # times the attempt number
    # a Flink sink's last commit stays this long, whatever retain_hours says (None: kafka.retention_hours)
    flink_restore_hours: float | None = None


@dataclass
class TableReport:
    table: str
    status: str = "ok"  # ok | missing (not in the catalog) | failed[: why] (see the log)
    partitions_rewritten: int = 0
    partitions_failed: int = 0
    partitions_left_for_later: int = 0  # today (and later), unless include_today
    files_rewritten: int = 0  # data files replaced by the rewrites
    files_before: int = 0
    files_after: int = 0
    rows_before: int = 0
    rows_after: int = 0
    refirings_collapsed: int = 0
    conflicts: int = 0  # commits refused because another writer changed the partition; each was retried
    snapshots_expired: int = 0
    snapshots_kept_for_flink: int = 0  # older than retain_hours, kept so a stopped Flink job can restore
    files_deleted: int = 0
    days: list[str] = field(default_factory=list)  # the partitions rewritten (or, dry run, to rewrite)


def run(
    settings: Settings,
    options: Options,
    tables: Sequence[TableSpec] = (),
    now: datetime | None = None,
    before_commit: BeforeCommit | None = None,
) -> dict[str, Any]:
    """Maintain `tables` (default: all of the contract); return the summary printed by the CLI."""
    try:
        catalog = iceberg.load(settings)
    except sqlalchemy.exc.OperationalError as exc:
        hint = " (is it running? `python -m infra up catalog`)" if settings.embedded_postgres else ""
        raise LakeError(f"cannot reach the catalog database{hint}: {str(exc.orig)[:300]}") from exc
    now = now or datetime.now(UTC)
    if options.flink_restore_hours is None:
        options = replace(options, flink_restore_hours=float(settings.kafka.retention_hours))
    reports = []
    for spec in tables or contract.TABLES:
        try:
            reports.append(maintain_table(catalog, spec, options, now, before_commit))
        except Exception as exc:  # one table's trouble (an unreadable file, ...) does not stop the others
            log.error("table_failed", exc_info=True, table=spec.identifier)
            reports.append(TableReport(spec.identifier, status=f"failed: {str(exc)[:200]}"))
    return {
        "dry_run": options.dry_run,
        "options": {k: v for k, v in asdict(options).items() if k != "dry_run"},
        "tables": {r.table: {k: v for k, v in asdict(r).items() if k != "table"} for r in reports},
    }


def maintain_table(
    catalog: Catalog,
    spec: TableSpec,
    options: Options,
    now: datetime,
    before_commit: BeforeCommit | None = None,
) -> TableReport:
    report = TableReport(spec.identifier)
    try:
        table = catalog.load_table(spec.identifier)
    except NoSuchTableError:
        report.status = "missing"
        log.warning("table_missing", table=spec.identifier)
        return report
    files = _live_files(table)
    report.files_before, report.rows_before = len(files), sum(f.record_count for f in files)
    if spec.day_partition_on is not None:
        _compact(table, spec, files, options, now.astimezone(UTC).date(), report, before_commit)
    _expire(table, spec.identifier, options, now, report)
    if options.dry_run:  # what the table would hold
        report.files_after = report.files_before - report.files_rewritten + report.partitions_rewritten
        report.rows_after = report.rows_before - report.refirings_collapsed
    else:
        table.refresh()
        files = _live_files(table)
        report.files_after, report.rows_after = len(files), sum(f.record_count for f in files)
    if report.partitions_failed:
        report.status = "failed"
    log.info(
        "table_maintained",
        **{k: v for k, v in asdict(report).items() if k != "days"},
        dry_run=options.dry_run,
    )
    return report


def _live_files(table: Table) -> list[DataFile]:
    return [task.file for task in table.scan().plan_files()]


def _day_of(table: Table, source_column: str, data_file: DataFile) -> date | None:
    """The day partition of `data_file` (None: written under a spec without that day field)."""
    source_id = table.schema().find_field(source_column).field_id
    for position, partition_field in enumerate(table.specs()[data_file.spec_id].fields):
        if partition_field.source_id == source_id and isinstance(partition_field.transform, DayTransform):
            value = data_file.partition[position]
            return None if value is None else EPOCH + timedelta(days=int(value))
    return None


def day_filter(column: str, day: date) -> BooleanExpression:
    """The rows of `day`'s partition: `column` in [day 00:00 UTC, next day 00:00 UTC)."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return parser.parse(f"{column} >= '{start.isoformat()}' AND {column} < '{(start + timedelta(days=1)).isoformat()}'")


def _may_hold_refirings(table: Table, refirings: Refirings, data_file: DataFile) -> bool:
    """From the file's column bounds: does it hold a firing after the first (so maybe two rows of a window)?"""
    firing = table.schema().find_field(refirings.firing_column)
    upper = (data_file.upper_bounds or {}).get(firing.field_id)
    if upper is None or not isinstance(firing.field_type, IntegerType | LongType):
        return True
    return int(from_bytes(firing.field_type, upper)) > 0


def latest_firings(data: pa.Table, refirings: Refirings) -> pa.Table:
    """The rows of `data` that readers see: the latest firing of each window (`Refirings.latest_sql`)."""
    import duckdb  # here, not at the top: Dagster's code server imports this module and needs neither

    with duckdb.connect() as con:
        con.register("partition_rows", data)
        latest = con.sql(refirings.latest_sql("partition_rows")).to_arrow_table()
    return latest.cast(data.schema)


def _compact(
    table: Table,
    spec: TableSpec,
    files: Iterable[DataFile],
    options: Options,
    today: date,
    report: TableReport,
    before_commit: BeforeCommit | None,
) -> None:
    assert spec.day_partition_on is not None
    by_day: dict[date, list[DataFile]] = {}
    for data_file in files:
        day = _day_of(table, spec.day_partition_on, data_file)
        if day is not None:
            by_day.setdefault(day, []).append(data_file)
    candidates = []
    for day, day_files in sorted(by_day.items()):
        if day > today or (day == today and not options.include_today):
            report.partitions_left_for_later += 1
            continue
        refired = spec.refirings is not None and any(_may_hold_refirings(table, spec.refirings, f) for f in day_files)
        if len(day_files) >= options.min_files or refired:
            candidates.append(day)
    if not candidates:
        return
    isolation = table.metadata.isolation_level(Operation.OVERWRITE)
    if isolation != IsolationLevel.SERIALIZABLE:
        # the conflict check this module relies on runs under serializable isolation only
        log.error("rewrite_refused", table=spec.identifier, isolation_level=isolation.value, partitions=len(candidates))
        report.partitions_failed += len(candidates)
        return
    for day in candidates:
        _rewrite_partition(table, spec, day, options, report, before_commit)


def _rewrite_partition(
    table: Table,
    spec: TableSpec,
    day: date,
    options: Options,
    report: TableReport,
    before_commit: BeforeCommit | None,
) -> None:
    """Rewrite `day`'s partition into one file, latest firings only; re-read and retry after a conflict."""
    assert spec.day_partition_on is not None
    row_filter = day_filter(spec.day_partition_on, day)
    for attempt in range(1, options.attempts + 1):
        table.refresh()
        read_snapshot = table.current_snapshot()
        tasks = list(table.scan(row_filter=row_filter).plan_files())
        if not tasks:
            return
        from pyiceberg.io.pyarrow import ArrowScan

        data = ArrowScan(table.metadata, table.io, table.schema(), row_filter).to_table(tasks)
        rows_before = data.num_rows
        if spec.refirings is not None:
            data = latest_firings(data, spec.refirings)
        collapsed = rows_before - data.num_rows
        if len(tasks) < options.min_files and collapsed == 0:
            return  # one file, no re-firing: nothing to gain
        event = {
            "table": spec.identifier,
            "day": day.isoformat(),
            "files_before": len(tasks),
            "rows_before": rows_before,
            "rows_after": data.num_rows,
            "refirings_collapsed": collapsed,
        }
        if options.dry_run:
            _count(report, day, len(tasks), collapsed)
            log.info("partition_to_rewrite", **event)
            return
        if before_commit is not None:
            before_commit(spec, day, attempt)
        try:
            with table.transaction() as tx:
                tx.overwrite(
                    data,
                    overwrite_filter=row_filter,
                    snapshot_properties={iceberg.REWRITE_PROPERTY: f"rewrite {day.isoformat()}"},
                )
        except (CommitFailedException, ValidationException) as exc:
            # another writer committed into this partition since the read: nothing was written; read again
            report.conflicts += 1
            log.warning(
                "partition_conflict",
                table=spec.identifier,
                day=day.isoformat(),
                attempt=attempt,
                read_snapshot=read_snapshot.snapshot_id if read_snapshot else None,
                error=str(exc)[:200],
            )
            if attempt < options.attempts:
                time.sleep(options.retry_wait_seconds * attempt)
            continue
        _count(report, day, len(tasks), collapsed)
        log.info("partition_rewritten", **event, attempt=attempt)
        return
    report.partitions_failed += 1
    log.error("partition_gave_up", table=spec.identifier, day=day.isoformat(), attempts=options.attempts)


def _count(report: TableReport, day: date, files: int, collapsed: int) -> None:
    report.partitions_rewritten += 1
    report.files_rewritten += files
    report.refirings_collapsed += collapsed
    report.days.append(day.isoformat())


def _expire(table: Table, identifier: str, options: Options, now: datetime, report: TableReport) -> None:
    """Expire the snapshots older than the retention (never the current one, nor what a Flink restore needs),
    then delete the files only they referenced."""
    retention_ms = _millis(now - timedelta(hours=options.retain_hours))
    restore_horizon_ms = _millis(now - timedelta(hours=options.flink_restore_hours or 0))
    for attempt in range(1, options.attempts + 1):
        table.refresh()
        floor_ms = _flink_restore_floor_ms(table, restore_horizon_ms)
        cutoff_ms = retention_ms if floor_ms is None else min(retention_ms, floor_ms)
        protected = {ref.snapshot_id for ref in table.metadata.refs.values()}
        expired = [s for s in table.snapshots() if s.timestamp_ms < cutoff_ms and s.snapshot_id not in protected]
        report.snapshots_kept_for_flink = sum(
            1
            for s in table.snapshots()
            if cutoff_ms <= s.timestamp_ms < retention_ms and s.snapshot_id not in protected
        )
        if not expired or options.dry_run:
            report.snapshots_expired = len(expired)
            return
        try:
            table.maintenance.expire_snapshots().by_ids([s.snapshot_id for s in expired]).commit()
        except CommitFailedException as exc:
            log.warning("expire_conflict", table=identifier, attempt=attempt, error=str(exc)[:200])
            time.sleep(options.retry_wait_seconds * attempt)
            continue
        report.snapshots_expired = len(expired)
        table.refresh()
        report.files_deleted = _delete_unreachable(table, identifier, expired)
        log.info(
            "snapshots_expired",
            table=identifier,
            snapshots=len(expired),
            kept_for_flink=report.snapshots_kept_for_flink,
            files_deleted=report.files_deleted,
        )
        return
    log.error("expire_gave_up", table=identifier, attempts=options.attempts)


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _flink_restore_floor_ms(table: Table, horizon_ms: int) -> int | None:
    """The commit time of the oldest snapshot a Flink sink needs to restore (None: none is needed).

    On restore, Iceberg's Flink committer walks the history back to its own last commit (summary
    `flink.max-committed-checkpoint-id`) to learn what its checkpoint already committed; if that snapshot was
    expired it commits the checkpoint's files again, or fails on their deleted manifests (apache/iceberg#5846).
    So each writer's (operator's) newest commit stays, and everything after it. A writer whose newest commit is
    older than the horizon (the topic's retention) is gone: it could not resume from its Kafka offsets anyway.
    """
    newest: dict[str, int] = {}
    for snapshot in table.snapshots():
        summary = snapshot.summary.additional_properties if snapshot.summary else {}
        if FLINK_CHECKPOINT not in summary:
            continue
        writer = summary.get("flink.operator-id") or summary.get("flink.job-id") or ""
        newest[writer] = max(newest.get(writer, 0), snapshot.timestamp_ms)
    needed = [ms for ms in newest.values() if ms >= horizon_ms]
    return min(needed) if needed else None


def _delete_unreachable(table: Table, identifier: str, expired: list[Snapshot]) -> int:
    """Delete the manifest lists, manifests and data files of `expired` that no kept snapshot references."""
    cache: dict[str, set[str]] = {}
    kept = _reachable(table, table.snapshots(), cache)
    doomed = _reachable(table, expired, cache) - kept
    deleted = 0
    for path in sorted(doomed):
        try:
            table.io.delete(path)
            deleted += 1
        except Exception as exc:  # already gone, or no permission: it stays an orphan, the table is fine
            log.warning("file_delete_failed", table=identifier, path=path, error=str(exc)[:200])
    return deleted


def _reachable(table: Table, snapshots: Iterable[Snapshot], cache: dict[str, set[str]]) -> set[str]:
    """Every file `snapshots` need: manifest lists, manifests, and the live files of those manifests."""
    paths: set[str] = set()
    for snapshot in snapshots:
        paths.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(table.io):
            if manifest.manifest_path not in cache:
                entries = manifest.fetch_manifest_entry(table.io, discard_deleted=True)
                cache[manifest.manifest_path] = {entry.data_file.file_path for entry in entries}
            paths.add(manifest.manifest_path)
            paths |= cache[manifest.manifest_path]
    return paths
