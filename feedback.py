"""IEFeedback: self-sampled, BLEU-scored preference pairs for ADELIE-DPO (paper section 4, appendix B.1, Table 8).

    torchrun --standalone --nproc_per_node 2 feedback.py    # the embedded default: samples runs/sft/final on 2 CPUs
    python feedback.py                                      # the same, one process
    torchrun --nproc_per_node 8 feedback.py --model runs/sft/final --data_dir ../shared/data \\
        --out_dir runs/feedback                             # the paper's run (8 GPUs: each samples 1/8 of the prompts)
    vllm serve runs/sft/final &                             # or let a serving engine sample (what the authors did):
    python feedback.py --model runs/sft/final --data_dir ../shared/data --backend openai \\
        --base_url http://localhost:8000/v1                 # any OpenAI-compatible server; same files, same resume

What the paper does (section 4; appendix B.1; docs/fidelity.md §3), step by step, and where each step is below:

1. `select_prompt_pool`, `ie_feedback_prompts`: a prompt pool built like IEInstruct from the IE TRAINING records of
   the Table 8 data sets (TABLE8_DATASETS; `--prompt_pool all` takes every training set) (no general chat data),
   but always with the canonical output format, so that sampled answers and the gold answer can be compared
   string to string (appendix B.1: "the sole distinction lies in the consistency of the output format").
   Up to 4000 instances per data set, ODIE with 30% CoT, conversations over 1200 words dropped (docs/fidelity.md §3).
2. `sample_prompts`: the SFT model answers every prompt 5 times at temperature 1.0, top-p 1.0 (section 4), split
   over the torchrun ranks, each prompt from a stream seeded by its pool index (the same samples on 1 or 8 GPUs),
   appended to OUT_DIR/samples.rank{R}.jsonl as produced: the same command resumes a killed run.
3. `bleu` / `score_sample`: a sample's score is NLTK's `sentence_bleu` with `SmoothingFunction().method3` over the
   CHARACTERS of the text after `[Answer]: `, against the gold answer (appendix B.1, docs/fidelity.md §3); -1 without
   `[Answer]: `. `bleu` is written out here; tests check it against nltk.
4. `online_pairs`: best sample vs worst sample, kept when their BLEU differs by more than 0.1 (section 4).
   `offline_pairs`: the gold answer (score 1) vs the worst sample, kept when 1 - worst > 0.1 (section 4).
5. `mix_pairs`: 30% online, 70% offline (section 6.2, Table 11: the best mix), 10,000 pairs (Figure 5), one pair per
   prompt, seeded, by the release's rule (online pairs first, then 7,000 prompts drawn from the rest; --mix_rule).
   Written as OUT_DIR/ie_feedback.json in the released IEFeedback format
   [{"dataset","id","messages","chosen","rejected"}], which dpo.py reads, with OUT_DIR/summary.json and a table like
   Table 8 (pairs per data set, average score gap).
6. report.py (tooling): the Table 8 view of this run; `python feedback.py stats FILE [FILE ...] [--gold FILE]`
   measures any IEFeedback file (ours or the authors' release).
"""
from __future__ import annotations

import hashlib
import json
import math
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

import checkpoints
import data
import config
import llm
import model as llama
import training
from config import flag
from report import format_table, pair_stats, pair_stats_tables, stats_main, summarize  # Table 8 views
from robust import atomic_file, read_appendable_jsonl
from scorers import answer_part

REPO = Path(__file__).resolve().parent


