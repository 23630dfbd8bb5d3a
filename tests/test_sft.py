"""sft.py: the loss, the normalisations, gradient accumulation / world-size equivalence, resume, multi-node, export.

Runs use model.py's tiny preset with random weights, the shipped tokenizer and a handful of hand-written
conversations (conftest.py), so each run takes seconds on a CPU and needs nothing beside the checkout.
"""
import math
import random
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import checkpoints
import config
import data
import model as llama
import sft
import training
from conftest import REPO, conversation, metrics, run_script, run_torchrun, sft_args, straight_and_resumed

# ------------------------------------------------------------------------------------------------------------
# The loss, alone


def test_token_losses_shift_and_mask_by_hand():
    """Position t predicts token t+1; only labels != -100 count.

    logits rows (vocab 3) for positions 0..2 of one sequence, labels [-100, 2, 0, -100]:
      position 0 predicts labels[1] = 2 with logits [0, 0, ln 2] -> p = 2/4 -> loss ln 2
      position 1 predicts labels[2] = 0 with logits [0, 0, 0]    -> p = 1/3 -> loss ln 3
      position 2 predicts labels[3] = -100 (masked); position 3 predicts nothing (no next token).
    Sum = ln 2 + ln 3 = ln 6 over 2 tokens."""
    logits = torch.tensor([[[0.0, 0.0, math.log(2)], [0.0, 0.0, 0.0], [5.0, 0.0, 0.0], [9.0, 9.0, 9.0]]])
    labels = torch.tensor([[-100, 2, 0, -100]])
    trained = sft.trained_positions(labels)
    assert trained.tolist() == [[True, True, False, False]]
    loss_sum, n = sft.token_losses(logits[trained], labels)
    assert n == 2
    assert loss_sum.item() == pytest.approx(math.log(6), abs=1e-6)


# ------------------------------------------------------------------------------------------------------------
# Whole runs on a tiny model


def run_sft_single(args):
    """sft.py in a fresh single process (no torchrun)."""
    return run_script("sft.py", args, check=True)


def losses(out_dir: Path) -> list[float]:
    return [m["loss"] for m in metrics(out_dir)]


def final_weights(out_dir: Path) -> dict:
    return checkpoints.read_state_dict(out_dir / "final")


def test_accumulation_and_world_size_give_the_same_run(tiny, tmp_path):
    """token_mean: micro 4 x accumulation 1 (1 process) == micro 1 x accumulation 4 (1 process)
    == micro 1 x accumulation 2 x 2 processes, step for step (mean of micro-batch means is not the token mean)."""
    model_dir, data_path, _ = tiny
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    run_sft_single(sft_args(model_dir, data_path, a, micro_batch_size=4))
    run_sft_single(sft_args(model_dir, data_path, b, micro_batch_size=1))
    run_torchrun("sft.py", sft_args(model_dir, data_path, c, micro_batch_size=1), nproc=2)
    la, lb, lc = losses(a), losses(b), losses(c)
    assert len(la) == 4
    assert la == pytest.approx(lb, abs=1e-5) and la == pytest.approx(lc, abs=1e-5)
    assert la[-1] < la[0]  # it trains
    wa, wc = final_weights(a), final_weights(c)
    for k in wa:
        torch.testing.assert_close(wa[k], wc[k], atol=1e-5, rtol=1e-4)


def test_mean_of_means_is_adelies_loss_by_hand(tiny, tmp_path):
    """ADELIE's loss (open-instruct): the token mean of each micro-batch, averaged over accumulation steps.
    The first logged loss (before any update) equals that computed here from the same weights and batches."""
    model_dir, data_path, _ = tiny
    out = tmp_path / "mom"
    run_sft_single(sft_args(model_dir, data_path, out, micro_batch_size=2, max_steps=1,
                            loss_normalization="mean_of_means"))
    tok = llama.Tokenizer(model_dir / "tokenizer.model")
    examples, _ = data.tokenize_sft(tok, data.load_conversations(data_path), 256)
    lengths = [len(ids) for ids, _ in examples]
    batches, _ = training.epoch_batches(lengths, 4, 1, 0)
    one_rank = training.Dist(0, 1, 0, torch.device("cpu"))
    micro = training.rank_micro_batches(batches[0], lengths, 2, one_rank)
    net = llama.Transformer.from_pretrained(model_dir)
    means = []
    with torch.no_grad():
        for mb in micro:
            b = data.collate_sft([examples[i] for i in mb], pad_id=0)
            s, n = sft.token_losses(net(b["input_ids"])[sft.trained_positions(b["labels"])], b["labels"])
            means.append(s.item() / n)
    assert len(means) == 2 and means[0] != pytest.approx(means[1])
    assert losses(out)[0] == pytest.approx(sum(means) / 2, abs=1e-5)
    # ... which is not the token mean over the step when the micro-batches hold different numbers of tokens.


