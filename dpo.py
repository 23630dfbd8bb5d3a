"""ADELIE-DPO: direct preference optimisation of ADELIE-SFT on IEFeedback (paper section 4, appendix B.2).

    torchrun --standalone --nproc_per_node 2 dpo.py          # the embedded default (after sft.py and feedback.py)
    python dpo.py                                           # the same, one process
    torchrun --nproc_per_node 8 dpo.py --model runs/sft/final --data ie_feedback.json \\
        --activation_checkpointing                          # the paper's run (8 GPUs: 8 x 1 x 4 = 32 pairs)

The DPO objective (Rafailov et al. 2023, eq. 7), for a prompt x with a chosen answer y_w and a rejected one y_l:

    loss = -log sigmoid( beta * [ (log pi(y_w|x) - log ref(y_w|x)) - (log pi(y_l|x) - log ref(y_l|x)) ] )

where pi is the policy being trained, ref the frozen SFT model it starts from, and log pi(y|x) the SUM of the
answer tokens' log-probabilities (docs/fidelity.md §4). beta * (log pi - log ref) is the implicit reward of an answer.

The paper's recipe (appendix B.2; docs/fidelity.md §4): from ADELIE-SFT, beta 0.1, lr 5e-7 with a linear schedule and
10% warmup, 3 epochs, 32 pairs per optimizer step, 2048 tokens, fp32 master weights. Every default below is that
recipe (the `paper` preset). With no --model, the script runs the embedded default (the SFT demo's output and its
IEFeedback) with the `demo` preset (config.PRESETS).

The loop: load pairs and tokenise chosen/rejected with loss masks (data.py) -> policy and reference (a frozen
sharded copy, or reference log-probs precomputed once and cached) -> for each optimizer step: one forward of
[chosen; rejected] per micro-batch, sequence log-probs, dpo_loss, backward, clip, stop on a NaN/inf loss or
gradient norm, AdamW -> log rewards -> export.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

import config
import data
import model as llama
import training
from config import flag
from robust import atomic_file, run_main

REPO = Path(__file__).resolve().parent


@dataclass
class DPOConfig:
    # What to train on
    model: str = flag("", "the SFT model to start from (and the reference); any format model.py loads, with "
                          "tokenizer.model beside the weights (default: runs/sft/final, the SFT demo's output)")
    data: str = flag("", "IEFeedback pairs {dataset,id,messages,chosen,rejected}, JSON list or JSONL (default: "
                         "runs/feedback/ie_feedback.json, written by feedback.py)")
    out_dir: str = flag("runs/dpo", "output directory: config.json, metrics.jsonl, checkpoints/, final/")
    preset: str = config.preset_flag()
    max_len: int = flag(2048, "tokens per side; chosen and rejected are truncated separately (docs/fidelity.md §4)")
    # The DPO recipe (appendix B.2, docs/fidelity.md §4)
    beta: float = flag(0.1, "DPO temperature beta on the summed log-ratio (docs/fidelity.md §4: 0.1)")
    reference: str = flag("online", "online: a frozen sharded copy of the SFT model computes reference log-probs "
                                    "on the fly (ADELIE's way); precomputed: one pass before training computes "
                                    "them all and caches them (same result, half the model memory)",
                          choices=["online", "precomputed"])
    epochs: int = flag(3, "passes over the pairs (appendix B.2: 3 epochs)")
    max_steps: int = flag(-1, "stop after this many optimizer steps, overriding --epochs (-1: use --epochs)")
    global_batch_size: int = flag(32, "pairs per optimizer step (appendix B.2: global batch 32)")
    micro_batch_size: int = flag(1, "pairs per forward pass per rank (ADELIE: 1 per GPU x 8 GPUs x 4 accumulation)")
    group_by_length: bool = flag(False, "batch pairs of similar length (less padding) instead of the release's "
                                        "random order (docs/fidelity.md); the embedded default's demo turns it on")
    lr: float = flag(5e-7, "peak learning rate (appendix B.2: 5e-7)")
    lr_schedule: str = flag("linear", "schedule after warmup (appendix B.2: linear)",
                            choices=["cosine", "linear", "constant"])
    warmup_ratio: float = flag(0.1, "share of the steps spent warming up (appendix B.2: 0.1)")
    weight_decay: float = flag(0.0, "AdamW weight decay (ADELIE's DPO script: 0)")
    adam_beta1: float = flag(0.9, "AdamW beta1 (the default)")
    adam_beta2: float = flag(0.999, "AdamW beta2 (the default)")
    adam_eps: float = flag(1e-8, "AdamW epsilon (the default)")
    grad_clip: float = flag(1.0, "clip the full gradient norm (as SFT, docs/fidelity.md §2); 0 = off")
    seed: int = flag(42, "seed for the data order and everything random")
    # Systems
    bf16: bool = flag(True, "on CUDA, bf16 compute with fp32 master weights and fp32 gradient reduction; CPU: fp32")
    activation_checkpointing: bool = flag(False, "recompute activations in backward (ADELIE used it for DPO)")
    checkpoint_every: int = flag(200, "write a resume checkpoint every N optimizer steps (0: only on a signal)")
    keep_last: int = flag(2, "resume checkpoints to keep")
    resume: bool = flag(False, "continue from the newest complete checkpoint in OUT_DIR/checkpoints/ (into a "
                               "finished OUT_DIR with no checkpoint left: train again and replace final/)")
    overwrite: bool = flag(False, "train into an OUT_DIR that holds a finished run or checkpoints, starting again "
                                  "(its checkpoints are deleted; final/ is replaced when the new export is complete)")
    clear_stale_lock: bool = flag(False, "remove OUT_DIR/LOCK when the run that took it is no longer running "
                                         "(killed); a lock of a live run is never removed")
    dist_timeout_minutes: float = flag(30.0, "a collective that waits longer than this (a dead peer) fails the run")


def sequence_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log pi(y|x) per sequence: the SUM over answer tokens of log p(token), on fp32 logits (docs/fidelity.md §4).

    Position t predicts token t+1 (the shift); labels are -100 on the prompt and on padding.
    logits (B, T, V), labels (B, T) -> (B,)."""
    logits = logits[:, :-1].float()  # (B, T-1, V)
    targets = labels[:, 1:]  # (B, T-1)
    mask = targets != -100
    safe_targets = targets.masked_fill(~mask, 0)
    # log_softmax at the target only: logit - logsumexp, without a (B, T-1, V) log-softmax tensor.
    token_logp = logits.gather(-1, safe_targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    return (token_logp * mask).sum(-1)


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The DPO loss per pair (Rafailov et al. 2023, eq. 7) and the implicit rewards beta * log(pi / ref).

    loss = -log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))), all inputs summed log-probs, shape (B,)."""
    chosen_logratio = policy_chosen - ref_chosen
    rejected_logratio = policy_rejected - ref_rejected
    losses = -F.logsigmoid(beta * (chosen_logratio - rejected_logratio))
    return losses, beta * chosen_logratio.detach(), beta * rejected_logratio.detach()


def policy_and_reference_logprobs(net, batch: dict, device) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward over [chosen; rejected] (2B rows), split back into (chosen, rejected) summed log-probs."""
    logits = net(batch["input_ids"].to(device))  # (2B, T, V)
    logps = sequence_logprobs(logits, batch["labels"].to(device))  # (2B,)
    return logps.chunk(2)  # (B,), (B,)


