"""A durable local spool: an append-only queue of Kafka records in numbered segment files.

Each record is `header | topic | key | value`, the header holding the payload length and a CRC32, so a record
torn by a crash is recognised and ignored (only the last record of a segment can be torn). Records are written
with one `write` each, so they survive the process being killed (SIGKILL); `fsync=True` also makes them survive
the machine losing power, at a cost per record.

A process appends to a fresh segment of its own; a replayer reads closed segments oldest first and removes one
only after every record in it was delivered. The total size is bounded: `append` refuses a record that would
pass `max_bytes` (the caller counts it as dropped and says so in its log).
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

_HEADER = struct.Struct(">IIhi")  # payload length, crc32 of payload, topic length, key length (-1: no key)
_SUFFIX = ".spool"


class Spool:
    def __init__(self, directory: Path | str, *, max_bytes: int, segment_bytes: int = 4 << 20, fsync: bool = False):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self._lock = threading.Lock()
        existing = self._all_segments()
        self._size = sum(p.stat().st_size for p in existing)
        # never append behind a possibly torn tail of an earlier process: start a new segment
        self._seq = (int(existing[-1].stem) + 1) if existing else 1
        self._current: Path | None = None
        self._fd: int | None = None
        self._current_bytes = 0

    # ---------------------------------------------------------------- writing
    def append(self, topic: str, key: bytes | None, value: bytes) -> bool:
        """Write one record; False when the spool is full (the record was not written)."""
        topic_b = topic.encode()
        key_b = key or b""
        payload = topic_b + key_b + value
        record = _HEADER.pack(len(payload), zlib.crc32(payload), len(topic_b), -1 if key is None else len(key_b))
        record += payload
        with self._lock:
            if self._size + len(record) > self.max_bytes:
                return False
            if self._fd is None or self._current_bytes >= self.segment_bytes:
                self._open_new_segment()
            assert self._fd is not None
            os.write(self._fd, record)
            if self.fsync:
                os.fsync(self._fd)
            self._current_bytes += len(record)
            self._size += len(record)
        return True

    def _open_new_segment(self) -> None:
        self._close_current()
        self._current = self.directory / f"{self._seq:012d}{_SUFFIX}"
        self._seq += 1
        self._fd = os.open(self._current, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._current_bytes = 0

    def _close_current(self) -> None:
        if self._fd is not None:
            if self.fsync:
                os.fsync(self._fd)
            os.close(self._fd)
        self._fd = None
        self._current = None

    def rotate(self) -> None:
        """Close the segment being written, so the replayer may take it."""
        with self._lock:
            self._close_current()

    def close(self) -> None:
        self.rotate()

    # ---------------------------------------------------------------- reading
    def _all_segments(self) -> list[Path]:
        return sorted(self.directory.glob(f"*{_SUFFIX}"))

    def closed_segments(self) -> list[Path]:
        """Segments no writer appends to any more, oldest first."""
        with self._lock:
            current = self._current
        return [p for p in self._all_segments() if p != current]

    @staticmethod
    def read(segment: Path) -> Iterator[tuple[str, bytes | None, bytes]]:
        """The records of a segment in order; stops at a torn or corrupt tail."""
        data = segment.read_bytes()
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

    def remove(self, segment: Path) -> None:
        with self._lock:
            try:
                size = segment.stat().st_size
            except FileNotFoundError:
                return
            segment.unlink()
            self._size -= size

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return self._size

    def is_empty(self) -> bool:
        return self.size_bytes == 0