@dataclass
class FeedbackConfig(llm.ServeConfig):   # --backend openai --base_url URL: a serving engine samples (llm.py)
    # What to sample, and from which records
    model: str = flag("", "the SFT model to sample (ADELIE-SFT, section 4); any directory model.py loads, with "
                          "tokenizer.model beside the weights (default: runs/sft/final, the SFT demo's output)")
    records: str = flag("", "unified IE records, JSONL (docs/design.md); their train split makes the prompt pool "
                            "(default: the SFT demo's, runs/sft/data/corpus/train.jsonl)")
    data_dir: str = flag("", "instead of --records: the real IE training sets here (e.g. ../shared/data), as data.py "
                             "build reads them (held-out evaluation sets left out)")
    explanations: str = flag("", "LLM-written explanations, JSONL {id, explanation} (llm.py; as data.py build "
                                 "--explanations): an instance drawn for an explanation uses its record's")
    out_dir: str = flag("runs/feedback", "output directory: prompts.jsonl (the pool), samples.rank*.jsonl, "
                                         "scores.jsonl, ie_feedback.json (for dpo.py), pairs.jsonl (what each pair "
                                         "is made of), summary.json; sampling.json and config.json (the settings)")
    preset: str = config.preset_flag()
    # The prompt pool (appendix B.1, docs/fidelity.md §3)
    prompt_pool: str = flag("table8", "which data sets give prompts: table8 (the paper's Table 8 sets only, as the "
                                      "release sampled; synthetic stand-ins of the embedded default are kept) or all "
                                      "(every IE training set given)", choices=["table8", "all"])
    max_per_dataset: int = flag(4000, "prompts per data set at most (docs/fidelity.md §3: up to 4000 per data set)")
    odie_cot_ratio: float = flag(0.3, "share of ODIE prompts in the chain-of-thought version (release: 30%)")
    max_words: int = flag(1200, "drop a conversation (prompt + gold) over this many words (docs/fidelity.md §3: 1200)")
    max_prompts: int = flag(-1, "sample only the first N prompts of the shuffled pool (-1: all; appendix B.1 "
                                "sampled 50,000 entries, about 13 data sets x 4000)")
    # Sampling (section 4, docs/fidelity.md §3)
    num_samples: int = flag(5, "independent samples per prompt (section 4: 5)")
    temperature: float = flag(1.0, "sampling temperature (section 4: 1.0)")
    top_p: float = flag(1.0, "nucleus sampling top-p (docs/fidelity.md §3: 1.0, i.e. off)")
    max_new_tokens: int = flag(2048, "new tokens per sample at most (docs/fidelity.md §3: 2048)")
    batch_size: int = flag(32, "sequences decoded together per rank (prompts x samples); changes speed, not samples")
    flush_every: int = flag(64, "prompts per generate call; their samples are appended to this rank's samples file "
                                "after each call, so an interrupted run loses at most this many prompts' work")
    bf16: bool = flag(True, "on CUDA, sample in bf16 (the SFT export's training precision); on CPU, fp32")
    # Pairs (section 4; section 6.2 with appendix C.4: Table 11, Figure 5)
    min_gap: float = flag(0.1, "keep a pair only if its two scores differ by MORE than this (section 4: 10%)")
    target_pairs: int = flag(10_000, "pairs in IEFeedback (section 4: 3k online + 7k offline; Figure 5: 10k)")
    online_ratio: float = flag(0.3, "share of online pairs (section 6.2, Table 11: 30% online / 70% offline is "
                                    "best)")
    mix_rule: str = flag("release", "how online and offline pairs are mixed (mix_pairs; docs/fidelity.md): release "
                                    "(ADELIE's rule), keep_ratio (too few online pairs: fewer pairs at the exact "
                                    "ratio) or fill (too few online pairs: offline pairs top the target up)",
                         choices=["release", "keep_ratio", "fill"])
    skip_identical: bool = flag(False, "a fix, off by default (the release kept them): skip an offline pair whose "
                                       "rejected sample IS the gold answer (offline_pairs)")
    seed: int = flag(42, "seed of the prompt pool, the samples (per prompt) and the mix")
    dist_timeout_minutes: float = flag(30.0, "a collective that waits longer than this (a dead peer) fails the run")
    clear_stale_lock: bool = flag(False, "remove OUT_DIR/LOCK when the run that took it is no longer running "
                                         "(killed); a lock of a live run is never removed")


# ----------------------------------------------------------------------------------------------------------------
# 1. The prompt pool (appendix B.1, docs/fidelity.md §3)

# The data sets IEFeedback drew its prompts from (paper Table 8; the release's DPO sampling script lists the same
# twelve plus ODIE), by their names in ie_formats.DATASETS. Table 8's "OpenIE4" is the OpenIE6 training data
# (OpenIE4 labels, read by ie_formats' openie6 reader); "MAVEN" (ED) is ie_formats' maven.
TABLE8_DATASETS = ("conll2003", "ace2005-ner", "ontonotes5", "tacred", "fewrel", "ace2005-ed", "maven",
                   "ace2005-eae", "rams", "maven-arg", "maven-ere", "instructie", "openie6")


