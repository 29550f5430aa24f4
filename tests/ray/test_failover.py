"""Failover of the model tier: two 1-CPU nodes, one removed while calls are running.

The node goes while its replica is inside a forward pass, so some utterances are lost in
flight: every utterance must still be answered (the client's one retry by utterance id
reaches the surviving replica) and the calls' decisions must equal those of an
undisturbed run.
Runs its own multi-node cluster, so it is a module of its own.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from callsense.pipeline.config import CallsenseConfig
from callsense.pipeline.model import CallTranscript, Segment
from callsense.pipeline.recognizer import Recognition
from callsense.pipeline.session import replay_transcript
from callsense.pipeline.transcribe import utterance_from
from callsense.rules.engine import PolicyEngine
from tests.conftest import ROOT
from tests.ray import helpers

pytestmark = [pytest.mark.ray, pytest.mark.slow]

CALLS = 6
TURNS = 8


def _call_clips(call: int) -> list[np.ndarray]:
    rng = np.random.default_rng(call)
    # some calls go angry three times in a row (the default policy escalates), some don't
    loud = (
        [(call + k) % 4 != 0 for k in range(TURNS)]
        if call % 2
        else [k % 2 == 0 for k in range(TURNS)]
    )
    return [(rng.standard_normal(4000) * (0.2 if x else 0.01)).astype(np.float32) for x in loud]


def _decisions(call: int, recs: list[Recognition], engine: PolicyEngine) -> list[dict]:
    cfg = CallsenseConfig()
    call_id = f"call-{call}"
    utts = tuple(
        utterance_from(
            Segment(0, 2.0 * k, 2.0 * k + 1.5), rec, call_id=call_id, speaker="customer", cfg=cfg
        )
        for k, rec in enumerate(recs)
    )
    transcript = CallTranscript(call_id=call_id, utterances=utts, duration=2.0 * len(utts))
    return [d.to_dict() for d in replay_transcript(transcript, engine)]


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory):
    import ray
    from ray.cluster_utils import Cluster

    counter = tmp_path_factory.mktemp("failover") / "passes.txt"
    os.environ[helpers.COUNTER_ENV] = str(counter)
    os.environ[helpers.BUSY_DIR_ENV] = str(tmp_path_factory.mktemp("busy"))
    # slow enough that both replicas always have utterances in flight when a node goes
    os.environ[helpers.DELAY_ENV] = "0.5"
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "include_dashboard": False},
    )
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    ray.init(address=cluster.address, namespace="callsense-failover", log_to_driver=False)
    try:
        yield cluster, workers
    finally:
        from ray import serve

        for name in (helpers.COUNTER_ENV, helpers.DELAY_ENV, helpers.BUSY_DIR_ENV):
            os.environ.pop(name, None)
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
            cluster.shutdown()


def test_losing_a_node_mid_load_loses_no_utterance(two_nodes) -> None:
    from callsense.pipeline.distributed.config import RayConfig
    from callsense.pipeline.distributed.serve_recognizer import RemoteRecognizer, deploy
    from callsense.pipeline.sensevoice import RecognizerConfig

    cluster, workers = two_nodes
    cfg = RayConfig(
        recognizer_factory="tests.ray.helpers:loudness_factory",
        num_replicas=2,
        ray_actor_options={"num_cpus": 1},
        batch={"max_batch_size": 4, "batch_wait_timeout_s": 0.02},
        handle_timeout_s=5.0,
        retries=1,
    )
    handle = deploy(cfg, RecognizerConfig(model="unused"))
    remote = RemoteRecognizer(handle, timeout_s=cfg.handle_timeout_s, retries=cfg.retries)
    engine = PolicyEngine.load([ROOT / "configs" / "policies" / "default.yaml"])
    expected = {
        c: _decisions(c, [helpers.loudness(x) for x in _call_clips(c)], engine)
        for c in range(CALLS)
    }
    assert any(expected.values()) and not all(expected.values())

    answered = 0
    lock = threading.Lock()

    def one_call(call: int) -> list[Recognition]:
        nonlocal answered
        recs = []
        for k, clip in enumerate(_call_clips(call)):  # utterances one by one, as VAD closes them
            recs.extend(remote.recognize([clip], utterance_ids=[f"call-{call}:{k}"]))
            with lock:
                answered += 1
        return recs

    with ThreadPoolExecutor(CALLS) as pool:
        futures = [pool.submit(one_call, c) for c in range(CALLS)]
        deadline = time.monotonic() + 60
        while answered < CALLS * TURNS // 3:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        # remove the node while its replica is inside a forward pass (0.5 s long) that
        # started under 0.2 s ago: those utterances can only come back through our retry
        busy = Path(os.environ[helpers.BUSY_DIR_ENV]) / workers[0].node_id
        while not (busy.exists() and time.time() - _mtime(busy) < 0.2):
            assert time.monotonic() < deadline
            time.sleep(0.005)
        cluster.remove_node(workers[0])
        got = {c: f.result(timeout=120) for c, f in enumerate(futures)}

    for c in range(CALLS):
        assert got[c] == [helpers.loudness(x) for x in _call_clips(c)]
        assert _decisions(c, got[c], engine) == expected[c]
    assert answered == CALLS * TURNS
    # the utterances in flight on the lost node were answered through our retry
    assert remote.retried >= 1


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # the pass ended between exists() and stat()
        return 0.0
