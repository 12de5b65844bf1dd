"""The index store's writer in a process of its own, so that indexing runs on a second core.

The collector's ingest is CPU-bound Python under one GIL; the index store's insert (interning,
postings, SQLite or PostgreSQL) is about a third of it. With `[store] index_process = true`
(the default for `apiwatch serve` and `apiwatch ingest`) the pipeline appends a batch to the
ledger, hands the ledger records to this process over a pipe, and acknowledges the batch once
the process reports it indexed *and committed* — so a query that follows the acknowledgement
sees it, from any connection.

The child groups whatever batches are waiting into one transaction (group commit), then answers
with the highest ledger index it has committed. The store is derived from the ledger, so a child
that dies loses nothing: the pipeline starts a new one and sends it the ledger records after the
last index the old one confirmed (inserts are idempotent by ledger index).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from apiwatch.collector.gc_policy import collector_gc
from apiwatch.heap import keep_freed_memory
from apiwatch.store import open_store
from apiwatch.store.errors import StoreError

_INDEX = struct.Struct(">q")
_SIZE = struct.Struct(">Q")  # a message's length, before it
_NONE = -1  # "nothing committed yet", on the wire
#: Batches grouped into one transaction at most; bounds how long an acknowledgement waits.
_GROUP_BATCHES = 64
_FAILED = b"E"
_STOP = b""  # the collector is closing: commit and exit
#: Records per message when a store catches up from the ledger (`ledger_chunks`).
_CATCH_UP_RECORDS = 2000
#: Seconds `close` waits for the child to commit and exit before it is killed.
_CLOSE_SECONDS = 30.0
#: Seconds a new collector waits for the indexer of a killed one to finish.
_ORPHAN_SECONDS = 60.0


def ledger_chunks(
    read_range: Callable[[int, int], list[bytes]], start: int, stop: int
) -> Iterator[tuple[int, list[bytes]]]:
    """Ledger records `start..stop-1` read by `read_range(start, stop)`, a bounded number at a
    time: (index of the first, records), for a store catching up."""
    for first in range(start, stop, _CATCH_UP_RECORDS):
        yield first, read_range(first, min(first + _CATCH_UP_RECORDS, stop))


class Channel:
    """Messages of bytes, each after its length, over a stream socket: as
    `multiprocessing.connection.Connection` sends them, but a message is received into a
    buffer of its size, where that class gathers pieces in a BytesIO (copies of a batch that
    cost the indexer a few percent)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def send_bytes(self, data: bytes) -> None:
        """Send one message (OSError if the other end is gone)."""
        self._sock.sendall(_SIZE.pack(len(data)))
        self._sock.sendall(data)

    def recv_bytes(self) -> bytes:
        """The next message; EOFError if the other end closed between two."""
        header = self._exactly(_SIZE.size, at_start=True)
        (size,) = _SIZE.unpack(header)
        return self._exactly(size, at_start=False)

    def poll(self) -> bool:
        """Whether a message (or the end) is waiting, without blocking."""
        return bool(select.select([self._sock], [], [], 0)[0])

    def close(self) -> None:
        self._sock.close()

    def _exactly(self, size: int, *, at_start: bool) -> bytes:
        buffer = bytearray(size)
        view = memoryview(buffer)
        got = 0
        while got < size:
            count = self._sock.recv_into(view[got:])
            if not count:
                if at_start and not got:
                    raise EOFError
                raise OSError("the other end closed in the middle of a message")
            got += count
        return bytes(buffer)


def batch_message(first: int, records: Sequence[bytes]) -> bytes:
    """The message that carries a batch: the ledger index of its first record, in ASCII
    digits, then the records, each line ended by a line feed but the last."""
    return b"\n".join([b"%d" % first, *records])


