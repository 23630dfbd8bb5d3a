"""Benchmarks, one subcommand per part of the project; each prints its ratios as its last lines. Tooling, not the
method: run from the repository root.

    python tools/bench.py model            # model.py against transformers (issue 2, "Performance"), on the "tiny" preset
    python tools/bench.py model --preset vocab32k   # the same at LLaMA-2's 32,000-token vocabulary (d 256, 4 layers)
    python tools/bench.py sft              # sft.py against TRL's SFTTrainer (issue 4, "Performance"), on the "demo" preset
    python tools/bench.py dpo              # dpo.py against TRL's DPOTrainer (issue 5, "Performance")
    python tools/bench.py feedback         # feedback.py's sampling against transformers' generate (issue 5)
    python tools/bench.py sft --help       # every flag

`model` measures, in one run on the same config and the same weights (ours saved, then loaded by transformers):
  1. training step (forward + backward of a next-token loss) tokens/s, ours / transformers' LlamaForCausalLM;
     target >= 1.0;
  2. batched greedy decoding new tokens/s at batch 8, 64-token prompts, 128 new tokens, ours `generate` /
     transformers' `generate`; target >= 3.0 (on small models transformers spends most of its time in per-step
     overhead).
Runs of ours and theirs alternate and each figure is the median of --repeats runs, so load from other processes
hits both alike. transformers is a test oracle, imported here only.

`sft`, `dpo` and `feedback` compare our scripts with what a user would otherwise run, each in one run on the same
model directory (the preset with seeded random weights, saved once by model.py's save_pretrained and loaded by both
sides) and the same data:
  sft       useful (non-pad) tokens/s of sft.py vs TRL's SFTTrainer on LlamaForCausalLM, both fed data.py's ids and
            loss masks (TRL: input_ids + completion_mask), TRL padding-free and best-fit-decreasing packing (both
            exact here, the table says by how much); target >= 1.5;
  dpo       pairs/s of dpo.py vs TRL's DPOTrainer, on IEFeedback pairs made by feedback.py's functions, the
            reference model run on the fly on both sides; target >= 1.3;
  feedback  new tokens/s of feedback.py's sampling path (model.generate, 5 samples per prompt, temperature 1, top-p
            1) vs transformers' generate with num_return_sequences=5 on the same prompts in the same groups, new
            tokens counted exactly up to each row's first EOS; target >= 3.0.
Our training scripts run as a user runs them (a subprocess: `python sft.py --model DIR --data FILE ...`, one process)
and their metrics.jsonl is read back; TRL runs in this process with the settings matched flag by flag (fp32 on the
CPU, no gradient checkpointing, same micro-batch, accumulation, max length, lr, schedule and thread count). Both
sides run the same warm-up steps and then time the same number of optimizer steps (by default one epoch's worth, so
both time about the same examples); runs alternate, and --repeats > 1 gives medians. On a shared machine use
--threads 1: with 2 threads and other processes busy, threads wait on each other and every figure halves or worse.
trl and transformers are test oracles, imported here only.
"""
import contextlib
import dataclasses
import io
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]  # the repository root: the top-level modules this tool measures
sys.path.insert(0, str(REPO))

from config import flag, parse_config  # noqa: E402
from data import DEFAULT_TOKENIZER  # noqa: E402


# ----------------------------------------------------------------------------------------------------------------------
# tools/bench.py model


# LLaMA-2's 32,000-token vocabulary on a small LLaMA-shaped model (MHA, head dim 64, Meta's SwiGLU rule): the output
# layer and its logits weigh here as they do at 7B, where the tiny (512) and demo (2,048) vocabularies let per-step
# overhead dominate decoding.
BENCH_PRESETS = {"vocab32k": dict(dim=256, n_layers=4, n_heads=4, n_kv_heads=4, vocab_size=32000, multiple_of=256,
                                  max_seq_len=512)}


@dataclass
class ModelBenchConfig:
    preset: str = flag("tiny", "model.py preset (issue 2: 'the same tiny config'), or vocab32k: d 256, 4 layers, "
                               "LLaMA-2's 32,000-token vocabulary")
    device: str = flag("cpu", "cpu or cuda")
    train_batch: int = flag(8, "training step: sequences per batch")
    train_len: int = flag(256, "training step: tokens per sequence")
    train_steps: int = flag(5, "training step: steps per timed run")
    decode_batch: int = flag(8, "decoding: prompts per batch (issue 2: 8)")
    prompt_len: int = flag(64, "decoding: prompt tokens (issue 2: 64)")
    new_tokens: int = flag(128, "decoding: new tokens, greedy (issue 2: 128)")
    repeats: int = flag(5, "timed runs of each, alternating ours and theirs; the median counts")
    threads: int = flag(0, "torch CPU threads (0: torch's default)")
    seed: int = flag(0, "weights and token ids")


