"""IEFeedback: self-sampled, BLEU-scored preference pairs for ADELIE-DPO (paper section 4, appendix B.1, Table 8).

    torchrun --standalone --nproc_per_node 2 feedback.py    # the embedded default: samples runs/sft/final on 2 CPUs
    python feedback.py                                      # the same, one process
    torchrun --nproc_per_node 8 feedback.py --model runs/sft/final --data_dir ../shared/data \\
        --out_dir runs/feedback                             # the paper's run (8 GPUs: each samples 1/8 of the prompts)

What the paper does (section 4; appendix B.1; spec section 4), step by step, and where each step is below:

1. `ie_feedback_prompts`: a prompt pool built like IEInstruct from the IE TRAINING records (no general chat data),
   but always with the canonical output format, so that sampled answers and the gold answer can be compared
   string to string (appendix B.1: "the sole distinction lies in the consistency of the output format").
   Up to 4000 instances per data set, ODIE with 30% CoT, conversations over 1200 words dropped (spec section 4).
2. `sample_prompts`: the SFT model answers every prompt 5 times at temperature 1.0, top-p 1.0 (section 4), with
   model.generate (batched, KV cache). Prompts are split over the torchrun ranks; each prompt's samples come from a
   random stream seeded by the prompt's index in the pool, so the samples are the same on 1 or 8 GPUs. Samples
   are appended to OUT_DIR/samples.rank{R}.jsonl as they are produced: a killed run, started again with the same
   command, samples only the prompts that are missing.
3. `bleu` / `score_sample`: a sample's score is NLTK's `sentence_bleu` with `SmoothingFunction().method3` over the
   CHARACTERS of the text after `[Answer]: `, against the gold answer (appendix B.1, spec section 4); -1 without
   `[Answer]: `. `bleu` is written out here; tests check it against nltk.
4. `online_pairs`: best sample vs worst sample, kept when their BLEU differs by more than 0.1 (section 4).
   `offline_pairs`: the gold answer (score 1) vs the worst sample, kept when 1 - worst > 0.1 (section 4).
5. `mix_pairs`: 30% online, 70% offline (section 5.4 / Table 11: the best mix), 10,000 pairs (Figure 5), one pair per
   prompt, seeded. Written as OUT_DIR/ie_feedback.json in the released IEFeedback format
   [{"dataset","id","messages","chosen","rejected"}], which dpo.py reads, with OUT_DIR/summary.json and a table like
   Table 8 (pairs per data set, average score gap).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

ANSWER = "[Answer]: "  # the canonical answer marker (spec section 2); BLEU compares the text after it


# ----------------------------------------------------------------------------------------------------------------
# 3. Scoring: character BLEU (appendix B.1, spec section 4)

def bleu(hypothesis: str, reference: str, max_n: int = 4) -> float:
    """BLEU of one hypothesis against one reference over characters, exactly as NLTK computes
    `sentence_bleu([list(reference)], list(hypothesis), smoothing_function=SmoothingFunction().method3)`
    (Papineni et al. 2002, smoothed as in Chen & Cherry 2014, "NIST geometric sequence smoothing").

    BLEU = BP * exp(sum_n 1/4 log p_n), n = 1..4, where
      p_n  = matched n-grams / n-grams of the hypothesis, a hypothesis n-gram matching at most as many times as it
             occurs in the reference ("modified" precision); the denominator is at least 1 (NLTK: a hypothesis
             shorter than n has 0 matches out of 1).
      method3: the k-th order with 0 matches gets p_n = 1 / (2^k * denominator) instead of 0 (k = 1, 2, ...).
      BP   = 1 if the hypothesis is longer than the reference, else exp(1 - len(ref) / len(hyp)).
    No unigram match at all (including an empty hypothesis or an empty reference) gives 0: NLTK returns 0 before
    smoothing in that case."""
    matches, totals = [], []
    for n in range(1, max_n + 1):
        # n-grams of characters are substrings: s[i:i+n] stands for the tuple of its characters
        hyp_counts = Counter(hypothesis[i:i + n] for i in range(len(hypothesis) - n + 1))
        ref_counts = Counter(reference[i:i + n] for i in range(len(reference) - n + 1))
        matches.append(sum(min(count, ref_counts[gram]) for gram, count in hyp_counts.items()))
        totals.append(max(1, sum(hyp_counts.values())))
    if matches[0] == 0:
        return 0.0
    precisions, k = [], 1
    for m, t in zip(matches, totals):
        if m == 0:  # method3 (NLTK's loop: k counts the zero-match orders seen so far)
            precisions.append(1 / (2 ** k * t))
            k += 1
        else:
            precisions.append(m / t)
    hyp_len, ref_len = len(hypothesis), len(reference)
    brevity_penalty = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return brevity_penalty * math.exp(math.fsum(1 / max_n * math.log(p) for p in precisions))


def answer_text(output: str) -> str | None:
    """The text after the first `[Answer]: `, up to a second one if the output repeats it (spec section 4: ADELIE
    took `output.split("[Answer]: ")[1]`); None when the marker is absent."""
    parts = output.split(ANSWER)
    return parts[1] if len(parts) > 1 else None


def score_sample(sample: str, gold: str) -> float:
    """A sample's score (section 4, spec section 4): character BLEU of its answer against the gold answer, or -1
    when the sample has no `[Answer]: ` (it is then below every real score, so it is the first to be rejected)."""
    answer = answer_text(sample)
    if answer is None:
        return -1.0
    gold_answer = answer_text(gold)
    if gold_answer is None:
        raise ValueError(f"gold answer without {ANSWER!r}: {gold[:200]!r} (the pool must use the canonical format)")
    return bleu(answer, gold_answer)


# ----------------------------------------------------------------------------------------------------------------
# 4. Preference pairs (section 4) and their mix (section 5.4, Table 11, Figure 5)

def _with_answer(messages: list[dict], content: str) -> list[dict]:
    """The prompt turns of `messages` (all but the gold answer) followed by the assistant turn `content`."""
    return [dict(m) for m in messages[:-1]] + [{"role": "assistant", "content": content}]


def _pair(record: dict, kind: str, chosen: int | None, rejected: int, scores: list[float]) -> dict:
    """A pair in the released IEFeedback format (prompt turns + one final assistant turn on each side), plus what
    it was made from: the sample numbers (None = the gold answer) and their scores."""
    gold = record["messages"][-1]["content"]
    chosen_text = gold if chosen is None else record["samples"][chosen]
    return {"dataset": record["dataset"], "id": record["id"], "messages": record["messages"],
            "chosen": _with_answer(record["messages"], chosen_text),
            "rejected": _with_answer(record["messages"], record["samples"][rejected]),
            "kind": kind, "index": record["index"], "chosen_sample": chosen, "rejected_sample": rejected,
            "chosen_score": 1.0 if chosen is None else scores[chosen], "rejected_score": scores[rejected]}


def best_and_worst(scores: list[float]) -> tuple[int, int]:
    """Sample numbers of the highest and the lowest score. Ties go to the earliest sample (the lowest sample
    number), so the choice is a function of the samples alone."""
    best = max(range(len(scores)), key=lambda s: (scores[s], -s))
    worst = min(range(len(scores)), key=lambda s: (scores[s], s))
    return best, worst


def online_pairs(records: list[dict], scores: list[list[float]], min_gap: float = 0.1) -> tuple[list[dict], list[dict]]:
    """Online pairs (section 4): chosen = the highest-BLEU sample, rejected = the lowest-BLEU sample of the same
    prompt, kept only if their scores differ by more than `min_gap` (section 4: "exceeds 10%").

    Returns (pairs, skipped); skipped holds {"index","dataset","id","reason"} with reason "no_answer" (no sample has
    `[Answer]: `, all score -1) or "gap_too_small" (best - worst <= min_gap)."""
    pairs, skipped = [], []
    for record, sc in zip(records, scores, strict=True):
        best, worst = best_and_worst(sc)
        if max(sc) == -1.0:
            reason = "no_answer"
        elif sc[best] - sc[worst] <= min_gap:
            reason = "gap_too_small"
        else:
            pairs.append(_pair(record, "online", best, worst, sc))
            continue
        skipped.append({"index": record["index"], "dataset": record["dataset"], "id": record["id"], "reason": reason})
    return pairs, skipped


def offline_pairs(records: list[dict], scores: list[list[float]], min_gap: float = 0.1,
                  skip_identical: bool = True) -> tuple[list[dict], list[dict]]:
    """Offline pairs (section 4): chosen = the gold answer (score 1.0), rejected = the lowest-BLEU sample, kept only
    if 1 - lowest > `min_gap`. A sample without `[Answer]: ` scores -1 and is a valid rejected answer (as in ADELIE's
    release: the gold answer is preferred to a malformed one).

    Returns (pairs, skipped) as online_pairs, with reasons "gap_too_small" (every sample is within min_gap of the
    gold answer: the model already answers this prompt) and, with skip_identical, "identical": the rejected sample
    is the gold answer itself. That happens because BLEU-4 of a text under 4 characters against itself is below 1
    (`NA` vs `NA`: 0.59, see tests), so a correct `[Answer]: NA` passes the gap test. Such a pair states no
    preference and its DPO gradient is exactly 0; ADELIE's release kept them (skip_identical=False)."""
    pairs, skipped = [], []
    for record, sc in zip(records, scores, strict=True):
        _, worst = best_and_worst(sc)
        reason = None
        if 1.0 - sc[worst] <= min_gap:
            reason = "gap_too_small"
        elif skip_identical and record["samples"][worst].strip() == record["messages"][-1]["content"].strip():
            reason = "identical"  # compared as rendered: the chat format strips message content (spec section 1)
        if reason:
            skipped.append({"index": record["index"], "dataset": record["dataset"], "id": record["id"],
                            "reason": reason})
            continue
        pairs.append(_pair(record, "offline", None, worst, sc))
    return pairs, skipped


