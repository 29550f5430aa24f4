"""The model tier on Ray Serve, and the gateway's client for it.

``RecognizerDeployment`` wraps the recognizer class ``pipeline/`` uses locally; one call
per utterance, batched across calls by ``@serve.batch``. ``RemoteRecognizer`` is a
``Recognizer`` whose ``recognize`` sends each clip through a ``DeploymentHandle``, so the
transcriber, the live worker and analyze use the model tier without knowing it.

Handle calls are at-most-once: a replica that dies mid-call loses the call. The client
waits ``handle_timeout_s`` and retries once with the same utterance id. A replica
remembers the ids it answered for ``dedup_window_s``, so a retry after a lost reply
costs no second forward pass; a retry that lands on another replica recomputes, which is
harmless because recognition is a pure function of the clip.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import ray
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.handle import DeploymentHandle

from callsense.core.errors import RetryableError
from callsense.pipeline.distributed.config import RayConfig, resolve_factory
from callsense.pipeline.model import TagConfidence
from callsense.pipeline.recognizer import Recognition, Recognizer, RecognizerCapabilities
from callsense.pipeline.sensevoice import RecognizerConfig

__all__ = [
    "RecognizerDeployment",
    "RemoteRecognizer",
    "build_app",
    "connect",
    "deploy",
    "ensure_ray",
]

log = logging.getLogger(__name__)

# (raw, lang confidence, emotion confidence, event confidence): plain data crosses the wire
Wire = tuple[str, float | None, float | None, float | None]


def _to_wire(rec: Recognition) -> Wire:
    c = rec.confidence
    return (rec.raw, c.lang, c.emotion, c.event)


def _from_wire(wire: Sequence[Any]) -> Recognition:
    raw, lang, emotion, event = wire
    return Recognition(raw=str(raw), confidence=TagConfidence(lang, emotion, event))


class _Recent:
    """Utterance ids answered (or being answered) lately, forgotten after ``window_s``."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._items: OrderedDict[str, tuple[float, asyncio.Future[Wire]]] = OrderedDict()

    def get(self, key: str) -> asyncio.Future[Wire] | None:
        self._expire()
        item = self._items.get(key)
        return None if item is None else item[1]

    def put(self, key: str, fut: asyncio.Future[Wire]) -> None:
        self._items[key] = (time.monotonic() + self.window_s, fut)

    def drop(self, key: str) -> None:
        self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)

    def _expire(self) -> None:
        now = time.monotonic()
        while self._items:
            key, (deadline, fut) = next(iter(self._items.items()))
            if deadline > now or not fut.done():
                break
            del self._items[key]


