"""dpo.py: the DPO loss by hand, sequence log-probs against transformers, ln 2 at step 0, the two reference
modes, 1 vs 2 processes, resume, fp32 master weights at lr 5e-7, and both IEFeedback file formats."""
import json
import math

import pytest
import torch

import checkpoints
import dpo
import model as llama
from conftest import dpo_args, metrics, pair, run_script, run_torchrun, save_tiny_model, straight_and_resumed

# ------------------------------------------------------------------------------------------------------------
# The math, alone


def test_dpo_loss_by_hand():
    """beta = 0.1; summed log-probs for two pairs:

    pair 0: pi_c = -10, pi_r = -12, ref_c = -11, ref_r = -11
            chosen log-ratio = +1, rejected log-ratio = -1, margin = 0.1 * (1 - (-1)) = 0.2
            loss = -log sigmoid(0.2) = log(1 + e^-0.2) = 0.598138869...; rewards 0.1 and -0.1
    pair 1: pi_c = -5, pi_r = -5, ref_c = -4, ref_r = -6
            chosen log-ratio = -1, rejected log-ratio = +1, margin = -0.2
            loss = log(1 + e^0.2) = 0.798138869...; rewards -0.1 and 0.1
    Gradient: d loss / d pi_c = -beta * sigmoid(-margin) < 0, so a descent step RAISES the chosen answer's
    log-prob; d loss / d pi_r = +beta * sigmoid(-margin) > 0, so it LOWERS the rejected one's.
    pair 0: sigmoid(-0.2) = 0.450166...; d/d pi_c = -0.0450166, d/d pi_r = +0.0450166."""
    pi_c = torch.tensor([-10.0, -5.0], dtype=torch.float64, requires_grad=True)
    pi_r = torch.tensor([-12.0, -5.0], dtype=torch.float64, requires_grad=True)
    ref_c = torch.tensor([-11.0, -4.0], dtype=torch.float64)
    ref_r = torch.tensor([-11.0, -6.0], dtype=torch.float64)
    losses, reward_c, reward_r = dpo.dpo_loss(pi_c, pi_r, ref_c, ref_r, beta=0.1)
    assert losses.tolist() == pytest.approx([math.log(1 + math.exp(-0.2)), math.log(1 + math.exp(0.2))], abs=1e-12)
    assert losses.tolist() == pytest.approx([0.598138869, 0.798138869], abs=1e-9)
    assert reward_c.tolist() == pytest.approx([0.1, -0.1]) and reward_r.tolist() == pytest.approx([-0.1, 0.1])
    losses[0].backward()
    assert pi_c.grad[0].item() == pytest.approx(-0.1 * 0.450166002688, abs=1e-10)
    assert pi_r.grad[0].item() == pytest.approx(+0.1 * 0.450166002688, abs=1e-10)
    assert pi_c.grad[1].item() == 0.0


def test_equal_policy_and_reference_give_ln2():
    x = torch.tensor([-3.5, -20.25])
    losses, rc, rr = dpo.dpo_loss(x, x - 1, x, x - 1, beta=0.1)
    assert losses.tolist() == pytest.approx([math.log(2)] * 2, abs=1e-7)
    assert rc.abs().max() == 0 and rr.abs().max() == 0


