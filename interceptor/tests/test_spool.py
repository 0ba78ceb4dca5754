"""The durable spool: order, torn tails, bounds; and many processes sharing one directory: a replayer never takes a
live writer's segment, a killed writer's segments are adopted and each record comes back once, competing replayers
never send a segment twice, the byte count stays true, and a forked child gets a producer of its own."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from interceptor import producer as producer_module
from interceptor.spool import _RESCAN_WHEN_FULL_SECONDS, STALE_TEMP_SECONDS, Spool


def _records(spool: Spool) -> list[tuple[str, bytes | None, bytes]]:
    return [r for segment in spool.closed_segments() for r in Spool.read(segment)]


def _directory_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("*.spool"))


# A writer in a process of its own, driven line by line over stdin; it answers each command with "ok".
WRITER = r"""
import os, sys
from interceptor.spool import Spool, encode_record
spool = Spool(sys.argv[1], max_bytes=1 << 30)
for line in sys.stdin:
    command, _, arg = line.strip().partition(" ")
    if command == "append":
        for value in arg.split(","):
            assert spool.append("t", b"k", value.encode())
    elif command == "rotate":
        spool.rotate()
    elif command == "tear":  # the process dies in the middle of writing a record
        os.write(spool._fd, encode_record("t", b"k", b"torn")[:-3])
    print("ok", flush=True)
"""

# A replayer in a process of its own: waits for `go`, then takes every segment it can, "delivers" each record
# (prints it) and removes the segment, until none is left.
REPLAYER = r"""
import os, sys, time
from interceptor.spool import Spool
directory, go = sys.argv[1], sys.argv[2]
while not os.path.exists(go):
    time.sleep(0.001)
spool = Spool(directory, max_bytes=1 << 30)
while spool.segments():
    for claim in spool.claims():
        with claim:
            values = [v.decode() for _, _, v in claim.records()]
            if values:
                print("\n".join(values), flush=True)
            claim.remove()
"""


class Writer:
    def __init__(self, directory: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", WRITER, str(directory)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)  # fmt: skip

    def __call__(self, command: str) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "ok"

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()


def _replay_in_processes(directory: Path, tmp_path: Path, count: int) -> list[str]:
    """`count` replayer processes started together over the directory; every record any of them delivered."""
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", REPLAYER, str(directory), str(go)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(count)]  # fmt: skip
    time.sleep(0.5)  # all of them started and waiting
    go.touch()
    delivered = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and err == "", err  # no FileNotFoundError, nothing raised
        delivered += out.split()
    return delivered


# ---------------------------------------------------------------------- one process
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


def test_remove_frees_space(tmp_path):
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append("t", None, b"x")
    spool.rotate()
    [segment] = spool.closed_segments()
    assert spool.remove(segment)
    assert spool.is_empty() and spool.closed_segments() == []


def test_stale_temporary_segments_are_removed(tmp_path):
    spool = Spool(tmp_path, max_bytes=1 << 20)
    old, fresh = tmp_path / "1-1-dead.spool-new", tmp_path / "2-2-busy.spool-new"
    old.touch()
    fresh.touch()
    long_ago = time.time() - STALE_TEMP_SECONDS - 10
    os.utime(old, (long_ago, long_ago))
    spool.refresh()
    assert not old.exists() and fresh.exists()


def test_an_empty_segment_left_by_a_killed_writer_is_replayed_away(tmp_path):
    (tmp_path / "00000000000000000001-1-deadbeef.spool").touch()  # killed before its first record
    spool = Spool(tmp_path, max_bytes=1 << 20)
    assert spool.size_bytes == 0 and not spool.is_empty()  # the replay thread still goes through it
    [claim] = list(spool.claims())
    assert list(claim.records()) == []
    claim.remove()
    assert spool.is_empty()


# ---------------------------------------------------------------------- many processes, one directory
def test_a_new_process_keeps_old_segments_and_writes_a_new_one(tmp_path):
    writer = Writer(tmp_path)
    try:
        writer("append before-crash")
    finally:
        writer.kill()  # no close(): the process died holding its segment
    second = Spool(tmp_path, max_bytes=1 << 20)
    second.append("t", None, b"after restart")
    second.rotate()
    assert [v for _, _, v in _records(second)] == [b"before-crash", b"after restart"]


def test_a_replayer_never_takes_another_process_open_segment(tmp_path):
    writer = Writer(tmp_path)
    replayer = Spool(tmp_path, max_bytes=1 << 30)
    try:
        writer("append a,b,c")
        [segment] = replayer.segments()
        assert replayer.claim(segment) is None  # its writer holds it
        assert replayer.closed_segments() == []
        writer("append d,e")  # the writer still appends to it
        assert replayer.claim(segment) is None
        writer("rotate")
        claim = replayer.claim(segment)
        assert claim is not None
        with claim:
            assert [v for _, _, v in claim.records()] == [b"a", b"b", b"c", b"d", b"e"]
            writer("append f")  # meanwhile the writer appends to a new segment of its own
            claim.remove()
        [newer] = replayer.segments()
        assert newer != segment and replayer.claim(newer) is None
    finally:
        writer.close()


def test_a_killed_writers_segment_is_adopted_and_each_record_comes_back_once(tmp_path):
    spool_dir = tmp_path / "spool"
    writers = [Writer(spool_dir) for _ in range(3)]
    expected = []
    try:
        for n, writer in enumerate(writers):
            values = [f"w{n}-{i}" for i in range(200)]
            for chunk in range(0, 200, 50):
                writer("append " + ",".join(values[chunk : chunk + 50]))
            if n == 0:
                writer("rotate")  # one closed segment, one open, of the same writer
                writer("append w0-late")
                values.append("w0-late")
            writer("tear")  # killed in the middle of a write
            expected += values
    finally:
        for writer in writers:
            writer.kill()  # SIGKILL while holding their open segments
    delivered = _replay_in_processes(spool_dir, tmp_path, count=3)
    assert sorted(delivered) == sorted(expected)  # every complete record once, the torn ones never
    assert list(spool_dir.glob("*.spool")) == []


def test_competing_replayers_deliver_each_record_once(tmp_path):
    spool_dir = tmp_path / "spool"
    spool = Spool(spool_dir, max_bytes=1 << 30, segment_bytes=200)
    expected = [f"r{i}" for i in range(3000)]
    for value in expected:
        spool.append("t", None, value.encode())
    spool.close()
    assert len(spool.segments()) > 200
    delivered = _replay_in_processes(spool_dir, tmp_path, count=4)
    assert len(delivered) == len(expected) and sorted(delivered) == sorted(expected)
    assert list(spool_dir.glob("*.spool")) == []


def test_a_writers_segments_are_replayed_in_its_order(tmp_path):
    """While one replayer replays a writer's segment, another takes none of that writer's later segments (it would
    send them ahead), but goes on with other writers' segments."""
    writer = Spool(tmp_path, max_bytes=1 << 30, segment_bytes=10)
    for value in (b"w1", b"w2", b"w3"):
        writer.append("t", None, value)
    writer.close()
    other = Spool(tmp_path, max_bytes=1 << 30)
    other.append("t", None, b"o1")
    other.close()
    first, second = Spool(tmp_path, max_bytes=1 << 30), Spool(tmp_path, max_bytes=1 << 30)
    busy = next(first.claims())  # the writer's oldest segment, replay under way
    assert [v for _, _, v in busy.records()] == [b"w1"]
    taken = []
    for claim in second.claims():
        taken += [v for _, _, v in claim.records()]
        claim.remove()
    assert taken == [b"o1"]  # not w2, w3 ahead of w1
    busy.remove()
    for claim in second.claims():
        taken += [v for _, _, v in claim.records()]
        claim.remove()
    assert taken == [b"o1", b"w2", b"w3"] and second.segments() == []


