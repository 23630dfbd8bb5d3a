"""ADELIE-SFT: supervised fine-tuning on IEInstruct mixed with general chat data (paper section 4, appendix B.2).

    torchrun --standalone --nproc_per_node 2 sft.py          # the embedded default, 2 processes on a CPU
    python sft.py                                           # the same, one process
    torchrun --nproc_per_node 8 sft.py --model /path/to/llama-2-7b --data ie_instruct_mix.jsonl \\
        --activation_checkpointing                          # the paper's run (8 GPUs: 8 x 2 x 8 = 128)
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint HOST:29500 sft.py ...  # 2 nodes

The paper's recipe (appendix B.2; docs/fidelity.md §2): LLaMA-2-7B, AdamW, lr 2e-5, cosine schedule and 3% warmup,
2 epochs, 128 sequences per optimizer step, 2048 tokens, loss on the assistant's tokens only. Every default below
is that recipe (the `paper` preset). With no --model, the script runs the embedded default with the `demo` preset
(config.PRESETS: a small model with random weights, and the synthetic IEInstruct that pipeline.py builds).

The loop, top to bottom: load the data and tokenise it with loss masks (data.py) -> load the model sharded with
FSDP2 (training.py) -> for each optimizer step: this rank's micro-batches of the step's global batch, forward,
masked next-token loss, backward (gradient accumulation), clip, stop on a NaN/inf loss or gradient norm, AdamW
step -> log, checkpoint -> export a Hugging Face checkpoint to OUT_DIR/final/.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

import config
import data
import model as llama
import synthetic
import training
from config import flag
from robust import run_main


@dataclass
class SFTConfig:
    # What to train on
    model: str = flag("", "initial weights: a Meta, Hugging Face or project checkpoint directory with tokenizer.model "
                          "beside the weights (default: the embedded default, the preset's model.py preset with random weights)")
    data: str = flag("", "IEInstruct-format JSONL {dataset,id,messages} (default: the embedded default, synthetic "
                         "IEInstruct built by data.py into OUT_DIR/data/)")
    out_dir: str = flag("runs/sft", "output directory: config.json, metrics.jsonl, checkpoints/, final/")
    preset: str = config.preset_flag()
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
    """The embedded default's starting point: a model.py preset with random weights from the seed, saved (with the
    project's tokenizer) so it loads like any other checkpoint and evaluation can score it as the 'base' model."""
    net = llama.Transformer(llama.ModelArgs.from_name(preset))
    net.init_weights(seed=seed)
    net.save_pretrained(path, tokenizer_path=data.DEFAULT_TOKENIZER)
    return Path(path)


def build_embedded_default_data(out_dir: Path, preset: str, seed: int) -> Path:
    """The embedded default's IEInstruct from the preset's "corpus" and "ie_instruct" settings (config.PRESETS), as
    pipeline.py's corpus and ie_instruct stages build it: synthetic.py's records, then data.py build."""
    settings = config.PRESETS[preset]
    synthetic.main([f"--out={out_dir / 'corpus'}", f"--seed={seed}",
                    *config.as_flags({**settings.get("corpus", {}), "n_warmup": 0})])  # no warm-up: SFT only
    path = out_dir / "ie_instruct.jsonl"
    corpus = out_dir / "corpus"
    data.build(data.IEInstructConfig(out=str(path), seed=seed, preset=preset, records=str(corpus / "train.jsonl"),
                                     general=str(corpus / "general.jsonl"), **settings.get("ie_instruct", {})),
               progress=False)
    return path