def _timed(fn, device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _median_pair(fn_ours, fn_theirs, repeats: int, device: str) -> tuple[float, float]:
    fn_ours(), fn_theirs()   # warm-up (allocations, lazy inits)
    ours, theirs = [], []
    for _ in range(repeats):
        ours.append(_timed(fn_ours, device))
        theirs.append(_timed(fn_theirs, device))
    return statistics.median(ours), statistics.median(theirs)


def bench_model(cfg: ModelBenchConfig) -> None:
    import transformers

    import model as llama

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    args = llama.ModelArgs(**BENCH_PRESETS[cfg.preset]) if cfg.preset in BENCH_PRESETS else \
        llama.ModelArgs.from_name(cfg.preset)
    ours = llama.Transformer(args)
    ours.init_weights(seed=cfg.seed)
    with tempfile.TemporaryDirectory() as tmp:   # the same weights in both: ours saved, transformers loads them
        ours.save_pretrained(tmp)
        theirs = transformers.LlamaForCausalLM.from_pretrained(tmp, dtype=torch.float32)
    ours, theirs = ours.to(cfg.device), theirs.to(cfg.device)
    theirs.generation_config.eos_token_id = None   # both decode exactly new_tokens tokens
    gen = torch.Generator().manual_seed(cfg.seed)
    print(f"preset {cfg.preset}: {sum(p.numel() for p in ours.parameters()):,} parameters, device {cfg.device}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, transformers {transformers.__version__}")

    # 1. Training step: forward + backward of the same next-token loss on both.
    x = torch.randint(0, args.vocab_size, (cfg.train_batch, cfg.train_len), generator=gen).to(cfg.device)

    def train(net, logits_of):
        def run():
            for _ in range(cfg.train_steps):
                logits = logits_of(net, x)
                F.cross_entropy(logits[:, :-1].flatten(0, 1), x[:, 1:].flatten()).backward()
                net.zero_grad(set_to_none=True)
        return run

    with torch.no_grad():
        diff = (ours(x) - theirs(x).logits).abs().max().item()
    print(f"same weights: max |logits ours - transformers| = {diff:.2e}")
    t_ours, t_theirs = _median_pair(train(ours, lambda n, t: n(t)), train(theirs, lambda n, t: n(t).logits),
                                    cfg.repeats, cfg.device)
    n_tok = cfg.train_steps * cfg.train_batch * cfg.train_len
    train_ratio = t_theirs / t_ours
    print(f"training step ({cfg.train_batch} x {cfg.train_len} tokens): ours {n_tok / t_ours:,.0f} tokens/s, "
          f"transformers {n_tok / t_theirs:,.0f} tokens/s")

    # 2. Batched greedy decoding.
    prompts = torch.randint(0, args.vocab_size, (cfg.decode_batch, cfg.prompt_len), generator=gen).to(cfg.device)
    out = {}

    def decode_ours():
        out["ours"] = llama.generate(ours, prompts.tolist(), cfg.new_tokens, batch_size=cfg.decode_batch)

    def decode_theirs():
        with torch.no_grad():
            out["theirs"] = theirs.generate(prompts, attention_mask=torch.ones_like(prompts), do_sample=False,
                                            max_new_tokens=cfg.new_tokens, pad_token_id=0)[:, cfg.prompt_len:].tolist()

    t_ours, t_theirs = _median_pair(decode_ours, decode_theirs, cfg.repeats, cfg.device)
    n_new = cfg.decode_batch * cfg.new_tokens
    decode_ratio = t_theirs / t_ours
    print(f"greedy decoding (batch {cfg.decode_batch}, {cfg.prompt_len}-token prompts, {cfg.new_tokens} new): "
          f"ours {n_new / t_ours:,.0f} new tokens/s, transformers {n_new / t_theirs:,.0f} new tokens/s, "
          f"same tokens: {out['ours'] == out['theirs']}")
    print(f"train_step_ratio {train_ratio:.2f}  (ours / transformers tokens/s; target >= 1.0)")
    print(f"decode_ratio {decode_ratio:.2f}  (ours / transformers new tokens/s; target >= 3.0)")


# ----------------------------------------------------------------------------------------------------------------------
# What sft, dpo and feedback share: one model directory for both sides, our scripts as subprocesses, TRL's clock

def make_model_dir(path: Path, preset: str, seed: int) -> Path:
    """The preset with seeded random weights, written once by model.py's save_pretrained (Hugging Face format, with
    tokenizer.model beside it): our scripts take it as --model, transformers loads it with from_pretrained."""
    import model as llama

    net = llama.Transformer(llama.ModelArgs.from_name(preset))
    net.init_weights(seed=seed)
    net.save_pretrained(path, tokenizer_path=DEFAULT_TOKENIZER)
    return path


def load_hf(model_dir: Path):
    import transformers

    return transformers.LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32)