def test_byte_accounting_is_never_negative_and_true_after_a_scan(tmp_path):
    """Two processes' spools on one directory (two Spool objects: their locks conflict like two processes'),
    appending, rotating and replaying each other's segments in a random order."""
    a = Spool(tmp_path, max_bytes=1 << 30, segment_bytes=300)
    b = Spool(tmp_path, max_bytes=1 << 30, segment_bytes=300)
    rng = random.Random(7)
    for step in range(600):
        spool, other = (a, b) if rng.random() < 0.5 else (b, a)
        action = rng.random()
        if action < 0.6:
            spool.append("t", None, b"x" * rng.randint(1, 80))
        elif action < 0.7:
            spool.rotate()
        elif action < 0.9:
            for segment in spool.closed_segments()[:2]:
                spool.remove(segment)  # often the other's segment: never subtracted by a count it did not make
        else:
            other.refresh()
        assert a.size_bytes >= 0 and b.size_bytes >= 0, step
    for spool in (a, b):
        assert spool.rescan() == _directory_bytes(tmp_path)
    a.close()
    b.close()
    for segment in a.closed_segments():
        a.remove(segment)
    assert a.rescan() == b.rescan() == _directory_bytes(tmp_path) == 0


def test_the_bound_is_the_whole_directory(tmp_path):
    first = Spool(tmp_path, max_bytes=1000)
    late = Spool(tmp_path, max_bytes=1000)
    while first.append("t", None, b"x" * 50):
        pass
    assert _directory_bytes(tmp_path) <= 1000
    late.refresh()  # the replay thread's scan: it sees the others' bytes
    assert not late.append("t", None, b"x" * 50)
    assert not Spool(tmp_path, max_bytes=1000).append("t", None, b"x" * 50)
    first.rotate()
    for segment in late.closed_segments():
        late.remove(segment)  # space freed by a replay elsewhere...
    time.sleep(_RESCAN_WHEN_FULL_SECONDS)
    assert first.append("t", None, b"x" * 50)  # ...is seen before a record is refused