def test_resume_after_sigkill_continues_exactly(tiny, tmp_path):
    """6 steps straight == 3 steps, the process killed with SIGKILL, --resume, 3 more steps (a real resume)."""
    model_dir, data_path, _ = tiny
    common = dict(micro_batch_size=2, max_steps=6, global_batch_size=4, lr_schedule="cosine", warmup_ratio=0.2)
    straight, broken = straight_and_resumed(
        "sft.py", lambda out, **kw: sft_args(model_dir, data_path, out, **kw), tmp_path, **common)
    assert losses(broken) == pytest.approx(losses(straight), abs=1e-6)
    ws, wb = final_weights(straight), final_weights(broken)
    for k in ws:
        torch.testing.assert_close(ws[k], wb[k], atol=1e-6, rtol=1e-6)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_match_one_node(tiny, tmp_path):
    """Two torchrun launches (--nnodes 2, c10d rendezvous on 127.0.0.1), one process each, train exactly like
    one node with two processes."""
    model_dir, data_path, _ = tiny
    one, two = tmp_path / "one", tmp_path / "two"
    run_torchrun("sft.py", sft_args(model_dir, data_path, one, micro_batch_size=1), nproc=2)
    port = free_port()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
           "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{port}", "--rdzv_id=adelie-test",
           "sft.py", *sft_args(model_dir, data_path, two, micro_batch_size=1)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    nodes = [subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outs = [n.communicate(timeout=240)[0] for n in nodes]
    assert all(n.returncode == 0 for n in nodes), "\n".join(o[-3000:] for o in outs)
    assert losses(two) == pytest.approx(losses(one), abs=1e-5)


def test_export_loads_in_transformers_with_the_same_logits(tiny, tmp_path):
    transformers = pytest.importorskip("transformers")
    model_dir, data_path, _ = tiny
    out = tmp_path / "exp"
    run_sft_single(sft_args(model_dir, data_path, out, max_steps=2))
    ours = llama.Transformer.from_pretrained(out / "final")
    hf = transformers.LlamaForCausalLM.from_pretrained(out / "final", torch_dtype=torch.float32)
    ids = torch.randint(3, 2000, (2, 17))
    with torch.no_grad():
        assert (ours(ids) - hf(ids).logits).abs().max().item() <= 1e-4
    tok = transformers.AutoTokenizer.from_pretrained(out / "final")
    assert tok.eos_token_id == 2


def test_loss_mask_only_answer_tokens_carry_gradient(tiny):
    """data.py's labels and the loss together: change the target of a prompt token (it stays masked) and the
    gradient is unchanged; change the target of an answer token and it changes."""
    model_dir, _, _ = tiny
    tok = llama.Tokenizer(model_dir / "tokenizer.model")
    ids, labels = data.tokenize_chat(tok, conversation(3)["messages"], 256)
    ids, labels = torch.tensor([ids]), torch.tensor([labels])
    prompt_pos = int((labels[0] == -100).nonzero()[2])
    answer_pos = int((labels[0] != -100).nonzero()[0])
    net = llama.Transformer.from_pretrained(model_dir)

    def grad_with_targets(targets):
        net.zero_grad()
        masked = torch.where(labels == -100, torch.full_like(targets, -100), targets)
        loss, _ = sft.token_losses(net(ids, logits_mask=sft.trained_positions(masked)), masked)
        loss.backward()
        return net.output.weight.grad.clone()

    base = grad_with_targets(ids.clone())
    prompt_changed = ids.clone()
    prompt_changed[0, prompt_pos] = (prompt_changed[0, prompt_pos] + 7) % 2048
    answer_changed = ids.clone()
    answer_changed[0, answer_pos] = (answer_changed[0, answer_pos] + 7) % 2048
    assert torch.equal(grad_with_targets(prompt_changed), base)
    assert not torch.allclose(grad_with_targets(answer_changed), base)


# ------------------------------------------------------------------------------------------------------------
# Failure behaviour


def start_torchrun(args, nproc=2):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "sft.py", *args]
    return subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def wait_for_step(out_dir: Path, step: int, proc, timeout=180):
    deadline = time.time() + timeout
    while not ((out_dir / "metrics.jsonl").exists() and len(losses(out_dir)) >= step):
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.time() < deadline, "the run did not reach the step in time"
        time.sleep(0.05)


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tiny, tmp_path):
    model_dir, data_path, _ = tiny
    out = tmp_path / "nan"
    proc = run_script("sft.py", sft_args(model_dir, data_path, out, lr=1e30, grad_clip=0, max_steps=30,
                                         checkpoint_every=1, keep_last=100))
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    logged = losses(out)
    bad_step = len(logged) + 1  # the NaN step is reported, not logged
    assert f"error: step {bad_step}: loss " in proc.stderr and all(math.isfinite(x) for x in logged)
    ckpts = sorted((out / "checkpoints").glob("step_*"))
    assert ckpts and all((c / "COMPLETED").exists() for c in ckpts)
    assert ckpts[-1].name == f"step_{bad_step - 1:08d}"  # nothing written for the NaN step
    assert not (out / "final").exists()