def hf_tokenizer(model_dir: Path):
    """The export's tokenizer as transformers loads it (tokenizer.json). TRL only asks it for the pad/eos ids here:
    the data reaches TRL already tokenised by data.py, so both sides train on the very same ids and loss masks."""
    import transformers

    return transformers.AutoTokenizer.from_pretrained(model_dir)


def run_ours(script: str, argv: list[str], out_dir: Path, threads: int) -> list[dict]:
    """Run `python script argv --out_dir OUT_DIR` as a user would (one process) and return its metrics.jsonl rows."""
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)   # torch's intra-op threads in the child, as set_num_threads here
    cmd = [sys.executable, str(REPO / script), *argv, "--out_dir", str(out_dir)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"error: `{' '.join(cmd)}` failed with exit code {proc.returncode}:\n{proc.stderr[-3000:]}")
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines() if line]


def ours_rate(rows: list[dict], warmup: int, timed: int, per_step: str) -> tuple[float, float]:
    """(amount, seconds) over optimizer steps warmup+1 .. warmup+timed of our metrics.jsonl, where the amount of a
    step is its rate `per_step` (e.g. tokens_per_s) times its step_time_s."""
    rows = rows[warmup:warmup + timed]
    if len(rows) < timed:
        sys.exit(f"error: our run logged {len(rows) + warmup} steps, fewer than --warmup_steps + --timed_steps")
    return sum(r[per_step] * r["step_time_s"] for r in rows), sum(r["step_time_s"] for r in rows)


def step_clock():
    """A transformers Trainer callback that notes, at the end of every optimizer step, the time and the trainer's
    count of input tokens so far (`_total_train_tokens`: the attention-mask sum, i.e. non-pad tokens, or the packed
    length when padding-free). marks[k] = (seconds, tokens) after step k; marks[0] = the start of training. A step's
    time runs from the end of the previous one, so it holds everything the trainer does per step."""
    import transformers

    class StepClock(transformers.TrainerCallback):
        def __init__(self):
            self.trainer, self.marks = None, []

        def on_train_begin(self, args, state, control, **kwargs):
            self.marks = [(time.perf_counter(), 0)]

        def on_step_end(self, args, state, control, **kwargs):
            self.marks.append((time.perf_counter(), getattr(self.trainer, "_total_train_tokens", 0)))

    return StepClock()


def clock_rate(clock, warmup: int, timed: int) -> tuple[int, float]:
    """(tokens, seconds) over steps warmup+1 .. warmup+timed of a StepClock."""
    (t0, n0), (t1, n1) = clock.marks[warmup], clock.marks[warmup + timed]
    return n1 - n0, t1 - t0


def alternate_runs(runs: dict, repeats: int, work: Path) -> dict[str, list[float]]:
    """Run each side `repeats` times, alternating (ours, theirs, ours, theirs, ...) so that load from other processes
    hits all alike; each run returns (amount, seconds). Returns every run's rate per side."""
    rates = {name: [] for name in runs}
    for r in range(repeats):
        for name, run in runs.items():
            amount, seconds = run(work / f"{name.replace(' ', '_')}.{r}")
            rates[name].append(amount / seconds)
    return rates


def trl_common(out_dir: Path, cfg) -> dict:
    """TrainingArguments every TRL run here shares: fp32 on the CPU (TRL's configs default to bf16 and to gradient
    checkpointing: both off, as in our CPU runs), no checkpoints, no reporting, the same steps, lr and seed."""
    return dict(output_dir=str(out_dir), max_steps=cfg.warmup_steps + cfg.timed_steps, learning_rate=cfg.lr,
                gradient_accumulation_steps=cfg.accumulation, weight_decay=0.0, max_grad_norm=1.0, bf16=False,
                activation_checkpointing=False, use_cpu=True, report_to="none", save_strategy="no", seed=cfg.seed,
                dataloader_num_workers=0, disable_tqdm=True, logging_steps=10)


def trainer_bench_setup(cfg, name: str) -> tuple[Path, Path]:
    """The start of the sft and dpo benchmarks: libraries quiet, --threads, a fresh work directory and a random
    model of --preset in it. Returns (work directory, model directory)."""
    quiet_libraries()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    work = Path(tempfile.mkdtemp(prefix=f"bench_{name}_"))
    return work, make_model_dir(work / "model", cfg.preset, cfg.seed)


def quiet_libraries() -> None:
    """transformers/datasets/TRL warnings and progress bars off (TRL warns that padding-free and packing want a
    flash-attention kernel: with SDPA they are exact here as long as no KV cache is made, which the sft table shows)."""
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[c]) for r in [header] + rows) for c in range(len(header))]
    for r in [header] + rows:
        print("  ".join(v.ljust(w) if c == 0 else v.rjust(w) for c, (v, w) in enumerate(zip(r, widths))))


