"""Stream metadata through the Python client: get and set (the `$$stream` metadata stream,
with optimistic concurrency), and `$maxCount`, `$tb` and `$maxAge` honoured by reads;
`$tb` written by a soft delete.

Usage: python metadata.py kurrentdb://HOST:PORT?Tls=false
"""

from __future__ import annotations

import time

from kurrentdbclient import StreamState
from kurrentdbclient.exceptions import NotFoundError, WrongCurrentVersionError

from support import connect, done, events, expect_error, ids, step, unique

MAX_I64 = 2**63 - 1


def revisions(recorded) -> list[int]:
    return [e.stream_position for e in recorded]


def visible(client, stream: str, **kwargs) -> list:
    """The events a read returns; a stream whose events are all hidden may read as not found."""
    try:
        return list(client.get_stream(stream, **kwargs))
    except NotFoundError:
        return []


def main() -> None:
    client = connect()
    stream = unique("meta")

    step("a stream without metadata: ({}, NO_STREAM)")
    metadata, version = client.get_stream_metadata(stream)
    assert metadata == {} and version is StreamState.NO_STREAM, (metadata, version)

    step("set_stream_metadata, then get_stream_metadata returns it at version 0")
    wanted = {"$maxCount": 3, "owner": "factum-tests", "nested": {"a": [1, 2]}}
    client.set_stream_metadata(stream, metadata=wanted)
    metadata, version = client.get_stream_metadata(stream)
    assert metadata == wanted, metadata
    assert version == 0, version

    written = events("Tick", 10)
    client.append_to_stream(stream, current_version=StreamState.NO_STREAM, events=written)

    step("$maxCount 3: a forwards read shows only the newest 3 events")
    recorded = client.get_stream(stream)
    assert revisions(recorded) == [7, 8, 9], revisions(recorded)
    assert ids(recorded) == ids(written[7:])

    step("$maxCount 3: backwards reads and reads from an old revision agree")
    assert revisions(client.get_stream(stream, backwards=True)) == [9, 8, 7]
    assert revisions(client.get_stream(stream, stream_position=2)) == [7, 8, 9]
    assert revisions(client.get_stream(stream, backwards=True, limit=1)) == [9]
    assert client.get_current_version(stream) == 9

    step("set_stream_metadata with a wrong expected version -> WrongCurrentVersionError")
    error = expect_error(
        WrongCurrentVersionError,
        lambda: client.set_stream_metadata(stream, metadata={}, current_version=5),
        "set metadata at version 5",
    )
    assert error.actual_version == 0, error.actual_version

    step("set_stream_metadata with the right expected version: $maxCount 5")
    client.set_stream_metadata(stream, metadata={"$maxCount": 5}, current_version=0)
    metadata, version = client.get_stream_metadata(stream)
    assert (metadata, version) == ({"$maxCount": 5}, 1), (metadata, version)
    assert revisions(client.get_stream(stream)) == [5, 6, 7, 8, 9]

    step("removing $maxCount shows every event again")
    client.set_stream_metadata(stream, metadata={}, current_version=1)
    assert revisions(client.get_stream(stream)) == list(range(10))

    step("$tb 6 (truncate before): reads start at revision 6")
    client.set_stream_metadata(stream, metadata={"$tb": 6})
    assert revisions(client.get_stream(stream)) == [6, 7, 8, 9]
    assert revisions(client.get_stream(stream, backwards=True)) == [9, 8, 7, 6]

    step("the metadata stream is an ordinary stream of `$metadata` events")
    meta_events = client.get_stream(f"$${stream}")
    assert [e.type for e in meta_events] == ["$metadata"] * 4, [e.type for e in meta_events]

    # KurrentDB writes `$tb` = max i64 and rewrites it on the next append; any value past the
    # last revision hides the same events.
    step("a soft delete records a $tb past the last revision in the metadata")
    deleted = unique("meta-deleted")
    client.append_to_stream(deleted, current_version=StreamState.NO_STREAM, events=events("E", 2))
    client.delete_stream(deleted, current_version=1)
    metadata, _ = client.get_stream_metadata(deleted)
    assert isinstance(metadata.get("$tb"), int), metadata
    assert 2 <= metadata["$tb"] <= MAX_I64, metadata

    step("$maxAge 2 s: events older than two seconds are hidden, a new one is not")
    aged = unique("meta-aged")
    old = events("Old", 3)
    client.append_to_stream(aged, current_version=StreamState.NO_STREAM, events=old)
    client.set_stream_metadata(aged, metadata={"$maxAge": 2})
    deadline = time.monotonic() + 30
    while visible(client, aged) and time.monotonic() < deadline:
        time.sleep(0.25)
    assert visible(client, aged) == [], "events older than $maxAge are still read"
    fresh = events("Fresh", 1)
    client.append_to_stream(aged, current_version=2, events=fresh)
    assert ids(visible(client, aged)) == ids(fresh), "a new event must be visible"
    done("metadata")


if __name__ == "__main__":
    main()
