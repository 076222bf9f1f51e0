"""`$all` reads through the Python client: the default filter (which the client sends as a
negative look-ahead regex), no filter, include and exclude filters on event types and stream
names, prefix filters, limits after filtering, start positions, and get_commit_position.

Usage: python read_all.py kurrentdb://HOST:PORT?Tls=false
"""

from __future__ import annotations

from kurrentdbclient import StreamState

from support import connect, done, event, ids, step, unique


def mine(recorded, tag: str) -> list:
    """The events of this run (the server may hold others)."""
    return [e for e in recorded if tag in e.stream_name]


def main() -> None:
    client = connect()
    tag = unique("t").replace("-", "")
    orders = [f"orders{tag}-{i}" for i in range(2)]
    invoices = f"invoices{tag}-0"
    order_type = f"OrderPlaced{tag}"
    invoice_type = f"InvoiceSent{tag}"

    step("nothing matches a filter on a type never written: get_commit_position is 0")
    assert client.get_commit_position(filter_include=[f"NoSuchType{tag}"]) == 0

    # The log, in order: order 0, invoice, order 1, order 0 again, then a system event (a
    # `$metadata` event in the metadata stream `$$system...`, written by set_stream_metadata).
    written = []
    for stream, event_type in [
        (orders[0], order_type),
        (invoices, invoice_type),
        (orders[1], order_type),
        (orders[0], order_type),
    ]:
        new = event(event_type, {"stream": stream})
        client.append_to_stream(stream, current_version=StreamState.ANY, events=[new])
        written.append((stream, new))
    client.set_stream_metadata(f"system{tag}", metadata={"tag": tag})
    (system_event,) = client.get_stream(f"$$system{tag}")
    assert system_event.type == "$metadata", system_event.type
    system_position = system_event.commit_position
    user_ids = [new.id for _, new in written]

    step("read_all forwards with the default filter: every user event in order, no `$` types")
    recorded = mine(client.read_all(), tag)
    assert ids(recorded) == user_ids, (ids(recorded), user_ids)
    positions = [e.commit_position for e in recorded]
    assert positions == sorted(set(positions)), positions
    assert all(e.stream_name == s for e, (s, _) in zip(recorded, written, strict=True))

    step("read_all with no filter at all also shows the `$` event type")
    recorded = mine(client.read_all(filter_exclude=()), tag)
    assert ids(recorded) == [*user_ids, system_event.id], ids(recorded)
    assert recorded[-1].commit_position == system_position

    step("read_all backwards (default filter): newest first")
    recorded = mine(client.read_all(backwards=True), tag)
    assert ids(recorded) == list(reversed(user_ids)), ids(recorded)

    step("read_all backwards, limit 2 (no filter): the system event, then the last order")
    recorded = list(client.read_all(backwards=True, filter_exclude=(), limit=2))
    assert ids(recorded) == [system_event.id, user_ids[-1]], ids(recorded)

    first_position = mine(client.read_all(), tag)[0].commit_position
    second_position = mine(client.read_all(), tag)[1].commit_position
    step("read_all forwards from a position is inclusive")
    recorded = mine(client.read_all(commit_position=second_position), tag)
    assert ids(recorded) == user_ids[1:], ids(recorded)
    step("read_all backwards from a position is exclusive")
    recorded = mine(client.read_all(commit_position=second_position, backwards=True), tag)
    assert ids(recorded) == [user_ids[0]], ids(recorded)
    step("read_all forwards from a position, limit 1: that event")
    recorded = list(client.read_all(commit_position=first_position, limit=1))
    assert ids(recorded) == [user_ids[0]], ids(recorded)

    step("include filter on event type: only the orders")
    recorded = list(client.read_all(filter_include=[order_type]))
    assert ids(recorded) == [user_ids[0], user_ids[2], user_ids[3]], ids(recorded)

    step("include filter with a regex alternative: orders and invoices")
    recorded = list(client.read_all(filter_include=[f"(OrderPlaced|InvoiceSent){tag}"]))
    assert ids(recorded) == user_ids, ids(recorded)

    step("include filter on event type with limit 2: the limit counts matches only")
    recorded = list(client.read_all(filter_include=[order_type], limit=2))
    assert ids(recorded) == [user_ids[0], user_ids[2]], ids(recorded)

    step("include filter on event type, backwards, limit 1: the last order")
    recorded = list(client.read_all(filter_include=[order_type], backwards=True, limit=1))
    assert ids(recorded) == [user_ids[3]], ids(recorded)

    step("exclude filter on event types: everything but orders (and `$` types)")
    recorded = mine(client.read_all(filter_exclude=[r"\$.+", f"OrderPlaced{tag}"]), tag)
    assert ids(recorded) == [user_ids[1]], ids(recorded)

    step("include filter on stream names: only the streams of order 0")
    recorded = list(client.read_all(filter_include=[orders[0]], filter_by_stream_name=True))
    assert ids(recorded) == [user_ids[0], user_ids[3]], ids(recorded)

    step("include filter on stream names with a regex: both order streams")
    recorded = list(client.read_all(filter_include=[f"orders{tag}-.*"], filter_by_stream_name=True))
    assert ids(recorded) == [user_ids[0], user_ids[2], user_ids[3]], ids(recorded)

    step("exclude filter on stream names: everything of this run but the order streams")
    recorded = mine(
        client.read_all(filter_exclude=[f"orders{tag}-.*"], filter_by_stream_name=True), tag
    )
    assert ids(recorded) == [user_ids[1], system_event.id], ids(recorded)

    step("prefix filter on stream names")
    recorded = list(
        client.read_all(
            filter_include=[f"invoices{tag}", f"$$system{tag}"],
            filter_by_stream_name=True,
            filter_by_prefix=True,
        )
    )
    assert ids(recorded) == [user_ids[1], system_event.id], ids(recorded)

    step("prefix filter on event types")
    recorded = list(client.read_all(filter_include=[f"OrderPlaced{tag}"], filter_by_prefix=True))
    assert ids(recorded) == [user_ids[0], user_ids[2], user_ids[3]], ids(recorded)

    step("get_commit_position skips `$` types by default: the last order's position")
    last_order_position = mine(client.read_all(), tag)[-1].commit_position
    assert client.get_commit_position() == last_order_position, (
        client.get_commit_position(),
        last_order_position,
    )
    step("get_commit_position with no filter: the system event's position")
    assert client.get_commit_position(filter_exclude=()) == system_position

    step("get_commit_position filtered on the invoice type: the invoice's position")
    invoice_position = mine(client.read_all(), tag)[1].commit_position
    assert client.get_commit_position(filter_include=[invoice_type]) == invoice_position

    done("read_all")


if __name__ == "__main__":
    main()
