"""Catch-up subscriptions through the Python client, to a stream and to `$all`: the historical
events first, then live events appended after subscribing, with no gap and no duplicate,
including while a writer keeps appending across the switch from catch-up to live.

Usage: python subscriptions.py kurrentdb://HOST:PORT?Tls=false
"""

from __future__ import annotations

import threading

from kurrentdbclient import StreamState

from support import connect, done, event, events, ids, step, unique

# A subscription call that gets no event for this long fails with a deadline error, so a
# missing live event fails the scenario instead of hanging it.
DEADLINE_S = 60.0


def take(subscription, count: int) -> list:
    """The next `count` events of a subscription."""
    return [next(subscription) for _ in range(count)]


class Writer(threading.Thread):
    """Appends events from another thread, so that the subscriber waits for them live."""

    def __init__(self, action, start_when: threading.Event | None = None) -> None:
        super().__init__(daemon=True)
        self.action = action
        self.start_when = start_when
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            if self.start_when is not None:
                assert self.start_when.wait(DEADLINE_S), "the subscriber never got ready"
            self.action()
        except BaseException as error:  # reported by finish()
            self.error = error

    def finish(self) -> None:
        self.join(DEADLINE_S)
        assert not self.is_alive(), "the writer thread is stuck"
        if self.error is not None:
            raise AssertionError(f"the writer failed: {self.error!r}") from self.error


def stream_subscriptions(client) -> None:
    stream = unique("sub-stream")
    historical = events("Before", 3)
    client.append_to_stream(stream, current_version=StreamState.NO_STREAM, events=historical)

    step("subscribe_to_stream from the start: the 3 historical events first")
    subscription = client.subscribe_to_stream(stream, timeout=DEADLINE_S)
    got = take(subscription, 3)
    assert ids(got) == ids(historical), ids(got)
    assert [e.stream_position for e in got] == [0, 1, 2]

    step("then 5 events appended one by one by another thread arrive live, in order")
    live = events("Live", 5)

    def append_live() -> None:
        for i, new in enumerate(live):
            if i % 2 == 0:
                client.append_event(stream, event=new, current_version=2 + i)
            else:
                client.append_to_stream(stream, events=[new], current_version=2 + i)

    writer = Writer(append_live)
    writer.start()
    got = take(subscription, 5)
    writer.finish()
    assert ids(got) == ids(live), ids(got)
    assert [e.stream_position for e in got] == [3, 4, 5, 6, 7]
    subscription.stop()

    step("subscribe_to_stream from revision 5 is exclusive: revisions 6, 7, then a new 8")
    subscription = client.subscribe_to_stream(stream, stream_position=5, timeout=DEADLINE_S)
    got = take(subscription, 2)
    assert [e.stream_position for e in got] == [6, 7], [e.stream_position for e in got]
    new = event("After")
    client.append_to_stream(stream, events=[new], current_version=7)
    got = next(subscription)
    assert (got.id, got.stream_position) == (new.id, 8), got
    subscription.stop()

    step("subscribe_to_stream from the end: only events appended afterwards")
    subscription = client.subscribe_to_stream(stream, from_end=True, timeout=DEADLINE_S)
    later = events("Later", 2)
    client.append_to_stream(stream, events=later, current_version=8)
    got = take(subscription, 2)
    assert ids(got) == ids(later), ids(got)
    assert [e.stream_position for e in got] == [9, 10]
    subscription.stop()

    step("a subscription to a stream not written yet waits for its first events")
    fresh = unique("sub-fresh")
    subscription = client.subscribe_to_stream(fresh, timeout=DEADLINE_S)
    first = events("First", 2)
    client.append_to_stream(fresh, events=first, current_version=StreamState.NO_STREAM)
    got = take(subscription, 2)
    assert ids(got) == ids(first), ids(got)
    subscription.stop()


def stream_switch_under_load(client) -> None:
    step("subscribe_to_stream while a writer appends 300 events: every revision once")
    stream = unique("sub-load")
    total = 300
    written: list = []
    halfway = threading.Event()

    def append_many() -> None:
        revision = -1
        while len(written) < total:
            batch = events("Load", min(1 + len(written) % 4, total - len(written)), len(written))
            expected = StreamState.NO_STREAM if revision < 0 else revision
            client.append_to_stream(stream, events=batch, current_version=expected)
            written.extend(batch)
            revision += len(batch)
            if len(written) >= 50:
                halfway.set()

    writer = Writer(append_many)
    writer.start()
    assert halfway.wait(DEADLINE_S), "the writer did not get going"
    subscription = client.subscribe_to_stream(stream, timeout=DEADLINE_S)
    got = take(subscription, total)
    writer.finish()
    revisions = [e.stream_position for e in got]
    assert revisions == list(range(total)), f"gap or duplicate: {revisions}"
    assert ids(got) == ids(written)
    subscription.stop()


