"""The recognizer shared by every live call: worker threads own it and micro-batch the
segments of all calls into few model calls (a lone call pays a few milliseconds)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from callsense.pipeline.recognizer import Recognition, Recognizer

__all__ = ["RecognizerWorker", "WorkerStats"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Request:
    clip: np.ndarray
    language: str
    future: Future[Recognition]


@dataclass(slots=True)
class WorkerStats:
    batches: int = 0
    clips: int = 0
    busy_s: float = 0.0


class RecognizerWorker:
    """Worker threads own the recognizer; requests from all calls are micro-batched.

    The first request of a batch waits at most ``max_wait_s`` for company, so a lone call
    pays a few milliseconds and a busy box gets fewer, fuller model calls. With
    ``threads > 1`` (a recognizer that runs calls concurrently, like ONNX Runtime's), a
    short segment does not wait behind a long one.
    """

    def __init__(
        self,
        recognizer: Recognizer,
        *,
        max_batch: int = 4,
        max_wait_s: float = 0.005,
        batch_forward: bool = True,
        threads: int = 1,
    ) -> None:
        self.recognizer = recognizer
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.batch_forward = batch_forward
        self.stats = WorkerStats()
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._closed = False
        self._stats_lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, name=f"callsense-recognizer-{i}", daemon=True)
            for i in range(max(1, threads))
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, clip: np.ndarray, language: str = "auto") -> Future[Recognition]:
        future: Future[Recognition] = Future()
        if self._closed:
            future.set_exception(RuntimeError("the recognizer worker is closed"))
            return future
        self._queue.put(_Request(clip, language, future))
        return future

    def close(self, timeout: float | None = 10.0) -> None:
        """Finish what was submitted, then stop the thread."""
        if not self._closed:
            self._closed = True
            for _ in self._threads:
                self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout)

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    item = (
                        self._queue.get(timeout=remaining)
                        if remaining > 0
                        else (self._queue.get_nowait())
                    )
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._recognize(batch)

    def _recognize(self, batch: list[_Request]) -> None:
        live = [r for r in batch if r.future.set_running_or_notify_cancel()]
        by_language: dict[str, list[_Request]] = {}
        for request in live:
            by_language.setdefault(request.language, []).append(request)
        groups: list[list[_Request]] = list(by_language.values())
        if not self.batch_forward:  # shortest first, each answered when done
            groups = [[r] for r in sorted(live, key=lambda r: r.clip.size)]
        for requests in groups:
            language = requests[0].language
            started = time.perf_counter()
            try:
                results = self.recognizer.recognize([r.clip for r in requests], language=language)
            except Exception as exc:
                log.warning("recognizer failed on a batch of %d: %s", len(requests),
                            type(exc).__name__)  # fmt: skip
                for r in requests:
                    r.future.set_exception(exc)
                continue
            finally:
                with self._stats_lock:
                    self.stats.busy_s += time.perf_counter() - started
            with self._stats_lock:
                self.stats.batches += 1
                self.stats.clips += len(requests)
            for r, result in zip(requests, results, strict=True):
                r.future.set_result(result)