@contextlib.contextmanager
def writer_lock(path: Path, timeout: float = _ORPHAN_SECONDS) -> Iterator[None]:
    """Hold the index store's writer lock (`path`), waiting for an earlier holder.

    After kill -9 of a collector its indexer still commits what it received, then exits; a
    new collector must not write the store (its term ids would collide) until it is gone.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StoreError(
                        f"an index writer from an earlier run still holds {path}"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock


def _run(store_url: str, lock_path: Path, conn: Channel) -> None:
    """The child: index what arrives, commit each group, answer the highest committed index."""
    with writer_lock(lock_path, timeout=float("inf")):
        _index(store_url, conn)


def _index(store_url: str, conn: Channel) -> None:
    try:
        store = open_store(store_url)
    except StoreError as exc:
        conn.send_bytes(_FAILED + str(exc).encode())
        return
    try:
        stopping = False
        while not stopping:
            try:
                messages = [conn.recv_bytes()]
                while len(messages) < _GROUP_BATCHES and conn.poll():
                    messages.append(conn.recv_bytes())
            except EOFError:  # the collector is gone
                break
            for message in messages:
                if message == _STOP:
                    stopping = True
                    break
                first, *records = message.split(b"\n")
                store.insert_records(int(first), records)
            top = store.max_ledger_index()  # commits what is pending
            conn.send_bytes(_INDEX.pack(_NONE if top is None else top))
    except StoreError as exc:
        conn.send_bytes(_FAILED + str(exc).encode())
    finally:
        store.close()


class IndexerProcess:
    """The pipeline's side of the child that writes the index store.

    `submit` is called in ledger order (under the pipeline's lock); `wait` blocks until a
    ledger index is indexed and committed, or raises StoreError if the child failed. After a
    failure, `restart` starts a new child from the last confirmed index.
    """

    def __init__(self, store_url: str, lock_path: Path, committed: int | None) -> None:
        self._url = store_url
        self._lock_path = lock_path
        self._changed = threading.Condition()
        self._committed = _NONE if committed is None else committed
        self._failure: str | None = None
        self._conn: Channel | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._start()

    @property
    def failed(self) -> bool:
        """Whether the child stopped (crashed, or its store failed) and needs a `restart`."""
        with self._changed:
            return self._failure is not None

    @property
    def committed(self) -> int | None:
        """The highest ledger index the child has committed, None if none yet."""
        with self._changed:
            return None if self._committed == _NONE else self._committed

    @property
    def pid(self) -> int | None:
        """The child's process id (shown in logs; tests kill it)."""
        return None if self._process is None else self._process.pid

    def _start(self) -> None:
        # A fresh interpreter on one end of a socket pair rather than multiprocessing: spawn
        # would re-import the embedding program's __main__, fork would copy its threads.
        ours, theirs = socket.socketpair()
        with theirs:
            process = subprocess.Popen(  # noqa: S603 (our interpreter and module, no input)
                [sys.executable, "-m", __name__, str(theirs.fileno())],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
            )
        parent = Channel(ours)
        parent.send_bytes(self._url.encode())  # not in argv: a DSN may hold a password
        parent.send_bytes(os.fsencode(self._lock_path))
        self._conn, self._process = parent, process
        with self._changed:
            self._failure = None
        self._reader = threading.Thread(
            target=self._read, args=(parent,), name="apiwatch-indexer-acks", daemon=True
        )
        self._reader.start()

    def _read(self, conn: Channel) -> None:
        """Follow the child's answers until it stops; wake every waiter on each."""
        while True:
            try:
                answer = conn.recv_bytes()
            except (EOFError, OSError):
                self._fail("the indexer process stopped")
                return
            if answer.startswith(_FAILED):
                self._fail(answer[1:].decode(errors="replace"))
                return
            (top,) = _INDEX.unpack(answer)
            with self._changed:
                self._committed = max(self._committed, top)
                self._changed.notify_all()

    def _fail(self, reason: str) -> None:
        with self._changed:
            if self._failure is None:
                self._failure = reason
            self._changed.notify_all()

    def submit(self, first: int, records: Sequence[bytes]) -> None:
        """Send a batch of ledger records, the first at ledger index `first`."""
        if self._conn is None or self.failed:
            return  # `restart` sends everything after the last confirmed index
        try:
            self._conn.send_bytes(batch_message(first, records))
        except OSError:
            self._fail("the indexer process stopped")

    def wait(self, last: int) -> None:
        """Return once ledger index `last` is indexed and committed; StoreError on failure."""
        with self._changed:
            while self._committed < last:
                if self._failure is not None:
                    raise StoreError(f"index store: {self._failure}")
                self._changed.wait()

    def restart(self, size: int, read_range: Callable[[int, int], list[bytes]]) -> None:
        """Start a new child and send it the ledger records it lacks, up to `size`.

        `read_range(start, stop)` reads ledger records; the catch-up starts after the last
        index the old child confirmed.
        """
        self._stop(kill=True)
        self._start()
        for first, records in ledger_chunks(read_range, self._committed + 1, size):
            self.submit(first, records)

    def close(self) -> None:
        """Let the child commit what it has and stop."""
        self._stop(kill=False)

    def _stop(self, *, kill: bool) -> None:
        if self._process is not None:
            if kill:
                self._process.kill()
            elif self._conn is not None:
                with contextlib.suppress(OSError):
                    self._conn.send_bytes(_STOP)
            try:
                self._process.wait(_CLOSE_SECONDS)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._reader is not None:
            self._reader.join()  # the child's end is closed: the reader saw EOF
            self._reader = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None


if __name__ == "__main__":
    # Ctrl-C and a service manager's SIGTERM reach the whole process group: the collector
    # shuts down in order and tells this process when to commit and stop (or it sees EOF).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _channel = Channel(socket.socket(fileno=int(sys.argv[1])))
    _url = _channel.recv_bytes().decode()
    keep_freed_memory()  # a process of our own (see apiwatch.heap)
    with collector_gc():  # the store's term dictionary grows with every new address
        _run(_url, Path(os.fsdecode(_channel.recv_bytes())), _channel)