def test_sequence_logprobs_match_transformers(tmp_path):
    """Summed answer-token log-probs from our model + sequence_logprobs equal those computed independently with
    transformers' LlamaForCausalLM on the same weights, for a padded batch of different prompt/answer lengths."""
    transformers = pytest.importorskip("transformers")
    net = llama.Transformer.from_pretrained(save_tiny_model(tmp_path / "m", seed=3))
    hf = transformers.LlamaForCausalLM.from_pretrained(tmp_path / "m", torch_dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    rows = []  # (ids, answer_start) with prompts of 3..9 tokens and answers of 1..6 tokens
    for p_len, a_len in ((3, 6), (9, 1), (5, 4)):
        rows.append((torch.randint(3, 2000, (p_len + a_len,), generator=g).tolist(), p_len))
    T = max(len(ids) for ids, _ in rows)
    input_ids = torch.zeros(len(rows), T, dtype=torch.long)
    labels = torch.full((len(rows), T), -100)
    for r, (ids, start) in enumerate(rows):
        input_ids[r, :len(ids)] = torch.tensor(ids)
        labels[r, start:len(ids)] = torch.tensor(ids[start:])
    with torch.no_grad():
        ours = dpo.sequence_logprobs(net(input_ids), labels)
        expected = []
        for ids, start in rows:  # independent: unpadded, one sequence at a time, transformers' log-softmax
            logp = torch.log_softmax(hf(torch.tensor([ids])).logits[0].double(), -1)
            expected.append(sum(logp[t - 1, ids[t]].item() for t in range(start, len(ids))))
    assert (ours.double() - torch.tensor(expected)).abs().max().item() <= 1e-4


# ------------------------------------------------------------------------------------------------------------
# Whole runs on a tiny model


def run_single(args):
    return run_script("dpo.py", args, check=True)


def test_first_loss_is_ln2_and_both_reference_modes_agree(tiny, tmp_path):
    """At step 0 the policy IS the reference, so every pair's loss is -log sigmoid(0) = ln 2 = 0.693147; the
    frozen-copy reference and the precomputed cache give the same trajectory afterwards."""
    model_dir, _, data_path = tiny
    online, cached = tmp_path / "online", tmp_path / "cached"
    run_single(dpo_args(model_dir, data_path, online, reference="online"))
    run_single(dpo_args(model_dir, data_path, cached, reference="precomputed"))
    mo, mc = metrics(online), metrics(cached)
    assert mo[0]["loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert mo[0]["reward_margin"] == pytest.approx(0.0, abs=1e-6)
    assert [m["loss"] for m in mo] == pytest.approx([m["loss"] for m in mc], abs=1e-6)
    assert mo[-1]["loss"] < mo[0]["loss"] and mo[-1]["reward_margin"] > 0  # it learns the preference
    assert len(list(cached.glob("reference_logprobs_*.pt"))) == 1


def test_one_and_two_processes_agree(tiny, tmp_path):
    model_dir, _, data_path = tiny
    one, two = tmp_path / "one", tmp_path / "two"
    run_single(dpo_args(model_dir, data_path, one))
    run_torchrun("dpo.py", dpo_args(model_dir, data_path, two, micro_batch_size=1), nproc=2)
    assert [m["loss"] for m in metrics(one)] == pytest.approx([m["loss"] for m in metrics(two)], abs=1e-5)
    assert [m["reward_accuracy"] for m in metrics(one)] == [m["reward_accuracy"] for m in metrics(two)]


def test_resume_after_sigkill_continues_exactly(tiny, tmp_path):
    model_dir, _, data_path = tiny
    straight, broken = straight_and_resumed(
        "dpo.py", lambda out, **kw: dpo_args(model_dir, data_path, out, **kw), tmp_path, max_steps=6,
        lr_schedule="linear", warmup_ratio=0.2)
    assert [m["loss"] for m in metrics(broken)] == pytest.approx([m["loss"] for m in metrics(straight)], abs=1e-6)


def test_fp32_master_weights_keep_updates_at_lr_5e7(tiny, tmp_path):
    """At the paper's lr 5e-7 an Adam update (~5e-7 per weight) is far below bf16's resolution near 0.02
    (~1e-4) and would round away; with fp32 master weights every step changes the weights."""
    model_dir, _, data_path = tiny
    out = tmp_path / "small_lr"
    run_single(dpo_args(model_dir, data_path, out, lr=5e-7, max_steps=1))
    before, after = checkpoints.read_state_dict(model_dir), checkpoints.read_state_dict(out / "final")
    changed = [k for k in before if not torch.equal(before[k].float(), after[k].float())]
    assert len(changed) == len(before)
    # Pure bf16 weights: the same update rounds away wherever |w| > 5e-7 x 2^8 = 1.3e-4, i.e. for all but about 1%
    # of weights drawn with std 0.02.
    w = before["layers.0.attention.wq.weight"].bfloat16()
    assert (w + 5e-7 == w).float().mean().item() > 0.98


def test_truncated_pairs_are_dropped_and_counted_never_nan(tiny, tmp_path):
    """A pair whose answer falls entirely beyond max_len has no trainable token on one side: it is dropped and
    counted, and training on the rest gives finite losses."""
    model_dir, _, _ = tiny
    long_prompt = [{"role": "user", "content": "word " * 300}]
    bad = {"dataset": "toy", "id": "toy/long", "messages": long_prompt,
           "chosen": long_prompt + [{"role": "assistant", "content": "[Answer]: a"}],
           "rejected": long_prompt + [{"role": "assistant", "content": "[Answer]: b"}]}
    path = tmp_path / "mixed.jsonl"  # JSONL layout, as feedback.py may also write
    path.write_text("".join(json.dumps(r) + "\n" for r in [bad] + [pair(i) for i in range(8)]))
    out = tmp_path / "trunc"
    run_single(dpo_args(model_dir, path, out, max_steps=2))
    stats = json.loads((out / "data_stats.json").read_text())
    assert sum(v for k, v in stats.items() if "drop" in k and isinstance(v, int)) == 1, stats
    assert all(math.isfinite(m["loss"]) for m in metrics(out))