def mix_pairs(online: list[dict], offline: list[dict], target: int = 10_000, online_ratio: float = 0.3,
              seed: int = 42, shortfall: str = "keep_ratio") -> tuple[list[dict], str]:
    """IEFeedback's mix (section 4: 3k online + 7k offline; section 5.4 and Table 11: 30% online is best; Figure 5:
    10k pairs are enough): `target` pairs, round(online_ratio * target) of them online, at most one pair per prompt
    (ADELIE's release makes one pair per prompt, online or offline), drawn at random with `seed`.

    Every online-eligible prompt is also offline-eligible (best - worst > gap and best <= 1 imply 1 - worst > gap),
    so with N pairs wanted, n_on = round(online_ratio * N) are drawn from the online pairs and N - n_on from the
    offline pairs of the other prompts. When there are too few pairs:
      - fewer offline-eligible prompts than `target`: N = their number (every usable prompt gives one pair);
      - too few online pairs for round(online_ratio * N): with shortfall="keep_ratio" (default), N shrinks to the
        largest size the online pairs can fill at the ratio; with shortfall="fill", offline pairs fill the rest.
    Returns (pairs sorted by prompt index, a sentence saying what was done)."""
    if shortfall not in ("keep_ratio", "fill"):
        raise ValueError(f"shortfall must be 'keep_ratio' or 'fill', got {shortfall!r}")
    rng = random.Random(f"ie_feedback mix {seed}")
    on = sorted(online, key=lambda p: p["index"])
    off = sorted(offline, key=lambda p: p["index"])
    if len({p["index"] for p in on}) != len(on) or len({p["index"] for p in off}) != len(off):
        raise ValueError("mix_pairs: a prompt index occurs twice among the online (or the offline) pairs")
    rng.shuffle(on)
    rng.shuffle(off)

    def n_online(n: int) -> int:  # round half up, the same on every platform
        return math.floor(online_ratio * n + 0.5)

    n_total = min(target, len(off))
    notes = []
    if len(off) < target:
        notes.append(f"only {len(off)} prompts give an offline pair (every online prompt is among them), fewer than "
                     f"the {target} pairs wanted: making {n_total}")
    if n_online(n_total) > len(on):
        if shortfall == "keep_ratio":
            while n_total > 0 and n_online(n_total) > len(on):
                n_total -= 1
            notes.append(f"only {len(on)} online pairs: kept the {online_ratio:.0%} online ratio by making "
                         f"{n_total} pairs (--shortfall fill would fill up with offline pairs instead)")
        else:
            notes.append(f"only {len(on)} online pairs: filled up with offline pairs (--shortfall fill)")
    take_on = min(n_online(n_total), len(on))
    chosen_on = on[:take_on]
    used = {p["index"] for p in chosen_on}
    chosen_off = [p for p in off if p["index"] not in used][:n_total - take_on]
    pairs = sorted(chosen_on + chosen_off, key=lambda p: p["index"])
    summary = f"{len(chosen_on)} online + {len(chosen_off)} offline = {len(pairs)} pairs"
    return pairs, "; ".join(notes + [summary])