# ----------------------------------------------------------------------------------------------------------------------
# tools/bench.py sft


@dataclass
class SFTBenchConfig:
    preset: str = flag("demo", "model.py preset with seeded random weights, the same for both sides (its vocabulary "
                               "must be assets/tokenizer.model's: 'demo', the embedded default)")
    conversations: int = flag(400, "IEInstruct conversations: the first N of the embedded default's file (data.py's "
                                   "builder, synthetic IE + general chat), the same file for both sides")
    max_len: int = flag(1024, "tokens per example, longer ones truncated (sft.py's demo setting)")
    micro_batch_size: int = flag(4, "sequences per forward pass (sft.py's demo setting)")
    accumulation: int = flag(4, "micro-batches per optimizer step (sft.py's demo: 16 = 4 x 4)")
    lr: float = flag(1e-3, "peak learning rate, cosine schedule with 3% warmup on both sides (sft.py's demo)")
    warmup_steps: int = flag(3, "optimizer steps run first and not timed, on both sides")
    timed_steps: int = flag(0, "optimizer steps timed, on both sides (0: one epoch's worth, so both sides time "
                               "about the same examples: ours groups lengths, TRL draws at random)")
    trl_modes: str = flag("padding_free,bfd", "TRL runs, comma-separated: padded (TRL's default), padding_free "
                                              "(each micro-batch one row, positions restart per example), bfd "
                                              "(best-fit-decreasing packing into max_len rows, --bfd_rows per "
                                              "micro-batch)")
    bfd_rows: int = flag(1, "bfd: packed rows of max_len tokens per micro-batch (1 row ~ 10 of our examples)")
    repeats: int = flag(1, "runs of each side, alternating; the median counts")
    threads: int = flag(0, "torch CPU threads on both sides (0: torch's default; on a shared, loaded machine 1 "
                           "gives steadier figures: threads that wait on each other suffer most from load)")
    seed: int = flag(0, "weights, data and data order")


def hf_packed_logits_diff(hf, examples: list[tuple]) -> float:
    """max |logits| difference between the examples run one by one and run as TRL's padding-free collator feeds them
    (one row, no attention mask, position_ids restarting at 0 per example: transformers then builds a block-diagonal
    causal mask from the positions). 0 up to rounding means padding-free / bfd training is exact here."""
    ids = [torch.tensor(i) for i, _ in examples]
    with torch.no_grad():
        alone = torch.cat([hf(x[None]).logits[0] for x in ids])                            # (sum T, V)
        positions = torch.cat([torch.arange(len(x)) for x in ids])[None]                  # (1, sum T)
        # use_cache=False as TRL trains: with a cache, transformers ignores the packing in position_ids
        packed = hf(torch.cat(ids)[None], position_ids=positions, use_cache=False).logits[0]   # (sum T, V)
    return (alone - packed).abs().max().item()


