"""Background stages of the prediction pipeline: a bounded prefetch and a write-behind, in threads.

Each stage is one daemon thread with bounded queues in and out. An exception in
the thread is handed to the consumer and raised there as it was raised (so a
``DataError`` stays a ``DataError``), and every wait polls with a timeout and
checks that the other side is still alive, so no failure can leave a thread or
its consumer waiting for ever.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_POLL = 0.05
_END = object()


class StageError(RuntimeError):
    """A pipeline stage stopped without finishing or reporting why."""


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Prefetch:
    """Run ``produce(item)`` for every item in a thread, at most ``depth`` results ahead of the consumer.

    Iterate to get the results in order; :meth:`close` stops the thread early.
    """

    def __init__(self, items: Iterable[Any], produce: Callable[[Any], Any], depth: int = 2, name: str = "read") -> None:
        self._q: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(items, produce), name=f"selfsup-{name}", daemon=True)
        self._thread.start()

    def _put(self, value: Any) -> bool:
        while not self._closed.is_set():
            try:
                self._q.put(value, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, items: Iterable[Any], produce: Callable[[Any], Any]) -> None:
        try:
            for item in items:
                if self._closed.is_set() or not self._put((item, produce(item))):
                    return
            self._put(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(_Failure(exc))

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        while True:
            try:
                value = self._q.get(timeout=_POLL)
            except queue.Empty:
                if not self._thread.is_alive() and self._q.empty():
                    raise StageError("the reader thread ended without a result") from None
                continue
            if value is _END:
                return
            if isinstance(value, _Failure):
                raise value.exc
            yield value

    def close(self) -> None:
        """Stop producing and wait for the thread (it finishes at most the item in hand)."""
        self._closed.set()
        _empty(self._q)  # wakes a thread waiting to put
        self._thread.join()


class WriteBehind:
    """Run ``consume(item)`` for submitted items in a thread, in order, with at most ``depth`` waiting.

    Finished items are reported by :meth:`finished` (non-blocking) and :meth:`drain`.
    A failure in ``consume`` is raised by the next :meth:`submit`, :meth:`finished` or :meth:`drain`.
    """

    def __init__(self, consume: Callable[[Any], Any], depth: int = 2, name: str = "write") -> None:
        self._in: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._out: queue.Queue[Any] = queue.Queue()
        self._closed = threading.Event()
        self._pending = 0
        self._thread = threading.Thread(target=self._run, args=(consume,), name=f"selfsup-{name}", daemon=True)
        self._thread.start()

    def _run(self, consume: Callable[[Any], Any]) -> None:
        while True:
            try:
                item = self._in.get(timeout=_POLL)
            except queue.Empty:
                if self._closed.is_set():
                    return
                continue
            if item is _END:
                return
            try:
                self._out.put(consume(item))
            except BaseException as exc:  # handed to the producer, raised there
                self._out.put(_Failure(exc))
                return

    def _check_alive(self) -> None:
        if not self._thread.is_alive() and self._out.empty():
            raise StageError("the writer thread ended without finishing its work")

    def submit(self, item: Any) -> list[Any]:
        """Queue ``item`` (waiting while the queue is full); returns the items finished meanwhile."""
        done = self.finished()
        while True:
            try:
                self._in.put(item, timeout=_POLL)
                self._pending += 1
                return done
            except queue.Full:
                done += self.finished()
                self._check_alive()

    def _take(self, value: Any) -> Any:
        self._pending -= 1
        if isinstance(value, _Failure):
            self.close(wait=False)
            raise value.exc
        return value

    def finished(self) -> list[Any]:
        """Results of the items finished since the last call, without waiting."""
        done = []
        while True:
            try:
                done.append(self._take(self._out.get_nowait()))
            except queue.Empty:
                return done

    def drain(self) -> Iterator[Any]:
        """Wait for every submitted item; yield each result as it is finished."""
        while self._pending:
            try:
                value = self._out.get(timeout=_POLL)
            except queue.Empty:
                self._check_alive()
                continue
            yield self._take(value)

    def close(self, wait: bool = True) -> None:
        """Stop after the items already queued (``wait``) or after the item in hand."""
        if not wait:
            _empty(self._in)
        self._closed.set()
        with contextlib.suppress(queue.Full):
            self._in.put_nowait(_END)  # wakes the thread now rather than at its next poll
        if threading.current_thread() is not self._thread:
            self._thread.join()


def _empty(q: queue.Queue[Any]) -> None:
    """Drop everything waiting in ``q``."""
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return
