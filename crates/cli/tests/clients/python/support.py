"""Shared helpers for the Python client scenarios run against `factum serve`.

Every scenario script takes the server's URI as its only argument, prints each check it makes,
and exits non-zero on the first failed check (a plain `assert` or an unexpected exception).
"""

from __future__ import annotations

import atexit
import gc
import json
import sys
import uuid
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from kurrentdbclient import KurrentDBClient, NewEvent

E = TypeVar("E", bound=BaseException)


def server_uri() -> str:
    """The URI given on the command line, e.g. `kurrentdb://127.0.0.1:2113?Tls=false`."""
    if len(sys.argv) < 2:
        sys.exit(f"usage: {sys.argv[0]} KURRENTDB_URI")
    return sys.argv[1]


def connect(uri: str | None = None) -> KurrentDBClient:
    """A client connected to `uri`, by default the server named on the command line."""
    client = KurrentDBClient(uri=uri or server_uri())
    _clients.append(client)
    return client


# Clients to close before the interpreter shuts down. A gRPC channel closed during the
# interpreter's final garbage collection (from `KurrentDBClient.__del__`) can wait forever for
# gRPC's polling thread, which is gone by then; closing here, while every thread still runs,
# lets a finished script exit.
_clients: list[KurrentDBClient] = []


@atexit.register
def _close_clients() -> None:
    for client in _clients:
        client.close()
    _clients.clear()
    # Clients that only reference cycles still hold (inside applications) close now too.
    gc.collect()


def unique(prefix: str) -> str:
    """A stream name (or tag) no other run has used, so scenarios never collide."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def step(text: str) -> None:
    """Announces the check about to be made (the harness shows this output on failure)."""
    print(f"- {text}", flush=True)


def event(event_type: str, body: dict[str, Any] | None = None, **kwargs: Any) -> NewEvent:
    """A JSON event with a fresh id."""
    data = json.dumps(body if body is not None else {}).encode()
    return NewEvent(type=event_type, data=data, **kwargs)


def events(event_type: str, count: int, start: int = 0) -> list[NewEvent]:
    """`count` JSON events numbered from `start`."""
    return [event(event_type, {"n": start + i}) for i in range(count)]


def ids(items: Iterable[Any]) -> list[uuid.UUID]:
    """The ids of new or recorded events, in order."""
    return [item.id for item in items]


def expect_error(
    error_type: type[E] | tuple[type[E], ...], action: Callable[[], Any], what: str
) -> E:
    """Runs `action` and returns the error of `error_type` (or one of them) it must raise."""
    types = error_type if isinstance(error_type, tuple) else (error_type,)
    wanted = " or ".join(t.__name__ for t in types)
    try:
        result = action()
    except types as error:
        print(f"    raised {type(error).__name__} as expected: {error}", flush=True)
        return error
    except Exception as error:
        raise AssertionError(
            f"{what}: expected {wanted}, got {type(error).__name__}: {error}"
        ) from error
    raise AssertionError(f"{what}: expected {wanted}, got success: {result!r}")


def done(name: str) -> None:
    """The last line of a passing scenario."""
    print(f"{name}: all checks passed", flush=True)