def bench_sft(cfg: SFTBenchConfig) -> None:
    import datasets
    import transformers
    import trl

    import data
    import model as llama

    work, model_dir = trainer_bench_setup(cfg, "sft")
    # The IEInstruct slice: the embedded default's builder, first N conversations (IE and general chat, shuffled).
    with contextlib.redirect_stdout(io.StringIO()):   # the builder prints its statistics table
        data.build(data.IEInstructConfig(out=str(work / "built.jsonl"), seed=cfg.seed, synthetic_n_train=30), progress=False)
    lines = (work / "built.jsonl").read_text().splitlines()[:cfg.conversations]
    (work / "ie_instruct.jsonl").write_text("".join(line + "\n" for line in lines))
    examples, stats = data.tokenize_sft(llama.Tokenizer(DEFAULT_TOKENIZER),
                                        data.load_conversations(work / "ie_instruct.jsonl"),
                                        cfg.max_len)
    lengths = [len(ids) for ids, _ in examples]
    if not cfg.timed_steps:
        cfg = dataclasses.replace(cfg, timed_steps=math.ceil(len(examples) / (cfg.micro_batch_size * cfg.accumulation)))
    n_steps = cfg.warmup_steps + cfg.timed_steps
    print(f"preset {cfg.preset}, {len(examples)} examples ({stats}), mean {statistics.mean(lengths):.0f} / max "
          f"{max(lengths)} tokens; micro-batch {cfg.micro_batch_size} x {cfg.accumulation} accumulation, max_len "
          f"{cfg.max_len}, lr {cfg.lr}; {cfg.warmup_steps} warm-up + {cfg.timed_steps} timed steps; "
          f"{torch.get_num_threads()} threads; torch {torch.__version__}, transformers {transformers.__version__}, "
          f"trl {trl.__version__}; files in {work}")

    def ours(out_dir: Path) -> tuple[float, float]:
        # sft.py as a user runs it, the same settings flag by flag; every token of the step weighs the same
        # (token_mean), as in transformers' loss with gradient accumulation.
        rows = run_ours("sft.py", ["--model", str(model_dir), "--data", str(work / "ie_instruct.jsonl"),
                                   "--max_len", str(cfg.max_len), "--micro_batch_size", str(cfg.micro_batch_size),
                                   "--global_batch_size", str(cfg.micro_batch_size * cfg.accumulation),
                                   "--lr", str(cfg.lr), "--max_steps", str(n_steps), "--checkpoint_every", "0",
                                   "--loss_normalization", "token_mean", "--group_by_length",   # the demo's batches
                                   "--seed", str(cfg.seed)], out_dir, cfg.threads)
        notes["sft.py"] = f"padding {statistics.mean(r['padding_share'] for r in rows[cfg.warmup_steps:]):.1%}"
        return ours_rate(rows, cfg.warmup_steps, cfg.timed_steps, "tokens_per_s")

    # TRL: the same ids and loss masks (completion_mask = our labels != -100).
    dataset = datasets.Dataset.from_dict({"input_ids": [ids for ids, _ in examples],
                                          "completion_mask": [[int(x != -100) for x in labels] for _, labels in examples]})

    def theirs(mode: str, out_dir: Path) -> tuple[float, float]:
        hf = load_hf(model_dir)
        if mode == "padded":
            notes[f"TRL {mode}"] = "random batches padded to their longest"
        else:
            diff = hf_packed_logits_diff(hf, examples[:cfg.micro_batch_size])
            notes[f"TRL {mode}"] = f"exact: max |logits packed - alone| {diff:.0e}"
        # The ids are already cut to max_len (data.tokenize_sft); TRL >= 1 refuses a max_length it would not enforce
        # (padding-free without packing), so that mode gets none.
        args = trl.SFTConfig(**trl_common(out_dir, cfg), lr_scheduler_type="cosine", warmup_steps=0.03,
                             per_device_train_batch_size=cfg.bfd_rows if mode == "bfd" else cfg.micro_batch_size,
                             max_length=None if mode == "padding_free" else cfg.max_len, completion_only_loss=True,
                             padding_free=mode == "padding_free", packing=mode == "bfd", packing_strategy="bfd")
        clock = step_clock()
        trainer = trl.SFTTrainer(model=hf, args=args, train_dataset=dataset, processing_class=hf_tokenizer(model_dir),
                                 callbacks=[clock])
        clock.trainer = trainer
        with contextlib.redirect_stdout(io.StringIO()):   # the Trainer prints its logs
            trainer.train()
        return clock_rate(clock, cfg.warmup_steps, cfg.timed_steps)

    modes = [m for m in cfg.trl_modes.split(",") if m]
    if unknown := set(modes) - {"padded", "padding_free", "bfd"}:
        sys.exit(f"error: --trl_modes: unknown {sorted(unknown)}; expected padded, padding_free or bfd")
    runs = {"sft.py": ours} | {f"TRL {m}": (lambda out, m=m: theirs(m, out)) for m in modes}
    notes = {}
    rate = alternate_runs(runs, cfg.repeats, work)
    print_table(["run", "useful tokens/s (median)", "each run", "note"],
                [[name, f"{statistics.median(r):,.0f}", " ".join(f"{x:,.0f}" for x in r), notes.get(name, "")]
                 for name, r in rate.items()])
    best = max((name for name in rate if name != "sft.py"), key=lambda name: statistics.median(rate[name]))
    ratio = statistics.median(rate["sft.py"]) / statistics.median(rate[best])
    print(f"sft_tokens_per_s_ratio: {ratio:.2f}  (sft.py / {best}, the fastest TRL run; target >= 1.5)")


# ----------------------------------------------------------------------------------------------------------------------
# tools/bench.py dpo


@dataclass
class DPOBenchConfig:
    preset: str = flag("demo", "model.py preset with seeded random weights: policy and reference on both sides")
    pairs: int = flag(120, "IEFeedback pairs made by feedback.py's functions (see make_ie_feedback)")
    max_len: int = flag(1024, "tokens per side; pairs with a longer side are left out on both sides (dpo.py's demo)")
    micro_batch_size: int = flag(2, "pairs per forward pass (dpo.py's demo setting)")
    accumulation: int = flag(4, "micro-batches per optimizer step (dpo.py's demo: 8 = 2 x 4)")
    beta: float = flag(0.1, "DPO beta (paper appendix B.2: 0.1)")
    lr: float = flag(2e-5, "peak learning rate, linear schedule with 10% warmup on both sides (dpo.py's demo)")
    warmup_steps: int = flag(2, "optimizer steps run first and not timed, on both sides")
    timed_steps: int = flag(0, "optimizer steps timed, on both sides (0: one epoch's worth, so both sides time "
                               "about the same pairs: ours groups lengths, TRL draws at random)")
    repeats: int = flag(1, "runs of each side, alternating; the median counts")
    threads: int = flag(0, "torch CPU threads on both sides (0: torch's default; 1 is steadier on a loaded machine)")
    seed: int = flag(0, "weights, data and data order")


