"""A durable local spool: an append-only queue of Kafka records in segment files, shared by every process of an app
(the workers of `uvicorn --workers`, gunicorn, ...) that names the same directory.

Each record is `header | topic | key | value`, the header holding the payload length and a CRC32, so a record
torn by a crash is recognised and ignored (only the last record of a segment can be torn). Records are written
with one `write` each, so they survive the process being killed (SIGKILL); `fsync=True` also makes them survive
the machine losing power, at a cost per record.

Ownership is a lock, not a naming convention. A process appends to a segment of its own, named
`<creation time ns>-<pid>-<random>.spool` (names sort by creation time and never collide), and holds an exclusive
`flock` on it for as long as it appends: the segment is created under a temporary name, locked, then renamed, so no
replayer ever sees a segment before its writer holds it. A replayer (any process) takes a segment only by getting
its lock without waiting: a live writer's segment is skipped, a dead worker's (its lock died with it, SIGKILL
included) is adopted by whichever replayer comes first, and two replayers never take the same segment. The
replayer removes a segment, still holding its lock, only after every record in it was delivered. A process forked
from one that holds segments closes its copies of their descriptors, so it neither writes into the parent's
segment nor keeps the parent's locks alive.

The size of the directory is bounded by `max_bytes`: `append` refuses a record that would pass it (the caller
counts it as dropped and says so in its log). A process knows the directory's size from a scan (each `refresh`,
and again before refusing a record) plus what it appended itself since; several processes may pass the bound
together by what the others appended since the last scan.

`holding` says, without a lock, whether this process has records of its own in the spool (the producer sends new
events behind them, keeping its order). `hand_off` ends that state: it gives the records of the open segment to
the producer's queue (`forward`) and keeps the segment, locked, until they have left it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import struct
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, so no spool (the rest of the interceptor works)
    fcntl = None  # type: ignore[assignment]

_HEADER = struct.Struct(">IIhi")  # payload length, crc32 of payload, topic length, key length (-1: no key)
_SUFFIX = ".spool"
_TEMP_SUFFIX = ".spool-new"  # a segment being created: not matched by `*.spool`, no replayer looks at it
STALE_TEMP_SECONDS = 60.0  # an unlocked temporary segment older than this was left by a dead process
_RESCAN_WHEN_FULL_SECONDS = 0.2  # before refusing a record, look at the directory again (at most this often)

Record = tuple[str, bytes | None, bytes]
Forward = Callable[[str, bytes | None, bytes], bool]


def encode_record(topic: str, key: bytes | None, value: bytes) -> bytes:
    topic_b = topic.encode()
    key_b = key or b""
    payload = topic_b + key_b + value
    header = _HEADER.pack(len(payload), zlib.crc32(payload), len(topic_b), -1 if key is None else len(key_b))
    return header + payload


def decode_records(data: bytes) -> Iterator[Record]:
    """The records of a segment's bytes in order; stops at a torn or corrupt tail."""
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, crc, topic_len, key_len = _HEADER.unpack_from(data, offset)
        start = offset + _HEADER.size
        payload = data[start : start + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            return
        topic = payload[:topic_len].decode()
        key_end = topic_len + max(key_len, 0)
        key = None if key_len < 0 else payload[topic_len:key_end]
        yield topic, key, payload[key_end:]
        offset = start + length


def writer_of(segment: Path) -> str:
    """The writer (process and spool) that wrote a segment: `<pid>-<token>` of `<time>-<pid>-<token>.spool`."""
    return segment.name[: -len(_SUFFIX)].partition("-")[2]


# ---------------------------------------------------------------------- descriptors that hold a segment's lock
# Every descriptor through which this process holds a segment's lock is listed here, so that a forked child can
# close its copies (a flock belongs to the open file description, which a fork shares). Opening and closing them
# happens under `_held_lock`, which a fork waits for: a child never inherits a half-registered descriptor.
_held: set[int] = set()
_held_lock = threading.Lock()
_spools: weakref.WeakSet[Spool] = weakref.WeakSet()


def _lock_open(path: Path, flags: int) -> int | None:
    """Open `path` and take its exclusive lock without waiting; None when someone else holds it or it is gone."""
    with _held_lock:
        try:
            fd = os.open(path, flags | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        _held.add(fd)
        return fd


def _unlock_close(fd: int) -> None:
    """Close a locked descriptor (closing releases the lock; never LOCK_UN, which would also release it for a
    forked child's copy, or for the parent from a child)."""
    with _held_lock:
        _held.discard(fd)
        os.close(fd)


def _same_file(path: Path, fd: int) -> bool:
    """Does `path` still name the file open as `fd` (not removed by another replayer meanwhile)?"""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    fst = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)


def _before_fork() -> None:
    _held_lock.acquire()


def _after_fork_in_parent() -> None:
    _held_lock.release()


def _after_fork_in_child() -> None:
    global _held_lock
    for fd in _held:
        with contextlib.suppress(OSError):
            os.close(fd)
    _held.clear()
    _held_lock = threading.Lock()
    for spool in list(_spools):
        spool._forget_inherited()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)


