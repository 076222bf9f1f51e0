"""TLS: the Python client over `tls=true`, trusting only the development CA that
`factum dev-cert` wrote (`tlsCaFile`). The client insists on credentials with TLS, and the
server checks them: the test harness gives it its first admin, admin:changeit.

Usage: python tls.py 'kurrentdb://USER:PASSWORD@localhost:PORT?tls=true&tlsCaFile=ca.pem'
"""

from __future__ import annotations

from kurrentdbclient import StreamState

from support import connect, done, events, ids, server_uri, step, unique


def main() -> None:
    step("the URI asks for TLS with the development CA")
    uri = server_uri().lower()
    assert "tls=true" in uri and "tlscafile=" in uri, uri
    client = connect()
    stream = unique("tls")

    step("BatchAppend over TLS")
    written = events("Opened", 3)
    position = client.append_to_stream(
        stream, current_version=StreamState.NO_STREAM, events=written
    )
    assert position > 0, position

    step("Append (one event) over TLS")
    one_more = events("Deposited", 1, start=3)
    client.append_event(stream, event=one_more[0], current_version=2)

    step("read the stream back over TLS")
    assert ids(client.get_stream(stream)) == ids(written + one_more)

    step("a catch-up subscription over TLS delivers them")
    subscription = client.subscribe_to_stream(stream)
    received = []
    for recorded in subscription:
        received.append(recorded)
        if len(received) == 4:
            break
    subscription.stop()
    assert ids(received) == ids(written + one_more), received

    done("tls")


if __name__ == "__main__":
    main()