def make_ie_feedback(path: Path, n_pairs: int, seed: int) -> str:
    """IEFeedback-format pairs made with feedback.py's own functions, without a model to sample: the prompt pool
    (`ie_feedback_prompts` on synthetic.py's training records), five stand-in "samples" per prompt = the gold answers
    of five other prompts of the same data set (answers of the right format and length, mostly wrong), scored with
    `score_sample` (character BLEU), turned into pairs by `online_pairs` / `offline_pairs`, mixed by `mix_pairs`
    and written by `write_ie_feedback`. Returns the mix's summary line."""
    import random

    import feedback
    import synthetic

    records = synthetic.generate_corpus(seed, 60, 0)["train"]
    pool, _ = feedback.ie_feedback_prompts(records, max_per_dataset=4 * n_pairs, seed=seed)
    rng = random.Random(seed)
    by_dataset = {}
    for p in pool:
        by_dataset.setdefault(p["dataset"], []).append(p)
    sampled, scores = [], []
    for p in pool:
        others = [q["messages"][-1]["content"] for q in by_dataset[p["dataset"]] if q is not p]
        if len(others) < 5:
            continue
        samples = rng.sample(others, 5)
        sampled.append({**p, "samples": samples})
        scores.append([feedback.score_sample(s, p["messages"][-1]["content"]) for s in samples])
    online, _ = feedback.online_pairs(sampled, scores)
    offline, _ = feedback.offline_pairs(sampled, scores)
    pairs, note = feedback.mix_pairs(online, offline, n_pairs, seed=seed, rule="fill")
    feedback.write_ie_feedback(pairs, path)
    return note


def trl_preference_rows(pairs: list[tuple]) -> tuple[dict, int]:
    """Our tokenised pairs ((chosen ids, labels), (rejected ids, labels)) as TRL's DPO columns: prompt_ids = the ids
    before the final answer (the shared prefix), chosen_ids / rejected_ids = the rest. TRL then trains on exactly
    our ids and takes log-probs of exactly the final answer + EOS, as our labels do (our labels also cover earlier
    assistant turns, the few-shot demonstrations; they are the same tokens under the same prefix on
    both sides of a pair, so they cancel in the DPO loss). Returns (columns, number of pairs whose sides do not
    share that prefix: left out)."""
    rows, bad = {"prompt_ids": [], "chosen_ids": [], "rejected_ids": []}, 0
    for (c_ids, c_lab), (r_ids, r_lab) in pairs:
        cut = [max(i for i, x in enumerate(lab) if x == -100) + 1 for lab in (c_lab, r_lab)]   # final answer start
        if cut[0] != cut[1] or c_ids[:cut[0]] != r_ids[:cut[1]]:
            bad += 1
            continue
        rows["prompt_ids"].append(c_ids[:cut[0]])
        rows["chosen_ids"].append(c_ids[cut[0]:])
        rows["rejected_ids"].append(r_ids[cut[1]:])
    return rows, bad