def select_prompt_pool(records: list[dict], prompt_pool: str = "table8") -> tuple[list[dict], dict]:
    """The records the IEFeedback pool is built from. "table8" (paper Table 8): records of the Table 8 data sets and
    the embedded default's synthetic stand-ins; others (e.g. BC5CDR, ADE, CASIE: in IEInstruct, never sampled for
    IEFeedback) are left out and counted. "all": every record. Returns (records, {"prompt_pool", "left_out": {data
    set: records}, "table8_absent": [Table 8 sets without a record]})."""
    import synthetic
    present = {r["dataset"] for r in records}
    info = {"prompt_pool": prompt_pool, "left_out": {},
            "table8_absent": [n for n in TABLE8_DATASETS if n not in present]}
    if prompt_pool == "all":
        return records, info
    keep = set(TABLE8_DATASETS) | set(synthetic.DATASETS)
    info["left_out"] = dict(sorted(Counter(r["dataset"] for r in records if r["dataset"] not in keep).items()))
    return [r for r in records if r["dataset"] in keep], info


def ie_feedback_prompts(records: list[dict], *, max_per_dataset: int = 4000, odie_cot_ratio: float = 0.3,
                        max_words: int = 1200, seed: int = 42, explanations: dict | None = None,
                        progress: bool = False) -> tuple[list[dict], dict]:
    """IEFeedback's prompt pool (appendix B.1: "in a manner similar to IEInstruct. The sole distinction lies in the
    consistency of the output format"; docs/fidelity.md §3): data.ie_instruct as the release ran it (step 1 above;
    a drawn explanation stays in the gold answer; the release's length filter, `max_words` whitespace words over all
    turns, demonstrations shed first, an instance still too long dropped and counted). Returns (pool, per-data-set
    statistics); the pool is shuffled with `seed`, so any prefix (--max_prompts) mixes all data sets; each entry is
    {"index", "dataset", "id", "task", "messages" (prompt turns + gold), "prompt_sha"}."""
    cfg = data.IEInstructConfig(seed=seed, max_per_dataset=max_per_dataset, dataset_caps="uniform", canonical_rate=1.0,
                                json_rate=0.0, odie_cot_rate=odie_cot_ratio, max_words=max_words, max_tokens=0)
    conversations, stats = data.ie_instruct(records, cfg, explanations=explanations, progress=progress)
    random.Random(f"ie_feedback pool {seed}").shuffle(conversations)
    pool = [{"index": i, "dataset": c["dataset"], "id": c["id"], "task": stats[c["dataset"]]["task"],
             "messages": c["messages"], "prompt_sha": prompt_sha(c["messages"])} for i, c in enumerate(conversations)]
    return pool, {name: dict(st) for name, st in stats.items()}


# ----------------------------------------------------------------------------------------------------------------
# 2. Sampling (section 4), split over ranks, appended as produced, resumable

def prompt_sha(messages: list[dict]) -> str:
    """A short hash of a prompt's turns (not the gold answer): ties each saved sample to the prompt it answers."""
    return hashlib.sha256(json.dumps(messages[:-1], sort_keys=True).encode()).hexdigest()[:16]


def repair_sample_files(out_dir: Path) -> int:
    """Cut a partial last line (a run killed mid-write) off every samples file; return how many were cut. Run on one
    rank before anyone appends, so new lines never follow a torn one."""
    return sum(read_appendable_jsonl(path)[1] for path in sorted(out_dir.glob("samples.rank*.jsonl")))


def read_samples(out_dir: Path, pool: list[dict]) -> tuple[dict[int, dict], int]:
    """Every complete sample line in OUT_DIR/samples.rank*.jsonl, by prompt index (files from any earlier world
    size). A line whose prompt hash differs from the pool's prompt at that index is an error: the pool changed."""
    done, outside = {}, 0
    for path in sorted(out_dir.glob("samples.rank*.jsonl")):
        rows, torn = read_appendable_jsonl(path)
        if torn:  # only when a file was appended to between repair_sample_files and here
            raise ValueError(f"{path}: torn last line; repair_sample_files must run before read_samples")
        for n, row in rows:
            i = row["index"]
            if i >= len(pool):
                outside += 1  # sampled for a larger pool (--max_prompts was bigger): not used now
                continue
            if row["prompt_sha"] != pool[i]["prompt_sha"]:
                raise ValueError(f"{path}:{n}: prompt {i} ({row['id']}) was sampled from another prompt pool than "
                                 f"this run builds ({pool[i]['id']}); use a new --out_dir or the earlier settings")
            done[i] = row
    return done, outside


