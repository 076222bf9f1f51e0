"""A 10,000-event round trip through the Python client: appended in batches with exact
expected revisions, read back forwards, backwards and through `$all`, every id, type, data
and metadata compared.

Usage: python round_trip_10k.py kurrentdb://HOST:PORT?Tls=false
"""

from __future__ import annotations

import json
import os
import time

from kurrentdbclient import NewEvent, StreamState

from support import connect, done, step, unique

TOTAL = 10_000
BATCH = 250


def make_event(n: int) -> NewEvent:
    payload = {"n": n, "text": f"event number {n}", "noise": os.urandom(24).hex()}
    return NewEvent(
        type=f"RoundTrip{n % 7}",
        data=json.dumps(payload).encode(),
        metadata=json.dumps({"batch": n // BATCH}).encode(),
    )


def same(recorded, written: list[NewEvent], revisions: list[int]) -> None:
    """Asserts that every recorded event is the written one at the expected revision."""
    assert len(recorded) == len(written), (len(recorded), len(written))
    for got, new, revision in zip(recorded, written, revisions, strict=True):
        assert got.id == new.id, (revision, got.id, new.id)
        assert got.stream_position == revision, (got.stream_position, revision)
        assert got.type == new.type, (revision, got.type, new.type)
        assert got.data == new.data, (revision, got.data, new.data)
        assert got.metadata == new.metadata, (revision, got.metadata, new.metadata)


def main() -> None:
    client = connect()
    stream = unique("tenk")
    written = [make_event(n) for n in range(TOTAL)]

    step(f"append {TOTAL} events in batches of {BATCH} with exact expected revisions")
    started = time.monotonic()
    positions = []
    for offset in range(0, TOTAL, BATCH):
        expected = StreamState.NO_STREAM if offset == 0 else offset - 1
        batch = written[offset : offset + BATCH]
        positions.append(client.append_to_stream(stream, current_version=expected, events=batch))
    print(f"    appended in {time.monotonic() - started:.2f} s", flush=True)
    assert positions == sorted(set(positions)), "append positions must grow"
    assert client.get_current_version(stream) == TOTAL - 1

    step("read the stream forwards: the same events, revisions 0..9999")
    started = time.monotonic()
    recorded = client.get_stream(stream)
    print(f"    read in {time.monotonic() - started:.2f} s", flush=True)
    same(recorded, written, list(range(TOTAL)))
    commit_positions = [e.commit_position for e in recorded]
    assert commit_positions == sorted(set(commit_positions)), "positions must grow"
    ends = [commit_positions[offset + BATCH - 1] for offset in range(0, TOTAL, BATCH)]
    assert ends == positions, "each append returns the position of its last event"

    step("read the stream backwards: the same events, newest first")
    recorded = client.get_stream(stream, backwards=True)
    same(recorded, list(reversed(written)), list(range(TOTAL - 1, -1, -1)))

    step("read the stream in pages of 1000 from successive revisions")
    paged = []
    while len(paged) < TOTAL:
        paged.extend(client.get_stream(stream, stream_position=len(paged), limit=1000))
    same(paged, written, list(range(TOTAL)))

    step("read $all filtered on the stream name: the same events in the same order")
    recorded = list(client.read_all(filter_include=[stream], filter_by_stream_name=True))
    same(recorded, written, list(range(TOTAL)))
    assert [e.commit_position for e in recorded] == commit_positions
    done("round_trip_10k")


if __name__ == "__main__":
    main()
