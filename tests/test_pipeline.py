"""pipeline.py with the tiny preset: every stage runs (2 processes where torchrun is used) and writes what the next
stage reads; a second run does nothing; deleting one stage's output reruns that stage and the ones after it only."""
import dataclasses
import json
import os
import re
import subprocess
import sys

import pytest

import config
import data
import ie_formats
import model as llama
import pipeline
from config import parse_config
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


# ----------------------------------------------------------------------------------------------------------------
# The presets (config.py): one source of settings for every script

@pytest.mark.parametrize("preset", sorted(config.PRESETS))
def test_every_preset_setting_is_a_flag_of_its_stage(preset):
    """A misspelt key in config.PRESETS would fail only when its stage runs, minutes into a demo: here it fails at
    once. (The corpus section is synthetic.py's argparse flags, checked by the pipeline run above.)"""
    import dpo
    import evaluate
    import feedback
    import sft
    configs = {"sft": sft.SFTConfig, "warmup": sft.SFTConfig, "dpo": dpo.DPOConfig, "feedback": feedback.FeedbackConfig,
               "ie_instruct": data.IEInstructConfig, "eval": evaluate.RunConfig}
    for stage, cls in configs.items():
        unknown = set(config.PRESETS[preset].get(stage, {})) - {f.name for f in dataclasses.fields(cls)}
        assert not unknown, f"PRESETS[{preset!r}][{stage!r}]: {unknown} are not fields of {cls.__name__}"


def test_a_flag_wins_over_the_preset_which_wins_over_the_default():
    import sft

    def resolve(*argv):
        cfg, explicit = config.parse_config(sft.SFTConfig, argv)
        return config.apply_preset(cfg, explicit, "sft")[0]

    demo = config.PRESETS["demo"]["sft"]
    cfg = resolve("--model=m", "--preset=demo", "--lr=0.5")
    assert (cfg.preset, cfg.lr, cfg.max_steps, cfg.adam_beta2) == ("demo", 0.5, demo["max_steps"], 0.999)
    assert (resolve("--model=m").preset, resolve("--model=m").lr) == ("paper", 2e-5)  # a real model: the paper
    assert (resolve().preset, resolve().lr) == ("demo", demo["lr"])  # the embedded default: the demo
    assert resolve("--no-group_by_length").group_by_length is False and demo["group_by_length"] is True


def test_every_departure_names_a_demo_setting():
    for setting in config.DEMO_DEPARTURES:
        assert config.preset_value("demo", setting) is not None, setting
    assert config.departures_table().count("\n") == len(config.DEMO_DEPARTURES) - 1


@pytest.mark.parametrize("preset", ["demo", "tiny"])
def test_every_training_stage_command_parses(preset):
    """Each preset's settings reach sft.py, dpo.py and feedback.py as flags their parsers accept (a boolean setting
    once reached sft.py as --group_by_length=True, which argparse refuses: the demo failed at its warm-up)."""
    import dpo
    import feedback
    import sft
    parsers = {"sft.py": sft.SFTConfig, "dpo.py": dpo.DPOConfig, "feedback.py": feedback.FeedbackConfig}
    cfg, _ = parse_config(pipeline.PipelineConfig, [f"--preset={preset}"])
    checked = 0
    for stage in pipeline.build_stages(cfg):
        script = next((a for a in stage.command if a in parsers), None) if isinstance(stage.command, list) else None
        if script:
            args = stage.command[stage.command.index(script) + 1:]
            parsed, explicit = parse_config(parsers[script], args)
            assert explicit, stage.name
            checked += 1
    assert checked == 4  # warmup, sft, feedback, dpo
