"""ADELIE-SFT: supervised fine-tuning on IEInstruct mixed with general chat data (paper section 4, appendix B.2).

    torchrun --standalone --nproc_per_node 2 sft.py          # the embedded default, 2 processes on a CPU
    python sft.py                                           # the same, one process
    torchrun --nproc_per_node 8 sft.py --model /path/to/llama-2-7b --data ie_instruct_mix.jsonl \\
        --activation_checkpointing                          # the paper's run (8 GPUs: 8 x 2 x 8 = 128)
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint HOST:29500 sft.py ...  # 2 nodes

The paper's recipe (appendix B.2; docs/fidelity.md §2): LLaMA-2-7B, AdamW, lr 2e-5, cosine schedule and 3% warmup,
2 epochs, 128 sequences per optimizer step, 2048 tokens, loss on the assistant's tokens only. Every default below
is that recipe. With no --model, the script runs the embedded default (a small model with random weights and the
synthetic IEInstruct of data.py) with the few demo settings in DEMO_SETTINGS, printed at the start.

The loop, top to bottom: load the data and tokenise it with loss masks (data.py) -> load the model sharded with
FSDP2 (training.py) -> for each optimizer step: split the step's global batch into this rank's micro-batches,
forward, masked next-token loss, backward (gradient accumulation), clip, stop on a NaN/inf loss or gradient
norm, AdamW step -> log, checkpoint ->
export a Hugging Face checkpoint to OUT_DIR/final/.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

import data
import model as llama
import training as T
from config import flag, parse_config
from robust import run_main

REPO = Path(__file__).resolve().parent
DEFAULT_TOKENIZER = REPO / "assets" / "tokenizer.model"


@dataclass
class SFTConfig:
    # What to train on
    model: str = flag("", "initial weights: a Meta, Hugging Face or project checkpoint directory with tokenizer.model "
                          "beside the weights (default: the embedded default, the 'demo' preset with random weights)")
    data: str = flag("", "IEInstruct-format JSONL {dataset,id,messages} (default: the embedded default, synthetic "
                         "IEInstruct built by data.py into OUT_DIR/data/)")
    out_dir: str = flag("runs/sft", "output directory: config.json, metrics.jsonl, checkpoints/, final/")
    max_len: int = flag(2048, "tokens per example; longer examples are truncated (appendix B.2: context 2048)")
    # The optimisation recipe (appendix B.2, docs/fidelity.md §2)
    epochs: int = flag(2, "passes over the data (appendix B.2: 2 epochs)")
    max_steps: int = flag(-1, "stop after this many optimizer steps, overriding --epochs (-1: use --epochs)")
    global_batch_size: int = flag(128, "sequences per optimizer step (appendix B.2: effective batch size 128)")
    micro_batch_size: int = flag(2, "sequences per forward pass per rank; accumulation = global / (micro x world) "
                                    "(docs/fidelity.md §2: ADELIE used 4 GPUs x 2 x 16 accumulation)")
    group_by_length: bool = flag(False, "batch examples of similar length (less padding) instead of the release's "
                                        "random order; under mean_of_means it changes each token's weight "
                                        "(docs/fidelity.md); the embedded default's demo turns it on for speed")
    lr: float = flag(2e-5, "peak learning rate (appendix B.2: 2e-5)")
    lr_schedule: str = flag("cosine", "learning-rate schedule after warmup (appendix B.2: cosine)",
                            choices=["cosine", "linear", "constant"])
    warmup_ratio: float = flag(0.03, "share of the steps spent warming up linearly from 0 (appendix B.2: 0.03)")
    weight_decay: float = flag(0.0, "AdamW weight decay (docs/fidelity.md §2: 0)")
    adam_beta1: float = flag(0.9, "AdamW beta1 (docs/fidelity.md §2: the default)")
    adam_beta2: float = flag(0.999, "AdamW beta2 (docs/fidelity.md §2: the default)")
    adam_eps: float = flag(1e-8, "AdamW epsilon (docs/fidelity.md §2: the default)")
    grad_clip: float = flag(1.0, "clip the full gradient norm to this (release: the launcher default, 1.0); "
                                 "0 disables clipping")
    loss_normalization: str = flag(
        "mean_of_means", "mean_of_means: ADELIE's loss, the token mean of each micro-batch averaged over "
        "accumulation steps and ranks (faithful); token_mean: the sum over all trained tokens of the optimizer step "
        "divided by their number (every token weighs the same; docs/fidelity.md §2)",
        choices=["mean_of_means", "token_mean"])
    seed: int = flag(42, "seed for weights of the embedded default, data order and everything random (release: 42)")
    # Systems
    bf16: bool = flag(True, "on CUDA, compute in bf16 with fp32 master weights and fp32 gradient reduction "
                            "(docs/fidelity.md §2); ignored on CPU, which trains in fp32")
    activation_checkpointing: bool = flag(False, "recompute each block's activations in backward (saves memory; "
                                                 "use it for 7B at 2048 tokens)")
    checkpoint_every: int = flag(500, "write a resume checkpoint every N optimizer steps (0: only on a signal)")
    keep_last: int = flag(2, "resume checkpoints to keep")
    resume: bool = flag(False, "continue from the newest complete checkpoint in OUT_DIR/checkpoints/ (into a "
                               "finished OUT_DIR with no checkpoint left: train again and replace final/)")
    overwrite: bool = flag(False, "train into an OUT_DIR that holds a finished run or checkpoints, starting again "
                                  "(its checkpoints are deleted; final/ is replaced when the new export is complete)")
    clear_stale_lock: bool = flag(False, "remove OUT_DIR/LOCK when the run that took it is no longer running "
                                         "(killed); a lock of a live run is never removed")
    dist_timeout_minutes: float = flag(30.0, "a collective that waits longer than this (a dead peer) fails the run")


# The embedded default is a 1.3M-parameter model with random weights: the paper's lr 2e-5 and 128-sequence
# batches would leave it untrained in a few CPU minutes. These replace the defaults (never a value given on the
# command line) only when --model is not given, and are printed at the start.
DEMO_SETTINGS = dict(max_len=1024, epochs=2, global_batch_size=16, micro_batch_size=4, lr=1e-3, warmup_ratio=0.03,
                     checkpoint_every=50,
                     group_by_length=True)  # the demo: less padding on 2 CPUs (not the paper's order)


def trained_positions(labels: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: the positions whose logits the loss uses. Position t predicts token t+1 (the shift), so it is
    trained when labels[t+1] != -100 (data.py puts -100 on the prompt and the padding); the last position
    predicts nothing."""
    return F.pad(labels[:, 1:] != -100, (0, 1), value=False)


