"""No acknowledged event is lost when the server is killed with SIGKILL during appends.

Two modes, run by the test harness around a SIGKILL of the server:

    python kill_during_appends.py append URI JOURNAL
        Four threads append to four streams (single events through Streams.Append, groups of
        three through Streams.BatchAppend, each with its exact expected revision) until an
        append fails (the server was killed) or a bound is reached. Before each append a
        `sent` line goes to JOURNAL, after each acknowledgement an `ack` line with the event
        ids, their revisions and the position the server returned; every line is flushed at
        once. Each acknowledgement is also printed on stdout (`ack ...`), so the harness knows
        when to kill.

    python kill_during_appends.py verify URI JOURNAL
        Against the restarted server: every acknowledged event is in its stream at its
        revision with its position; after the last acknowledged one there is either nothing
        or exactly the one append that was in flight (atomically: all of it or none); and the
        streams accept appends again.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid

from kurrentdbclient import KurrentDBClient, NewEvent, StreamState
from kurrentdbclient.exceptions import NotFoundError

from support import connect

WRITERS = 4
# Bounds, so that the append mode ends by itself if the harness never kills the server.
EVENTS_PER_WRITER_MAX = 20_000
DURATION_S_MAX = 120.0


class Journal:
    """The JSON-lines journal of sent and acknowledged appends, flushed line by line."""

    def __init__(self, path: str) -> None:
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed in main)
        self.lock = threading.Lock()

    def write(self, record: dict) -> None:
        line = json.dumps(record) + "\n"
        with self.lock:
            self.file.write(line)
            self.file.flush()


def writer(client: KurrentDBClient, journal: Journal, stream: str, failures: list) -> None:
    revision = -1
    started = time.monotonic()
    written = 0
    batch_number = 0
    while written < EVENTS_PER_WRITER_MAX and time.monotonic() - started < DURATION_S_MAX:
        size = 1 if batch_number % 2 == 0 else 3
        batch_number += 1
        new = [
            NewEvent(
                type="Appended", data=json.dumps({"stream": stream, "n": written + i}).encode()
            )
            for i in range(size)
        ]
        event_ids = [str(e.id) for e in new]
        expected = StreamState.NO_STREAM if revision < 0 else revision
        journal.write({"kind": "sent", "stream": stream, "ids": event_ids, "first": revision + 1})
        try:
            if size == 1:
                position = client.append_event(stream, event=new[0], current_version=expected)
            else:
                position = client.append_to_stream(stream, events=new, current_version=expected)
        except Exception as error:  # the server is gone: stop this writer
            failures.append(f"{stream}: {type(error).__name__}: {error}")
            return
        journal.write(
            {
                "kind": "ack",
                "stream": stream,
                "ids": event_ids,
                "first": revision + 1,
                "position": position,
            }
        )
        revision += size
        written += size
        print(f"ack {stream} {revision}", flush=True)


def append(uri: str, path: str) -> None:
    client = connect(uri)
    journal = Journal(path)
    run = uuid.uuid4().hex[:8]
    failures: list[str] = []
    threads = [
        threading.Thread(target=writer, args=(client, journal, f"kill-{run}-{i}", failures))
        for i in range(WRITERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    journal.file.close()
    print(f"writers stopped; {len(failures)} ended on an error:", flush=True)
    for failure in failures:
        print(f"    {failure}", flush=True)


def read_journal(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as file:
        text = file.read()
    lines = text.split("\n")
    # A line cut short by the end of the append process is not a record.
    return [json.loads(line) for line in lines[:-1] if line]


def verify(uri: str, path: str) -> None:
    client = connect(uri)
    records = read_journal(path)
    streams = sorted({r["stream"] for r in records})
    assert streams, "the journal is empty: nothing was appended before the kill"
    acknowledged_total = 0
    for stream in streams:
        acks = [r for r in records if r["stream"] == stream and r["kind"] == "ack"]
        sent = [r for r in records if r["stream"] == stream and r["kind"] == "sent"]
        try:
            recorded = client.get_stream(stream)
        except NotFoundError:
            recorded = ()
        by_revision = {e.stream_position: e for e in recorded}
        assert sorted(by_revision) == list(range(len(recorded))), "revisions have a gap"

        print(f"- {stream}: {len(acks)} acknowledged appends, {len(recorded)} events stored")
        acknowledged_end = 0
        for ack in acks:
            for i, event_id in enumerate(ack["ids"]):
                revision = ack["first"] + i
                stored = by_revision.get(revision)
                assert stored is not None, f"{stream}: acknowledged revision {revision} is lost"
                assert str(stored.id) == event_id, (
                    f"{stream}@{revision}: acknowledged {event_id}, stored {stored.id}"
                )
            last = by_revision[ack["first"] + len(ack["ids"]) - 1]
            assert last.commit_position == ack["position"], (
                f"{stream}: the append was acknowledged at position {ack['position']}, "
                f"its last event is stored at {last.commit_position}"
            )
            acknowledged_end = ack["first"] + len(ack["ids"])
            acknowledged_total += len(ack["ids"])

        extra = [str(e.id) for e in recorded[acknowledged_end:]]
        in_flight = [s for s in sent if s["first"] == acknowledged_end]
        assert len(in_flight) <= 1, f"{stream}: two appends sent for one revision"
        if extra:
            assert in_flight, f"{stream}: unacknowledged events stored that were never sent"
            assert extra == in_flight[0]["ids"], (
                f"{stream}: after the last acknowledged revision the store holds {extra}, "
                f"which is not the whole in-flight append {in_flight[0]['ids']}"
            )
            print(f"    plus the in-flight append of {len(extra)} event(s), stored whole")

        step_event = NewEvent(type="AfterRestart", data=b"{}")
        expected = len(recorded) - 1 if recorded else StreamState.NO_STREAM
        client.append_to_stream(stream, events=[step_event], current_version=expected)
        assert client.get_stream(stream, backwards=True, limit=1)[0].id == step_event.id

    assert acknowledged_total > 0, "no append was acknowledged before the kill"
    print(f"kill_during_appends: all {acknowledged_total} acknowledged events survived", flush=True)


def main() -> None:
    if len(sys.argv) != 4 or sys.argv[1] not in ("append", "verify"):
        sys.exit(f"usage: {sys.argv[0]} append|verify KURRENTDB_URI JOURNAL")
    mode, uri, path = sys.argv[1:]
    if mode == "append":
        append(uri, path)
    else:
        verify(uri, path)


if __name__ == "__main__":
    main()
