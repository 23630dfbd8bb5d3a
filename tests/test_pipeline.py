"""pipeline.py with the tiny preset: every stage runs (2 processes where torchrun is used) and writes what the next
stage reads; a second run does nothing; deleting one stage's output reruns that stage and the ones after it only."""
import json
import os
import re
import subprocess
import sys

import data
import ie_formats
import model as llama
from conftest import REPO


def run_pipeline(out_dir, *extra):
    proc = subprocess.run([sys.executable, "pipeline.py", "--preset=tiny", f"--out_dir={out_dir}", "--nproc=2", *extra],
                          cwd=REPO, capture_output=True, text=True, timeout=400,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-6000:]
    ran = re.findall(r"^\[pipeline\] (\S+): running", proc.stdout, re.M)
    skipped = re.findall(r"^\[pipeline\] (\S+): up to date, skipped", proc.stdout, re.M)
    return ran, skipped


def jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_whole_method_end_to_end_then_incremental_reruns(tmp_path):
    out = tmp_path / "demo"
    ran, skipped = run_pipeline(out)
    assert skipped == [] and ran[:7] == ["corpus", "ie_instruct", "base", "warmup", "sft", "feedback", "dpo"]
    assert ran[-1] == "report" and {"eval_base", "eval_sft", "eval_dpo"} <= set(ran)

    # corpus: unified IE records (docs/design.md), train and held-out test
    for split in ("train", "test"):
        records = jsonl(out / "corpus" / f"{split}.jsonl")
        assert {r["task"] for r in records} == {"NER", "RC", "RE", "ED", "EAE", "EE", "ERE", "OpenIE", "ODIE"}
        for r in records:
            ie_formats.validate_record(r, f"{split}.jsonl")
    # ie_instruct: the released IEInstruct format, IE and general chat mixed
    convs = data.load_conversations(out / "ie_instruct.jsonl")
    assert convs and all(set(c) >= {"dataset", "id", "messages"} for c in convs)
    # sft / dpo: metrics per optimizer step and a Hugging Face export with its tokenizer
    for stage, extra in (("sft", set()), ("dpo", {"rewards_chosen", "rewards_rejected", "reward_margin",
                                                  "reward_accuracy"})):
        rows = jsonl(out / stage / "metrics.jsonl")
        assert rows and all({"step", "loss", "lr", "grad_norm", "tokens_per_s"} | extra <= set(r) for r in rows)
        assert [r["step"] for r in rows] == list(range(1, len(rows) + 1))
        net = llama.Transformer.from_pretrained(out / stage / "final")
        assert net.args.vocab_size == llama.Tokenizer(out / stage / "final" / "tokenizer.model").vocab_size
    # feedback: the released IEFeedback format, readable by dpo.py's loader
    pairs = data.load_conversations(out / "feedback" / "ie_feedback.json")
    assert pairs and all(p["chosen"][-1]["role"] == p["rejected"][-1]["role"] == "assistant" for p in pairs)
    # evaluation: each model answered each test set; the report has the tables
    for name in ("base", "sft", "dpo"):
        for pred in (out / name / "eval").glob("*.jsonl"):
            assert all(isinstance(r["output"], str) for r in jsonl(pred))
    assert len(list((out / "sft" / "eval").glob("*.jsonl"))) >= 2
    report = (out / "report.md").read_text()
    assert "Table 1" in report and "Canonical formats" in report

    assert not list(out.rglob("LOCK"))  # every stage released its --out_dir lock
    # Nothing to do the second time.
    ran, skipped = run_pipeline(out)
    assert ran == [] and "report" in skipped

    # Delete the DPO model: DPO, its evaluation and the report rerun; nothing before them does.
    (out / "dpo" / "final" / "config.json").unlink()
    ran, _ = run_pipeline(out)
    assert ran == ["dpo", "eval_dpo", "report"]
