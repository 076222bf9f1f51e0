"""The Python `eventsourcing` library on Factum through its `eventsourcing-kurrentdb` adapter.

1. An application saves an aggregate over several versions; a second instance of the
   application reloads it (whole, at an old version, and from a snapshot); a stale write
   fails with an integrity error.
2. A projection (ProjectionRunner, which follows `$all` with a catch-up subscription) counts
   the events into an in-memory view, first the history, then live events.
3. A process application in a system (SingleThreadedRunner, which pulls notifications with
   filtered `$all` reads) reacts to the library's events with its own aggregates.

Runs against a fresh server: the counts assume this script wrote every library event.

Usage: python eventsourcing_app.py kurrentdb://HOST:PORT?Tls=false
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from support import done, server_uri, step

# The library application stores its events in Factum; every other application (the
# projection's view, the process application) keeps the default in-memory persistence.
os.environ["LIBRARY_PERSISTENCE_MODULE"] = "eventsourcing_kurrentdb"
os.environ["KURRENTDB_URI"] = server_uri()

from eventsourcing.application import Application  # noqa: E402
from eventsourcing.dispatch import singledispatchmethod  # noqa: E402
from eventsourcing.domain import Aggregate, event  # noqa: E402
from eventsourcing.persistence import IntegrityError, Tracking  # noqa: E402
from eventsourcing.popo import POPOTrackingRecorder  # noqa: E402
from eventsourcing.projection import Projection, ProjectionRunner  # noqa: E402
from eventsourcing.system import ProcessApplication, SingleThreadedRunner, System  # noqa: E402
from eventsourcing.utils import get_topic  # noqa: E402

WAIT_S = 30.0


class Book(Aggregate):
    """A library book, lent and given back."""

    INITIAL_VERSION = 0  # KurrentDB streams start at revision 0.

    @staticmethod
    def create_id(isbn: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"/books/{isbn}")

    @dataclass(frozen=True)
    class Registered(Aggregate.Created):
        isbn: str
        title: str

    @dataclass(frozen=True)
    class Lent(Aggregate.Event):
        reader: str

    @dataclass(frozen=True)
    class GivenBack(Aggregate.Event):
        pass

    @event(Registered)
    def __init__(self, isbn: str, title: str) -> None:
        self.isbn = isbn
        self.title = title
        self.reader: str | None = None
        self.times_lent = 0

    @event(Lent)
    def lend(self, reader: str) -> None:
        assert self.reader is None, f"{self.title} is already lent to {self.reader}"
        self.reader = reader
        self.times_lent += 1

    @event(GivenBack)
    def give_back(self) -> None:
        assert self.reader is not None, f"{self.title} is not lent"
        self.reader = None


class Library(Application[UUID]):
    """Registers, lends and takes back books."""

    is_snapshotting_enabled = True

    def register(self, isbn: str, title: str) -> int:
        return self._save(Book(isbn, title))

    def lend(self, isbn: str, reader: str) -> int:
        book = self.book(isbn)
        book.lend(reader)
        return self._save(book)

    def give_back(self, isbn: str) -> int:
        book = self.book(isbn)
        book.give_back()
        return self._save(book)

    def book(self, isbn: str, version: int | None = None) -> Book:
        return self.repository.get(Book.create_id(isbn), version=version)

    def _save(self, book: Book) -> int:
        recordings = self.save(book)
        return recordings[-1].notification.id


def aggregates() -> None:
    library = Library()
    step("register a book and lend it twice: versions 0..4")
    first_id = library.register("978-0", "Domain-Driven Design")
    assert first_id > 0, first_id
    library.lend("978-0", "ada")
    library.give_back("978-0")
    library.lend("978-0", "grace")
    last_id = library.give_back("978-0")
    assert last_id > first_id, (first_id, last_id)
    library.register("978-1", "Enterprise Integration Patterns")
    library.lend("978-1", "linus")

    step("a new application instance reloads the aggregates from Factum")
    reloaded = Library()
    book = reloaded.book("978-0")
    assert (book.title, book.reader, book.times_lent, book.version) == (
        "Domain-Driven Design",
        None,
        2,
        4,
    ), vars(book)
    other = reloaded.book("978-1")
    assert (other.reader, other.version) == ("linus", 1), vars(other)

    step("an old version of the aggregate: version 1 was lent to ada")
    old = reloaded.book("978-0", version=1)
    assert (old.reader, old.version, old.times_lent) == ("ada", 1, 1), vars(old)

    step("two instances change the same aggregate: the stale one gets an IntegrityError")
    first, second = Library(), Library()
    stale = second.book("978-0")
    first.lend("978-0", "barbara")
    stale.lend("edsger")
    try:
        second.save(stale)
    except IntegrityError as error:
        print(f"    raised IntegrityError as expected: {error}", flush=True)
    else:
        raise AssertionError("a stale save succeeded")
    assert Library().book("978-0").reader == "barbara"

    step("a snapshot is taken and used: the state is unchanged")
    first.take_snapshot(Book.create_id("978-0"))
    snapshots = list(first.snapshots.get(Book.create_id("978-0"), desc=True, limit=1))
    assert len(snapshots) == 1 and snapshots[0].originator_version == 5, snapshots
    first.give_back("978-0")
    book = Library().book("978-0")
    assert (book.reader, book.version, book.times_lent) == (None, 6, 3), vars(book)

    step("the notification log: ids increase, max_notification_id is the last one")
    notifications = library.recorder.select_notifications(start=None, limit=100)
    topics = [n.topic for n in notifications]
    assert len(notifications) == 9, topics  # snapshots are filtered out by the adapter
    notification_ids = [n.id for n in notifications]
    assert notification_ids == sorted(set(notification_ids)), notification_ids
    assert library.recorder.max_notification_id() == notification_ids[-1]
    page = library.recorder.select_notifications(start=notification_ids[2], limit=3)
    assert [n.id for n in page] == notification_ids[2:5], [n.id for n in page]
    lent_only = library.recorder.select_notifications(
        start=None, limit=100, topics=[get_topic(Book.Lent)]
    )
    assert [n.topic for n in lent_only] == [get_topic(Book.Lent)] * 4, lent_only


class LendingView(POPOTrackingRecorder):
    """An in-memory read model: how many books, and how many lendings."""

    def __init__(self) -> None:
        super().__init__()
        self.books = 0
        self.lendings = 0

    def count(self, tracking: Tracking, books: int = 0, lendings: int = 0) -> None:
        with self._database_lock:
            self._assert_tracking_uniqueness(tracking)
            self._insert_tracking(tracking)
            self.books += books
            self.lendings += lendings


class LendingCounts(Projection[LendingView]):
    # GivenBack is followed too, though it counts nothing: the view's tracking must reach the
    # last notification id for `wait` to return.
    topics = (get_topic(Book.Registered), get_topic(Book.Lent), get_topic(Book.GivenBack))

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        raise AssertionError(f"unexpected event {domain_event!r}")

    @process_event.register
    def _(self, _: Book.Registered, tracking: Tracking) -> None:
        self.view.count(tracking, books=1)

    @process_event.register
    def _(self, _: Book.Lent, tracking: Tracking) -> None:
        self.view.count(tracking, lendings=1)

    @process_event.register
    def _(self, _: Book.GivenBack, tracking: Tracking) -> None:
        self.view.count(tracking)


def projection() -> None:
    library = Library()
    step("a projection following $all catches up with the history: 2 books, 4 lendings")
    with ProjectionRunner(
        application_class=Library, projection_class=LendingCounts, view_class=LendingView
    ) as runner:
        view = runner.projection.view
        runner.wait(library.recorder.max_notification_id(), timeout=WAIT_S)
        assert (view.books, view.lendings) == (2, 4), (view.books, view.lendings)

        step("then it follows live events: a lending and a new book")
        notification_id = library.lend("978-0", "margaret")
        runner.wait(notification_id, timeout=WAIT_S)
        assert (view.books, view.lendings) == (2, 5), (view.books, view.lendings)
        notification_id = library.register("978-2", "Designing Data-Intensive Applications")
        runner.wait(notification_id, timeout=WAIT_S)
        assert (view.books, view.lendings) == (3, 5), (view.books, view.lendings)


class Reminder(Aggregate):
    """A reminder to bring a lent book back, closed when it is given back."""

    @staticmethod
    def create_id(book_id: str, lending: int) -> UUID:
        return uuid5(NAMESPACE_URL, f"/reminders/{book_id}/{lending}")

    @event("Opened")
    def __init__(self, book_id: str, lending: int, reader: str) -> None:
        self.book_id = book_id
        self.lending = lending
        self.reader = reader
        self.open = True

    @event("Closed")
    def close(self) -> None:
        self.open = False


class Reminders(ProcessApplication[UUID]):
    """Opens a reminder for each lending, and closes it when the book comes back."""

    topics = (get_topic(Book.Lent), get_topic(Book.GivenBack))

    def __init__(self, env: Any = None) -> None:
        super().__init__(env)
        self.lendings: dict[str, int] = {}

    @singledispatchmethod
    def policy(self, domain_event: Any, processing_event: Any) -> None:
        raise AssertionError(f"unexpected event {domain_event!r}")

    @policy.register
    def _(self, domain_event: Book.Lent, processing_event: Any) -> None:
        book_id = str(domain_event.originator_id)
        lending = self.lendings.get(book_id, 0) + 1
        self.lendings[book_id] = lending
        processing_event.collect_events(Reminder(book_id, lending, domain_event.reader))

    @policy.register
    def _(self, domain_event: Book.GivenBack, processing_event: Any) -> None:
        book_id = str(domain_event.originator_id)
        reminder = self.repository.get(Reminder.create_id(book_id, self.lendings[book_id]))
        reminder.close()
        processing_event.collect_events(reminder)

    def open_reminders(self) -> list[str]:
        readers = []
        for book_id, lendings in sorted(self.lendings.items()):
            reminder = self.repository.get(Reminder.create_id(book_id, lendings))
            if reminder.open:
                readers.append(reminder.reader)
        return sorted(readers)


def process_application() -> None:
    step("a process application pulls the library's history through filtered $all reads")
    runner = SingleThreadedRunner(System(pipes=[[Library, Reminders]]))
    runner.start()
    try:
        library = runner.get(Library)
        reminders = runner.get(Reminders)
        # The runner prompts its followers when the leader saves; this save makes the
        # process application pull everything the library recorded so far.
        library.give_back("978-1")
        assert reminders.open_reminders() == ["margaret"], reminders.open_reminders()
        assert sum(reminders.lendings.values()) == 5, reminders.lendings

        step("and keeps following: a new lending opens a reminder, giving back closes it")
        library.lend("978-2", "alan")
        assert reminders.open_reminders() == ["alan", "margaret"], reminders.open_reminders()
        library.give_back("978-0")
        assert reminders.open_reminders() == ["alan"], reminders.open_reminders()
        tracked = reminders.recorder.max_tracking_id(Library.name)
        assert tracked == library.recorder.max_notification_id(), tracked
    finally:
        runner.stop()


def main() -> None:
    aggregates()
    projection()
    process_application()
    done("eventsourcing_app")


if __name__ == "__main__":
    main()
