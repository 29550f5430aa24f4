"""The model tier without a cluster: Serve's local testing mode, the real client and config.

Serve 2.60's local testing mode cannot run ``@serve.batch`` (it asks for a replica
context that mode does not set), so these run with ``max_batch_size: 1``; batching is
covered on a real Ray in test_cluster.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from ray import serve

from callsense.core.errors import ConfigError, InputError, RetryableError
from callsense.pipeline.distributed.admission import Admission, Refused
from callsense.pipeline.distributed.config import RayConfig, load_ray_config, resolve_factory
from callsense.pipeline.sensevoice import RecognizerConfig
from tests.ray import helpers

FACTORY = "tests.ray.helpers:loudness_factory"


def _clips(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    # alternate quiet and loud so the results differ by position
    return [
        (rng.standard_normal(1600 + 160 * i) * (0.3 if i % 2 else 0.01)).astype(np.float32)
        for i in range(n)
    ]


def _handle(monkeypatch: pytest.MonkeyPatch, name: str, **env: str):
    from callsense.pipeline.distributed.serve_recognizer import build_app

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    cfg = RayConfig(recognizer_factory=FACTORY, batch={"max_batch_size": 1})
    app = build_app(cfg, RecognizerConfig(model="unused-by-the-test-recognizer"))
    return serve.run(app, name=name, route_prefix=None, _local_testing_mode=True)


def test_remote_recognizer_matches_the_local_class(monkeypatch, tmp_path: Path) -> None:
    from callsense.pipeline.distributed.serve_recognizer import RemoteRecognizer

    counter = tmp_path / "passes.txt"
    handle = _handle(monkeypatch, "same", **{helpers.COUNTER_ENV: str(counter)})
    remote = RemoteRecognizer(handle, timeout_s=10)
    clips = _clips(6)
    got = remote.recognize(clips, language="en")
    assert got == [helpers.loudness(c) for c in clips]
    assert {r.raw.split("><")[1] for r in got} == {"|ANGRY|", "|NEUTRAL|"}
    assert remote.model_id == "loudness-test"
    assert sum(n for _, n, _ in helpers.read_counter(counter)) == 6
    assert remote.retried == 0


def test_retry_after_a_lost_reply_reuses_the_first_answer(monkeypatch) -> None:
    from callsense.pipeline.distributed.serve_recognizer import RemoteRecognizer

    # the replica's first forward pass outlives the client's timeout: the client retries
    # with the same utterance id and the replica answers it from the pass still running
    handle = _handle(monkeypatch, "slow", **{helpers.FIRST_DELAY_ENV: "1.5"})
    remote = RemoteRecognizer(handle, timeout_s=1.0, retries=1)
    clip = _clips(2)[1]
    got = remote.recognize([clip], utterance_ids=["call-1:0"])
    assert got == [helpers.loudness(clip)]
    assert remote.retried == 1
    assert handle.stats.remote().result(timeout_s=5)["forward_passes"] == 1
    # the same id again within the window: answered from memory, no new pass
    assert remote.recognize([clip], utterance_ids=["call-1:0"]) == got
    assert handle.stats.remote().result(timeout_s=5)["forward_passes"] == 1


def test_async_path_retries_by_utterance_id(monkeypatch) -> None:
    from callsense.pipeline.distributed.serve_recognizer import RemoteRecognizer

    handle = _handle(monkeypatch, "async", **{helpers.FIRST_DELAY_ENV: "1.5"})
    remote = RemoteRecognizer(handle, timeout_s=1.0, retries=1)
    clips = _clips(3)

    async def gateway() -> list:
        first = await remote.recognize_async(clips[0], utterance_id="c:0", language="en")
        rest = await asyncio.gather(
            *(remote.recognize_async(c, utterance_id=f"c:{i}") for i, c in enumerate(clips[1:], 1))
        )
        return [first, *rest]

    assert asyncio.run(gateway()) == [helpers.loudness(c) for c in clips]
    assert remote.retried == 1
    assert handle.stats.remote().result(timeout_s=5)["forward_passes"] == 3


def test_no_answer_after_the_retry_is_a_retryable_error(monkeypatch) -> None:
    from callsense.pipeline.distributed.serve_recognizer import RemoteRecognizer

    handle = _handle(monkeypatch, "stuck", **{helpers.DELAY_ENV: "1.2"})
    remote = RemoteRecognizer(handle, timeout_s=0.3, retries=1)
    with pytest.raises(RetryableError, match=r"utterance u-1 failed 2 time\(s\)"):
        remote.recognize(_clips(1), utterance_ids=["u-1"])
    assert remote.retried == 1


def test_bad_input_is_not_retried(monkeypatch) -> None:
    from callsense.pipeline.distributed.serve_recognizer import RemoteRecognizer

    handle = _handle(monkeypatch, "ids")
    remote = RemoteRecognizer(handle, timeout_s=5)
    with pytest.raises(ValueError, match="2 utterance ids for 1 clips"):
        remote.recognize(_clips(1), utterance_ids=["a", "b"])
    assert remote.retried == 0


def test_ray_yaml_errors_name_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "ray.yaml"
    path.write_text("address: auto\nnum_replicas: 2\nautoscaling:\n  max_replicas: 3\n")
    with pytest.raises(ConfigError, match=r"ray\.yaml:1: .*either num_replicas or autoscaling"):
        load_ray_config(path)
    path.write_text("batch:\n  max_batch_size: 0\n  wait: 1\n")
    with pytest.raises(ConfigError) as err:
        load_ray_config(path)
    assert any("ray.yaml:2: batch.max_batch_size" in p for p in err.value.problems)
    assert any("ray.yaml:3: batch.wait: unknown field" in p for p in err.value.problems)


def test_replica_options_follow_the_yaml(tmp_path: Path) -> None:
    path = tmp_path / "ray.yaml"
    path.write_text(
        "autoscaling: {min_replicas: 1, max_replicas: 6, target_ongoing_requests: 4}\n"
        "ray_actor_options: {num_cpus: 2, num_gpus: 0.5}\n"
    )
    opts = load_ray_config(path).replica_options()
    assert opts["autoscaling_config"]["max_replicas"] == 6
    assert opts["ray_actor_options"] == {"num_cpus": 2.0, "num_gpus": 0.5}
    assert "num_replicas" not in opts
    assert RayConfig().replica_options()["num_replicas"] == 1
    assert RayConfig().replica_options()["ray_actor_options"] == {"num_cpus": 1.0}


def test_factory_names_are_checked() -> None:
    assert resolve_factory(FACTORY) is helpers.loudness_factory
    with pytest.raises(InputError, match="expected 'module:callable'"):
        resolve_factory("tests.ray.helpers.loudness_factory")
    with pytest.raises(InputError, match="cannot import"):
        resolve_factory("tests.ray.helpers:nope")


def test_admission_refuses_when_full_and_drains() -> None:
    async def scenario() -> None:
        gate = Admission(max_calls=2)
        assert gate.enter() is None and gate.enter() is None
        assert gate.enter() == "full" and not gate.ready
        gate.leave()
        assert gate.ready
        async with gate.call():
            assert gate.stats().active == 2
            drained = asyncio.create_task(gate.drain(timeout_s=2))
            await asyncio.sleep(0.01)
            assert not drained.done()  # waits for the running calls
            with pytest.raises(Refused) as refused:
                async with gate.call():
                    pass
            assert refused.value.reason == "draining"
            gate.leave()  # the other call ends
        assert await drained is True
        assert gate.stats().refused == 2
        assert gate.stats().active == 0

    asyncio.run(scenario())


def test_drain_times_out_while_a_call_runs() -> None:
    async def scenario() -> bool:
        gate = Admission(max_calls=1)
        gate.enter()
        return await gate.drain(timeout_s=0.05)

    assert asyncio.run(scenario()) is False
    with pytest.raises(RuntimeError, match="without a matching"):
        Admission(1).leave()


@pytest.mark.model
@pytest.mark.slow
def test_transcriber_over_the_model_tier_equals_local(
    monkeypatch, fixed_model_dir: Path, fixed_recognizer
) -> None:
    """The deployment wraps the class pipeline/ loads: same transcript either way."""
    from callsense.pipeline.config import load_config
    from callsense.pipeline.distributed.serve_recognizer import RemoteRecognizer, build_app
    from callsense.pipeline.transcribe import Transcriber
    from callsense.pipeline.vad import build_vad
    from tests.conftest import TESTDATA

    cfg = load_config(None, model=str(fixed_model_dir), environ={})
    ray_cfg = RayConfig(batch={"max_batch_size": 1})  # default factory: build_recognizer
    handle = serve.run(
        build_app(ray_cfg, cfg.recognizer),
        name="real",
        route_prefix=None,
        _local_testing_mode=True,
    )
    remote = RemoteRecognizer(handle, timeout_s=60)
    assert remote.model_id == fixed_recognizer.model_id  # cache keys agree with local runs
    vad = build_vad(cfg.vad)
    path = TESTDATA / "aws-lca_Auto_Repairs_49_stereo_first40s.wav"
    local = Transcriber(cfg=cfg, vad=vad, recognizer=fixed_recognizer).transcribe_file(path)
    over_ray = Transcriber(cfg=cfg, vad=vad, recognizer=remote).transcribe_file(path)
    assert len(local.utterances) >= 2
    assert over_ray == local
