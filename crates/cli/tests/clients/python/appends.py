"""Appends through the Python client: every expected-version form on both append RPCs
(a single event goes through Streams.Append, a list through Streams.BatchAppend), the
wrong-version errors, idempotent retries, and what a read gives back.

Usage: python appends.py kurrentdb://HOST:PORT?Tls=false
"""

from __future__ import annotations

import datetime

from kurrentdbclient import NewEvent, StreamState
from kurrentdbclient.exceptions import WrongCurrentVersionError

from support import connect, done, event, events, expect_error, ids, step, unique


def main() -> None:
    client = connect()
    stream = unique("appends")

    step("a stream never written has current version NO_STREAM")
    assert client.get_current_version(stream) is StreamState.NO_STREAM

    step("BatchAppend with NO_STREAM creates the stream, each event gets its own position")
    first_two = events("Opened", 2)
    position_1 = client.append_to_stream(
        stream, current_version=StreamState.NO_STREAM, events=first_two
    )
    assert position_1 > 0, position_1
    recorded = client.get_stream(stream)
    assert ids(recorded) == ids(first_two), recorded
    assert [e.stream_position for e in recorded] == [0, 1]
    assert recorded[0].commit_position < recorded[1].commit_position, recorded
    assert recorded[1].commit_position == position_1, (recorded, position_1)
    assert client.get_current_version(stream) == 1

    step("Append (one event) with the exact revision 1")
    third = event("Deposited", {"amount": 30})
    position_2 = client.append_event(stream, event=third, current_version=1)
    assert position_2 > position_1, (position_1, position_2)
    assert client.get_current_version(stream) == 2

    step("BatchAppend with the exact revision 2")
    fourth_fifth = events("Deposited", 2, start=4)
    position_3 = client.append_to_stream(stream, current_version=2, events=fourth_fifth)
    assert position_3 > position_2
    assert client.get_current_version(stream) == 4

    step("Append with ANY")
    sixth = event("Withdrawn", {"amount": 5})
    position_4 = client.append_event(stream, event=sixth, current_version=StreamState.ANY)
    assert position_4 > position_3
    assert client.get_current_version(stream) == 5

    step("BatchAppend with ANY")
    seventh = [event("Withdrawn", {"amount": 6})]
    position_5 = client.append_to_stream(stream, current_version=StreamState.ANY, events=seventh)
    assert position_5 > position_4
    assert client.get_current_version(stream) == 6

    step("Append with StreamState.EXISTS on an existing stream")
    eighth = event("Noted", {"text": "exists"})
    position_6 = client.append_event(stream, event=eighth, current_version=StreamState.EXISTS)
    assert position_6 > position_5

    step("BatchAppend with StreamState.EXISTS on an existing stream")
    ninth = [event("Noted", {"text": "exists again"})]
    position_7 = client.append_to_stream(stream, current_version=StreamState.EXISTS, events=ninth)
    assert position_7 > position_6
    assert client.get_current_version(stream) == 8

    written = [*first_two, third, *fourth_fifth, sixth, *seventh, eighth, *ninth]
    recorded = client.get_stream(stream)
    assert ids(recorded) == ids(written), "the stream holds exactly the appended events"
    assert [e.stream_position for e in recorded] == list(range(9))
    positions = [e.commit_position for e in recorded]
    assert positions == sorted(set(positions)), f"positions not strictly increasing: {positions}"

    wrong_version_errors(client, stream, written)
    idempotent_retries(client, stream, written, position_1, position_2, position_5)
    round_trip_fields(client)
    done("appends")