def sample_prompts(net, tokenizer, pool: list[dict], todo: list[int], cfg: FeedbackConfig, path: Path,
                   progress: bool, client: llm.ChatClient | None = None) -> int:
    """Sample cfg.num_samples answers for each pool prompt in `todo` and append one line per prompt to `path`
    (llm.sample_to_file: model.generate, flush_every prompts per call; or, given `client`, the server). Sample s of
    prompt i draws from the stream seeded by (prompt_seed(seed, i), s): the pool index, never the rank or batch, so
    any world size gives the same samples. Returns the number of new tokens."""
    def line(i: int, texts: list[str], finished: list[bool]) -> dict:
        return {"index": i, "id": pool[i]["id"], "prompt_sha": pool[i]["prompt_sha"], "samples": texts,
                "finished": finished}
    return llm.sample_to_file(path, [(i, pool[i]["prompt_ids"], data.render_chat(pool[i]["messages"][:-1], True))
                                     for i in todo], line, num_samples=cfg.num_samples, temperature=cfg.temperature,
                              top_p=cfg.top_p, max_tokens=cfg.max_new_tokens, seed=cfg.seed, net=net,
                              tokenizer=tokenizer, client=client, batch_size=cfg.batch_size, chunk=cfg.flush_every,
                              concurrency=cfg.concurrency, progress=progress)


# ----------------------------------------------------------------------------------------------------------------
# 3. Scoring: character BLEU (appendix B.1, docs/fidelity.md §3)

def bleu(hypothesis: str, reference: str, max_n: int = 4) -> float:
    """Character BLEU as NLTK's `sentence_bleu([list(reference)], list(hypothesis),
    smoothing_function=SmoothingFunction().method3)` (Papineni et al. 2002; Chen & Cherry 2014 smoothing):
    BLEU = BP * exp(sum_n 1/4 log p_n), n = 1..4, where p_n = clipped n-gram matches / hypothesis n-grams (at least
    1); method3: the k-th order with 0 matches gets p_n = 1 / (2^k * denominator); BP = 1 if the hypothesis is
    longer than the reference, else exp(1 - len(ref) / len(hyp)). No unigram match at all (an empty side included)
    gives 0, as NLTK returns before smoothing."""
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


def scored_answer(output: str) -> str | None:
    """What BLEU compares: the text after the first `[Answer]: `, up to a second one if the output repeats it
    (release: `output.split("[Answer]: ")[1]`, unstripped); None when the marker is absent. (Evaluation
    reads answers differently: stripped, and the whole output when unmarked.)"""
    return answer_part(output, data.ANSWER, missing=None)


def score_sample(sample: str, gold: str) -> float:
    """A sample's score (section 4, docs/fidelity.md §3): character BLEU of its answer against the gold answer, or -1
    when the sample has no `[Answer]: ` (it is then below every real score, so it is the first to be rejected)."""
    answer = scored_answer(sample)
    if answer is None:
        return -1.0
    gold_answer = scored_answer(gold)
    if gold_answer is None:
        raise ValueError(f"gold answer without {data.ANSWER!r}: {gold[:200]!r} (expected the canonical format)")
    return bleu(answer, gold_answer)


# ----------------------------------------------------------------------------------------------------------------
# 4. Preference pairs (section 4) and their mix (section 6.2, appendix C.4, Table 11, Figure 5)

def _pair(record: dict, kind: str, chosen: int | None, rejected: int, scores: list[float]) -> dict:
    """A pair in the released IEFeedback format (prompt turns + one final assistant turn on each side), plus what
    it was made from: the sample numbers (None = the gold answer) and their scores."""
    prompt = record["messages"][:-1]
    chosen_text = record["messages"][-1]["content"] if chosen is None else record["samples"][chosen]
    return {"dataset": record["dataset"], "id": record["id"], "messages": record["messages"],
            "chosen": prompt + [{"role": "assistant", "content": chosen_text}],
            "rejected": prompt + [{"role": "assistant", "content": record["samples"][rejected]}],
            "kind": kind, "index": record["index"], "chosen_sample": chosen, "rejected_sample": rejected,
            "chosen_score": 1.0 if chosen is None else scores[chosen], "rejected_score": scores[rejected]}


