"""Result cache on a real directory: keys, round trips, corrupt entries, atomic writes, purges."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import BaseModel

from callsense.core.errors import InputError
from callsense.pipeline.cache import ResultCache, cache_key, config_fingerprint, default_cache_dir
from callsense.pipeline.model import CallTranscript, TagConfidence, Utterance
from tests.conftest import TESTDATA

CONFIG = {"language": "auto", "use_itn": True, "vad": {"max_segment_s": 15, "pad_ms": 200}}
MODEL = "iic/SenseVoiceSmall"


def transcript(call_id: str = "call-1", n: int = 2) -> CallTranscript:
    utterances = tuple(
        Utterance(
            call_id,
            i % 2,
            "agent" if i % 2 == 0 else "customer",
            float(i),
            i + 0.75,
            "speech",
            "en",
            "ANGRY" if i else "NEUTRAL",
            "Speech",
            f"line {i} — ünïcödé 好",
            f"<|en|><|{'ANGRY' if i else 'NEUTRAL'}|><|Speech|><|withitn|>line {i} — ünïcödé 好",
            TagConfidence(0.9, 0.625, None),
        )
        for i in range(n)
    )
    return CallTranscript(call_id, utterances, duration=n + 1.0, channels=2, source="calls/x.wav")


@pytest.fixture
def cache(tmp_path: Path) -> ResultCache:
    return ResultCache(tmp_path / "cache")


def key_for(name: str) -> str:
    return cache_key(name.encode(), MODEL, CONFIG)


# --- default directory ---------------------------------------------------------------------


def test_default_cache_dir_resolution(tmp_path: Path) -> None:
    home = Path.home()
    assert default_cache_dir({}) == home / ".cache" / "callsense"
    assert default_cache_dir({"XDG_CACHE_HOME": "/var/xdg"}) == Path("/var/xdg/callsense")
    assert default_cache_dir({"XDG_CACHE_HOME": "relative/x"}) == home / ".cache" / "callsense"
    both = {"XDG_CACHE_HOME": "/var/xdg", "CALLSENSE_CACHE_DIR": str(tmp_path / "c")}
    assert default_cache_dir(both) == tmp_path / "c"
    assert default_cache_dir({"CALLSENSE_CACHE_DIR": "", "XDG_CACHE_HOME": "/x"}) == Path(
        "/x/callsense"
    )


def test_default_cache_dir_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CALLSENSE_CACHE_DIR", str(tmp_path / "env"))
    assert ResultCache().directory == tmp_path / "env"


# --- keys ------------------------------------------------------------------------------------


def test_key_of_a_real_audio_file(tmp_path: Path) -> None:
    wav = next(TESTDATA.glob("*.wav"))
    key = cache_key(wav, MODEL, CONFIG)
    assert len(key) == 64 and int(key, 16) >= 0
    assert key == cache_key(wav.read_bytes(), MODEL, CONFIG)
    assert key == cache_key(str(wav), MODEL, config_fingerprint(CONFIG))  # type: ignore[arg-type]
    copy = tmp_path / "renamed.wav"
    copy.write_bytes(wav.read_bytes())
    assert cache_key(copy, MODEL, CONFIG) == key  # content, not name


def test_key_changes_with_audio_model_and_config(tmp_path: Path) -> None:
    audio = os.urandom((3 << 20) + 123)  # more than the 1 MiB hashing chunk, not a multiple
    f = tmp_path / "big.raw"
    f.write_bytes(audio)
    key = cache_key(f, MODEL, CONFIG)
    assert key == cache_key(audio, MODEL, CONFIG)
    assert key != cache_key(audio[:-1] + bytes([audio[-1] ^ 1]), MODEL, CONFIG)
    assert key != cache_key(audio[:-1], MODEL, CONFIG)
    assert key != cache_key(audio, "/models/sensevoice-local", CONFIG)
    assert key != cache_key(audio, MODEL, {**CONFIG, "use_itn": False})
    assert key != cache_key(audio, MODEL, {**CONFIG, "vad": {"max_segment_s": 15, "pad_ms": 100}})


def test_fingerprint_ignores_key_order_and_accepts_models() -> None:
    reordered = {"vad": {"pad_ms": 200, "max_segment_s": 15}, "use_itn": True, "language": "auto"}
    assert config_fingerprint(CONFIG) == config_fingerprint(reordered)

    class Vad(BaseModel):
        max_segment_s: int = 15
        pad_ms: int = 200

    class Settings(BaseModel):
        language: str = "auto"
        use_itn: bool = True
        vad: Vad = Vad()

    assert config_fingerprint(Settings()) == config_fingerprint(CONFIG)
    with pytest.raises(InputError, match="not JSON-serialisable"):
        config_fingerprint({"path": Path("/x")})


def test_missing_audio_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.wav"):
        cache_key(tmp_path / "nope.wav", MODEL, CONFIG)


# --- entries ---------------------------------------------------------------------------------


def test_put_then_get(cache: ResultCache) -> None:
    key = key_for("a")
    assert cache.get(key) is None
    t = transcript()
    path = cache.put(key, t)
    assert path == cache.directory / key[:2] / f"{key}.jsonl"
    assert cache.get(key) == t
    # an entry is JSONL: a header, then records in the transcript output's shape
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    assert lines[0]["call_id"] == "call-1" and lines[0]["utterances"] == 2
    assert [x["start"] for x in lines[1:]] == [0.0, 1.0]
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left


def test_empty_transcript_and_overwrite(cache: ResultCache) -> None:
    key = key_for("silence")
    empty = CallTranscript("quiet", (), duration=3.0, channels=1)
    cache.put(key, empty)
    assert cache.get(key) == empty
    cache.put(key, transcript("quiet", 1))
    got = cache.get(key)
    assert got is not None and len(got.utterances) == 1


def test_get_can_rename_the_call(cache: ResultCache) -> None:
    key = key_for("same audio")
    cache.put(key, transcript("first-name"))
    got = cache.get(key, call_id="second-name")
    assert got is not None
    assert got.call_id == "second-name"
    assert {u.call_id for u in got.utterances} == {"second-name"}
    assert [u.text for u in got.utterances] == [u.text for u in transcript().utterances]


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # truncated mid-record
        lambda b: b.rsplit(b"\n", 2)[0] + b"\n",  # a whole record missing
        lambda b: b"",
        lambda b: b"\xff\xfe\x00garbage",
        lambda b: b.replace(b'"speaker": "agent"', b'"speaker": "boss"'),
        lambda b: b.replace(b'"callsense_cache": 1', b'"callsense_cache": 99'),
        lambda b: b.replace(b'"utterances": 2', b'"utterances": "2"'),
        lambda b: b"[]\n",
    ],
)
def test_corrupt_entries_are_misses_and_removed(
    cache: ResultCache, damage: Callable[[bytes], bytes]
) -> None:
    key = key_for("corrupt")
    path = cache.put(key, transcript())
    damaged = damage(path.read_bytes())
    assert damaged != path.read_bytes()
    path.write_bytes(damaged)
    assert cache.get(key) is None
    assert not path.exists()
    cache.put(key, transcript())  # and the slot is usable again
    assert cache.get(key) == transcript()


def test_a_failed_write_keeps_the_old_entry_and_leaves_no_temp_file(cache: ResultCache) -> None:
    key = key_for("atomic")
    path = cache.put(key, transcript("old"))
    bad = CallTranscript("new", (transcript().utterances[0],), duration=float("nan"))
    with pytest.raises(ValueError):
        cache.put(key, bad)
    assert cache.get(key) == transcript("old")
    # the rename itself fails: the target is a directory
    other = key_for("rename fails")
    target = cache.path(other)
    target.mkdir(parents=True)
    with pytest.raises(OSError):
        cache.put(other, transcript())
    assert target.is_dir()
    leftovers = [p.name for p in cache.directory.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
    assert path.exists()


def test_delete_and_remove_call(cache: ResultCache) -> None:
    keys = [key_for(str(i)) for i in range(5)]
    for i, key in enumerate(keys):
        cache.put(key, transcript("victim" if i in (1, 3) else f"other-{i}"))
    (cache.directory / "README").write_text("not an entry")
    assert cache.remove_call("victim") == 2
    assert [cache.get(k) is not None for k in keys] == [True, False, True, False, True]
    assert cache.remove_call("victim") == 0
    assert cache.delete(keys[0]) is True
    assert cache.delete(keys[0]) is False
    assert cache.get(keys[0]) is None
    assert ResultCache(cache.directory / "never-created").remove_call("x") == 0


def test_keys_are_checked_so_no_path_escapes(cache: ResultCache) -> None:
    for bad in ["../../etc/passwd", "ab", key_for("x").upper(), key_for("x") + "0"]:
        with pytest.raises(ValueError, match="not a cache key"):
            cache.get(bad)