class Claim:
    """A segment this process holds the lock of, to replay it: its records, then `remove()` or `release()`."""

    def __init__(self, spool: Spool, path: Path, fd: int) -> None:
        self.spool = spool
        self.path = path
        self._fd: int | None = fd

    def records(self) -> Iterator[Record]:
        assert self._fd is not None
        size = os.fstat(self._fd).st_size
        chunks = []
        offset = 0
        while offset < size:
            chunk = os.pread(self._fd, size - offset, offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
        return decode_records(b"".join(chunks))

    def remove(self) -> None:
        """Delete the segment (every record was delivered), still holding its lock, then let go of it."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self.release()
        self.spool._forget(self.path)
        self.spool.rescan()

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            _unlock_close(fd)

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.release()


class Spool:
    def __init__(self, directory: Path | str, *, max_bytes: int, segment_bytes: int = 4 << 20, fsync: bool = False):
        if fcntl is None:  # pragma: no cover
            raise OSError("the spool needs flock (Linux, macOS)")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        # where `hand_off` (and an append that raced it) sends records, the producer's queue; False: not taken
        self.forward: Forward | None = None
        # read without a lock on the request path: this process has records of its own in the spool
        self.holding = False
        self._lock = threading.Lock()
        self._epoch = 0  # counts the moments `holding` went false (a caller that decided before one raced it)
        self._fd: int | None = None  # the segment being written (locked), its path and size
        self._current: Path | None = None
        self._current_bytes = 0
        self._last_ns = 0
        self._token = secrets.token_hex(4)  # with the pid: this writer, in its segments' names
        self._own: set[Path] = set()  # closed segments this process wrote that may still exist
        self._handed: list[tuple[int, Path, float]] = []  # (fd, path, deadline): handed off, kept until delivered
        # the directory's size: bytes at the last scan plus what this process appended since (never negative)
        self._appended = 0  # bytes this process appended, ever
        self._scanned = 0
        self._scanned_mark = 0  # self._appended when that scan began
        self._last_scan = 0.0
        self._scanned_files = 0
        _spools.add(self)
        self.rescan()

    # ---------------------------------------------------------------- writing
    def append(self, topic: str, key: bytes | None, value: bytes) -> bool:
        """Write one record; False when it was not written (the spool is full, or the disk refused it)."""
        epoch = self._epoch  # read before the lock: the caller decided to spool before or after a hand-off
        record = encode_record(topic, key, value)
        with self._lock:
            if epoch != self._epoch and not self.holding and self._forward(topic, key, value):
                # the caller decided to spool before `hand_off` ended this process's spooling: the record goes to
                # the producer's queue behind the handed-off ones, so this process's order is kept
                return True
            if self._size() + len(record) > self.max_bytes:
                if time.monotonic() - self._last_scan < _RESCAN_WHEN_FULL_SECONDS:
                    return False
                self._rescan_locked()  # others may have replayed segments since
                if self._size() + len(record) > self.max_bytes:
                    return False
            if self._fd is None or self._current_bytes >= self.segment_bytes:
                self._open_new_segment()
            assert self._fd is not None
            try:
                written = os.write(self._fd, record)
                if self.fsync:
                    os.fsync(self._fd)
            except OSError:
                written = -1
            if written != len(record):  # disk full: what was written is the segment's torn tail
                self._current_bytes += max(written, 0)
                self._appended += max(written, 0)
                self._close_current()
                return False
            self._current_bytes += written
            self._appended += written
            self.holding = True
        return True

    def _forward(self, topic: str, key: bytes | None, value: bytes) -> bool:
        if self.forward is None:
            return False
        try:
            return self.forward(topic, key, value)
        except Exception:
            return False

    def _open_new_segment(self) -> None:
        self._close_current()
        ns = max(time.time_ns(), self._last_ns + 1)  # names sort in creation order within a process
        self._last_ns = ns
        stem = f"{ns:020d}-{os.getpid()}-{self._token}"
        temp, final = self.directory / (stem + _TEMP_SUFFIX), self.directory / (stem + _SUFFIX)
        fd = _lock_open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND)
        if fd is None:
            raise OSError(f"could not create and lock a new spool segment {temp}")
        try:
            os.rename(temp, final)  # replayers see it only now, locked
            if self.fsync:
                self._fsync_directory()
        except BaseException:
            _unlock_close(fd)
            raise
        self._fd, self._current, self._current_bytes = fd, final, 0

    def _fsync_directory(self) -> None:
        dir_fd = os.open(self.directory, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _close_current(self) -> None:
        if self._fd is None:
            return
        fd, path = self._fd, self._current
        assert path is not None
        try:
            if self.fsync:
                os.fsync(fd)
        except OSError:
            pass
        if self._current_bytes == 0:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # nothing in it; we still hold its lock
        else:
            self._own.add(path)
        self._fd, self._current, self._current_bytes = None, None, 0
        _unlock_close(fd)

    def rotate(self) -> None:
        """Close the segment being written, so that a replayer may take it."""
        with self._lock:
            self._close_current()

    def close(self) -> None:
        """Close the segment being written; handed-off segments not yet released stay (replayed again later)."""
        with self._lock:
            self._close_current()
            for fd, _path, _deadline in self._handed:
                _unlock_close(fd)
            self._handed = []
        _spools.discard(self)

    def hand_off(self, keep_seconds: float, max_bytes: int = 256 << 10) -> int | None:
        """End this process's spooling: when its only records left are in its open segment (no closed segment of
        its own remains, replayed by it or by another process) and that segment holds at most `max_bytes`, give
        them in order to `forward` (the producer's queue) and stop holding. The segment stays, locked, for
        `keep_seconds` (or until `release_handed(force=True)`), so the records are on disk until they left the
        queue; if this process dies first, another replayer sends them again. Returns how many records were
        handed over (0: this process held nothing), None when it cannot be done now."""
        with self._lock:
            self._own = {p for p in self._own if p.exists()}
            if self._own:
                return None
            if self._fd is None:
                self._stop_holding()
                return 0
            assert self._current is not None
            if self.forward is None or self._current_bytes > max_bytes:
                return None
            records = list(decode_records(self._current.read_bytes()))
            for topic, key, value in records:
                if not self._forward(topic, key, value):
                    # not all of it: the segment goes to the replayers (the records forwarded come twice)
                    self._close_current()
                    return None
            self._handed.append((self._fd, self._current, time.monotonic() + keep_seconds))
            self._fd, self._current, self._current_bytes = None, None, 0
            self._stop_holding()
            return len(records)

    def _stop_holding(self) -> None:
        if self.holding:
            self.holding = False
            self._epoch += 1

    def release_handed(self, *, force: bool = False) -> int:
        """Remove the handed-off segments whose time is up (all of them with `force`: the producer's queue is
        empty, every handed-off record was delivered or spooled again). Returns how many were removed."""
        now = time.monotonic()
        removed = 0
        with self._lock:
            keep = []
            for fd, path, deadline in self._handed:
                if force or now >= deadline:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
                    _unlock_close(fd)
                    removed += 1
                else:
                    keep.append((fd, path, deadline))
            self._handed = keep
        if removed:
            self.rescan()
        return removed

    @property
    def handed(self) -> int:
        return len(self._handed)

    def has_own_segments(self) -> bool:
        """Closed segments this process wrote that still exist (not yet replayed by it or by another process)."""
        with self._lock:
            self._own = {p for p in self._own if p.exists()}
            return bool(self._own)

    def _forget_inherited(self) -> None:
        """In a forked child: the parent's segments are not ours (their descriptors are closed already)."""
        self._lock = threading.Lock()
        self._fd, self._current, self._current_bytes = None, None, 0
        self._own = set()
        self._handed = []
        self._token = secrets.token_hex(4)
        self.holding = False
        self._epoch += 1

    # ---------------------------------------------------------------- reading
    def segments(self) -> list[Path]:
        """Every segment in the directory, held or not, oldest first (names begin with the creation time)."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return [self.directory / name for name in sorted(names) if name.endswith(_SUFFIX)]

    def claims(self) -> Iterator[Claim]:
        """The segments to replay, oldest first, each claimed (release or remove each before taking the next).
        Skipped: those a live process holds, and the later segments of a writer one of whose segments another
        process holds (a replay under way elsewhere), so a writer's records go out in its order."""
        blocked: set[str] = set()
        for segment in self.segments():
            writer = writer_of(segment)
            if writer in blocked:
                continue
            claim = self.claim(segment)
            if claim is None:
                if segment.exists():
                    blocked.add(writer)
                continue
            yield claim

    def claim(self, segment: Path) -> Claim | None:
        """Take a segment to replay it: None when a live process holds it (its writer, or another replayer), or
        when it is gone (another replayer removed it)."""
        fd = _lock_open(segment, os.O_RDONLY)
        if fd is None:
            return None
        if not _same_file(segment, fd):
            _unlock_close(fd)
            return None
        return Claim(self, segment, fd)

    def closed_segments(self) -> list[Path]:
        """Segments nobody holds at this moment (no live writer appends to them), oldest first."""
        free = []
        for segment in self.segments():
            claim = self.claim(segment)
            if claim is not None:
                claim.release()
                free.append(segment)
        return free

    @staticmethod
    def read(segment: Path) -> Iterator[Record]:
        """The records of a segment in order; stops at a torn or corrupt tail."""
        return decode_records(segment.read_bytes())

    def remove(self, segment: Path) -> bool:
        """Remove a segment nobody holds; False when a live process holds it."""
        claim = self.claim(segment)
        if claim is None:
            return False
        claim.remove()
        return True

    def refresh(self) -> None:
        """The replayer's round: remove temporary segments dead processes left behind, scan the directory's size,
        and stop holding when every segment this process wrote was replayed (by it or by another process)."""
        self._remove_stale_temps()
        self.rescan()
        with self._lock:
            self._own = {p for p in self._own if p.exists()}
            if not self._own and self._fd is None:
                self._stop_holding()

    def _remove_stale_temps(self) -> None:
        try:
            names = [n for n in os.listdir(self.directory) if n.endswith(_TEMP_SUFFIX)]
        except FileNotFoundError:
            return
        for name in names:
            path = self.directory / name
            try:
                if time.time() - path.stat().st_mtime < STALE_TEMP_SECONDS:
                    continue
            except FileNotFoundError:
                continue
            fd = _lock_open(path, os.O_RDONLY)
            if fd is None:
                continue
            try:
                if _same_file(path, fd):
                    os.unlink(path)
            except FileNotFoundError:
                pass
            finally:
                _unlock_close(fd)

    # ---------------------------------------------------------------- size
    def _directory_bytes(self) -> int:
        total, files = 0, 0
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            entries = []
        for entry in entries:
            if entry.name.endswith(_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    total += entry.stat().st_size
                    files += 1
        self._scanned_files = files
        return total

    def rescan(self) -> int:
        """Look at the directory's size again; returns it."""
        mark = self._appended  # appends during the scan may be counted twice until the next scan, never missed
        total = self._directory_bytes()
        with self._lock:
            self._scanned, self._scanned_mark, self._last_scan = total, mark, time.monotonic()
            return self._size()

    def _rescan_locked(self) -> None:
        self._scanned, self._scanned_mark = self._directory_bytes(), self._appended
        self._last_scan = time.monotonic()

    def _size(self) -> int:
        return self._scanned + self._appended - self._scanned_mark

    @property
    def size_bytes(self) -> int:
        """The directory's bytes: at the last scan, plus what this process appended since."""
        with self._lock:
            return self._size()

    def is_empty(self) -> bool:
        """No segment at all (an empty one left by a writer killed before its first record counts: it is removed
        by a replay)."""
        return self.size_bytes == 0 and self._scanned_files == 0

    def _forget(self, path: Path) -> None:
        with self._lock:
            self._own.discard(path)