def token_losses(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Next-token cross-entropy summed over the trained tokens, and their number.

    logits: (N, vocab), the model's output at `trained_positions(labels)` only (row-major, as boolean indexing
    gives them); labels: (B, T). The targets are the labels shifted by one at the same positions. fp32 logits."""
    targets = labels[:, 1:][labels[:, 1:] != -100]  # (N,): token t+1 for each trained position t
    loss_sum = F.cross_entropy(logits.float(), targets, reduction="sum")
    return loss_sum, targets.numel()


def save_embedded_default_model(path: Path, seed: int, preset: str = "demo") -> Path:
    """The embedded default's starting point: a preset with random weights from the seed, saved (with the
    project's tokenizer) so it loads like any other checkpoint and evaluation can score it as the 'base' model."""
    net = llama.Transformer(llama.ModelArgs.from_name(preset))
    net.init_weights(seed=seed)
    net.save_pretrained(path, tokenizer_path=DEFAULT_TOKENIZER)
    return Path(path)


def main(argv=None) -> None:
    cfg, explicit = parse_config(SFTConfig, argv)
    d = T.init_distributed(cfg.dist_timeout_minutes)
    if not cfg.model:
        demo = {k: v for k, v in DEMO_SETTINGS.items() if k not in explicit}
        cfg = dataclasses.replace(cfg, **demo)
        T.print0(d, f"embedded default: demo model with random weights; demo settings {demo}")
    T.seed_everything(cfg.seed)
    out_dir = Path(cfg.out_dir)
    T.check_flags(cfg, d, Path(cfg.model) if cfg.model else None)  # one line per senseless flag, exit 2
    T.claim_out_dir(out_dir, cfg, d)  # the lock; a finished run is refused without --overwrite / --resume

    # ---- Data: IEInstruct (+ general chat), tokenised with loss masks on the assistant's turns (docs/fidelity.md §2)
    # The embedded default (no --model / --data): the demo preset with random weights, and synthetic IE records
    # turned into IEInstruct with every augmentation of paper section 3 (data.py). Rank 0 writes them once.
    model_dir = Path(cfg.model) if cfg.model else out_dir / "base"
    data_path = Path(cfg.data) if cfg.data else out_dir / "data" / "ie_instruct.jsonl"
    if d.is_main and not cfg.model and not (model_dir / "config.json").exists():
        save_embedded_default_model(model_dir, cfg.seed)
    if d.is_main and not cfg.data and not data_path.exists():
        data.build_embedded_default(data_path, seed=cfg.seed)
    torch.distributed.barrier()
    tokenizer = llama.Tokenizer(model_dir / "tokenizer.model")
    conversations = data.load_conversations(data_path)
    examples, stats = data.tokenize_sft(tokenizer, conversations, cfg.max_len)
    lengths = [len(ids) for ids, _ in examples]
    T.print0(d, f"data: {len(conversations)} conversations from {data_path}; {json.dumps(stats)}")
    if not examples:
        T.fail(d, f"no trainable example in {data_path} (see the counts above)")

    # ---- Model: FSDP2 over all ranks, fp32 master weights (bf16 compute on CUDA)
    use_bf16 = cfg.bf16 and d.device.type == "cuda"
    net, args = T.build_fsdp_model(model_dir, d, bf16=use_bf16, activation_checkpointing=cfg.activation_checkpointing)
    llama.check_tokenizer_matches(args, tokenizer)
    n_params = sum(p.numel() for p in net.parameters())
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2),
                                  eps=cfg.adam_eps, weight_decay=cfg.weight_decay,
                                  fused=True)  # one kernel per step instead of a loop over tensors

    # ---- The plan: which examples each optimizer step sees (independent of micro-batch and world size)
    accum = T.accumulation_steps(cfg.global_batch_size, cfg.micro_batch_size, d.world_size)
    steps_per_epoch = math.ceil(len(examples) / cfg.global_batch_size)
    total_steps = cfg.max_steps if cfg.max_steps > 0 else cfg.epochs * steps_per_epoch
    data_fingerprint = hashlib.sha256(json.dumps(lengths).encode()).hexdigest()[:16]
    T.print0(d, f"model: {n_params / 1e6:.1f}M parameters on {d.world_size} x {d.device.type}; "
                f"{total_steps} steps of {cfg.global_batch_size} sequences "
                f"({cfg.micro_batch_size} per micro-batch x {accum} accumulation x {d.world_size} ranks)")

    start_step = 0
    if cfg.resume and (ckpt := T.latest_checkpoint(out_dir)):
        state = T.load_checkpoint(ckpt, net, optimizer, d)
        if state["data_fingerprint"] != data_fingerprint or state["global_batch_size"] != cfg.global_batch_size:
            T.fail(d, f"{ckpt} was written for other data or another global batch size; resuming would not "
                         f"continue the same run")
        start_step = state["step"]
        T.print0(d, f"resumed from {ckpt} at step {start_step}")

    # ---- Training loop
    log = T.MetricsLog(out_dir, d, total_steps, start_step, desc="sft")
    stop = T.StopSignal()
    peak = T.peak_flops(d.device)
    batches, batches_epoch = None, -1
    net.train()
    for step in range(start_step, total_steps):
        t0 = time.perf_counter()
        epoch, index = divmod(step, steps_per_epoch)
        if epoch != batches_epoch:  # the epoch's global batches, shuffled and length-grouped
            batches, n_fill = T.epoch_batches(lengths, cfg.global_batch_size, cfg.seed, epoch,
                                              cfg.group_by_length)
            batches_epoch = epoch
            if n_fill:
                T.print0(d, f"epoch {epoch}: the last step is filled up with {n_fill} examples from the epoch's start")
        micro_batches = T.rank_micro_batches(batches[index], lengths, cfg.micro_batch_size, d,
                                               cfg.group_by_length)
        lr = T.lr_at(step, total_steps, cfg.lr, cfg.warmup_ratio, cfg.lr_schedule)
        for group in optimizer.param_groups:
            group["lr"] = lr

        # The step's trained-token count over all ranks, needed up front by the token_mean normalisation.
        batch_list = [data.collate_sft([examples[i] for i in mb], pad_id=0) for mb in micro_batches]
        my_tokens = sum(int((b["labels"][:, 1:] != -100).sum()) for b in batch_list)
        my_pad = sum(int(b["input_ids"].numel()) - sum(lengths[i] for i in mb) for b, mb in zip(batch_list, micro_batches))
        my_real = sum(lengths[i] for mb in micro_batches for i in mb)
        my_flops = sum(b["input_ids"].numel() * T.flops_per_token(args, n_params, b["input_ids"].shape[1])
                       for b in batch_list)
        step_tokens, step_pad, step_real, step_flops = T.all_reduce_sum(d, my_tokens, my_pad, my_real, my_flops)

        loss_sum_total, mean_sum_total = 0.0, 0.0
        for batch in batch_list:
            input_ids = batch["input_ids"].to(d.device)  # (micro_batch, T)
            labels = batch["labels"].to(d.device)  # (micro_batch, T)
            logits = net(input_ids, logits_mask=trained_positions(labels))  # (trained tokens, vocab)
            loss_sum, n_tokens = token_losses(logits, labels)
            if cfg.loss_normalization == "mean_of_means":
                # ADELIE (open-instruct): each micro-batch's token mean / accumulation; FSDP averages over ranks.
                loss = loss_sum / n_tokens / accum
            else:
                # Every trained token of the step weighs 1 / step_tokens; x world size undoes FSDP's rank average.
                loss = loss_sum / step_tokens * d.world_size
            loss.backward()
            loss_sum_total += loss_sum.item()
            mean_sum_total += loss_sum.item() / n_tokens
        grad_norm = T.grad_norm_and_clip(net, cfg.grad_clip)  # the full norm over all ranks
        # The loss as the chosen normalisation defines it, over all ranks; a NaN/inf loss or gradient norm ends
        # the run here, before the update reaches the weights.
        loss_sum_all, mean_sum_all = T.all_reduce_sum(d, loss_sum_total, mean_sum_total)
        step_loss = (mean_sum_all / (accum * d.world_size) if cfg.loss_normalization == "mean_of_means"
                     else loss_sum_all / step_tokens)
        T.check_step_finite(step_loss, grad_norm, step + 1, out_dir, d)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

        # ---- Log
        dt = time.perf_counter() - t0
        row = {"step": step + 1, "epoch": epoch, "loss": step_loss, "lr": lr, "grad_norm": grad_norm,
               "tokens_per_s": step_real / dt, "trained_tokens": int(step_tokens),
               "padding_share": step_pad / (step_pad + step_real), "step_time_s": dt}
        if peak:  # model FLOPs utilisation: the FLOPs the step's padded batches need / what the GPUs could do
            row["mfu"] = step_flops / dt / (peak * d.world_size)
        log.log(row)

        # ---- Checkpoint: every N steps, and when asked to stop (SIGTERM / Ctrl-C)
        state = {"step": step + 1, "epoch": epoch, "global_batch_size": cfg.global_batch_size,
                 "data_fingerprint": data_fingerprint, "world_size": d.world_size, "config": dataclasses.asdict(cfg)}
        T.checkpoint_if_due(step + 1, total_steps, cfg.checkpoint_every, stop, out_dir, net, optimizer, state, d,
                            cfg.keep_last, log)
    log.close()

    # ---- Export: a Hugging Face directory that transformers, vLLM and lm-evaluation-harness load unchanged
    T.finish_run(net, args, model_dir / "tokenizer.model", out_dir, stats, total_steps, d)


if __name__ == "__main__":
    run_main(main)  # an exception -> one line "error: ..." (ADELIE_DEBUG=1: the traceback)
