"""The writer process: events built, sanitized, encoded and written outside the app's GIL.

With `Capture(..., writer_process=True)` the emitter's thread only packs each batch of queued
records (`marshal`, a single C call) and writes it to a pipe. A child process, forked from the
app when the emitter starts, reads the batches, hands them to the emitter's own `_deliver`
(build, sanitize, encode, sinks: the same code as in the thread) and acknowledges each batch on a
second pipe. The app then pays only for queueing a record, whatever the sinks cost, and the work
runs on another core when there is one. Where there is none, the writer gives way to the app: it
runs at a lower priority (`WRITER_NICE`) and pauses every `emitter.WRITER_SLICE_SECONDS`.

The child is forked when the `Capture` is created, which is meant to be before the server has
threads or sockets: a process forked later would inherit the app's connections and keep them
open. For the same reason a child that dies is not replaced: the batches it had not
acknowledged, and every later one, are delivered by the emitter's thread, as without a child
(`WriterProcess.alive` turns False; a file sink may then hold a batch twice, and the collector
drops duplicate sequence numbers).

Guarantees: the child reads the pipe until it is closed, so when the app dies (even by kill -9)
every batch already written reaches the sinks and the child closes them before it exits; what a
kill -9 loses is the emitter's queue, as without the child. Counters of the child's sinks (such
as a full spool's drop count) live in the child.
"""

from __future__ import annotations

import contextlib
import logging
import marshal
import os
import signal
import struct
import threading
from collections.abc import Callable
from typing import Any

import orjson

from apiwatch.heap import keep_freed_memory

log = logging.getLogger("apiwatch.capture")

_FRAME = struct.Struct("<I")  # length of the marshalled batch that follows
_ACK = struct.Struct("<QQQ")  # events of the batch handled, written; sinks that failed
#: The writer's nice value. Where it shares a core with the app, the scheduler then favours the
#: app's requests (the paced writer added +1.2 ms to the app's p99 at nice 0, +0.6 at nice 5, in
#: one A/B), while the writer still gets a quarter of a contended core: about twice what it
#: needs when the app saturates that core (bench/middleware_bench.py, pinned: 0 events dropped).
#: An unprivileged process cannot lower it again; the writer never needs to.
WRITER_NICE = 5

#: Delivers a batch in the child: (events written, sinks that failed).
Deliver = Callable[[list[Any]], tuple[int, int]]


def _pack(batch: list[Any]) -> bytes:
    """One frame holding `batch`; events that marshal cannot hold go as their JSON values."""
    try:
        data = marshal.dumps(batch)
    except ValueError:  # an app's event with a value marshal does not know (a datetime...)
        data = marshal.dumps([_portable(item) for item in batch])
    return _FRAME.pack(len(data)) + data


def _portable(item: Any) -> Any:
    try:
        marshal.dumps(item)
    except ValueError:
        return orjson.loads(orjson.dumps(item, default=str))
    return item


class WriterProcess:
    """The child process and its two pipes, seen from the app."""

    def __init__(
        self,
        deliver: Deliver,
        close_sinks: Callable[[], None],
        acknowledged: Callable[[int, int, int], None],
    ) -> None:
        self._deliver = deliver
        self._close_sinks = close_sinks
        self._acknowledged = acknowledged
        #: False once the child died; the emitter's thread then delivers batches itself.
        self.alive = True
        self._unacknowledged: list[bytes] = []  # frames the child has not confirmed yet
        self._lock = threading.Lock()
        batches_r, batches_w = os.pipe()
        acks_r, acks_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child: never returns
            os.close(batches_w)
            os.close(acks_r)
            self._serve(batches_r, acks_w)
        os.close(batches_r)
        os.close(acks_w)
        self._out = batches_w
        self._acks = threading.Thread(target=self._read_acks, args=(acks_r,),
                                      name="apiwatch-writer-acks", daemon=True)
        self._acks.start()

    def send(self, batch: list[Any]) -> None:
        """Write `batch` to the child; blocks only the emitter's thread while the pipe is full.
        If the child is gone, deliver here what it had not acknowledged."""
        frame = _pack(batch)
        with self._lock:
            self._unacknowledged.append(frame)
        try:
            _write_all(self._out, frame)
        except OSError:
            self._fail_over()

    def _fail_over(self) -> None:
        log.warning("apiwatch: the writer process died; the emitter's thread writes from now on")
        self.alive = False
        self._reap()  # also reads the acknowledgements the child sent before it died
        with self._lock:
            pending, self._unacknowledged = self._unacknowledged, []
        for frame in pending:
            batch = marshal.loads(frame[_FRAME.size:])  # noqa: S302 - packed by this process
            self._acknowledged(len(batch), *self._deliver(batch))

    def _read_acks(self, fd: int) -> None:
        with os.fdopen(fd, "rb", buffering=0) as acks:
            while True:
                data = _read_exactly(acks, _ACK.size)
                if data is None:
                    return  # the child exited (or died)
                with self._lock:
                    del self._unacknowledged[:1]
                self._acknowledged(*_ACK.unpack(data))

    def close(self, timeout: float | None = None) -> bool:
        """Close the pipe; the child writes what it holds, closes the sinks and exits. False if
        it was still running after `timeout` seconds (it then finishes on its own)."""
        return self._reap(timeout) if self.alive else True

    def _reap(self, timeout: float | None = None) -> bool:
        with contextlib.suppress(OSError):  # closed already
            os.close(self._out)
        # The child closes its end of the acknowledgements only when it exits.
        self._acks.join(timeout)
        if self._acks.is_alive():
            return False
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        return True

    def _serve(self, batches: int, acks: int) -> None:
        # A Ctrl-C in a terminal reaches the whole process group: the child must outlive the
        # app long enough to write what it was given, so only a closed pipe ends it.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        keep_freed_memory()  # this process is ours, unlike the app's (see apiwatch.heap)
        os.nice(WRITER_NICE)
        status = 0
        try:
            with os.fdopen(batches, "rb") as pipe:
                while (head := _read_exactly(pipe, _FRAME.size)) is not None:
                    (size,) = _FRAME.unpack(head)
                    data = _read_exactly(pipe, size)
                    if data is None:
                        break  # the app died mid-frame: that batch was never complete
                    batch = marshal.loads(data)  # noqa: S302 - our own pipe, from the parent
                    ack = _ACK.pack(len(batch), *self._deliver(batch))
                    with contextlib.suppress(BrokenPipeError):  # the app is gone: write on
                        os.write(acks, ack)
        except BaseException:  # the child must reach os._exit, never the app's code
            log.exception("apiwatch: the writer process failed")
            status = 1
        finally:
            try:
                self._close_sinks()
            finally:
                os._exit(status)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read_exactly(stream: Any, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data
