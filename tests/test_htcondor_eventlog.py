"""The event-log reader on logs a real HTCondor 25.14 schedd wrote, and the writers against them.

``tests/data/htcondor-reference`` holds the recordings (see its README). The reader must tell
the story each log tells; the writers the stand-in schedd and the local backend use must write
events of the same shape, line by line, as the real schedd.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from condormagic.rundir import eventlog as ev
from condormagic.rundir.eventlog import COMPLETED, FAILED, HELD_STATE, IDLE, REMOVED, RUNNING, EventLogReader

REFERENCE = Path(__file__).parent / "data" / "htcondor-reference"


def read(path) -> EventLogReader:
    reader = EventLogReader(path)
    reader.update()
    return reader


def events(text: str) -> list[str]:
    """The events of a log, each as its text up to and including the ``...`` line."""
    return [e + "...\n" for e in text.split("...\n") if e.strip()]


def test_shared_fs_log_three_jobs_with_their_return_values():
    reader = read(REFERENCE / "shared_fs.log")
    assert reader.n_events == 12
    assert sorted(reader.procs) == [(3, 0), (3, 1), (3, 2)]
    states = {key: (st.state, st.exit_code) for key, st in reader.procs.items()}
    assert states == {(3, 0): (COMPLETED, 0), (3, 1): (FAILED, 1), (3, 2): (FAILED, 3)}
    for st in reader.procs.values():
        assert st.starts == 1
        assert st.host in ("slot1_1@vm", "slot1_2@vm")
        assert st.peak_memory_mb == 6  # from the image-size events, "6  -  MemoryUsage of job (MB)"
        assert st.submitted is not None and st.started is not None and st.ended is not None
        assert st.hold_reason is None


def test_steering_log_hold_release_evict_abort():
    reader = read(REFERENCE / "steering.log")
    assert reader.n_events == 20
    job0, job1, job2 = reader.procs[(4, 0)], reader.procs[(4, 1)], reader.procs[(4, 2)]
    # Job 0: held by Schedd.act while running (evicted, then held), released, ran again, removed.
    assert job0.history == [IDLE, RUNNING, RUNNING, IDLE, HELD_STATE, IDLE, RUNNING, IDLE, REMOVED]
    assert job0.state == REMOVED and job0.starts == 2 and job0.host == "slot1_2@vm"
    # Job 1: removed while running: evicted, then aborted.
    assert job1.history[-2:] == [IDLE, REMOVED] and job1.starts == 1
    # Job 2: exited 3 and on_exit_hold held it, with the reason the expression made; then removed.
    assert job2.history == [IDLE, RUNNING, RUNNING, HELD_STATE, REMOVED]
    assert job2.exit_code is None  # a held job has not terminated
    assert job2.hold_code == 3


def test_steering_log_hold_reasons_while_held(tmp_path):
    """Cut the log where job 0 and job 2 are both held: the reasons a status would show."""
    text = (REFERENCE / "steering.log").read_text()
    cut = text.index("006 (004.001.000) 2026-11-24 00:52:57")
    (tmp_path / "events.log").write_text(text[:cut])
    reader = read(tmp_path / "events.log")
    job0, job1, job2 = reader.procs[(4, 0)], reader.procs[(4, 1)], reader.procs[(4, 2)]
    assert (job0.state, job0.hold_reason, job0.hold_code) == (HELD_STATE, "held by a user", 1)
    assert (job2.state, job2.hold_reason, job2.hold_code) == (HELD_STATE, "job exited with code 3", 3)
    assert job1.state == RUNNING and job1.peak_memory_mb == 6


def test_reader_is_incremental_even_mid_event(tmp_path):
    """Appending a log in pieces, even half an event, gives the same state as reading it whole."""
    whole = read(REFERENCE / "steering.log")
    text = (REFERENCE / "steering.log").read_text()
    path = tmp_path / "events.log"
    path.write_text("")
    reader = EventLogReader(path)
    counts = []
    for piece in (text[:1000], text[1000:1001], text[1001:4000], text[4000:]):
        with open(path, "a") as fh:
            fh.write(piece)
        counts.append(reader.update())
    assert sum(counts) == whole.n_events == reader.n_events
    assert {k: v.history for k, v in reader.procs.items()} == {k: v.history for k, v in whole.procs.items()}


def shape(event: str) -> list[str]:
    """An event's lines with the values taken out: what must match a real schedd's."""
    out = []
    for line in event.splitlines():
        indent = re.match(r"\s*", line).group()
        body = line[len(indent) :]
        body = re.sub(r"<[^>]*>", "<ADDR>", body)
        body = re.sub(r'"[^"]*"', '"S"', body)
        body = re.sub(r"@\S+", "@HOST", body)
        body = re.sub(r"\d+", "N", body)
        out.append(indent + re.sub(r" +", " ", body))
    return out


def first(log: str, head: str) -> str:
    return next(e for e in events((REFERENCE / log).read_text()) if e.startswith(head))


@pytest.mark.parametrize(
    "log, head, written",
    [
        ("shared_fs.log", "000 ", lambda: ev.submit_event(3, 0, "DEFORESTATION")),
        ("shared_fs.log", "001 ", lambda: ev.execute_event(3, 0, "slot1_1", 1, 256, "/scratch/dir_1")),
        ("shared_fs.log", "006 ", lambda: ev.image_size_event(3, 1, 5856)),
        ("shared_fs.log", "005 ", lambda: ev.terminated_event(3, 0, 0, None, 1, 200, 6, 1, allocated_mb=256)),
        ("steering.log", "004 ", lambda: ev.evicted_event(4, 0, 1, 200, 9, 5, allocated_mb=256)),
        ("steering.log", "012 (004.000", lambda: ev.held_event(4, 0, "", 1)),
        ("steering.log", "012 (004.002", lambda: ev.held_event(4, 2, "job exited with code 3", 3)),
        ("steering.log", "013 ", lambda: ev.released_event(4, 0, "Python-initiated action (by user cmtest)")),
        ("steering.log", "009 ", lambda: ev.aborted_event(4, 1)),
    ],
)
def test_writers_write_what_a_real_schedd_writes(log, head, written):
    assert shape(written()) == shape(first(log, head))


def test_written_log_reads_like_the_reference(tmp_path):
    """The reference's shared_fs story, rewritten with the writers, reads back the same."""
    path = tmp_path / "events.log"
    with open(path, "w") as fh:
        for proc in range(3):
            fh.write(ev.submit_event(3, proc, "DEFORESTATION"))
        for proc, code in enumerate((0, 1, 3)):
            fh.write(ev.execute_event(3, proc, f"slot1_{proc + 1}", 1, 256, f"/scratch/dir_{proc}"))
            fh.write(ev.image_size_event(3, proc, 5764))
            fh.write(ev.terminated_event(3, proc, code, None, 1, 200, 6, 1, allocated_mb=256))
    ours, theirs = read(path), read(REFERENCE / "shared_fs.log")
    assert ours.n_events == theirs.n_events
    for key, st in theirs.procs.items():
        mine = ours.procs[key]
        assert (mine.state, mine.exit_code, mine.peak_memory_mb, mine.starts) == (
            st.state,
            st.exit_code,
            st.peak_memory_mb,
            st.starts,
        )
