"""Stream reads through the Python client: forwards and backwards, from a revision, with
limits, past the end, and of a stream that does not exist.

Usage: python reads.py kurrentdb://HOST:PORT?Tls=false
"""

from __future__ import annotations

from kurrentdbclient import StreamState
from kurrentdbclient.exceptions import NotFoundError

from support import connect, done, events, expect_error, ids, step, unique


def revisions(recorded) -> list[int]:
    return [e.stream_position for e in recorded]


def main() -> None:
    client = connect()
    stream = unique("reads")
    written = events("Counted", 10)
    client.append_to_stream(stream, current_version=StreamState.NO_STREAM, events=written)
    # A second stream interleaved in the log, which stream reads must never show.
    other = unique("reads-other")
    client.append_to_stream(other, current_version=StreamState.NO_STREAM, events=events("Other", 3))

    step("forwards from the start: revisions 0..9 in order, the appended ids")
    recorded = client.get_stream(stream)
    assert revisions(recorded) == list(range(10)), revisions(recorded)
    assert ids(recorded) == ids(written)
    assert all(e.stream_name == stream for e in recorded)

    step("read_stream (lazy iterator) gives the same events as get_stream")
    assert ids(list(client.read_stream(stream))) == ids(written)

    step("forwards from revision 3 (inclusive), limit 4: revisions 3..6")
    recorded = client.get_stream(stream, stream_position=3, limit=4)
    assert revisions(recorded) == [3, 4, 5, 6], revisions(recorded)
    assert ids(recorded) == ids(written[3:7])

    step("forwards with limit 1: revision 0")
    assert revisions(client.get_stream(stream, limit=1)) == [0]

    step("forwards from the last revision: just it")
    assert revisions(client.get_stream(stream, stream_position=9)) == [9]

    step("forwards from past the end: no events, no error")
    assert client.get_stream(stream, stream_position=10) == ()
    assert client.get_stream(stream, stream_position=1000) == ()

    step("backwards from the end: revisions 9..0")
    recorded = client.get_stream(stream, backwards=True)
    assert revisions(recorded) == list(range(9, -1, -1)), revisions(recorded)
    assert ids(recorded) == ids(reversed(written))

    step("backwards, limit 3: revisions 9, 8, 7")
    assert revisions(client.get_stream(stream, backwards=True, limit=3)) == [9, 8, 7]

    step("backwards from revision 5 (inclusive), limit 2: revisions 5, 4")
    recorded = client.get_stream(stream, stream_position=5, backwards=True, limit=2)
    assert revisions(recorded) == [5, 4], revisions(recorded)

    step("backwards from revision 0: just revision 0")
    assert revisions(client.get_stream(stream, stream_position=0, backwards=True)) == [0]

    step("backwards from past the end starts at the last event")
    recorded = client.get_stream(stream, stream_position=50, backwards=True, limit=2)
    assert revisions(recorded) == [9, 8], revisions(recorded)

    step("get_current_version reads the last revision")
    assert client.get_current_version(stream) == 9

    step("positions grow with revisions")
    positions = [e.commit_position for e in client.get_stream(stream)]
    assert positions == sorted(set(positions)), positions
    assert all(0 < p < 2**63 for p in positions), positions

    missing = unique("missing")
    step("get_stream of a stream never written -> NotFoundError")
    expect_error(NotFoundError, lambda: client.get_stream(missing), "get_stream missing")
    step("read_stream of a stream never written -> NotFoundError when iterated")
    expect_error(NotFoundError, lambda: list(client.read_stream(missing)), "read_stream missing")
    step("backwards read of a stream never written -> NotFoundError")
    expect_error(
        NotFoundError,
        lambda: client.get_stream(missing, backwards=True, limit=1),
        "backwards missing",
    )
    done("reads")


if __name__ == "__main__":
    main()
