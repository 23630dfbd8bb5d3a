"""The plumbing around the training loops of sft.py and dpo.py (and feedback.py's start), not the method:

- `start_run`: every script's start-up (settings, process group, seed, checked flags, OUT_DIR/LOCK, config.json);
  `resume_step`, `optimizer_steps`, `checkpoint_if_due`, `finish_run`: the parts of a loop SFT and DPO share.
- `build_fsdp_model`: FSDP2, bf16 compute with fp32 master weights and fp32 gradient reduction on CUDA.
- `epoch_batches` / `rank_micro_batches`: global batches independent of the micro-batch size, the accumulation
  steps and the world size; `lr_at`: the schedules of appendix B.2.
- Checkpoints (torch.distributed.checkpoint, written atomically) and the Hugging Face export.
- Guards: `flag_problems`, `claim_out_dir`, `check_step_finite` (a NaN/inf step is never applied), `fail` (one error
  line); `MetricsLog`, `StopSignal` (SIGTERM -> checkpoint, exit).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
import shutil
import signal
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import NoReturn

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict, get_state_dict,
                                                     set_model_state_dict, set_state_dict)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

import checkpoints
import config
import model as llama
import robust
from robust import atomic_file


# ----------------------------------------------------------------------------------------------------------------
# Processes and devices

@dataclasses.dataclass
class Dist:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(timeout_minutes: float = 30.0) -> Dist:
    """Join the torchrun job (any number of nodes), or make a one-process group for `python script.py`; gloo on
    CPU, NCCL on CUDA. The timeout bounds every collective: a rank left waiting on a dead peer (e.g. on another
    node) fails with an error after this long instead of hanging."""
    timeout, use_cuda, torchrun = timedelta(minutes=timeout_minutes), torch.cuda.is_available(), "RANK" in os.environ
    names = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
    rank, world, local_rank = (int(os.environ[k]) for k in names) if torchrun else (0, 1, 0)
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if torchrun:
        if use_cuda:
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timeout, device_id=device if use_cuda else None)
    else:  # a plain single process: the same code path, with a group of one
        dist.init_process_group("nccl" if use_cuda else "gloo", store=dist.HashStore(), rank=0, world_size=1,
                                timeout=timeout)
    return Dist(rank, world, local_rank, device)


def cleanup_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def end_process(code: int = 0) -> NoReturn:
    """Leave the process group and end the process now, without Python's interpreter teardown: under FSDP2 the
    process group outlives destroy_process_group (DTensor's caches keep DeviceMeshes), and a gloo / NCCL thread that
    touches a Python object during teardown aborts the finished process now and then ("terminate called without an
    active exception", seen in CI after a 2-process sft.py had written its export)."""
    robust.release_lock()
    cleanup_distributed()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def fail(d: Dist, message: str, code: int = 1) -> NoReturn:
    """End the run with ONE line `error: message` on stderr, printed by rank 0 (every rank calls this at the same
    point with the same problem; a progress bar is closed first), and a non-zero exit status."""
    if d.is_main:
        if MetricsLog.active_bar is not None:
            MetricsLog.active_bar.close()
        print(f"error: {message}", file=sys.stderr, flush=True)
    end_process(code)


def print0(d: Dist, *args, **kwargs) -> None:
    if d.is_main:
        print(*args, **kwargs, flush=True)


def all_reduce_sum(d: Dist, *values: float) -> list[float]:
    """Sum python numbers over ranks (float64 on the collective's device)."""
    t = torch.tensor(values, dtype=torch.float64, device=d.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


# ----------------------------------------------------------------------------------------------------------------
# Flags that make no sense are refused at start-up, not hours in

def flag_problems(cfg, world_size: int, context: int | None) -> list[str]:
    """Every problem with sft.py's / dpo.py's flags, one line each (empty: all fine). `context` is the model's
    context length (config.json max_position_embeddings), None when it is unknown."""
    problems = []

    def need(ok: bool, name: str, expected: str) -> None:
        if not ok:
            problems.append(f"--{name} {getattr(cfg, name)}: expected {expected}")

    need(cfg.max_steps > 0 or cfg.max_steps == -1, "max_steps", "a positive number of optimizer steps, or -1 to "
                                                                "train for --epochs")
    need(cfg.epochs >= 1, "epochs", "at least 1 pass over the data")
    need(cfg.global_batch_size >= 1, "global_batch_size", "at least 1")
    need(cfg.micro_batch_size >= 1, "micro_batch_size", "at least 1")
    if cfg.global_batch_size >= 1 and cfg.micro_batch_size >= 1 and cfg.global_batch_size % (cfg.micro_batch_size *
                                                                                             world_size):
        problems.append(f"--global_batch_size {cfg.global_batch_size}: expected a multiple of --micro_batch_size "
                        f"{cfg.micro_batch_size} x {world_size} processes (global = micro x accumulation x world)")
    need(cfg.max_len >= 2, "max_len", "at least 2 tokens")
    if context is not None and cfg.max_len > context:
        problems.append(f"--max_len {cfg.max_len}: expected at most the model's context, {context} tokens "
                        f"(config.json max_position_embeddings); longer batches would fail mid-run")
    need(math.isfinite(cfg.lr) and cfg.lr > 0, "lr", "a positive learning rate")
    need(0.0 <= cfg.warmup_ratio <= 1.0, "warmup_ratio", "a share of the steps in [0, 1]")
    need(cfg.weight_decay >= 0, "weight_decay", "0 or more")
    need(0.0 <= cfg.adam_beta1 < 1.0, "adam_beta1", "a value in [0, 1)")
    need(0.0 <= cfg.adam_beta2 < 1.0, "adam_beta2", "a value in [0, 1)")
    need(cfg.adam_eps > 0, "adam_eps", "a positive number")
    need(cfg.grad_clip >= 0, "grad_clip", "0 (off) or a positive norm")
    need(cfg.checkpoint_every >= 0, "checkpoint_every", "0 (only on a signal) or a positive number of steps")
    need(cfg.keep_last >= 0, "keep_last", "0 (keep all) or a positive number of checkpoints")
    need(cfg.dist_timeout_minutes > 0, "dist_timeout_minutes", "a positive number of minutes")
    need(getattr(cfg, "beta", 1.0) > 0, "beta", "a positive DPO temperature")
    if cfg.resume and cfg.overwrite:
        problems.append("--resume and --overwrite: expected one of them (continue the run, or start it again)")
    return problems


# ----------------------------------------------------------------------------------------------------------------
# The output directory: one run at a time, and a finished run is never silently replaced

def claim_out_dir(out_dir: Path, cfg, d: Dist, check=None) -> None:
    """Make OUT_DIR this run's and write config.json there, or stop with one line (rank 0 decides for all ranks).

    - OUT_DIR/LOCK (host, pid) makes a second run on the same directory refuse at once; it is removed when the
      run ends in any way. A lock left by a killed run is reported; --clear_stale_lock removes it.
    - A trainer's finished run (final/) or one with checkpoints is refused unless --resume or --overwrite (its
      checkpoints are deleted; the old final/ stays until the new export replaces it in one rename).
    - `check(cfg)` (rank 0), when given, may refuse too: it returns the problem, or None."""
    problem = None
    if d.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        problem = robust.take_lock(out_dir, cfg.clear_stale_lock)
        trainer = hasattr(cfg, "resume")
        if problem is None and trainer and not (cfg.resume or cfg.overwrite):
            if (out_dir / "final").exists():
                problem = (f"{out_dir} holds a finished run (final/ is its export); pass --overwrite to train again "
                           f"and replace it, --resume to continue it, or choose another --out_dir")
            elif latest_checkpoint(out_dir):
                problem = (f"{out_dir}/checkpoints/ already holds checkpoints; pass --resume to continue that run, "
                           f"--overwrite to start again, or choose another --out_dir")
        if problem is None and check is not None:
            problem = check(cfg)
        if problem is None:
            if trainer and cfg.overwrite and not cfg.resume:
                shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
            with atomic_file(out_dir / "config.json") as tmp:
                tmp.write_text(json.dumps(dataclasses.asdict(cfg), indent=1))
    box = [problem]  # rank 0's verdict: every rank stops together (rank 0 prints the line) or goes on
    dist.broadcast_object_list(box, src=0)
    if box[0] is not None:
        fail(d, box[0])


def start_run(cls, stage: str, argv=None, inputs=None, check=None, trainer: bool = True):
    """The start of sft.py, dpo.py and feedback.py; returns (cfg, d, out_dir). The settings are the dataclass
    defaults <- config.PRESETS[--preset][stage] <- the flags given, printed by rank 0. `inputs(cfg)` -> {field:
    (default path, the script that writes it)}: an empty input takes the earlier stage's output, which must exist."""
    cfg, explicit = config.parse_config(cls, argv)
    cfg, from_preset = config.apply_preset(cfg, explicit, stage)
    d = init_distributed(cfg.dist_timeout_minutes)
    for name, (default, made_by) in (inputs(cfg) if inputs else {}).items():
        cfg = dataclasses.replace(cfg, **{name: getattr(cfg, name) or str(default)})
        if not Path(getattr(cfg, name)).exists():
            fail(d, f"{getattr(cfg, name)} does not exist; run {made_by} first (or pass --{name})")
    random.seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    torch.manual_seed(cfg.seed)
    print0(d, config.settings_line(cfg, from_preset, explicit))
    if trainer:  # senseless flags (flag_problems) and a missing or unreadable --model: one line each, exit 2
        problems, context = [], None
        if cfg.model and not Path(cfg.model).is_dir():
            problems.append(f"--model {cfg.model}: no such directory; expected a model directory (Meta, Hugging "
                            f"Face or this project's format) with tokenizer.model beside the weights")
        elif cfg.model:  # the model's context length bounds --max_len
            try:
                context = checkpoints.read_model_args(cfg.model).max_seq_len
            except (OSError, ValueError) as e:
                problems.append(f"--model {cfg.model}: {robust.one_line(e)}")
        problems += flag_problems(cfg, d.world_size, context)
        for p in problems:
            print0(d, f"error: {p}", file=sys.stderr)
        if problems:
            end_process(2)
    claim_out_dir(Path(cfg.out_dir), cfg, d, check)
    return cfg, d, Path(cfg.out_dir)


# ----------------------------------------------------------------------------------------------------------------
# The model under FSDP2

def build_fsdp_model(model_dir: str | Path, d: Dist, *, bf16: bool, activation_checkpointing: bool,
                     trainable: bool = True):
    """Load `model_dir` (any format model.py reads) sharded with FSDP2 (`fully_shard` per block, then the root).

    Parameters are fp32 ("master weights", docs/fidelity.md §4: at lr 5e-7 bf16 weights would round updates away);
    with bf16=True (CUDA) forward/backward compute in bf16 and gradients are reduced in fp32. Built on the meta
    device and sharded, each rank allocates only its shard, filled from rank 0's memory-mapped checkpoint. One
    process in fp32 (`python sft.py` on a CPU) has nothing to shard or cast: the plain module is used."""
    args = checkpoints.read_model_args(model_dir)
    with torch.device("meta"):
        net = llama.Transformer(args)
    net.activation_checkpointing = activation_checkpointing
    sharded = d.world_size > 1 or bf16
    if sharded:  # before storage exists, so each rank allocates only its own shard
        mp = (MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16
              else MixedPrecisionPolicy())
        mesh = init_device_mesh(d.device.type, (d.world_size,))
        for block in net.layers:  # one all-gather per block in forward, one reduce-scatter per block in backward
            fully_shard(block, mesh=mesh, mp_policy=mp)
        fully_shard(net, mesh=mesh, mp_policy=mp)  # the root: embeddings, final norm, output layer
    net.to_empty(device=d.device)
    net.init_rope()  # RoPE tables are non-persistent buffers: recompute them after to_empty
    if sharded:
        full_sd = checkpoints.read_state_dict(model_dir) if d.is_main else {}
        set_model_state_dict(net, full_sd, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
        del full_sd
    else:
        net.load_state_dict(checkpoints.read_state_dict(model_dir))  # copies into the fp32 parameters
    if not trainable:
        net.requires_grad_(False)
        net.eval()
    return net, args


def grad_norm_and_clip(net, max_norm: float) -> float:
    """Clip to `max_norm` and return the FULL gradient norm (under FSDP2 a DTensor: the full norm, not a shard's)."""
    norm = torch.nn.utils.clip_grad_norm_(net.parameters(), max_norm if max_norm > 0 else float("inf"))
    return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)


def peak_flops(device: torch.device) -> float | None:
    """Dense bf16 peak FLOP/s of one accelerator, for MFU; None on CPU or an unknown GPU."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    table = (("H200", 989e12), ("H100", 989e12), ("A100", 312e12), ("A10", 125e12), ("L40", 181e12))
    return next((flops for key, flops in table if key in name), None)


def flops_per_token(args, n_params: int, seq_len: int) -> float:
    """Training FLOPs per token: 6 per parameter (forward + backward) plus attention's 12 * layers * dim * T
    (the PaLM paper's appendix B estimate)."""
    return 6 * n_params + 12 * args.n_layers * args.dim * seq_len


# ----------------------------------------------------------------------------------------------------------------
# Batches: which examples each optimizer step trains on, and which rank / micro-batch gets which

def epoch_batches(lengths: list[int], global_batch: int, seed: int, epoch: int, group_by_length: bool = False,
                  group_window: int = 64) -> tuple[list[list[int]], int]:
    """Split one epoch into global batches (lists of example indices), one per optimizer step.

    Default (ADELIE's release: the DataLoader shuffles; docs/fidelity.md): the epoch in a seeded random order, cut
    into consecutive global batches. group_by_length (less padding, but under mean_of_means it changes how much
    each token weighs): windows of `group_window` global batches are sorted by length, cut, and the batches
    shuffled again. The result never depends on the micro-batch size, the accumulation steps or the world size,
    so all of those train on the same examples per step, and a resumed run on the same batches. A last, partial
    batch is filled up with other examples of the epoch (as DistributedSampler does); returns (batches, number
    of repeated examples)."""
    rng = random.Random(f"{seed}-epoch-{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches = []
    window = group_window * global_batch if group_by_length else global_batch
    for w in range(0, len(order), window):
        chunk = order[w:w + window]
        if group_by_length:
            chunk = sorted(chunk, key=lambda i: (lengths[i], i))
        batches += [chunk[i:i + global_batch] for i in range(0, len(chunk), global_batch)]
    last = batches[-1]
    n_fill = global_batch - len(last)
    if n_fill:
        others = [i for i in order if i not in set(last)] or order  # repeats inside one batch only if N < batch
        last += [others[k % len(others)] for k in range(n_fill)]
    if group_by_length:
        rng.shuffle(batches)
    return batches, n_fill


def rank_micro_batches(batch: list[int], lengths: list[int], micro_batch: int, d: Dist,
                       group_by_length: bool = False) -> list[list[int]]:
    """This rank's micro-batches of one global batch: cut into micro-batches in the batch's (random) order, or,
    with group_by_length, sorted by length first (similar lengths share a micro-batch, so little padding); dealt
    round-robin to the ranks."""
    order = sorted(batch, key=lambda i: (lengths[i], i)) if group_by_length else list(batch)
    micro = [order[i:i + micro_batch] for i in range(0, len(order), micro_batch)]
    return micro[d.rank::d.world_size]


def fingerprint(obj) -> str:
    """A short hash of anything JSON can write (the data's lengths: a resume must see the same data)."""
    return hashlib.sha256(json.dumps(obj).encode()).hexdigest()[:16]


def step_plan(cfg, n_examples: int, d: Dist) -> tuple[int, int]:
    """(gradient accumulation steps, total optimizer steps): micro_batch x accumulation x world_size == global batch
    (start_run has refused sizes that do not divide); --max_steps, or --epochs passes over the data."""
    accum = cfg.global_batch_size // (cfg.micro_batch_size * d.world_size)
    return accum, cfg.max_steps if cfg.max_steps > 0 else cfg.epochs * math.ceil(n_examples / cfg.global_batch_size)


def adamw(net, cfg) -> torch.optim.AdamW:
    """AdamW with the run's settings; fused: one kernel per step instead of a loop over the tensors."""
    return torch.optim.AdamW(net.parameters(), lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2), eps=cfg.adam_eps,
                             weight_decay=cfg.weight_decay, fused=True)


def optimizer_steps(cfg, lengths: list[int], start_step: int, total_steps: int, optimizer, d: Dist):
    """The run's optimizer steps from `start_step`: yields (step, epoch, lr, this rank's micro-batches of the step's
    global batch), with the step's learning rate (lr_at) already set in the optimizer."""
    steps_per_epoch = math.ceil(len(lengths) / cfg.global_batch_size)
    for step in range(start_step, total_steps):
        epoch, index = divmod(step, steps_per_epoch)
        if step == start_step or index == 0:  # the epoch's global batches: shuffled, optionally length-grouped
            batches, n_fill = epoch_batches(lengths, cfg.global_batch_size, cfg.seed, epoch, cfg.group_by_length)
            if n_fill:
                print0(d, f"epoch {epoch}: the last step is filled up with {n_fill} examples from the epoch's start")
        lr = lr_at(step, total_steps, cfg.lr, cfg.warmup_ratio, cfg.lr_schedule)
        for group in optimizer.param_groups:
            group["lr"] = lr
        yield step, epoch, lr, rank_micro_batches(batches[index], lengths, cfg.micro_batch_size, d,
                                                  cfg.group_by_length)


# ----------------------------------------------------------------------------------------------------------------
# Learning-rate schedules (appendix B.2), as functions of the optimizer step

def lr_at(step: int, total_steps: int, peak_lr: float, warmup_ratio: float, schedule: str) -> float:
    """Learning rate for optimizer step `step` (0-based), as transformers' get_{cosine,linear}_schedule_with_warmup
    compute it (ADELIE trained with open-instruct, which uses them; warmup steps = int(ratio x total) as there)."""
    warmup = int(warmup_ratio * total_steps)
    if step < warmup:
        return peak_lr * step / max(1, warmup)
    progress = (step - warmup) / max(1, total_steps - warmup)
    if schedule == "cosine":
        return peak_lr * max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
    if schedule == "linear":
        return peak_lr * max(0.0, 1.0 - progress)
    if schedule == "constant":
        return peak_lr
    raise ValueError(f"unknown lr schedule {schedule!r}; expected cosine, linear or constant")


# ----------------------------------------------------------------------------------------------------------------
# Resume checkpoints (torch.distributed.checkpoint), written atomically

def complete_checkpoints(out_dir: Path) -> list[Path]:
    """The COMPLETE checkpoints, oldest first (a COMPLETED marker is written only after every shard is on disk)."""
    return sorted(p for p in (Path(out_dir) / "checkpoints").glob("step_*") if (p / "COMPLETED").exists())


def latest_checkpoint(out_dir: Path) -> Path | None:
    return (complete_checkpoints(out_dir) or [None])[-1]


def rng_state() -> dict:
    """Python's, numpy's, torch's and CUDA's RNG states as numbers, lists and tensors only, so the file loads with
    torch.load(weights_only=True): a checkpoint's RNG file holds data, never code."""
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"]["key"] = numpy_state["state"]["key"].tolist()  # an array would need unpickling
    return {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_if_due(done: int, epoch: int, total_steps: int, cfg, fingerprint: str, stop: "StopSignal",
                      out_dir: Path, net, optimizer, d: Dist, log: "MetricsLog") -> None:
    """After optimizer step `done`: a resume checkpoint every --checkpoint_every steps (none at the last step: the
    export follows), and one when a signal asked the run to stop (SIGTERM / Ctrl-C on any rank), after which it
    exits. Sharded model + optimizer, the trainer state (the data's `fingerprint` and the global batch, which a
    resume must match) and every rank's RNG state go to `step_N.tmp/`, renamed to `step_N/` with a COMPLETED
    marker when all ranks are done: resume never picks up a half-written checkpoint."""
    stopping = stop.any_rank(d)
    every = cfg.checkpoint_every
    if not (stopping or (every > 0 and done % every == 0 and done < total_steps)):
        return
    check_weights_finite(net, f"checkpoint of step {done}", out_dir, d)
    final = out_dir / "checkpoints" / f"step_{done:08d}"
    tmp = final.with_name(final.name + ".tmp")
    if d.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    dist.barrier()
    model_sd, optim_sd = get_state_dict(net, optimizer)
    dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=tmp)
    torch.save(rng_state(), tmp / f"rng_rank{d.rank}.pt")
    if d.is_main:
        (tmp / "trainer_state.json").write_text(json.dumps(
            {"step": done, "epoch": epoch, "global_batch_size": cfg.global_batch_size, "data_fingerprint": fingerprint,
             "world_size": d.world_size, "config": dataclasses.asdict(cfg)}, indent=1))
    dist.barrier()
    if d.is_main:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        (final / "COMPLETED").write_text(time.strftime("%Y-%m-%d %H:%M:%S"))
        for old in complete_checkpoints(out_dir)[:-cfg.keep_last] if cfg.keep_last > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    dist.barrier()
    if stopping:
        print0(d, f"stopped by a signal after step {done}; checkpoint {final}; continue with --resume")
        log.close()
        end_process(143)


def resume_step(cfg, out_dir: Path, net, optimizer, fingerprint: str, d: Dist) -> int:
    """The optimizer step to start from: 0, or with --resume the newest complete checkpoint's (model, optimizer
    and RNG restored). A checkpoint of other data or another global batch size would not continue the same run."""
    if not (cfg.resume and (ckpt := latest_checkpoint(out_dir))):
        return 0
    model_sd, optim_sd = get_state_dict(net, optimizer)
    shards = {"model": model_sd, "optim": optim_sd}
    dcp.load(shards, checkpoint_id=ckpt)
    set_state_dict(net, optimizer, model_state_dict=shards["model"], optim_state_dict=shards["optim"])
    rng_file = ckpt / f"rng_rank{d.rank}.pt"
    if rng_file.exists():  # absent when resuming on a different world size: RNG then restarts from the seed
        set_rng_state(torch.load(rng_file, weights_only=True))
    state = json.loads((ckpt / "trainer_state.json").read_text())
    if state["data_fingerprint"] != fingerprint or state["global_batch_size"] != cfg.global_batch_size:
        fail(d, f"{ckpt} was written for other data or another global batch size; resuming would not continue the "
                f"same run")
    print0(d, f"resumed from {ckpt} at step {state['step']}")
    return state["step"]


def finish_run(net, args, tokenizer_path: Path, out_dir: Path, stats: dict, total_steps: int, d: Dist) -> None:
    """Export OUT_DIR/final (Hugging Face format, with tokenizer.model: transformers, vLLM and lm-evaluation-harness
    load it unchanged), keep the data counts beside it, and end the process (the last thing a run does). Every rank
    calls this: gathering the full state dict is a collective; rank 0 receives it on CPU and writes."""
    if d.is_main:  # before the export: a present final/ (what pipeline.py trusts) has its data counts beside it
        with atomic_file(out_dir / "data_stats.json") as tmp:
            tmp.write_text(json.dumps(stats, indent=1))
    check_weights_finite(net, f"export {out_dir / 'final'}", out_dir, d)
    sd = get_model_state_dict(net, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if d.is_main:
        checkpoints.write_hf_checkpoint(sd, args, out_dir / "final", tokenizer_path=tokenizer_path)
    dist.barrier()
    print0(d, f"done: {total_steps} steps; weights in {out_dir / 'final'}")
    end_process(0)


# ----------------------------------------------------------------------------------------------------------------
# Logging and stopping

class MetricsLog:
    """metrics.jsonl (one strict-JSON object per optimizer step; a non-finite number is null) and a tqdm bar, on
    rank 0 only."""

    active_bar = None  # rank 0's bar, closed by `fail` before its error line

    def __init__(self, out_dir: Path, d: Dist, total_steps: int, start_step: int, desc: str):
        self.path, self.bar = Path(out_dir) / "metrics.jsonl", None  # no bar: not rank 0, nothing to log
        if d.is_main:
            if self.path.exists():  # on resume, forget steps logged after the checkpoint we resume from
                kept = [l for l in self.path.read_text().splitlines() if l and json.loads(l)["step"] <= start_step]
                with atomic_file(self.path) as tmp:
                    tmp.write_text("".join(l + "\n" for l in kept))
            from tqdm import tqdm
            self.bar = tqdm(total=total_steps, initial=start_step, desc=desc, dynamic_ncols=True)
            MetricsLog.active_bar = self.bar

    def log(self, row: dict) -> None:
        if self.bar is None:
            return
        with self.path.open("a") as f:  # strict JSON: a NaN/inf is written as null (jq, JavaScript reject NaN)
            f.write(json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                                for k, v in row.items()}, allow_nan=False) + "\n")
        self.bar.update(1)
        self.bar.set_postfix({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items()
                              if k in ("loss", "lr", "grad_norm", "tokens_per_s", "reward_accuracy")})

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            MetricsLog.active_bar = None


class StopSignal:
    """SIGTERM / Ctrl-C set a flag; the loop checks it once per step on every rank (all-reduced, so all ranks
    stop at the same step even if only one got the signal), saves a checkpoint and exits."""

    def __init__(self):
        self.requested = False
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, frame: setattr(self, "requested", True))

    def any_rank(self, d: Dist) -> bool:
        requested = torch.tensor([1.0 if self.requested else 0.0], device=d.device)
        dist.all_reduce(requested, op=dist.ReduceOp.MAX)
        return bool(requested.item())


def check_step_finite(loss: float, grad_norm: float, step: int, out_dir: Path, d: Dist) -> None:
    """Stop the run BEFORE `optimizer.step()` when the step's loss or full gradient norm is NaN/inf (both
    all-reduced, so every rank stops here together). The loss alone is not enough: a finite loss can still give a
    non-finite gradient, and one such update turns every weight to NaN. Nothing of the bad step is applied,
    logged, checkpointed or exported."""
    if math.isfinite(loss) and math.isfinite(grad_norm):
        return
    last = latest_checkpoint(out_dir)
    fail(d, f"step {step}: loss {loss}, gradient norm {grad_norm} (expected finite numbers); the update was not "
            f"applied and nothing was exported. The last complete checkpoint is {last or '(none written yet)'}; "
            f"lower --lr or check the data, then --resume.")


def check_weights_finite(net, what: str, out_dir: Path, d: Dist) -> None:
    """Refuse to write a checkpoint or export holding a NaN/inf weight (a second guard after check_step_finite:
    an update of finite size can still overflow). Counts this rank's shard, all-reduced, so all ranks agree."""
    with torch.no_grad():  # a DTensor's local shard, or the plain parameter
        bad = sum(int((~torch.isfinite(p.to_local() if hasattr(p, "to_local") else p)).sum()) for p in net.parameters())
    (bad,) = all_reduce_sum(d, bad)
    if bad:
        fail(d, f"{int(bad)} weights are NaN/inf; {what} not written. The last complete checkpoint is "
                f"{latest_checkpoint(out_dir) or '(none written yet)'}; lower --lr, then --resume.")