def precompute_reference(ref_net, pairs: list, micro_batch: int, cache: Path, d: training.Dist) -> torch.Tensor:
    """Reference log-probs of every pair, computed once (saves memory), as a (N, 2) tensor [chosen, rejected]
    indexed by pair index. A third column marks each pair computed; a pair left out is an error, never a silent
    zero. The cache file's name holds a hash of everything that determines the values."""
    if cache.exists():
        return torch.load(cache, weights_only=True)
    table = torch.zeros(len(pairs), 3, dtype=torch.float64, device=d.device)  # chosen, rejected, computed
    mine = list(range(d.rank, len(pairs), d.world_size))  # every rank takes every world_size-th pair
    # Equal numbers of forward passes on every rank (FSDP's collectives need them): pad with pair 0.
    n_batches = math.ceil(math.ceil(len(pairs) / d.world_size) / micro_batch)
    with torch.no_grad():
        for b in range(n_batches):
            idx = mine[b * micro_batch:(b + 1) * micro_batch]
            batch = data.collate_preference([pairs[i] for i in (idx or [0])], pad_id=0)
            chosen, rejected = policy_and_reference_logprobs(ref_net, batch, d.device)
            if idx:
                table[idx] = torch.stack([chosen, rejected, torch.ones_like(chosen)], -1).double()
    dist.all_reduce(table)  # each pair has one owner: the sum over ranks is the whole table
    if missing := (table[:, 2] != 1).nonzero().flatten().tolist():
        raise RuntimeError(f"{cache}: reference log-probs missing for {len(missing)} pairs (first: {missing[:5]})")
    table = table[:, :2].cpu()
    if d.is_main:  # atomically: a half-written cache must never be read as the reference
        with atomic_file(cache) as tmp:
            torch.save(table, tmp)
    dist.barrier()
    return table