def best_and_worst(scores: list[float]) -> tuple[int, int]:
    """Sample numbers of the highest and the lowest score. Ties go to the earliest sample (the lowest sample
    number), so the choice is a function of the samples alone."""
    best = max(range(len(scores)), key=lambda s: (scores[s], -s))
    worst = min(range(len(scores)), key=lambda s: (scores[s], s))
    return best, worst


def online_pairs(records: list[dict], scores: list[list[float]], min_gap: float = 0.1) -> tuple[list[dict], list[dict]]:
    """Online pairs (section 4): the highest- over the lowest-BLEU sample of a prompt, kept if their scores differ
    by more than `min_gap` (section 4: "exceeds 10%"). Returns (pairs, skipped {"index","dataset","id","reason"}:
    "no_answer" (every sample lacks `[Answer]: `) or "gap_too_small")."""
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
                  skip_identical: bool = False) -> tuple[list[dict], list[dict]]:
    """Offline pairs (section 4): the gold answer (score 1) over the lowest-BLEU sample (a sample without
    `[Answer]: ` scores -1, as in the release), kept if 1 - lowest > `min_gap`. Returns (pairs, skipped) as
    online_pairs, reasons "gap_too_small" (the model already answers this prompt) and, with skip_identical,
    "identical": the rejected sample is the gold answer itself. BLEU-4 of a text under 4 characters against itself is
    below 1 (`NA` vs `NA`: 0.59), so a correct `[Answer]: NA` passes the gap test; such a pair states no preference
    (zero DPO gradient). ADELIE's release kept them (skip_identical=False)."""
    pairs, skipped = [], []
    for record, sc in zip(records, scores, strict=True):
        _, worst = best_and_worst(sc)
        reason = None
        if 1.0 - sc[worst] <= min_gap:
            reason = "gap_too_small"
        elif skip_identical and record["samples"][worst].strip() == record["messages"][-1]["content"].strip():
            reason = "identical"  # compared as rendered: the chat format strips message content (docs/fidelity.md §2)
        if reason:
            skipped.append({"index": record["index"], "dataset": record["dataset"], "id": record["id"],
                            "reason": reason})
            continue
        pairs.append(_pair(record, "offline", None, worst, sc))
    return pairs, skipped


