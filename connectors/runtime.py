"""What a running service shares: the loaded models, the database, the job worker, the outbox.

One ``Runtime`` per app (``app.state.runtime``). Models load once, in a background thread
(``/readyz`` says when); call jobs run one after another on a worker thread fed by a
bounded queue (the model is one shared instance and the machine's cores are few, so a
full queue answers 503 rather than piling work up); decisions go to the outbox in the
same database and a delivery loop on the event loop sends them. Every accepted call's
input is stored (``connectors.jobs``), so a restart puts every unfinished call back on the
queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import queue
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from callsense.connectors.appconfig import AppConfig
from callsense.connectors.auth import KeyStore
from callsense.connectors.call_inputs import posted_transcript
from callsense.connectors.calls_store import CallRecord, CallStore
from callsense.connectors.endpoint import RouteContext
from callsense.connectors.jobs import LIVE_RECOVERED, LOST_INPUT, Job, recovery_jobs
from callsense.connectors.metrics import Metrics
from callsense.connectors.outbox import Outbox
from callsense.connectors.policy_store import PolicyStore
from callsense.connectors.retention import Purger
from callsense.connectors.service_settings import NotReadyError, QueueFullError, ServiceSettings
from callsense.connectors.storage import make_engine
from callsense.core.errors import CallsenseError, InputError
from callsense.pipeline.cache import ResultCache
from callsense.pipeline.guard_process import TranscriptGuard
from callsense.pipeline.model import CallTranscript
from callsense.pipeline.nlu.chain import IntentClassifier
from callsense.pipeline.privacy import PrivacyGuard
from callsense.pipeline.recognizer import Recognizer
from callsense.pipeline.session import CallFlow
from callsense.pipeline.summary import CallResult
from callsense.pipeline.transcribe import Transcriber
from callsense.rules.engine import PolicyEngine
from callsense.rules.loader import PolicySet
from callsense.rules.model import Decision

__all__ = [
    "LIVE_RECOVERED",
    "Job",
    "NotReadyError",
    "QueueFullError",
    "Runtime",
    "ServiceSettings",
    "code_trace",
]

log = logging.getLogger(__name__)


class Runtime:
    """The loaded, shared parts of one service; see the module doc."""

    def __init__(
        self,
        cfg: AppConfig,
        *,
        db_url: str | None = None,
        settings: ServiceSettings | None = None,
        load_models: bool = True,
    ) -> None:
        self.cfg = cfg
        self.settings = settings or ServiceSettings()
        self.engine = make_engine(db_url or cfg.outbox.db_url)
        self.store = CallStore(self.engine)
        self.keys = KeyStore(self.engine)
        self.policies = PolicyStore(self.engine, cfg.policies)
        self.endpoints = cfg.delivery_endpoints()  # webhooks and routing targets
        self.outbox = Outbox(
            self.engine,
            self.endpoints,
            lease_s=cfg.outbox.lease_s,
            concurrency=cfg.outbox.concurrency,
        )
        self.metrics = Metrics()
        # a posted transcript is stored as it passes this guard (redacted), before its 202
        self.guard = PrivacyGuard(cfg)
        self.transcript_guard = TranscriptGuard(self.guard)  # big ones in a child process
        self.load_models = load_models
        self.models_ready = threading.Event()
        self.load_error: str | None = None
        self._transcriber: Transcriber | None = None
        self._flow: CallFlow | None = None
        self._cache = ResultCache(cfg.cache.dir) if cfg.cache.enabled else None
        self._engines: dict[tuple[str, str], PolicyEngine] = {}
        self._engines_lock = threading.Lock()
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=self.settings.queue_size)
        self._worker: threading.Thread | None = None
        self._loader: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self.scheduler: Any = None
        self.audio_dir = self.settings.data_dir / "audio"

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Begin loading models, start the worker and the scheduler (from the app's lifespan)."""
        self.audio_dir.mkdir(parents=True, exist_ok=True)
        self._loader = threading.Thread(target=self._load, name="callsense-load", daemon=True)
        self._loader.start()
        self._worker = threading.Thread(target=self._work, name="callsense-worker", daemon=True)
        self._worker.start()
        if self.settings.scheduler:
            from callsense.connectors.scheduler import CallsenseScheduler

            self.scheduler = CallsenseScheduler(
                self.outbox,
                self.endpoints,
                delivery_interval_s=max(60.0, self.settings.delivery_interval_s),
                retention_days=self.cfg.outbox.retention_days,
                retention_interval_s=self.cfg.retention.interval_s,
                retention_hooks=[self._retention],
            )
            self.scheduler.start()
        self._requeue()

    def stop(self) -> None:
        """Finish the running job (up to ``shutdown_timeout_s``); queued ones stay queued in
        the database and are picked up by the next start."""
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        if self._worker is not None:
            self._worker.join(self.settings.shutdown_timeout_s)
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        for engine in self._engines.values():
            engine.close()
        self.transcript_guard.close()
        self.engine.dispose()
        gc.unfreeze()  # a process that goes on (tests, an embedding app) collects them again

    def _load(self) -> None:
        from callsense.pipeline.analyze import build_flow
        from callsense.pipeline.transcribe import build_transcriber

        started = time.monotonic()
        try:
            self._flow = build_flow(self.cfg)
            if self.load_models:
                self._transcriber = build_transcriber(
                    _service_tuned(self.cfg), recognizer=_remote_recognizer(self.settings)
                )
        except Exception as exc:  # reported by /readyz and failed jobs
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.error("loading models failed: %s", self.load_error)
        else:
            log.info("models loaded in %.1f s", time.monotonic() - started)
            # What is loaded now lives as long as the service: the collector stops walking
            # those millions of objects, so a burst of garbage (500 upgrades at once) costs
            # the event loop, and the live calls on it, a short pass instead of a long one.
            gc.collect()
            gc.freeze()
        self.models_ready.set()

    def _requeue(self) -> None:
        """Every call a previous run accepted and did not finish goes back on the queue: live
        calls this gateway was running, recordings, posted transcripts. A thread waits for
        room in the queue, so none is dropped however many there are."""
        jobs = recovery_jobs(self.store, self.settings.gateway_id)
        if jobs:
            threading.Thread(
                target=self._put_all, args=(jobs,), name="callsense-requeue", daemon=True
            ).start()

    def _put_all(self, jobs: list[Job]) -> None:
        for job in jobs:
            self._queue.put(job)
            self.metrics.jobs_queued.set(self._queue.qsize())

    # -- readiness and shared models -------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.models_ready.is_set() and self.load_error is None

    def readiness(self) -> dict[str, Any]:
        return {
            "models": "loaded" if self.ready else (self.load_error or "loading"),
            "recognizer": "loaded"
            if self._transcriber is not None
            else ("disabled" if not self.load_models else "not loaded"),
            "database": "ok" if self.store.ping() else "unreachable",
        }

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self.models_ready.wait(timeout) and self.load_error is None

    @property
    def flow(self) -> CallFlow:
        """Every stage, TTS included (live calls speak replies)."""
        if self._flow is None:
            raise NotReadyError(self.load_error or "models are still loading")
        return self._flow

    @property
    def transcriber(self) -> Transcriber:
        if self._transcriber is None:
            if self.models_ready.is_set() and not self.load_models:
                raise NotReadyError("the recognizer is disabled (started without models)")
            raise NotReadyError(self.load_error or "models are still loading")
        return self._transcriber

    def transcriber_for(self, language: str | None) -> Transcriber:
        """The shared transcriber, with another recognition language if asked (same models)."""
        base = self.transcriber
        if language is None or language == base.cfg.recognizer.language:
            return base
        rec = base.cfg.recognizer.model_copy(update={"language": language})
        return replace(base, cfg=base.cfg.model_copy(update={"recognizer": rec}))

    def policy_engine(self, policy_set: PolicySet) -> PolicyEngine:
        """Compiled once per policy text and backend, shared by every call that uses it."""
        key = (policy_set.policy_hash, self.cfg.policy_engine)
        with self._engines_lock:
            engine = self._engines.get(key)
            if engine is None:
                engine = PolicyEngine(policy_set, backend=self.cfg.policy_engine)
                self._engines[key] = engine
            return engine

    def intent_classifier(self) -> IntentClassifier | None:
        """The NLU stage's classifier (None until the models are loaded)."""
        return self._flow.intents if self._flow is not None else None

    def flow_for(self, policy: str | None = None) -> CallFlow:
        """The flow with its rules running ``policy`` (None: the active stored set),
        without TTS (jobs store no reply audio; live calls speak replies themselves).
        ``KeyError`` for an unknown name."""
        policy_set = self.policies.set_for(policy)
        engine = self.policy_engine(policy_set)
        flow = self.flow.with_rules(engine, [s.file for s in policy_set.sources])
        return flow.without_tts()

    # -- jobs ------------------------------------------------------------------------------

    def accept_transcript(
        self, transcript: CallTranscript, *, policy: str | None, policies: Sequence[str]
    ) -> CallRecord:
        """Store a posted call with its input (``CallStore.create``), guarded first, so that
        nothing unredacted is kept and a restart can still run it. Blocking: redaction of
        a long text and the write take time; call it off the event loop.
        ``CallExistsError`` if the id is taken."""
        guarded = self.transcript_guard(transcript)
        return self.store.create(
            transcript.call_id,
            kind="transcript",
            policy=",".join(policies),
            requested_policy=policy,
            source=transcript.source,
            posted=guarded,
        )

    def submit(self, job: Job) -> None:
        """Queue ``job``; ``QueueFullError`` when the queue is full."""
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise QueueFullError(
                f"{self.settings.queue_size} calls are waiting; try again later"
            ) from None
        self.metrics.jobs_queued.set(self._queue.qsize())

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            self.metrics.jobs_queued.set(self._queue.qsize())
            if job is None:
                return
            try:
                self.run_job(job)
            except Exception as exc:  # the worker outlives any one call
                log.error("call %s: job crashed: %s", job.call_id, code_trace(exc))

    def run_job(self, job: Job) -> None:
        """Analyze one call and store what came out (blocking; the worker thread calls it)."""
        if self.store.get(job.call_id) is None:
            return  # deleted while queued
        self.models_ready.wait()
        self.store.mark_running(job.call_id)
        try:
            flow = self._job_flow(job.policy)
            with self._timed("analyze"):
                result = self._analyze(job, flow)
            with self._timed("store"):
                self.store.save_result(job.call_id, result)
        except Exception as exc:  # a bad call fails alone
            self._fail_job(job.call_id, exc)
            return
        if job.note:
            self.store.annotate(job.call_id, job.note)
        m = self.metrics
        m.calls_total.labels("done").inc()
        n_utterances = len(result.transcript.utterances)
        m.utterances_total.inc(n_utterances)
        for d in result.decisions:
            m.decisions_total.labels(d.rule).inc()
        log.info(
            "call %s: done, %d utterances, %d decisions",
            job.call_id,
            n_utterances,
            len(result.decisions),
        )
        self.enqueue_decisions(result.decisions, job.context)

    def _job_flow(self, policy: str | None) -> CallFlow:
        try:
            return self.flow_for(policy)
        except KeyError:
            raise InputError(
                f"policy {policy!r} was deleted while the call waited; post the call again"
            ) from None

    def _fail_job(self, call_id: str, exc: Exception) -> None:
        """Store why the call failed. A callsense error says what to fix; any other
        exception is a fault of this server (a bug, a full disk) whose message may hold
        its paths or the call's text: the call gets a plain line, the log the frames."""
        name = type(exc).__name__
        if isinstance(exc, CallsenseError):
            message = f"{name}: {exc}"
            log.warning("call %s: failed (%s)", call_id, name)
        else:
            message = f"internal error ({name}) while analyzing the call; see the server log"
            log.error("call %s: failed on an unexpected %s\n%s", call_id, name, code_trace(exc))
        with contextlib.suppress(Exception):
            self.store.fail(call_id, message)
        self.metrics.calls_total.labels("failed").inc()

    def _analyze(self, job: Job, flow: CallFlow) -> CallResult:
        """The job through ``flow``: a recording via the transcriber (and the result
        cache), a transcript as it is; the session guards both alike."""
        if job.kind == "transcript":
            transcript = job.transcript or posted_transcript(self.engine, job.call_id)
            if transcript is None:
                raise InputError(LOST_INPUT)
            return flow.run(transcript)
        from callsense.pipeline.analyze import analyze_file

        assert job.audio_path is not None
        transcriber = self.transcriber_for(job.language)
        return analyze_file(
            job.audio_path, flow, transcriber, call_id=job.call_id, cache=self._cache
        )

    @contextlib.contextmanager
    def _timed(self, stage: str) -> Any:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.metrics.stage_seconds.labels(stage).observe(time.perf_counter() - start)

    # -- webhooks --------------------------------------------------------------------------

    def enqueue_decisions(
        self, decisions: Sequence[Decision], context: RouteContext | None = None
    ) -> list[str]:
        """Commit decisions to the outbox for the webhooks and routing targets; wake the sender.
        ``context``: a live call's platform ids, where its routes act.

        Thread-safe; live sessions call it for each decision as it fires.
        """
        if self.scheduler is not None:
            for d in decisions:  # `escalate: {follow_up: {after: 30m}}` is an SLA
                follow_up = d.params.get("follow_up")
                if d.action == "escalate" and follow_up:
                    self.scheduler.schedule_sla_followup(
                        d, float(follow_up["after"]), priority=str(follow_up["priority"])
                    )
        if not decisions or not self.endpoints:
            return []
        ids = self.outbox.enqueue_many(decisions, self.endpoints, context)
        self.wake_delivery()
        return ids

    def resolve_call(self, call_id: str) -> int:
        """Mark the call resolved; returns how many SLA follow-ups were pending for it."""
        if self.scheduler is None:
            return 0
        pending = [
            j
            for j in self.scheduler.jobs()
            if j.id.startswith("sla:") and (j.args[0] or {}).get("call_id") == call_id
        ]
        self.scheduler.mark_resolved(call_id)
        return len(pending)

    def wake_delivery(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    async def deliver_forever(self) -> None:
        """The outbox sender: runs on the app's event loop while it serves."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        interval = self.settings.delivery_interval_s
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=interval)
            self._wake.clear()
            if not self.endpoints:
                continue
            try:
                report = await self.outbox.adeliver_pending(interval)
            except Exception as exc:  # the database may be briefly away
                log.warning("webhook delivery round failed: %s", type(exc).__name__)
                continue
            counter = self.metrics.webhook_deliveries_total
            counter.labels("delivered").inc(report.delivered)
            counter.labels("retry").inc(report.retried)
            counter.labels("dead").inc(report.dead)

    # -- removal ---------------------------------------------------------------------------

    def remove_call(self, call_id: str) -> bool:
        """Everything of one call (``connectors.retention``): rows, audio, cache, delivered
        webhook payloads."""
        return self.purger().purge_call(call_id)

    def purger(self) -> Purger:
        cache = ResultCache(self.cfg.cache.dir) if self.cfg.cache.enabled else None
        return Purger(self.engine, audio_dir=self.audio_dir, cache=cache)

    def _retention(self) -> None:
        if self.cfg.retention.days is not None:
            self.purger().purge_older_than(self.cfg.retention.days * 86400)


def code_trace(exc: BaseException) -> str:
    """``exc``'s type and the frames it came through, without its message: a message may
    quote the transcript (a ``KeyError`` of a word) and logs never carry transcript text."""
    frames = "".join(traceback.format_list(traceback.extract_tb(exc.__traceback__)))
    return f"{type(exc).__module__}.{type(exc).__qualname__}, raised at\n{frames.rstrip()}"


def _service_tuned(cfg: AppConfig) -> AppConfig:
    """The service shares its cores with live calls' streaming VAD: ONNX Runtime's idle
    threads do not spin here unless the config says ``recognizer.onnx_spinning: true``."""
    if cfg.recognizer.onnx_spinning is not None:
        return cfg
    recognizer = cfg.recognizer.model_copy(update={"onnx_spinning": False})
    return cfg.model_copy(update={"recognizer": recognizer})


def _remote_recognizer(settings: ServiceSettings) -> Recognizer | None:
    """With ``ray_config`` set this process is a gateway: the model runs on the Ray Serve
    tier (``callsense ray serve-model``), one handle call per utterance."""
    path = settings.ray_config
    if path is None:
        return None
    from callsense.pipeline.distributed.config import load_ray_config
    from callsense.pipeline.distributed.serve_recognizer import connect

    return connect(load_ray_config(path))