def main(argv=None) -> None:
    # Settings, processes, checks, OUT_DIR; the embedded default's inputs are the earlier stages' outputs
    cfg, d, out_dir = training.start_run(DPOConfig, "dpo", argv, inputs=lambda cfg: {
        "model": (REPO / "runs" / "sft" / "final", "sft.py"),
        "data": (REPO / "runs" / "feedback" / "ie_feedback.json", "feedback.py")})

    # ---- Data: IEFeedback pairs, chosen and rejected tokenised with loss masks on the final answer
    model_dir = Path(cfg.model)
    tokenizer = llama.Tokenizer(model_dir / "tokenizer.model")
    records = data.load_conversations(cfg.data)
    if (k := next((k for k, r in enumerate(records) if "chosen" not in r), None)) is not None:
        training.fail(d, f"{cfg.data}: record {k + 1} (id {records[k]['id']}) has no chosen/rejected answers; "
                         f"expected IEFeedback pairs {{dataset, id, messages, chosen, rejected}} (feedback.py writes "
                         f"them), not SFT conversations")
    pairs, stats = data.tokenize_preference(tokenizer, records, cfg.max_len)
    training.print0(d, f"data: {len(records)} pairs from {cfg.data}; {json.dumps(stats)}")
    if not pairs:
        training.fail(d, f"no usable pair in {cfg.data} (see the counts above)")
    pair_lengths = [[len(chosen[0]), len(rejected[0])] for chosen, rejected in pairs]  # pairs: ((ids, labels),)*2
    lengths = [max(pl) for pl in pair_lengths]
    data_fingerprint = training.fingerprint(pair_lengths)

    # ---- Policy (trained) and reference (frozen): both start as the SFT model
    use_bf16 = cfg.bf16 and d.device.type == "cuda"
    policy, args = training.build_fsdp_model(model_dir, d, bf16=use_bf16,
                                             activation_checkpointing=cfg.activation_checkpointing)
    llama.check_tokenizer_matches(args, tokenizer)
    policy.train()  # LLaMA has no dropout, so train mode computes what eval mode does (loss ln 2 at step 0)
    ref_net = training.build_fsdp_model(model_dir, d, bf16=use_bf16, activation_checkpointing=False,
                                        trainable=False)[0]
    ref_table = None
    if cfg.reference == "precomputed":
        key = [str(model_dir.resolve()), str(args), data_fingerprint, cfg.max_len, use_bf16]
        cache = out_dir / f"reference_logprobs_{training.fingerprint(key)[:12]}.pt"
        ref_table = precompute_reference(ref_net, pairs, cfg.micro_batch_size, cache, d)
        ref_net = None  # the reference model is no longer needed: its memory goes back
        training.print0(d, f"reference log-probs for {len(pairs)} pairs in {cache}")
    optimizer = training.adamw(policy, cfg)

    accum, total_steps = training.step_plan(cfg, len(pairs), d)
    training.print0(d, f"{total_steps} steps of {cfg.global_batch_size} pairs ({cfg.micro_batch_size} per micro-batch "
                       f"x {accum} accumulation x {d.world_size} ranks), beta {cfg.beta}, reference {cfg.reference}")
    start_step = training.resume_step(cfg, out_dir, policy, optimizer, data_fingerprint, d)

    # ---- Training loop
    log = training.MetricsLog(out_dir, d, total_steps, start_step, desc="dpo")
    stop = training.StopSignal()
    for step, epoch, lr, micro_batches in training.optimizer_steps(cfg, lengths, start_step, total_steps, optimizer, d):
        t0 = time.perf_counter()
        sums = torch.zeros(6, dtype=torch.float64)  # loss, reward_c, reward_r, correct, pairs, tokens
        for mb in micro_batches:
            batch = data.collate_preference([pairs[i] for i in mb], pad_id=0)
            pi_c, pi_r = policy_and_reference_logprobs(policy, batch, d.device)
            if ref_table is not None:
                ref_c, ref_r = ref_table[mb].to(d.device, torch.float32).unbind(-1)
            else:
                with torch.no_grad():
                    ref_c, ref_r = policy_and_reference_logprobs(ref_net, batch, d.device)
            losses, reward_c, reward_r = dpo_loss(pi_c, pi_r, ref_c, ref_r, cfg.beta)
            # Mean over the step's pairs: every pair weighs 1 / global_batch (FSDP averages over ranks).
            (losses.sum() / (cfg.micro_batch_size * accum)).backward()
            sums += torch.tensor([losses.sum().item(), reward_c.sum().item(), reward_r.sum().item(),
                                  (reward_c > reward_r).sum().item(), len(mb), sum(sum(pair_lengths[i]) for i in mb)],
                                 dtype=torch.float64)
        grad_norm = training.grad_norm_and_clip(policy, cfg.grad_clip)  # the full norm over all ranks
        loss, rc, rr, correct, n, tokens = training.all_reduce_sum(d, *sums.tolist())
        training.check_step_finite(loss / n, grad_norm, step + 1, out_dir, d)  # before the update reaches the weights
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

        dt = time.perf_counter() - t0
        log.log({"step": step + 1, "epoch": epoch, "loss": loss / n, "lr": lr, "grad_norm": grad_norm,
                 "rewards_chosen": rc / n, "rewards_rejected": rr / n, "reward_margin": (rc - rr) / n,
                 "reward_accuracy": correct / n, "pairs_per_s": n / dt, "tokens_per_s": tokens / dt,
                 "step_time_s": dt})
        training.checkpoint_if_due(step + 1, epoch, total_steps, cfg, data_fingerprint, stop, out_dir, policy,
                                   optimizer, d, log)
    log.close()
    training.finish_run(policy, args, model_dir / "tokenizer.model", out_dir, stats, total_steps, d)


if __name__ == "__main__":
    run_main(main)  # an exception -> one line "error: ..." (ADELIE_DEBUG=1: the traceback)
