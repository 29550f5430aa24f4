"""Regenerate the output samples in README.md from real runs (never hand-written).

    python tools/readme_samples.py          # rewrites the <!-- sample:NAME --> blocks

It builds the keyed test model and the angry test call the end-to-end tests use, runs
``callsense transcribe`` and ``callsense analyze`` on it, and pastes what they printed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.calls import build_call  # noqa: E402
from tools.make_test_model import build_call_model  # noqa: E402


def run(*args: str) -> str:
    env = {**os.environ, "COLUMNS": "110", "NO_COLOR": "1", "TERM": "dumb"}
    proc = subprocess.run(
        ["callsense", *args], capture_output=True, text=True, env=env, check=True, cwd=ROOT
    )
    return proc.stdout


def block(lang: str, text: str) -> str:
    return f"```{lang}\n{text.rstrip()}\n```"


def replace(readme: str, name: str, content: str) -> str:
    pattern = re.compile(rf"(<!-- sample:{name} -->\n).*?(<!-- /sample:{name} -->)", re.DOTALL)
    if not pattern.search(readme):
        raise SystemExit(f"README.md has no sample block {name!r}")
    return pattern.sub(lambda m: m.group(1) + content + "\n" + m.group(2), readme)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="callsense-readme-") as tmp:
        work = Path(tmp)
        model = build_call_model(work / "model")
        call, _ = build_call(work / "call.wav")
        transcript = run("transcribe", "--model", str(model), str(call), "--no-cache")
        jsonl = run("transcribe", "--model", str(model), str(call), "-f", "jsonl", "--no-cache")
        table = run(
            "analyze", "--model", str(model), str(call), "--out", str(work / "out"), "--no-cache"
        )
        (call_dir,) = [p for p in (work / "out").iterdir() if p.is_dir()]
        explained = run("explain", call_dir.name, "--results", str(work / "out"))
        decisions = (call_dir / "decisions.jsonl").read_text(encoding="utf-8").splitlines()
        summary = json.loads((call_dir / "summary.json").read_text(encoding="utf-8"))
        summary["source"] = "call.wav"
        # paths of this temporary run, shown as a user would have them
        summary["audit"]["model"] = "./m"
        summary["audit"]["policies"] = [
            str(Path(p).relative_to(ROOT)) for p in summary["audit"]["policies"]
        ]
    first = json.loads(jsonl.splitlines()[1])
    transcribe_sample = "$ callsense transcribe --model ./m call.wav\n" + transcript.replace(
        str(call), "call.wav"
    )
    analyze_sample = (
        "$ callsense analyze --model ./m call.wav --out results/\n"
        + table
        + "\n$ head -1 results/*/decisions.jsonl\n"
        + decisions[0]
        + "\n\n$ cat results/*/summary.json\n"
        + json.dumps(summary, ensure_ascii=False, indent=2)
    )
    explain_sample = (
        f"$ callsense explain {call_dir.name} --results results/\n"
        + explained.replace(str(ROOT) + "/", "").replace(str(model), "./m")
    )
    readme_path = ROOT / "README.md"
    readme = readme_path.read_text(encoding="utf-8")
    readme = replace(readme, "analyze", block("console", analyze_sample))
    readme = replace(
        readme,
        "transcribe",
        block("console", transcribe_sample)
        + "\n\n"
        + block("json", json.dumps(first, ensure_ascii=False, indent=None)),
    )
    readme = replace(readme, "explain", block("console", explain_sample))
    readme = replace(
        readme,
        "config",
        block("yaml", (ROOT / "configs" / "callsense.yaml").read_text(encoding="utf-8")),
    )
    readme_path.write_text(readme, encoding="utf-8")
    print("README.md samples regenerated")


if __name__ == "__main__":
    main()