def main(argv=None) -> None:
    cfg, d, out_dir = training.start_run(SFTConfig, "sft", argv)  # settings, processes, checks, OUT_DIR

    # ---- Data: IEInstruct (+ general chat), tokenised with loss masks on the assistant's turns (docs/fidelity.md §2)
    # The embedded default (no --model / --data): the preset's model.py preset with random weights, and synthetic IE
    # records turned into IEInstruct with every augmentation of paper section 3 (data.py). Rank 0 makes them once.
    model_dir = Path(cfg.model) if cfg.model else out_dir / "base"
    data_path = Path(cfg.data) if cfg.data else out_dir / "data" / "ie_instruct.jsonl"
    if d.is_main and not cfg.model and not (model_dir / "config.json").exists():
        save_embedded_default_model(model_dir, cfg.seed, config.PRESETS[cfg.preset].get("model", "demo"))
    if d.is_main and not cfg.data and not data_path.exists():
        build_embedded_default_data(data_path.parent, cfg.preset, cfg.seed)
    torch.distributed.barrier()
    tokenizer = llama.Tokenizer(model_dir / "tokenizer.model")
    conversations = data.load_conversations(data_path)
    examples, stats = data.tokenize_sft(tokenizer, conversations, cfg.max_len)
    lengths = [len(ids) for ids, _ in examples]
    training.print0(d, f"data: {len(conversations)} conversations from {data_path}; {json.dumps(stats)}")
    if not examples:
        training.fail(d, f"no trainable example in {data_path} (see the counts above)")

    # ---- Model: FSDP2 over all ranks, fp32 master weights (bf16 compute on CUDA)
    net, args = training.build_fsdp_model(model_dir, d, bf16=cfg.bf16 and d.device.type == "cuda",
                                          activation_checkpointing=cfg.activation_checkpointing)
    llama.check_tokenizer_matches(args, tokenizer)
    n_params = sum(p.numel() for p in net.parameters())
    optimizer = training.adamw(net, cfg)

    # ---- The plan: which examples each optimizer step sees (independent of micro-batch and world size)
    accum, total_steps = training.step_plan(cfg, len(examples), d)
    data_fingerprint = training.fingerprint(lengths)
    training.print0(d, f"model: {n_params / 1e6:.1f}M parameters on {d.world_size} x {d.device.type}; "
                       f"{total_steps} steps of {cfg.global_batch_size} sequences "
                       f"({cfg.micro_batch_size} per micro-batch x {accum} accumulation x {d.world_size} ranks)")
    start_step = training.resume_step(cfg, out_dir, net, optimizer, data_fingerprint, d)

    # ---- Training loop
    log = training.MetricsLog(out_dir, d, total_steps, start_step, desc="sft")
    stop = training.StopSignal()
    peak = training.peak_flops(d.device)
    net.train()
    for step, epoch, lr, micro_batches in training.optimizer_steps(cfg, lengths, start_step, total_steps, optimizer, d):
        t0 = time.perf_counter()
        # The step's trained-token count over all ranks, needed up front by the token_mean normalisation.
        batch_list = [data.collate_sft([examples[i] for i in mb], pad_id=0) for mb in micro_batches]
        my_tokens = sum(int((b["labels"][:, 1:] != -100).sum()) for b in batch_list)
        my_real = sum(lengths[i] for mb in micro_batches for i in mb)
        my_pad = sum(int(b["input_ids"].numel()) for b in batch_list) - my_real
        my_flops = sum(b["input_ids"].numel() * training.flops_per_token(args, n_params, b["input_ids"].shape[1])
                       for b in batch_list)
        step_tokens, step_pad, step_real, step_flops = training.all_reduce_sum(d, my_tokens, my_pad, my_real, my_flops)

        step_loss = 0.0  # the loss the step minimises (the chosen normalisation), summed over ranks below
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
            step_loss += loss.item() / d.world_size  # / world size: FSDP's rank average
        grad_norm = training.grad_norm_and_clip(net, cfg.grad_clip)  # the full norm over all ranks
        (step_loss,) = training.all_reduce_sum(d, step_loss)
        training.check_step_finite(step_loss, grad_norm, step + 1, out_dir, d)  # before the update reaches the weights
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

        # ---- Log; checkpoint every N steps, and when asked to stop (SIGTERM / Ctrl-C)
        dt = time.perf_counter() - t0
        row = {"step": step + 1, "epoch": epoch, "loss": step_loss, "lr": lr, "grad_norm": grad_norm,
               "tokens_per_s": step_real / dt, "trained_tokens": int(step_tokens),
               "padding_share": step_pad / (step_pad + step_real), "step_time_s": dt}
        if peak:  # model FLOPs utilisation: the FLOPs the step's padded batches need / what the GPUs could do
            row["mfu"] = step_flops / dt / (peak * d.world_size)
        log.log(row)
        training.checkpoint_if_due(step + 1, epoch, total_steps, cfg, data_fingerprint, stop, out_dir, net,
                                   optimizer, d, log)
    log.close()

    # ---- Export: a Hugging Face directory that transformers, vLLM and lm-evaluation-harness load unchanged
    training.finish_run(net, args, model_dir / "tokenizer.model", out_dir, stats, total_steps, d)


if __name__ == "__main__":
    run_main(main)  # an exception -> one line "error: ..." (ADELIE_DEBUG=1: the traceback)