def bench_dpo(cfg: DPOBenchConfig) -> None:
    import datasets
    import transformers
    import trl

    import data
    import model as llama

    work, model_dir = trainer_bench_setup(cfg, "dpo")
    note = make_ie_feedback(work / "made.json", cfg.pairs, cfg.seed)
    # Keep the pairs whose both sides fit max_len, so neither side truncates (they truncate differently).
    tokenizer = llama.Tokenizer(DEFAULT_TOKENIZER)
    records = data.load_conversations(work / "made.json")
    fits = [r for r in records if all(len(data.tokenize_chat(tokenizer, r[s])[0]) <= cfg.max_len
                                      for s in ("chosen", "rejected"))]
    (work / "ie_feedback.json").write_text(json.dumps(fits, ensure_ascii=False))
    pairs, _ = data.tokenize_preference(tokenizer, fits, cfg.max_len)
    rows, bad = trl_preference_rows(pairs)
    if bad:
        sys.exit(f"error: {bad} pairs whose chosen and rejected sides do not share the prompt's ids")
    lengths = [len(p) + max(len(c), len(r)) for p, c, r in zip(*rows.values())]
    per_step = cfg.micro_batch_size * cfg.accumulation
    if not cfg.timed_steps:
        cfg = dataclasses.replace(cfg, timed_steps=math.ceil(len(pairs) / per_step))
    n_steps = cfg.warmup_steps + cfg.timed_steps
    print(f"preset {cfg.preset}, {len(pairs)} pairs ({note}; {len(records) - len(fits)} over {cfg.max_len} tokens "
          f"left out), longer side mean {statistics.mean(lengths):.0f} / max {max(lengths)} tokens; "
          f"{cfg.micro_batch_size} pairs x {cfg.accumulation} accumulation, beta {cfg.beta}, lr {cfg.lr}, reference "
          f"on the fly; {cfg.warmup_steps} warm-up + {cfg.timed_steps} timed steps; {torch.get_num_threads()} threads; "
          f"transformers {transformers.__version__}, trl {trl.__version__}; files in {work}")

    def ours(out_dir: Path) -> tuple[float, float]:
        # dpo.py as a user runs it, the reference a frozen copy computed on the fly (--reference online).
        rows = run_ours("dpo.py", ["--model", str(model_dir), "--data", str(work / "ie_feedback.json"),
                                   "--max_len", str(cfg.max_len), "--micro_batch_size", str(cfg.micro_batch_size),
                                   "--global_batch_size", str(per_step), "--beta", str(cfg.beta), "--lr", str(cfg.lr),
                                   "--reference", "online", "--max_steps", str(n_steps), "--checkpoint_every", "0",
                                   "--seed", str(cfg.seed)], out_dir, cfg.threads)
        return ours_rate(rows, cfg.warmup_steps, cfg.timed_steps, "pairs_per_s")

    # TRL: the same ids (pre-tokenised: its own tokenising step is skipped), a reference model loaded from the same
    # directory and run on the fly (precompute_ref_log_probs=False), the sigmoid (DPO) loss.
    class PreTokenizedDPOTrainer(trl.DPOTrainer):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            return dataset   # already prompt_ids / chosen_ids / rejected_ids

    def theirs(out_dir: Path) -> tuple[float, float]:
        args = trl.DPOConfig(**trl_common(out_dir, cfg), lr_scheduler_type="linear", warmup_steps=0.1,
                             per_device_train_batch_size=cfg.micro_batch_size, max_length=cfg.max_len,
                             beta=cfg.beta, loss_type=["sigmoid"], precompute_ref_log_probs=False)
        clock = step_clock()
        trainer = PreTokenizedDPOTrainer(model=load_hf(model_dir), ref_model=load_hf(model_dir), args=args,
                                         train_dataset=datasets.Dataset.from_dict(rows),
                                         processing_class=hf_tokenizer(model_dir), callbacks=[clock])
        with contextlib.redirect_stdout(io.StringIO()):   # the Trainer prints its logs
            trainer.train()
        return cfg.timed_steps * per_step, clock_rate(clock, cfg.warmup_steps, cfg.timed_steps)[1]

    rate = alternate_runs({"dpo.py": ours, "TRL DPOTrainer": theirs}, cfg.repeats, work)
    print_table(["run", "pairs/s (median)", "each run"],
                [[name, f"{statistics.median(r):.2f}", " ".join(f"{x:.2f}" for x in r)] for name, r in rate.items()])
    ratio = statistics.median(rate["dpo.py"]) / statistics.median(rate["TRL DPOTrainer"])
    print(f"dpo_pairs_per_s_ratio: {ratio:.2f}  (dpo.py / TRL; target >= 1.3)")


# ----------------------------------------------------------------------------------------------------------------------
# tools/bench.py feedback


@dataclass
class FeedbackBenchConfig:
    preset: str = flag("demo", "model.py preset with seeded random weights (ignored with --model)")
    model: str = flag("", "a model directory to sample instead (e.g. runs/sft/final)")
    prompts: int = flag(18, "IEFeedback pool prompts to sample (feedback.py's pool from synthetic.py's records; "
                            "only prompts with room for max_new_tokens in the context)")
    num_samples: int = flag(5, "samples per prompt (paper section 4: 5)")
    temperature: float = flag(1.0, "sampling temperature (paper section 4: 1.0)")
    top_p: float = flag(1.0, "nucleus top-p (docs/fidelity.md §3: 1.0)")
    max_new_tokens: int = flag(160, "new tokens per sample at most (feedback.py's demo setting)")
    batch_size: int = flag(32, "sequences decoded together (feedback.py's default: 32 -> 6 prompts x 5 samples); "
                               "transformers gets the same prompts in the same groups")
    repeats: int = flag(3, "timed runs of each, alternating ours and theirs; the median counts")
    threads: int = flag(0, "torch CPU threads (0: torch's default)")
    seed: int = flag(0, "weights and prompt pool")