def test_holding_ends_when_this_process_segments_are_replayed_elsewhere(tmp_path):
    mine = Spool(tmp_path, max_bytes=1 << 20)
    other = Spool(tmp_path, max_bytes=1 << 20)
    assert not mine.holding
    other.append("t", None, b"theirs")
    assert not mine.holding  # another process's segments never make this one hold
    mine.append("t", None, b"mine")
    assert mine.holding
    mine.rotate()
    mine.refresh()
    assert mine.holding  # its closed segment is still there
    for segment in other.closed_segments():
        other.remove(segment)  # adopted and replayed by the other process
    mine.refresh()
    assert not mine.holding


def test_hand_off_forwards_in_order_and_keeps_the_segment_until_released(tmp_path):
    spool = Spool(tmp_path, max_bytes=1 << 20)
    forwarded: list[bytes] = []
    for value in (b"1", b"2", b"3"):
        spool.append("t", b"k", value)
    assert spool.hand_off(keep_seconds=60) is None  # nobody to forward to yet
    spool.forward = lambda topic, key, value: forwarded.append(value) is None
    assert spool.hand_off(keep_seconds=60) == 3
    assert forwarded == [b"1", b"2", b"3"] and not spool.holding
    [segment] = spool.segments()
    assert Spool(tmp_path, max_bytes=1 << 20).claim(segment) is None  # kept, locked, until released
    assert spool.release_handed() == 0
    assert spool.release_handed(force=True) == 1
    assert spool.segments() == [] and spool.is_empty()


def test_a_record_racing_the_hand_off_goes_behind_it(tmp_path):
    """A caller that decided to spool just before the hand-off ended the spooling: its record is forwarded
    after the handed-off ones (not left behind on disk while later events overtake it)."""
    spool = Spool(tmp_path, max_bytes=1 << 20)
    for value in (b"1", b"2"):
        spool.append("t", None, value)
    forwarded: list[bytes] = []
    racer = threading.Thread(target=spool.append, args=("t", None, b"racer"))

    def forward(topic: str, key: bytes | None, value: bytes) -> bool:
        if not racer.is_alive() and not forwarded:
            racer.start()  # it reads the epoch, then waits for the spool's lock the hand-off holds
            time.sleep(0.2)
        forwarded.append(value)
        return True

    spool.forward = forward
    assert spool.hand_off(keep_seconds=60) == 2
    racer.join(5)
    assert forwarded == [b"1", b"2", b"racer"]
    assert not spool.holding and len(spool.segments()) == 1  # the handed-off segment only


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_process_forked_after_the_producer_started_gets_its_own(tmp_path, unreachable):
    spool_dir = tmp_path / "spool"
    producer_module.configure_producer(unreachable, spool_dir=spool_dir)
    try:
        assert producer_module.send_message_to_kafka("t", b"parent-1")
        parent = producer_module.get_producer()
        assert parent.spool is not None
        deadline = time.monotonic() + 15
        while parent.spool._current is None and time.monotonic() < deadline:
            time.sleep(0.05)  # the broker is found down: the event is spooled, the parent holds a segment
        parent_segment, parent_fd = parent.spool._current, parent.spool._fd
        assert parent_segment is not None and parent_fd is not None
        before = parent_segment.read_bytes()
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report through the pipe, never return into pytest
            status = 1
            try:
                os.close(read_end)
                problems = []
                try:
                    os.fstat(parent_fd)
                    problems.append("the parent's segment descriptor is still open")
                except OSError:
                    pass
                producer_module.send_message_to_kafka("t", b"child-1")
                child = producer_module.get_producer()
                if child is parent:
                    problems.append("the child uses the parent's producer")
                assert child.spool is not None
                deadline = time.monotonic() + 15
                while child.spool._current is None and time.monotonic() < deadline:
                    time.sleep(0.05)
                if child.spool._current in (None, parent_segment):
                    problems.append(f"no segment of its own: {child.spool._current}")
                producer_module.shutdown_producer(timeout=1)
                os.write(write_end, ("\n".join(problems) or "ok").encode())
                status = 0
            finally:
                os._exit(status)
        os.close(write_end)
        _, status = os.waitpid(pid, 0)
        with os.fdopen(read_end) as report:
            assert report.read() == "ok"
        assert os.waitstatus_to_exitcode(status) == 0
        # the parent's segment: untouched by the child, and still held by the parent
        assert parent_segment.read_bytes() == before
        observer = Spool(spool_dir, max_bytes=1 << 30)
        assert observer.claim(parent_segment) is None
        child_values = [v for s in observer.closed_segments() for _, _, v in Spool.read(s)]
        assert child_values == [b"child-1"]
        assert producer_module.send_message_to_kafka("t", b"parent-2")  # the parent's producer still works
        assert producer_module.get_producer() is parent
    finally:
        producer_module.shutdown_producer(timeout=1)
        producer_module._settings = {}