def all_subscriptions(client) -> None:
    tag = unique("s").replace("-", "")
    streams = [f"suball{tag}-a", f"suball{tag}-b"]
    only_mine = {"filter_include": [f"suball{tag}-.*"], "filter_by_stream_name": True}

    historical = []
    for i in range(4):
        new = event(f"Happened{tag}", {"i": i})
        client.append_to_stream(streams[i % 2], events=[new], current_version=StreamState.ANY)
        historical.append(new)

    step("subscribe_to_all (filtered on this run's streams): the historical events first")
    subscription = client.subscribe_to_all(timeout=DEADLINE_S, **only_mine)
    got = take(subscription, 4)
    assert ids(got) == ids(historical), ids(got)

    step("then events appended by another thread to two streams arrive live, in log order")
    live = [event(f"Happened{tag}", {"live": i}) for i in range(6)]

    def append_live() -> None:
        for i, new in enumerate(live):
            client.append_to_stream(streams[i % 2], events=[new], current_version=StreamState.ANY)

    writer = Writer(append_live)
    writer.start()
    got_live = take(subscription, 6)
    writer.finish()
    assert ids(got_live) == ids(live), ids(got_live)
    positions = [e.commit_position for e in got + got_live]
    assert positions == sorted(set(positions)), f"positions out of order: {positions}"
    subscription.stop()

    step("subscribe_to_all from a position is exclusive")
    after = got[1].commit_position
    subscription = client.subscribe_to_all(commit_position=after, timeout=DEADLINE_S, **only_mine)
    got = take(subscription, 2)
    assert ids(got) == ids(historical[2:4]), ids(got)
    subscription.stop()

    step("subscribe_to_all from the end: only events appended afterwards")
    subscription = client.subscribe_to_all(from_end=True, timeout=DEADLINE_S, **only_mine)
    later = event(f"Later{tag}")
    client.append_to_stream(streams[0], events=[later], current_version=StreamState.ANY)
    got = next(subscription)
    assert got.id == later.id, got
    subscription.stop()

    step("subscribe_to_all with an event-type include filter: only that type")
    subscription = client.subscribe_to_all(filter_include=[f"Later{tag}"], timeout=DEADLINE_S)
    got = next(subscription)
    assert got.id == later.id, got
    subscription.stop()

    step("subscribe_to_all with the default filter sees this run's events in order")
    subscription = client.subscribe_to_all(timeout=DEADLINE_S)
    expected = [*ids(historical), *ids(live), later.id]
    seen = []
    while len(seen) < len(expected):
        recorded = next(subscription)
        assert not recorded.type.startswith("$"), f"default filter let through {recorded.type}"
        if tag in recorded.stream_name:
            seen.append(recorded.id)
    assert seen == expected, seen
    subscription.stop()


def all_switch_under_load(client) -> None:
    step("subscribe_to_all while a writer appends 300 events to 3 streams: each event once")
    tag = unique("l").replace("-", "")
    streams = [f"allload{tag}-{i}" for i in range(3)]
    total = 300
    written: list = []
    halfway = threading.Event()

    def append_many() -> None:
        i = 0
        while len(written) < total:
            batch = events("Load", min(1 + i % 3, total - len(written)), len(written))
            client.append_to_stream(streams[i % 3], events=batch, current_version=StreamState.ANY)
            written.extend(batch)
            i += 1
            if len(written) >= 50:
                halfway.set()

    writer = Writer(append_many)
    writer.start()
    assert halfway.wait(DEADLINE_S), "the writer did not get going"
    subscription = client.subscribe_to_all(
        filter_include=[f"allload{tag}-"],
        filter_by_stream_name=True,
        filter_by_prefix=True,
        timeout=DEADLINE_S,
    )
    got = take(subscription, total)
    writer.finish()
    assert ids(got) == ids(written), "gap, duplicate or reordering across the switch"
    positions = [e.commit_position for e in got]
    assert positions == sorted(set(positions)), positions
    subscription.stop()


def caught_up_and_checkpoints(client) -> None:
    step("with include_caught_up: the history, then a caught-up message, then live events")
    stream = unique("sub-caught-up")
    historical = events("Before", 2)
    client.append_to_stream(stream, current_version=StreamState.NO_STREAM, events=historical)
    subscription = client.subscribe_to_stream(stream, include_caught_up=True, timeout=DEADLINE_S)
    got = take(subscription, 3)
    assert ids(got[:2]) == ids(historical), got
    assert got[2].is_caught_up, f"expected a caught-up message, got {got[2]!r}"
    live = event("Live")
    client.append_to_stream(stream, current_version=1, events=[live])
    got = next(subscription)
    assert got.id == live.id, got
    subscription.stop()

    step("a filtered $all subscription with include_checkpoints reports scanned positions")
    tag = unique("c").replace("-", "")
    subscription = client.subscribe_to_all(
        filter_include=[f"Rare{tag}"],
        include_checkpoints=True,
        window_size=5,
        checkpoint_interval_multiplier=2,
        timeout=DEADLINE_S,
    )
    first = next(subscription)
    while first.is_caught_up:
        first = next(subscription)
    assert first.is_checkpoint, f"expected a checkpoint while scanning history, got {first!r}"
    head = client.get_commit_position(filter_exclude=())
    assert 0 < first.commit_position <= head, (first.commit_position, head)
    rare = event(f"Rare{tag}")
    position = client.append_to_stream(
        unique("rare"), current_version=StreamState.ANY, events=[rare]
    )
    checkpoints = [first.commit_position]
    while True:
        item = next(subscription)
        if item.is_checkpoint:
            checkpoints.append(item.commit_position)
        elif not item.is_caught_up:
            break
    assert item.id == rare.id, item
    assert item.commit_position == position, (item.commit_position, position)
    assert checkpoints == sorted(checkpoints), f"checkpoints went backwards: {checkpoints}"
    assert checkpoints[-1] <= position, (checkpoints, position)
    subscription.stop()


def main() -> None:
    client = connect()
    stream_subscriptions(client)
    stream_switch_under_load(client)
    all_subscriptions(client)
    all_switch_under_load(client)
    caught_up_and_checkpoints(client)
    done("subscriptions")


if __name__ == "__main__":
    main()