def test_a_dead_rank_ends_the_whole_job(tiny, tmp_path):
    """SIGKILL one of two workers mid-run: torchrun stops the other and exits with an error (no hang)."""
    model_dir, data_path, _ = tiny
    out = tmp_path / "dead"
    proc = start_torchrun(sft_args(model_dir, data_path, out, micro_batch_size=1, max_steps=10_000))
    wait_for_step(out, 2, proc)
    workers = subprocess.run(["pgrep", "-f", f"sft.py.*{out}"], capture_output=True, text=True).stdout.split()
    workers = [int(p) for p in workers if int(p) != proc.pid]
    assert len(workers) == 2, workers
    os.kill(workers[1], signal.SIGKILL)
    try:
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0
    assert len(losses(out)) < 10_000


def test_sigterm_saves_a_checkpoint_that_resumes(tiny, tmp_path):
    """SIGTERM to torchrun (what a cluster scheduler sends): every rank stops at the same step, a complete
    checkpoint is written, and --resume continues from it."""
    model_dir, data_path, _ = tiny
    out = tmp_path / "term"
    args = sft_args(model_dir, data_path, out, micro_batch_size=1, max_steps=10_000)  # its end is never reached
    proc = start_torchrun(args)
    wait_for_step(out, 2, proc)
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=120)[0]
    ckpt = training.latest_checkpoint(out)
    assert ckpt is not None, output[-3000:]
    stopped_at = int(ckpt.name.split("_")[1])
    assert stopped_at == len(losses(out)) and "stopped by a signal" in output
    run_torchrun("sft.py", [*args[:-1], "--max_steps=%d" % (stopped_at + 2), "--resume"], nproc=2)
    assert len(losses(out)) == stopped_at + 2 and (out / "final").exists()


def test_padding_share_on_the_embedded_default_is_below_10_percent(tmp_path):
    """Length-grouped batches (training.epoch_batches + rank_micro_batches) spend little compute on padding: on the
    embedded default's IEInstruct, with the demo's batch shape on 2 ranks, padded positions are < 10% of all."""
    path = tmp_path / "ie_instruct.jsonl"
    data.build(data.IEInstructConfig(out=str(path), seed=42, synthetic_n_train=40), progress=False)
    demo = config.PRESETS["demo"]["sft"]
    tok = llama.Tokenizer(data.DEFAULT_TOKENIZER)
    examples, _ = data.tokenize_sft(tok, data.load_conversations(path), demo["max_len"])
    lengths = [len(ids) for ids, _ in examples]
    gb, mb = demo["global_batch_size"], demo["micro_batch_size"]
    real = padded = 0
    for epoch in range(2):
        batches, _ = training.epoch_batches(lengths, gb, 42, epoch, group_by_length=True)
        for batch in batches:
            for rank in range(2):
                for micro in training.rank_micro_batches(batch, lengths, mb, training.Dist(rank, 2, rank, torch.device("cpu")),
                                                      group_by_length=True):
                    real += sum(lengths[i] for i in micro)
                    padded += len(micro) * max(lengths[i] for i in micro)
    share = 1 - real / padded
    print(f"padding share {share:.2%} over {len(examples)} examples")
    assert 0 < share < 0.10
    # ... and it is length grouping that does it: random micro-batches of the same shape waste far more.
    rng = random.Random(0)
    random_real = random_padded = 0
    for _ in range(200):
        micro = rng.sample(range(len(lengths)), mb)
        random_real += sum(lengths[i] for i in micro)
        random_padded += mb * max(lengths[i] for i in micro)
    assert 1 - random_real / random_padded > 2 * share