@serve.deployment
class RecognizerDeployment:
    """One replica: the recognizer loaded once, utterances of many calls batched together."""

    def __init__(
        self,
        recognizer: dict[str, Any],
        *,
        factory: str | None = None,
        max_batch_size: int = 8,
        batch_wait_timeout_s: float = 0.01,
        dedup_window_s: float = 60.0,
    ) -> None:
        config = RecognizerConfig.model_validate(recognizer)
        self._recognizer: Recognizer = resolve_factory(factory)(config)
        self._recent = _Recent(dedup_window_s)
        # one thread: the recognizer serializes calls anyway, and the loop stays free
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recognize")
        self.forward_passes = 0
        self._batching = max_batch_size > 1
        if self._batching:
            self._batched.set_max_batch_size(max_batch_size)
            self._batched.set_batch_wait_timeout_s(batch_wait_timeout_s)

    async def recognize(self, utterance_id: str, clip: np.ndarray, language: str | None) -> Wire:
        """One utterance; a repeated ``utterance_id`` within the window gets the first answer.

        The work runs in its own task: a caller that gives up (timeout, cancel) does not
        cancel it, so its retry finds the answer here instead of computing it again.
        """
        known = self._recent.get(utterance_id)
        if known is None:
            known = asyncio.ensure_future(self._compute(language, clip))
            self._recent.put(utterance_id, known)
            known.add_done_callback(lambda f, key=utterance_id: self._forget_failure(key, f))
        return await asyncio.shield(known)

    def _forget_failure(self, key: str, fut: asyncio.Future[Wire]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            self._recent.drop(key)  # a failure is not remembered: a retry recomputes

    async def _compute(self, language: str | None, clip: np.ndarray) -> Wire:
        if self._batching:
            return await self._batched(language, clip)
        return (await self._run([language], [clip]))[0]

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def _batched(self, languages: list[str | None], clips: list[np.ndarray]) -> list[Wire]:
        return await self._run(languages, clips)

    async def _run(self, languages: list[str | None], clips: list[np.ndarray]) -> list[Wire]:
        out: list[Wire | None] = [None] * len(clips)
        for lang in dict.fromkeys(languages):
            idx = [i for i, x in enumerate(languages) if x == lang]
            group = [np.asarray(clips[i], dtype=np.float32) for i in idx]
            loop = asyncio.get_running_loop()
            recs = await loop.run_in_executor(
                self._pool, lambda g=group, la=lang: self._recognizer.recognize(g, language=la)
            )
            self.forward_passes += 1
            for i, rec in zip(idx, recs, strict=True):
                out[i] = _to_wire(rec)
        return [w for w in out if w is not None]

    def model_id(self) -> str:
        return self._recognizer.model_id

    def stats(self) -> dict[str, int]:
        """For tests and dashboards: forward passes so far, ids remembered."""
        return {"forward_passes": self.forward_passes, "remembered": len(self._recent)}


def build_app(ray_cfg: RayConfig, recognizer: RecognizerConfig) -> Any:
    """The Serve application for ``ray_cfg`` (``serve.run`` it, or ``deploy``)."""
    return RecognizerDeployment.options(**ray_cfg.replica_options()).bind(
        recognizer.model_dump(mode="json"),
        factory=ray_cfg.recognizer_factory,
        max_batch_size=ray_cfg.batch.max_batch_size,
        batch_wait_timeout_s=ray_cfg.batch.batch_wait_timeout_s,
        dedup_window_s=ray_cfg.dedup_window_s,
    )


def ensure_ray(ray_cfg: RayConfig, **init_kwargs: Any) -> None:
    """Connect to the configured cluster once per process (or start a local Ray)."""
    if ray.is_initialized():
        return
    ray.init(
        address=ray_cfg.address,
        namespace=ray_cfg.namespace,
        include_dashboard=False,
        log_to_driver=False,
        **init_kwargs,
    )


def deploy(ray_cfg: RayConfig, recognizer: RecognizerConfig) -> DeploymentHandle:
    """Deploy (or update) the model tier; no HTTP proxy: gateways call through handles."""
    ensure_ray(ray_cfg)
    serve.start(proxy_location="Disabled")
    return serve.run(build_app(ray_cfg, recognizer), name=ray_cfg.app_name, route_prefix=None)


def connect(ray_cfg: RayConfig) -> RemoteRecognizer:
    """A gateway's recognizer: the deployed model tier of ``ray_cfg``'s cluster."""
    ensure_ray(ray_cfg)
    handle = serve.get_deployment_handle(ray_cfg.deployment, app_name=ray_cfg.app_name)
    return RemoteRecognizer(handle, timeout_s=ray_cfg.handle_timeout_s, retries=ray_cfg.retries)


_RETRYABLE: tuple[type[BaseException], ...] = (TimeoutError, RayActorError)


class RemoteRecognizer(Recognizer):
    """A ``Recognizer`` served by the model tier: one handle call per clip, retried by id.

    ``recognize`` blocks like every recognizer (callers in async code use a thread); the
    clips of one call go out together, so Serve batches them with other calls' clips.
    """

    def __init__(self, handle: DeploymentHandle, *, timeout_s: float = 10.0, retries: int = 1):
        self._handle = handle
        self.timeout_s = timeout_s
        self.retries = retries
        self.capabilities = RecognizerCapabilities(
            name=f"ray:{handle.deployment_name}", confidence=True, batching=True
        )
        self._model_id: str | None = None
        self.retried = 0  # how many handle calls were sent a second time (metrics, tests)

    @property
    def model_id(self) -> str:
        """The replicas' model id (cache keys match a local run of the same model)."""
        if self._model_id is None:
            self._model_id = str(self._handle.model_id.remote().result(timeout_s=self.timeout_s))
        return self._model_id

    def recognize(
        self,
        clips: Sequence[np.ndarray],
        *,
        language: str | None = "auto",
        utterance_ids: Sequence[str] | None = None,
    ) -> list[Recognition]:
        """One ``Recognition`` per clip; ``utterance_ids`` (default: fresh) key the retries.

        ``language`` None means the replicas' configured language, as for SenseVoice.
        """
        ids = list(utterance_ids) if utterance_ids is not None else None
        if ids is None:
            batch = uuid.uuid4().hex
            ids = [f"{batch}-{i}" for i in range(len(clips))]
        if len(ids) != len(clips):
            raise ValueError(f"{len(ids)} utterance ids for {len(clips)} clips")
        arrays = [np.ascontiguousarray(c, dtype=np.float32) for c in clips]
        pending = {i: self._send(ids[i], arrays[i], language) for i in range(len(arrays))}
        results: list[Recognition | None] = [None] * len(arrays)
        for attempt in range(self.retries + 1):
            failed: dict[int, BaseException] = {}
            deadline = time.monotonic() + self.timeout_s
            for i, resp in pending.items():
                try:
                    left = max(0.001, deadline - time.monotonic())
                    results[i] = _from_wire(resp.result(timeout_s=left))
                except _RETRYABLE as exc:
                    resp.cancel()
                    failed[i] = exc
            if not failed:
                break
            if attempt == self.retries:
                i, exc = next(iter(failed.items()))
                raise RetryableError(
                    f"model tier: utterance {ids[i]} failed {attempt + 1} time(s) "
                    f"({type(exc).__name__}); {len(failed)} of {len(arrays)} unanswered"
                ) from exc
            log.warning(
                "model tier: retrying %d utterance(s) after %s",
                len(failed),
                type(next(iter(failed.values()))).__name__,
            )
            self.retried += len(failed)
            pending = {i: self._send(ids[i], arrays[i], language) for i in failed}
        return [r for r in results if r is not None]

    async def recognize_async(
        self, clip: np.ndarray, *, utterance_id: str, language: str | None = "auto"
    ) -> Recognition:
        """One utterance from async code (a gateway's event loop), same timeout and retry."""
        array = np.ascontiguousarray(clip, dtype=np.float32)
        for attempt in range(self.retries + 1):
            resp = self._send(utterance_id, array, language)
            waiter = asyncio.ensure_future(resp)
            done, _ = await asyncio.wait({waiter}, timeout=self.timeout_s)
            try:
                if not done:
                    raise TimeoutError(f"no answer in {self.timeout_s} s")
                return _from_wire(waiter.result())
            except _RETRYABLE as exc:
                resp.cancel()
                waiter.cancel()
                # the cancelled request ends with its own error; it is expected, not news
                waiter.add_done_callback(lambda f: f.cancelled() or f.exception())
                if attempt == self.retries:
                    raise RetryableError(
                        f"model tier: utterance {utterance_id} failed {attempt + 1} time(s) "
                        f"({type(exc).__name__})"
                    ) from exc
                log.warning("model tier: retrying 1 utterance after %s", type(exc).__name__)
                self.retried += 1
        raise AssertionError("unreachable")

    def _send(self, utterance_id: str, clip: np.ndarray, language: str | None) -> Any:
        return self._handle.recognize.remote(utterance_id, clip, language)