def mix_pairs(online: list[dict], offline: list[dict], target: int = 10_000, online_ratio: float = 0.3,
              seed: int = 42, rule: str = "release", prompts: list[int] | None = None) -> tuple[list[dict], str]:
    """IEFeedback's mix (section 4: 3k online + 7k offline; Table 11: 30% online is best; Figure 5: 10k pairs are
    enough), at most one pair per prompt, seeded: n_on = round(online_ratio * target) online, n_off = target - n_on.
    rule="release" (ADELIE's release, docs/fidelity.md): walk the sampled prompts in (shuffled) pool order
    (`prompts`); a prompt with an online pair gives it until n_on are taken, every other prompt goes to a remainder;
    then n_off prompts are drawn from the remainder, each giving its offline pair if it has one (no top-up).
    rule="keep_ratio" / "fill" (this project's earlier rules): with N = min(target, offline-eligible prompts),
    round(online_ratio * N) pairs drawn from the online pairs, the rest from the offline pairs of the other prompts;
    with too few online pairs, keep_ratio shrinks N to keep the ratio, fill tops it up with offline pairs.
    Returns (pairs sorted by prompt index, a sentence saying what was done)."""
    if rule not in ("release", "keep_ratio", "fill"):
        raise ValueError(f"mix rule must be 'release', 'keep_ratio' or 'fill', got {rule!r}")
    if not 0 <= online_ratio <= 1:
        raise ValueError(f"online_ratio must be in [0, 1], got {online_ratio}")
    rng = random.Random(f"ie_feedback mix {seed}")
    on = sorted(online, key=lambda p: p["index"])
    off = sorted(offline, key=lambda p: p["index"])

    def round_half_up(x: float) -> int:  # the same on every platform (Python's round() rounds half to even)
        return math.floor(x + 0.5)

    notes = []
    if rule == "release":
        n_on = round_half_up(online_ratio * target)
        n_off = target - n_on
        if prompts is None:  # every prompt with a pair of either kind, in pool order
            prompts = sorted({p["index"] for p in on} | {p["index"] for p in off})
        online_of = {p["index"]: p for p in on}
        offline_of = {p["index"]: p for p in off}
        chosen_on, remainder = [], []
        for i in prompts:
            if i in online_of and len(chosen_on) < n_on:
                chosen_on.append(online_of[i])
            else:
                remainder.append(i)
        drawn = rng.sample(remainder, min(n_off, len(remainder)))
        chosen_off = [offline_of[i] for i in drawn if i in offline_of]
        if len(chosen_on) < n_on:
            notes.append(f"only {len(chosen_on)} online pairs, fewer than the {n_on} wanted")
        notes.append(f"{len(drawn)} of {len(remainder)} other prompts drawn for offline pairs, "
                     f"{len(drawn) - len(chosen_off)} of them without one (gap too small)")
    else:
        rng.shuffle(on)
        rng.shuffle(off)
        n_total = min(target, len(off))
        n_on = round_half_up(online_ratio * n_total)
        if len(off) < target:
            notes.append(f"only {len(off)} prompts give an offline pair, fewer than the {target} pairs wanted: "
                         f"making {n_total}")
        if n_on > len(on):
            n_on = len(on)
            if rule == "keep_ratio":
                n_total = min(n_total, round_half_up(n_on / online_ratio))
                notes.append(f"only {len(on)} online pairs: kept the {online_ratio:.0%} online ratio by making "
                             f"{n_total} pairs (--mix_rule fill would fill up with offline pairs instead)")
            else:
                notes.append(f"only {len(on)} online pairs: filled up with offline pairs (--mix_rule fill)")
        chosen_on = on[:n_on]
        used = {p["index"] for p in chosen_on}
        chosen_off = [p for p in off if p["index"] not in used][:n_total - n_on]
        if len(chosen_off) < n_total - n_on:  # offline prompts taken by online pairs (the rare case above)
            notes.append(f"{n_total - n_on - len(chosen_off)} offline pairs short: their prompts give online pairs")
    pairs = sorted(chosen_on + chosen_off, key=lambda p: p["index"])
    summary = f"{len(chosen_on)} online + {len(chosen_off)} offline = {len(pairs)} pairs (--mix_rule {rule})"
    return pairs, "; ".join(notes + [summary])


def write_ie_feedback(pairs: list[dict], path: Path) -> None:
    """IEFeedback as released (docs/fidelity.md §1): a JSON list of {"dataset","id","messages","chosen","rejected"}, chosen/rejected being
    the prompt turns plus one final assistant turn (what data.load_conversations and dpo.py read). Beside it,
    pairs.jsonl says, line for line, what each pair was made from (kind, sample numbers, scores)."""
    # Both written atomically (robust.atomic_file), ie_feedback.json last: it is what dpo.py and pipeline.py trust.
    with atomic_file(path.with_name("pairs.jsonl")) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for p in pairs:
            f.write(json.dumps({k: p[k] for k in ("index", "id", "dataset", "kind", "chosen_sample",
                                                  "rejected_sample", "chosen_score", "rejected_score")}) + "\n")
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps([{k: p[k] for k in ("dataset", "id", "messages", "chosen", "rejected")}
                                   for p in pairs], ensure_ascii=False, indent=1), encoding="utf-8")


# ----------------------------------------------------------------------------------------------------------------
# The run