def bench_feedback(cfg: FeedbackBenchConfig) -> None:
    import transformers

    import data
    import feedback
    import model as llama
    import synthetic

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    work = Path(tempfile.mkdtemp(prefix="bench_feedback_"))
    model_dir = Path(cfg.model) if cfg.model else make_model_dir(work / "model", cfg.preset, cfg.seed)
    ours = llama.Transformer.from_pretrained(model_dir, dtype=torch.float32).eval()
    theirs = load_hf(model_dir).eval()
    tokenizer = llama.Tokenizer(model_dir / "tokenizer.model")
    eos = tokenizer.eos_id
    pool, _ = feedback.ie_feedback_prompts(synthetic.generate_corpus(cfg.seed, 30, 0)["train"], seed=cfg.seed)
    for p in pool:
        p["prompt_ids"] = data.encode_prompt(tokenizer, p["messages"][:-1])
    room = ours.args.max_seq_len - cfg.max_new_tokens
    todo = [i for i, p in enumerate(pool) if len(p["prompt_ids"]) <= room][:cfg.prompts]
    fcfg = feedback.FeedbackConfig(num_samples=cfg.num_samples, temperature=cfg.temperature, top_p=cfg.top_p,
                                   max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size, seed=cfg.seed)
    # transformers gets feedback.py's batches: prompts longest first, batch_size // num_samples prompts per call.
    per_call = max(1, cfg.batch_size // cfg.num_samples)
    order = sorted(todo, key=lambda i: -len(pool[i]["prompt_ids"]))
    groups = [order[k:k + per_call] for k in range(0, len(order), per_call)]
    print(f"{'model ' + str(model_dir) if cfg.model else 'preset ' + cfg.preset}: {len(todo)} prompts (mean "
          f"{statistics.mean(len(pool[i]['prompt_ids']) for i in todo):.0f} tokens) x {cfg.num_samples} samples, "
          f"{cfg.max_new_tokens} new tokens at most, temperature {cfg.temperature}, top-p {cfg.top_p}, "
          f"{per_call} prompts per call; {torch.get_num_threads()} threads, transformers {transformers.__version__}")

    counts = {}

    def sample_ours():   # feedback.py's sampling path itself: generate, decode, append to the samples file
        counts["ours"] = feedback.sample_prompts(ours, tokenizer, pool, todo, fcfg, work / "samples.jsonl", False)

    def sample_theirs():   # the same prompts and groups through transformers' generate, decoded the same way
        n = 0
        for group in groups:
            prompts = [pool[i]["prompt_ids"] for i in group]
            width = max(map(len, prompts))
            ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])   # left-padded, (P, width)
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
            with torch.no_grad():
                out = theirs.generate(ids, attention_mask=mask, do_sample=True, temperature=cfg.temperature,
                                      top_p=cfg.top_p, top_k=0, num_return_sequences=cfg.num_samples,
                                      max_new_tokens=cfg.max_new_tokens, eos_token_id=eos, pad_token_id=0)
            for row in out[:, width:].tolist():   # new tokens up to the first EOS (included), as ours counts them
                row = row[:row.index(eos) + 1] if eos in row else row
                n += len(row)
                tokenizer.decode(row)
        counts["theirs"] = n

    t_ours, t_theirs = _median_pair(sample_ours, sample_theirs, cfg.repeats, "cpu")
    rate_ours, rate_theirs = counts["ours"] / t_ours, counts["theirs"] / t_theirs
    print_table(["run", "new tokens", "seconds (median)", "new tokens/s"],
                [["feedback.py (model.generate)", f"{counts['ours']:,}", f"{t_ours:.1f}", f"{rate_ours:,.0f}"],
                 ["transformers generate", f"{counts['theirs']:,}", f"{t_theirs:.1f}", f"{rate_theirs:,.0f}"]])
    print(f"feedback_new_tokens_per_s_ratio: {rate_ours / rate_theirs:.2f}  (ours / transformers; target >= 3.0)")


# ----------------------------------------------------------------------------------------------------------------------


COMMANDS = {"model": (ModelBenchConfig, bench_model, "model.py against transformers: training step and decoding"),
            "sft": (SFTBenchConfig, bench_sft, "sft.py against TRL's SFTTrainer: useful tokens/s"),
            "dpo": (DPOBenchConfig, bench_dpo, "dpo.py against TRL's DPOTrainer: pairs/s"),
            "feedback": (FeedbackBenchConfig, bench_feedback,
                         "feedback.py's sampling against transformers' generate: new tokens/s")}


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in COMMANDS:
        print(__doc__)
        print(f"usage: python tools/bench.py {{{','.join(COMMANDS)}}} ... (--help on each)")
        sys.exit(0 if argv and argv[0] in ("-h", "--help") else 2)
    cls, run, help = COMMANDS[argv[0]]
    cfg, _ = parse_config(cls, argv[1:], prog=f"tools/bench.py {argv[0]}", description=help)
    run(cfg)


if __name__ == "__main__":
    main()
