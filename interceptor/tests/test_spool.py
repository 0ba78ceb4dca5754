"""The durable spool: order, torn tails, bounds, and a reopen after a crash."""

from __future__ import annotations

from interceptor.spool import Spool


def _records(spool: Spool) -> list[tuple[str, bytes | None, bytes]]:
    return [r for segment in spool.closed_segments() for r in Spool.read(segment)]


def test_records_come_back_in_order_with_keys_and_topics(tmp_path):
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=64)
    written = [("t1", f"k{i}".encode() if i % 2 else None, f"value-{i}".encode()) for i in range(20)]
    for topic, key, value in written:
        assert spool.append(topic, key, value)
    spool.rotate()
    assert len(spool.closed_segments()) > 1  # small segments: several files
    assert _records(spool) == written


def test_a_torn_tail_is_ignored(tmp_path):
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append("t", b"k", b"complete")
    spool.append("t", b"k", b"torn")
    spool.rotate()
    [segment] = spool.closed_segments()
    segment.write_bytes(segment.read_bytes()[:-2])  # a crash in the middle of the last write
    assert [v for _, _, v in Spool.read(segment)] == [b"complete"]


def test_the_size_is_bounded(tmp_path):
    spool = Spool(tmp_path, max_bytes=200)
    accepted = sum(spool.append("t", None, b"x" * 50) for _ in range(10))
    assert 0 < accepted < 10
    assert spool.size_bytes <= 200


def test_a_new_process_keeps_old_segments_and_writes_a_new_one(tmp_path):
    first = Spool(tmp_path, max_bytes=1 << 20)
    first.append("t", None, b"before crash")
    # no close(): the process died; a new one opens the same folder
    second = Spool(tmp_path, max_bytes=1 << 20)
    second.append("t", None, b"after restart")
    second.rotate()
    assert [v for _, _, v in _records(second)] == [b"before crash", b"after restart"]


def test_remove_frees_space(tmp_path):
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append("t", None, b"x")
    spool.rotate()
    [segment] = spool.closed_segments()
    spool.remove(segment)
    assert spool.is_empty() and spool.closed_segments() == []
