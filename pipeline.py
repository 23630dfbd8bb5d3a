"""The whole ADELIE method end to end, stage by stage, each stage's output feeding the next.

    python pipeline.py                       # the embedded default demo: about 15 minutes on 2 CPU cores
    python pipeline.py --preset tiny         # a few steps per stage (what the CI test runs)
    python pipeline.py --ie_proportion 0.5   # an ablation knob of the paper (Figure 4); see the flags

Stages (paper section -> script):
  corpus       synthetic IE records, train + held-out test (the embedded default's stand-in
               for the IE data sets of Table 7) ................................. synthetic.py
  ie_instruct  IEInstruct: every augmentation of section 3, mixed with general chat (section 4) .... data.py build
  base         the starting model: the preset's model, random weights ........... sft.save_embedded_default_model
  warmup       copy warm-up on corpus texts and random strings, each passage twice: with `base`, the embedded
               default's stand-in for pretrained LLaMA-2 ..... synthetic.generate_copy_warmup + torchrun sft.py
  sft          ADELIE-SFT (section 4, appendix B.2) ............................. torchrun sft.py
  feedback     IEFeedback: 5 samples per prompt, BLEU, online/offline pairs (section 4) ......... torchrun feedback.py
  dpo          ADELIE-DPO (section 4, appendix B.2) ............................. torchrun dpo.py
  test_set     the held-out test prompts (section 5.1, appendix C.1) ........... evaluate.py build
  eval_*       answers of the base, SFT and DPO models (appendix C.1) .......... torchrun evaluate.py run
  report       tables, curves and plots (Tables 1-3) ............................ evaluate.py report

A stage runs when one of its outputs is missing or older than one of its inputs, and is skipped otherwise, like
make: running the pipeline twice does nothing the second time, and deleting one stage's output reruns that stage
and the stages after it only. A stage interrupted half-way (sft, dpo: checkpoints; feedback, eval: appended
samples) continues where it stopped when its output was missing rather than stale (sft and dpo get --resume, which
also lets them retrain into their finished directory; sft, feedback and dpo get --clear_stale_lock, which removes
the lock of a killed earlier attempt: a lock whose process is gone is stale, a live run's lock is never removed).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import config
from config import PRESETS, as_flags, flag, parse_config

REPO = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("ADELIE_SHARED", REPO.parent / "shared"))

@dataclass
class PipelineConfig:
    out_dir: str = flag("runs/demo", "where every stage writes (one sub-directory per stage)")
    preset: str = flag("demo", "every stage's settings (config.PRESETS): demo, the README's demo (15 min on 2 CPU "
                               "cores); tiny, a few steps per stage", choices=["demo", "tiny"])
    nproc: int = flag(2, "processes per torchrun stage (sft, feedback, dpo, evaluation)")
    seed: int = flag(42, "seed of every stage (paper appendix B.2: 42)")
    # The paper's ablation knobs, with the paper's values as defaults
    ie_proportion: float = flag(-1.0, "share of IE data in the SFT mixture (section 6.1, Figure 4: 0.2); -1: the "
                                      "preset's (demo 1.0: config.DEMO_DEPARTURES; tiny 0.2)")
    dpo_size: int = flag(10000, "IEFeedback pairs at most (section 6.2, Figure 5: 10k); the preset may cap it")
    offline_rate: float = flag(0.7, "share of offline pairs in IEFeedback (section 6.2, Table 11: 0.7)")
    shots: int = flag(4, "demonstrations per few-shot test prompt (section 5.1: 4 for closed IE; Figure 6)")
    real_eval: bool = flag(True, "also evaluate on the released ADELIE test prompts in ../shared when present "
                                 "(a few records each: the small model only shows the pipeline runs on them)")
    force: str = flag("", "comma-separated stages to rerun even if up to date")


@dataclass
class Stage:
    name: str
    inputs: list[Path]
    outputs: list[Path]
    command: list[str] | Callable[[], object]  # a command line, or a function run in this process
    resumable_dir: Path | None = None  # a stage's own directory; wiped when its inputs changed (stale), kept when
    # its output is merely missing (interrupted: the script resumes from it)


def torchrun(nproc: int, script: str, *args) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", script, *args]


def build_stages(cfg: PipelineConfig) -> list[Stage]:
    """The stages with their inputs, outputs and commands. sft.py, feedback.py, dpo.py and evaluate.py take their
    settings from config.PRESETS[--preset] themselves (--preset), and so does data.py build; the warm-up (sft.py) and
    synthetic.py get the preset's sections as flags."""
    s = PRESETS[cfg.preset]
    ie_proportion = [f"--ie_proportion={cfg.ie_proportion}"] if cfg.ie_proportion >= 0 else []  # else the preset's
    out = Path(cfg.out_dir)
    py = sys.executable
    corpus, ie = out / "corpus", out / "ie_instruct.jsonl"
    base, sft, fb, dpo = out / "base" / "final", out / "sft", out / "feedback", out / "dpo"
    test_zero, test_few = out / "test_sets" / "canonical.zeroshot.jsonl", out / "test_sets" / "canonical.fewshot.jsonl"
    ie_feedback = fb / "ie_feedback.json"
    warm = out / "warmup"
    common = [f"--preset={cfg.preset}", f"--seed={cfg.seed}", "--clear_stale_lock"]
    stages = [
        Stage("corpus", [], [corpus / "train.jsonl", corpus / "test.jsonl", corpus / "general.jsonl",
                             corpus / "warmup.jsonl"],
              [py, "synthetic.py", f"--out={corpus}", f"--seed={cfg.seed}", *as_flags(s["corpus"])]),
        Stage("ie_instruct", [corpus / "train.jsonl", corpus / "general.jsonl"], [ie],
              [py, "data.py", "build", f"--out={ie}", f"--records={corpus / 'train.jsonl'}",
               f"--general={corpus / 'general.jsonl'}", f"--seed={cfg.seed}", f"--preset={cfg.preset}", *ie_proportion]),
        Stage("base", [], [base / "config.json"],
              [py, "-c", f"import sft; sft.save_embedded_default_model({str(base)!r}, {cfg.seed}, {s['model']!r})"]),
        # The demo's stand-in for LLaMA-2's pretraining: a copy warm-up on corpus texts and random strings
        # (synthetic.generate_copy_warmup), trained with sft.py; SFT starts from it.
        Stage("warmup", [corpus / "warmup.jsonl", base / "config.json"], [warm / "final" / "config.json"],
              torchrun(cfg.nproc, "sft.py", f"--model={base}", f"--data={corpus / 'warmup.jsonl'}", f"--out_dir={warm}",
                       "--resume", *common, *as_flags(s["warmup"])), resumable_dir=warm),
        Stage("sft", [ie, warm / "final" / "config.json"], [sft / "final" / "config.json"],
              torchrun(cfg.nproc, "sft.py", f"--model={warm / 'final'}", f"--data={ie}", f"--out_dir={sft}",
                       "--resume", *common), resumable_dir=sft),
        Stage("feedback", [sft / "final" / "config.json", corpus / "train.jsonl"], [ie_feedback],
              torchrun(cfg.nproc, "feedback.py", f"--model={sft / 'final'}", f"--records={corpus / 'train.jsonl'}",
                       f"--out_dir={fb}", f"--online_ratio={1 - cfg.offline_rate:.4g}", *common,
                       f"--target_pairs={min(cfg.dpo_size, s['feedback']['target_pairs'])}"), resumable_dir=fb),
        Stage("dpo", [sft / "final" / "config.json", ie_feedback], [dpo / "final" / "config.json"],
              torchrun(cfg.nproc, "dpo.py", f"--model={sft / 'final'}", f"--data={ie_feedback}", f"--out_dir={dpo}",
                       "--resume", *common), resumable_dir=dpo),
    ]
    for setting, shots, test in (("zeroshot", 0, test_zero), ("fewshot", cfg.shots, test_few)):
        stages.append(Stage(f"test_set_{setting}", [corpus / "test.jsonl", corpus / "train.jsonl"], [test],
                            [py, "evaluate.py", "build", "--task=canonical", f"--source={corpus / 'test.jsonl'}",
                             f"--demo_source={corpus / 'train.jsonl'}", f"--shots={shots}", f"--seed={cfg.seed}",
                             f"--out={test}"]))
    tests = [(test_zero, "canonical.zeroshot"), (test_few, "canonical.fewshot")]
    real = real_test_files() if cfg.real_eval else []
    if real:  # the first few records of each released test file, copied so every test file lives in OUT
        copies = [(out / "test_sets" / f"{name}.jsonl", name) for _, name in real]
        stages.append(Stage("test_set_released", [p for p, _ in real], [c for c, _ in copies],
                            lambda: [copy_head(src, dst, s["real_eval_limit"]) for (src, _), (dst, _) in zip(real, copies)]))
        tests += copies
    for name, model_dir in (("base", base), ("sft", sft / "final"), ("dpo", dpo / "final")):
        preds = [out / name / "eval" / f"{setting}.jsonl" for _, setting in tests]
        stages.append(Stage(
            f"eval_{name}", [model_dir / "config.json"] + [t for t, _ in tests], preds,
            torchrun(cfg.nproc, "evaluate.py", "run", f"--model={model_dir}", f"--test={','.join(str(t) for t, _ in tests)}",
                     f"--out={','.join(map(str, preds))}", f"--preset={cfg.preset}", "--temperature=0")))
    preds = [p for st in stages if st.name.startswith("eval_") for p in st.outputs]
    stages.append(Stage("report", preds + [sft / "metrics.jsonl", dpo / "metrics.jsonl", ie_feedback],
                        [out / "report.md"],
                        [py, "evaluate.py", "report", str(out / "base"), str(sft), str(dpo), f"--out={out / 'report.md'}",
                         f"--feedback={fb}", f"--bootstrap_seed={cfg.seed}"]))
    return stages


