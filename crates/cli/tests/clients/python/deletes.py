"""Soft delete and tombstone through the Python client.

Soft delete: the stream reads as not found, its version is NO_STREAM, appending afterwards
(with NO_STREAM or the old last revision) brings it back holding only the new events, with
revisions continuing from before. Tombstone: every later read, append, delete and tombstone
fails with StreamIsDeletedError.

Usage: python deletes.py kurrentdb://HOST:PORT?Tls=false
"""

from __future__ import annotations

from kurrentdbclient import StreamState
from kurrentdbclient.exceptions import (
    FailedPreconditionError,
    NotFoundError,
    StreamIsDeletedError,
    WrongCurrentVersionError,
)

from support import connect, done, event, events, expect_error, ids, step, unique


def soft_delete(client) -> None:
    stream = unique("soft")
    client.append_to_stream(stream, current_version=StreamState.NO_STREAM, events=events("E", 3))

    step("delete_stream with a wrong expected revision -> WrongCurrentVersionError(actual 2)")
    error = expect_error(
        WrongCurrentVersionError,
        lambda: client.delete_stream(stream, current_version=0),
        "delete with revision 0",
    )
    assert error.actual_version == 2, error.actual_version
    assert len(client.get_stream(stream)) == 3, "a failed delete deleted"

    step("delete_stream with the last revision")
    client.delete_stream(stream, current_version=2)

    step("reading the deleted stream -> NotFoundError; its current version is NO_STREAM")
    expect_error(NotFoundError, lambda: client.get_stream(stream), "read after delete")
    assert client.get_current_version(stream) is StreamState.NO_STREAM

    step("deleting again with the same revision, or ANY, succeeds")
    client.delete_stream(stream, current_version=2)
    client.delete_stream(stream, current_version=StreamState.ANY)

    step("appending with NO_STREAM after the delete continues the revisions at 3")
    new = events("Again", 2)
    client.append_to_stream(stream, current_version=StreamState.NO_STREAM, events=new)
    recorded = client.get_stream(stream)
    assert ids(recorded) == ids(new), "only the new events are visible"
    assert [e.stream_position for e in recorded] == [3, 4], [e.stream_position for e in recorded]
    assert client.get_current_version(stream) == 4

    step("appending with the old last revision after a delete also works")
    other = unique("soft-old-revision")
    client.append_to_stream(other, current_version=StreamState.NO_STREAM, events=events("E", 2))
    client.delete_stream(other, current_version=StreamState.ANY)
    new = event("Again")
    client.append_event(other, event=new, current_version=1)
    recorded = client.get_stream(other)
    assert [(e.id, e.stream_position) for e in recorded] == [(new.id, 2)], recorded

    step("delete_stream of a stream never written -> NotFoundError (any expectation)")
    missing = unique("soft-missing")
    for expected in [StreamState.ANY, 0, StreamState.NO_STREAM, StreamState.EXISTS]:
        expect_error(
            NotFoundError,
            lambda expected=expected: client.delete_stream(missing, current_version=expected),
            f"delete missing with {expected}",
        )

    step("the deleted events stay out of stream reads backwards too")
    recorded = client.get_stream(stream, backwards=True)
    assert [e.stream_position for e in recorded] == [4, 3], recorded


def tombstone(client) -> None:
    stream = unique("tomb")
    client.append_to_stream(stream, current_version=StreamState.NO_STREAM, events=events("E", 2))

    step("tombstone_stream with a wrong expected revision -> WrongCurrentVersionError")
    error = expect_error(
        WrongCurrentVersionError,
        lambda: client.tombstone_stream(stream, current_version=5),
        "tombstone with revision 5",
    )
    assert error.actual_version == 1, error.actual_version

    step("tombstone_stream with the last revision")
    client.tombstone_stream(stream, current_version=1)

    step("reading a tombstoned stream -> StreamIsDeletedError")
    expect_error(StreamIsDeletedError, lambda: client.get_stream(stream), "read")
    expect_error(
        StreamIsDeletedError,
        lambda: client.get_stream(stream, backwards=True, limit=1),
        "read backwards",
    )
    expect_error(StreamIsDeletedError, lambda: client.get_current_version(stream), "version")

    step("BatchAppend to a tombstoned stream -> StreamIsDeletedError (any expectation)")
    for expected in [StreamState.ANY, StreamState.NO_STREAM, 1]:
        expect_error(
            StreamIsDeletedError,
            lambda expected=expected: client.append_to_stream(
                stream, events=[event("Late")], current_version=expected
            ),
            f"BatchAppend with {expected}",
        )

    step("Append to a tombstoned stream -> FAILED_PRECONDITION `... is deleted.`")
    error = expect_error(
        (StreamIsDeletedError, FailedPreconditionError),
        lambda: client.append_event(stream, event=event("Late"), current_version=StreamState.ANY),
        "Append",
    )
    assert "is deleted" in str(error), str(error)

    step("delete_stream and tombstone_stream of a tombstoned stream -> StreamIsDeletedError")
    expect_error(
        StreamIsDeletedError,
        lambda: client.delete_stream(stream, current_version=StreamState.ANY),
        "delete",
    )
    expect_error(
        StreamIsDeletedError,
        lambda: client.tombstone_stream(stream, current_version=StreamState.ANY),
        "tombstone",
    )

    step("tombstoning a stream never written, with ANY, succeeds and blocks appends")
    missing = unique("tomb-missing")
    client.tombstone_stream(missing, current_version=StreamState.ANY)
    expect_error(
        StreamIsDeletedError,
        lambda: client.append_to_stream(
            missing, events=[event("Late")], current_version=StreamState.NO_STREAM
        ),
        "BatchAppend after tombstoning a missing stream",
    )
    expect_error(StreamIsDeletedError, lambda: client.get_stream(missing), "read")

    step("tombstone_stream with EXISTS on a stream never written -> NotFoundError")
    expect_error(
        NotFoundError,
        lambda: client.tombstone_stream(unique("tomb-none"), current_version=StreamState.EXISTS),
        "tombstone missing with EXISTS",
    )

    step("a soft-deleted stream can still be tombstoned")
    soft = unique("soft-then-tomb")
    client.append_to_stream(soft, current_version=StreamState.NO_STREAM, events=events("E", 1))
    client.delete_stream(soft, current_version=0)
    client.tombstone_stream(soft, current_version=StreamState.ANY)
    expect_error(StreamIsDeletedError, lambda: client.get_stream(soft), "read")


def main() -> None:
    client = connect()
    soft_delete(client)
    tombstone(client)
    done("deletes")


if __name__ == "__main__":
    main()