def main(argv=None) -> None:
    def same_sampling(cfg) -> str | None:
        """Samples on disk made with other settings are never mixed with new ones (rank 0, OUT_DIR locked): what
        the samples depend on besides the prompt (each sample line carries its prompt's hash)."""
        sampling = {"model": str(Path(cfg.model).resolve())} | {
            k: getattr(cfg, k) for k in ("num_samples", "temperature", "top_p", "max_new_tokens", "bf16", "seed")}
        if cfg.backend == "openai":   # another sampler: its samples are not mixed with model.py's
            sampling |= {"backend": cfg.backend, "base_url": llm.public_url(cfg.base_url),
                         "served_model": cfg.served_model}
        earlier = Path(cfg.out_dir) / "sampling.json"
        if earlier.exists() and (old := json.loads(earlier.read_text())) != sampling:
            diff = {k: (old.get(k), v) for k, v in sampling.items() if old.get(k) != v}
            return (f"{cfg.out_dir} holds samples made with other settings {diff} (earlier, now); use another "
                    f"--out_dir or the earlier settings")
        earlier.write_text(json.dumps(sampling, indent=1))

    def inputs(cfg) -> dict:
        """The embedded default samples the SFT demo's model on the records its IEInstruct was built from."""
        sft_demo = REPO / "runs" / "sft"
        records = {} if cfg.records or cfg.data_dir else {"records": (sft_demo / "data" / "corpus" / "train.jsonl",
                                                                      "sft.py")}
        return {"model": (sft_demo / "final", "sft.py"), **records}

    # Settings (defaults <- --preset <- flags), process group, seed, inputs, OUT_DIR locked, config.json
    cfg, d, out_dir = training.start_run(FeedbackConfig, "feedback", argv, inputs, same_sampling, trainer=False)
    model_dir = Path(cfg.model)

    # ---- 1. The prompt pool: every rank builds the same one (seeded), rank 0 writes it down. Its records are the
    #         IE training records, read as data.py build reads them (held-out sets and other splits left out, counted)
    if cfg.records and cfg.data_dir:
        sys.exit("error: give --records or --data_dir, not both")
    records, source, left_out = data.read_ie_records(data.IEInstructConfig(records=cfg.records, data_dir=cfg.data_dir))
    records, pool_sets = select_prompt_pool(records, cfg.prompt_pool)
    if not records:
        sys.exit(f"error: none of the paper's Table 8 data sets is in {source}; --prompt_pool all samples every set")
    absent = ", ".join(pool_sets["table8_absent"]) or "none"
    pool_line = (f"prompt pool ({cfg.prompt_pool}): Table 8 sets absent: {absent}; left out (not in Table 8): "
                 f"{pool_sets['left_out'] or 'none'}; records not used or repaired: {dict(left_out) or 'none'}")
    training.print0(d, pool_line)
    pool, pool_stats = ie_feedback_prompts(records, max_per_dataset=cfg.max_per_dataset,
                                           odie_cot_ratio=cfg.odie_cot_ratio, max_words=cfg.max_words, seed=cfg.seed,
                                           explanations=data.read_explanations(cfg.explanations)
                                           if cfg.explanations else None, progress=d.is_main)
    if cfg.max_prompts >= 0:
        pool = pool[:cfg.max_prompts]
    tokenizer = llama.Tokenizer(model_dir / "tokenizer.model")
    args = checkpoints.read_model_args(model_dir)  # checks that the tokenizer beside the weights matches the model
    # A prompt must leave room for a whole answer of max_new_tokens (as vLLM requires): a sample cut by the context
    # would score as a wrong answer. With LLaMA-2 (4096) and 1200-word prompts this never happens; it is counted.
    too_long, fits = Counter(), []
    for i, p in enumerate(pool):
        p["prompt_ids"] = data.encode_prompt(tokenizer, p["messages"][:-1])
        if len(p["prompt_ids"]) + cfg.max_new_tokens > args.max_seq_len:
            too_long[p["dataset"]] += 1
        else:
            fits.append(i)
    per_dataset = ", ".join(f"{name} {st['instances']}" for name, st in pool_stats.items())
    training.print0(d, f"prompt pool from {source}: {len(pool)} prompts ({per_dataset}); {len(fits)} leave room for "
                       f"{cfg.max_new_tokens} new tokens in the model's {args.max_seq_len}-token context")
    if d.is_main:
        with open(out_dir / "prompts.jsonl", "w", encoding="utf-8") as f:
            for p in pool:
                f.write(json.dumps({k: v for k, v in p.items() if k != "prompt_ids"}, ensure_ascii=False) + "\n")

    # ---- 2. Sampling: resume from the samples already on disk, split the rest over the ranks
    torn = repair_sample_files(out_dir) if d.is_main else 0
    dist.barrier()
    done, outside = read_samples(out_dir, pool)
    todo = [i for i in fits if i % d.world_size == d.rank and i not in done]
    n_todo = int(training.all_reduce_sum(d, len(todo))[0])
    training.print0(d, f"samples on disk for {len(done)} prompts ({torn} torn last lines cut, to be redone; {outside} "
                       f"outside this pool); {n_todo} prompts to sample on {d.world_size} ranks")
    t0, n_tokens, net, client = time.perf_counter(), 0, None, None
    try:
        if todo and cfg.backend == "openai":  # the same prompts, settings and seeds; the server's sampler is its own
            client = llm.serving_client(cfg)
            training.print0(d, f"sampling with {client.model} at {client.public_url}/completions, "
                               f"{cfg.concurrency} requests in flight")
        elif todo:  # every rank holds the whole model (no sharding for sampling: LLaMA-2-7B in bf16 takes 14 GB)
            dtype = torch.bfloat16 if cfg.bf16 and d.device.type == "cuda" else torch.float32
            net = llama.Transformer.from_pretrained(model_dir, device=d.device, dtype=dtype).eval()
            t0 = time.perf_counter()
        if todo:
            n_tokens = sample_prompts(net, tokenizer, pool, todo, cfg, out_dir / f"samples.rank{d.rank}.jsonl",
                                      d.is_main, client)
    except llm.LLMError as e:
        sys.exit(f"error: {e}")
    del net
    seconds = torch.tensor(time.perf_counter() - t0, dtype=torch.float64, device=d.device)
    dist.all_reduce(seconds, op=dist.ReduceOp.MAX)  # the slowest rank's time is the job's
    seconds = seconds.item()
    total_tokens, = training.all_reduce_sum(d, n_tokens)
    training.print0(d, f"sampled {int(total_tokens)} new tokens in {seconds:.1f} s "
                       f"({total_tokens / max(seconds, 1e-9):.0f} tokens/s over {d.world_size} ranks)")
    dist.barrier()
    if not d.is_main:
        training.cleanup_distributed()
        return

    # ---- 3.-5. Scores, pairs, the mix, the files (rank 0)
    done, _ = read_samples(out_dir, pool)
    missing = [i for i in fits if i not in done]
    if missing:
        sys.exit(f"error: no samples for {len(missing)} prompts (first: {missing[:5]}); run again to sample them")
    sampled = [{**pool[i], **done[i]} for i in fits]
    scores = [[score_sample(s, r["messages"][-1]["content"]) for s in r["samples"]] for r in sampled]
    with open(out_dir / "scores.jsonl", "w", encoding="utf-8") as f:
        for r, sc in zip(sampled, scores):
            f.write(json.dumps({"index": r["index"], "id": r["id"], "dataset": r["dataset"], "scores": sc}) + "\n")
    online, online_skipped = online_pairs(sampled, scores, cfg.min_gap)
    offline, offline_skipped = offline_pairs(sampled, scores, cfg.min_gap, cfg.skip_identical)
    mixed, note = mix_pairs(online, offline, cfg.target_pairs, cfg.online_ratio, cfg.seed, cfg.mix_rule,
                            prompts=[r["index"] for r in sampled])
    write_ie_feedback(mixed, out_dir / "ie_feedback.json")
    summary = summarize(pool, sampled, scores, online, online_skipped, offline, offline_skipped, mixed, too_long)
    audit = pair_stats(mixed, min_gap=cfg.min_gap)  # what `feedback.py stats` measures on the written file
    summary.update(source=source, input_counts=left_out, pool=pool_stats, pool_sets=pool_sets, mix=note,
                   torn_lines_redone=torn, sampling_tokens_per_s=total_tokens / max(seconds, 1e-9), statistics=audit)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    print(format_table(summary))
    print(pair_stats_tables([(str(out_dir / "ie_feedback.json"), audit)]))
    print(f"mix: {note}")
    print(pool_line)
    print(f"wrote {out_dir / 'ie_feedback.json'} ({len(mixed)} pairs) and {out_dir / 'summary.json'}")
    training.cleanup_distributed()


if __name__ == "__main__":
    if sys.argv[1:2] == ["stats"]:  # python feedback.py stats FILE ...: audit IEFeedback files (section 6 above)
        stats_main(sys.argv[2:])
    else:
        main()