def copy_head(src: Path, dst: Path, n: int) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with src.open(encoding="utf-8") as f:
        dst.write_text("".join(line for _, line in zip(range(n), f)), encoding="utf-8")


def real_test_files() -> list[tuple[Path, str]]:
    """The paper's released held-out prompts (../shared/data/adelie_test_format), when present."""
    root = SHARED / "data" / "adelie_test_format"
    files = [(root / "zeroshot" / "semeval.jsonl", "semeval.zeroshot"),
             (root / "zeroshot" / "few-nerd-supervised.jsonl", "fewnerd.zeroshot")]
    # (MATRES documents are longer than the demo model's 1024-token context.)
    return [(p, ts) for p, ts in files if p.exists()]


def stale(stage: Stage) -> str | None:
    """Why the stage must run (None: up to date). An output that exists is complete: every stage writes its
    outputs atomically (robust.py: a file is renamed into place when whole; final/ appears as a whole directory),
    so a stage killed half-way leaves its output missing, never present but broken."""
    missing = [p for p in stage.outputs if not p.exists()]
    if missing:
        return f"missing {missing[0]}"
    newest_input = max((p.stat().st_mtime for p in stage.inputs if p.exists()), default=0.0)
    oldest_output = min(p.stat().st_mtime for p in stage.outputs)
    return "inputs changed" if newest_input > oldest_output else None