def wrong_version_errors(client, stream: str, written: list[NewEvent]) -> None:
    """Each mismatch raises WrongCurrentVersionError with the actual version, writes nothing."""
    new = event("Rejected")
    cases = [
        ("NO_STREAM on an existing stream", StreamState.NO_STREAM, 8),
        ("a revision behind the stream", 3, 8),
        ("a revision ahead of the stream", 20, 8),
    ]
    for label, expected, actual in cases:
        step(f"Append with {label} -> WrongCurrentVersionError(actual {actual})")
        error = expect_error(
            WrongCurrentVersionError,
            lambda expected=expected: client.append_event(
                stream, event=new, current_version=expected
            ),
            f"Append, {label}",
        )
        assert error.actual_version == actual, error.actual_version
        step(f"BatchAppend with {label} -> WrongCurrentVersionError(actual {actual})")
        error = expect_error(
            WrongCurrentVersionError,
            lambda expected=expected: client.append_to_stream(
                stream, events=[new], current_version=expected
            ),
            f"BatchAppend, {label}",
        )
        assert error.actual_version == actual, error.actual_version

    missing = unique("never-written")
    for label, expected in [("StreamState.EXISTS", StreamState.EXISTS), ("revision 0", 0)]:
        step(f"Append with {label} on a missing stream -> actual NO_STREAM")
        error = expect_error(
            WrongCurrentVersionError,
            lambda expected=expected: client.append_event(
                missing, event=new, current_version=expected
            ),
            f"Append, {label} on a missing stream",
        )
        assert error.actual_version is StreamState.NO_STREAM, error.actual_version
        step(f"BatchAppend with {label} on a missing stream -> actual NO_STREAM")
        error = expect_error(
            WrongCurrentVersionError,
            lambda expected=expected: client.append_to_stream(
                missing, events=[new], current_version=expected
            ),
            f"BatchAppend, {label} on a missing stream",
        )
        assert error.actual_version is StreamState.NO_STREAM, error.actual_version

    step("failed appends wrote nothing")
    assert ids(client.get_stream(stream)) == ids(written)
    assert client.get_current_version(missing) is StreamState.NO_STREAM


def idempotent_retries(
    client,
    stream: str,
    written: list[NewEvent],
    position_1: int,
    position_2: int,
    position_5: int,
) -> None:
    """Appending the same event ids again returns the first result and stores nothing."""
    step("retrying the first BatchAppend (NO_STREAM, same ids) returns its position")
    again = client.append_to_stream(
        stream, current_version=StreamState.NO_STREAM, events=written[0:2]
    )
    assert again == position_1, (again, position_1)

    step("retrying the first Append (revision 1, same id) returns its position")
    again = client.append_event(stream, event=written[2], current_version=1)
    assert again == position_2, (again, position_2)

    step("retrying a BatchAppend made with ANY returns its position")
    again = client.append_to_stream(stream, current_version=StreamState.ANY, events=[written[6]])
    assert again == position_5, (again, position_5)

    step("a retry whose ids only partly match -> WrongCurrentVersionError")
    expect_error(
        WrongCurrentVersionError,
        lambda: client.append_to_stream(
            stream,
            current_version=StreamState.NO_STREAM,
            events=[written[0], event("NotARetry")],
        ),
        "partial retry with NO_STREAM",
    )

    step("nothing was duplicated by the retries")
    recorded = client.get_stream(stream)
    assert ids(recorded) == ids(written), recorded
    assert client.get_current_version(stream) == len(written) - 1


def round_trip_fields(client) -> None:
    """Type, data, metadata, content type and recorded time come back as written."""
    stream = unique("fields")
    step("binary data, custom metadata and content type come back unchanged")
    before = datetime.datetime.now(datetime.timezone.utc)
    binary = NewEvent(
        type="Blob",
        data=bytes(range(256)),
        metadata=b'{"correlation": "abc"}',
        content_type="application/octet-stream",
    )
    json_event = event("Json", {"text": "caf\u00e9 \u2603", "n": [1, 2, 3]}, metadata=b"\x00\x01")
    client.append_to_stream(
        stream, current_version=StreamState.NO_STREAM, events=[binary, json_event]
    )
    recorded = client.get_stream(stream)
    assert len(recorded) == 2, recorded
    for new, got in zip([binary, json_event], recorded, strict=True):
        assert got.id == new.id, (got.id, new.id)
        assert got.type == new.type, (got.type, new.type)
        assert got.data == new.data, (got.data, new.data)
        assert got.metadata == new.metadata, (got.metadata, new.metadata)
        assert got.content_type == new.content_type, (got.content_type, new.content_type)
        assert got.stream_name == stream, got.stream_name
        assert got.recorded_at is not None, "the `created` metadata is missing"
        slack = datetime.timedelta(minutes=5)
        assert before - slack <= got.recorded_at <= before + slack, (before, got.recorded_at)


if __name__ == "__main__":
    main()