def main(argv=None) -> None:
    cfg, _ = parse_config(PipelineConfig, argv)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    forced = {s for s in cfg.force.split(",") if s}
    if cfg.preset == "demo":
        print("[pipeline] where the demo departs from the paper (setting: paper -> demo: why):\n"
              + config.departures_table(), flush=True)
    timings = {}
    for stage in build_stages(cfg):
        why = "forced" if stage.name in forced else stale(stage)
        if why is None:
            print(f"[pipeline] {stage.name}: up to date, skipped", flush=True)
            continue
        if not why.startswith("missing"):  # stale or forced: what it wrote before belongs to other inputs
            if stage.resumable_dir and stage.resumable_dir.exists():
                shutil.rmtree(stage.resumable_dir)
            for p in stage.outputs:  # never let a stale output look up to date if the command fails half-way
                p.unlink(missing_ok=True)
        t0 = time.time()
        if callable(stage.command):
            print(f"[pipeline] {stage.name}: running ({why})", flush=True)
            stage.command()
        else:
            print(f"[pipeline] {stage.name}: running ({why})\n  {' '.join(stage.command)}", flush=True)
            env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
            proc = subprocess.run(stage.command, cwd=REPO, env=env)
            if proc.returncode != 0:
                sys.exit(f"[pipeline] stage {stage.name} failed with exit code {proc.returncode}; fix it and rerun: "
                         f"the stages before it are kept")
        timings[stage.name] = round(time.time() - t0, 1)
        print(f"[pipeline] {stage.name}: done in {timings[stage.name]} s", flush=True)
    log = out / "pipeline_timings.json"
    previous = json.loads(log.read_text()) if log.exists() else {}
    log.write_text(json.dumps({**previous, **timings}, indent=1))
    print(f"[pipeline] finished; report: {out / 'report.md'}; stage timings: {log}")


if __name__ == "__main__":
    main()
