"""IEFeedback (feedback.py; paper section 4, appendix B.1, docs/fidelity.md §3).

What is checked, as the specification of the method:
- BLEU: character BLEU-4 with NIST geometric smoothing equals nltk's sentence_bleu(..., method3), on hand-worked
  values and thousands of random pairs; the answer is the text after the first `[Answer]: `; -1 without it.
- Pairs: on a hand-made samples file (tests/data/feedback/samples.jsonl), which samples become chosen / rejected
  and which prompts are skipped and why; the 0.1 gap threshold is strict.
- Mix: 30% online / 70% offline, one pair per prompt, seeded, and what happens when pairs run short.
- The written IEFeedback file is read by data.load_conversations and tokenised by data.tokenize_preference.
- End to end on a tiny random model: 1 and 2 processes sample the same texts, and a killed run resumes to the
  same result.
"""
import json
import math
import random
from pathlib import Path

import pytest
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

import audit
import data
import feedback

DATA = Path(__file__).parent / "data" / "feedback"


def nltk_char_bleu(hypothesis: str, reference: str) -> float:
    """The oracle: what ADELIE's compute_metric.py calls."""
    return sentence_bleu([list(reference)], list(hypothesis), smoothing_function=SmoothingFunction().method3)


# ----------------------------------------------------------------------------------------------------------------
# BLEU

def test_bleu_worked_by_hand():
    """Values worked out from the definition (p_n = clipped matches / hypothesis n-grams, method3 replaces the k-th
    zero precision by 1 / (2^k * denominator), BLEU = BP * (p1 p2 p3 p4)^(1/4)).

    "abcd" vs itself: every p_n = 1, BP = 1 -> 1.
    "NA" vs "NA": p1 = 2/2, p2 = 1/1, p3 = 0/1 -> 1/2, p4 = 0/1 -> 1/4 (a 2-character text has no 3- or 4-gram;
        nltk counts 0 matches out of 1) -> (1/8)^(1/4) = 0.594604: an exact short answer scores well below 1.
    "abx" vs "abcd": p1 = 2/3, p2 = 1/2, p3 = 0/1 -> 1/2, p4 = 0/1 -> 1/4; BP = exp(1 - 4/3)
        -> exp(-1/3) * (2/3 * 1/2 * 1/2 * 1/4)^(1/4) = 0.716531 * 0.451801 = 0.323730.
    "aaaa" vs "ab": clipping: p1 = 1/4 (one "a" in the reference), p2 = 0/3 -> 1/(2*3), p3 = 0/2 -> 1/(4*2),
        p4 = 0/1 -> 1/(8*1); longer than the reference: BP = 1 -> (1/4 * 1/6 * 1/8 * 1/8)^(1/4) = 0.159736.
    No common character, an empty hypothesis or an empty reference: 0 (no unigram match; nltk returns 0 before
    smoothing)."""
    assert feedback.bleu("abcd", "abcd") == 1.0
    assert feedback.bleu("NA", "NA") == pytest.approx((1 / 8) ** 0.25, abs=1e-12)
    assert feedback.bleu("NA", "NA") == pytest.approx(0.594604, abs=1e-6)
    expected = math.exp(1 - 4 / 3) * (2 / 3 * 1 / 2 * 1 / 2 * 1 / 4) ** 0.25
    assert feedback.bleu("abx", "abcd") == pytest.approx(expected, abs=1e-12)
    assert feedback.bleu("abx", "abcd") == pytest.approx(0.323730, abs=1e-6)
    assert feedback.bleu("aaaa", "ab") == pytest.approx((1 / 4 * 1 / 6 * 1 / 8 * 1 / 8) ** 0.25, abs=1e-12)
    assert feedback.bleu("aaaa", "ab") == pytest.approx(0.159736, abs=1e-6)
    assert feedback.bleu("xyz", "abc") == 0.0
    assert feedback.bleu("", "abc") == 0.0
    assert feedback.bleu("abc", "") == 0.0


HAND_PICKED = [
    ("EU: ORG; German: MISC; British: MISC; ", "EU: ORG; German: MISC; British: MISC; "),  # exact
    ("German: MISC; EU: ORG; British: MISC; ", "EU: ORG; German: MISC; British: MISC; "),  # other item order
    ("EU: ORG; German: MISC; ", "EU: ORG; German: MISC; British: MISC; "),                 # shorter: BP < 1
    ("EU: ORG; German: MISC; British: MISC; lamb: MISC; ", "EU: ORG; German: MISC; British: MISC; "),  # longer
    ("NA", "NA"), ("NA", "EU: ORG; "), ("EU: ORG; ", "NA"), ("N", "NA"), ("A", "A"), ("ab", "ba"),
    ("", ""), ("", "NA"), ("NA", ""), (" ", " "), ("aaaaaaa", "a"), ("a", "aaaaaaa"),
    ("(storm; CAUSE; flood); ", "(flood; CAUSE; storm); "),
    ("(Anna Berg; per:employee_of; Nordic Bank)\n", "(Anna Berg; per:employee_of; Nordic Bank)"),
    ("| Name | Age |\n| --- | --- |\n| Anna | 31 |", "| Name | Age |\n| --- | --- |\n| Anna | 30 |\n| Omar | 45 |"),
    ("é漢字 ü", "é漢字 ü!"),  # characters, not bytes
]


@pytest.mark.parametrize("hypothesis,reference", HAND_PICKED)
def test_bleu_equals_nltk_on_hand_picked_pairs(hypothesis, reference):
    assert feedback.bleu(hypothesis, reference) == pytest.approx(nltk_char_bleu(hypothesis, reference), abs=1e-12)


def test_bleu_equals_nltk_on_random_pairs():
    """Small alphabets and short strings hit every edge: repeated n-grams (clipping), texts shorter than 4,
    1 to 3 zero-match orders (method3's k), hypotheses shorter and longer than the reference (BP)."""
    rng = random.Random(0)
    for trial in range(3000):
        alphabet = "ab; :()NA\n"[:rng.randint(1, 10)]
        hyp = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        ref = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        assert feedback.bleu(hyp, ref) == pytest.approx(nltk_char_bleu(hyp, ref), abs=1e-12), (trial, hyp, ref)


def test_answer_text_and_score_sample():
    """The compared text is what follows the first `[Answer]: ` up to a second one (ADELIE split on the marker
    and took part 1); the explanation before it is not scored; no marker -> -1."""
    assert feedback.scored_answer("[Explanation]: because. [Answer]: x: PER; ") == "x: PER; "
    assert feedback.scored_answer("[Answer]: a; [Answer]: b; ") == "a; "
    assert feedback.scored_answer("[Answer]:a") is None  # the marker includes its space
    assert feedback.scored_answer("Anna: PER; ") is None
    gold = "[Explanation]: Anna is a person. [Answer]: Anna: PER; "
    assert feedback.score_sample("[Answer]: Anna: PER; ", gold) == 1.0
    assert feedback.score_sample("[Explanation]: other words. [Answer]: Anna: PER; [Answer]: junk", gold) == 1.0
    assert feedback.score_sample("Anna: PER; ", gold) == -1.0
    assert feedback.score_sample("[Answer]: Anna: LOC; ", gold) == pytest.approx(
        nltk_char_bleu("Anna: LOC; ", "Anna: PER; "), abs=1e-12)
    with pytest.raises(ValueError, match="gold answer without"):
        feedback.score_sample("[Answer]: x", "x: PER; ")


# ----------------------------------------------------------------------------------------------------------------
# Pairs on a hand-made samples file

def load_samples():
    records = [json.loads(line) for line in (DATA / "samples.jsonl").read_text().splitlines()]
    scores = [[feedback.score_sample(s, r["messages"][-1]["content"]) for s in r["samples"]] for r in records]
    return records, scores


def by_id(items):
    return {item["id"]: item for item in items}


def test_online_pairs_on_hand_made_samples():
    """Each prompt of samples.jsonl says in its "note" what should happen; this is that, checked."""
    records, scores = load_samples()
    pairs, skipped = feedback.online_pairs(records, scores, min_gap=0.1)
    pairs, skipped = by_id(pairs), by_id(skipped)
    assert sorted(pairs) == ["conll2003/train/0", "maven-ere/train/0", "tacred/train/1"]
    assert {k: v["reason"] for k, v in skipped.items()} == {
        "conll2003/train/1": "no_answer", "conll2003/train/2": "gap_too_small", "tacred/train/0": "gap_too_small"}
    # exact answer (1.0) over the sample without [Answer]: (-1)
    p = pairs["conll2003/train/0"]
    assert (p["chosen_sample"], p["rejected_sample"]) == (1, 2)
    assert (p["chosen_score"], p["rejected_score"]) == (1.0, -1.0)
    # ties go to the earliest sample: best of {1, 3} -> 1, worst of {2, 4} -> 2
    p = pairs["tacred/train/1"]
    assert (p["chosen_sample"], p["rejected_sample"]) == (1, 2)
    assert p["chosen"][-1]["content"] == records[4]["samples"][1]
    assert p["rejected"][-1]["content"] == records[4]["samples"][2]
    p = pairs["maven-ere/train/0"]
    assert (p["chosen_sample"], p["rejected_sample"]) == (1, 4)
    # the released format: prompt turns + one final assistant turn on each side; messages = prompt + gold
    record = records[0]
    p = pairs["conll2003/train/0"]
    assert p["messages"] == record["messages"]
    assert p["chosen"][:-1] == p["rejected"][:-1] == record["messages"][:-1]
    assert p["chosen"][-1] == {"role": "assistant", "content": record["samples"][1]}
    assert p["rejected"][-1] == {"role": "assistant", "content": record["samples"][2]}


def test_offline_pairs_on_hand_made_samples():
    records, scores = load_samples()
    pairs, skipped = feedback.offline_pairs(records, scores, min_gap=0.1, skip_identical=True)
    pairs, skipped = by_id(pairs), by_id(skipped)
    assert sorted(pairs) == ["conll2003/train/0", "conll2003/train/1", "maven-ere/train/0", "tacred/train/1"]
    assert {k: v["reason"] for k, v in skipped.items()} == {
        "conll2003/train/2": "identical", "tacred/train/0": "gap_too_small"}
    for p in pairs.values():  # chosen is always the gold answer, scored 1
        gold = records[[r["id"] for r in records].index(p["id"])]["messages"][-1]
        assert p["chosen"][-1] == gold and p["chosen_sample"] is None and p["chosen_score"] == 1.0
    # all samples lack [Answer]: (-1 each): the gold answer is preferred to the first of them
    p = pairs["conll2003/train/1"]
    assert (p["rejected_sample"], p["rejected_score"]) == (0, -1.0)
    assert p["rejected"][-1]["content"] == "Anna Berg is a person."
    assert pairs["tacred/train/1"]["rejected_sample"] == 2
    # ADELIE's release (and our default) keeps the gold-vs-itself pair of a correct short answer: 1 - 0.59 > 0.1
    pairs_release, skipped_release = feedback.offline_pairs(records, scores, min_gap=0.1)
    p = by_id(pairs_release)["conll2003/train/2"]
    assert p["chosen"] == p["rejected"]
    assert p["rejected_score"] == pytest.approx(0.594604, abs=1e-6)
    assert [s["id"] for s in skipped_release] == ["tacred/train/0"]


def test_gap_threshold_is_strict():
    """Kept only if the gap EXCEEDS 0.1 (section 4): a gap of exactly 0.1 is skipped."""
    rec = {"index": 0, "dataset": "d", "id": "d/train/0", "samples": ["[Answer]: a", "[Answer]: b"],
           "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "[Answer]: g"}]}
    assert feedback.online_pairs([rec], [[0.2, 0.1]])[1][0]["reason"] == "gap_too_small"  # 0.2 - 0.1 == 0.1
    assert len(feedback.online_pairs([rec], [[0.25, 0.1]])[0]) == 1
    assert feedback.offline_pairs([rec], [[1.0, 0.9]])[1][0]["reason"] == "gap_too_small"
    assert len(feedback.offline_pairs([rec], [[1.0, 0.875]])[0]) == 1


# ----------------------------------------------------------------------------------------------------------------
# The 30/70 mix

def fake_pairs(n_prompts, online_every):
    """Offline pairs for every prompt, online pairs for every `online_every`-th (online-eligible prompts are always
    offline-eligible, as in real data)."""
    def pair(i, kind):
        return {"index": i, "id": f"d/train/{i}", "dataset": "d", "kind": kind}
    online = [pair(i, "online") for i in range(0, n_prompts, online_every)]
    offline = [pair(i, "offline") for i in range(n_prompts)]
    return online, offline


def test_mix_is_30_70_one_pair_per_prompt_and_seeded():
    online, offline = fake_pairs(200, 2)
    pairs, note = feedback.mix_pairs(online, offline, target=100, online_ratio=0.3, seed=1)
    kinds = [p["kind"] for p in pairs]
    assert (kinds.count("online"), kinds.count("offline")) == (30, 70)
    assert len({p["index"] for p in pairs}) == 100  # one pair per prompt
    assert [p["index"] for p in pairs] == sorted(p["index"] for p in pairs)
    assert "30 online + 70 offline = 100 pairs" in note
    again, _ = feedback.mix_pairs(online, offline, target=100, online_ratio=0.3, seed=1)
    assert again == pairs  # deterministic
    other, _ = feedback.mix_pairs(online, offline, target=100, online_ratio=0.3, seed=2)
    assert [p["index"] for p in other] != [p["index"] for p in pairs]  # the seed draws which prompts
    shuffled, _ = feedback.mix_pairs(online[::-1], offline[::-1], target=100, online_ratio=0.3, seed=1)
    assert shuffled == pairs  # input order does not matter


def test_mix_when_pairs_run_short():
    # this project's earlier rules, kept as --mix_rule keep_ratio / fill (the release's rule: tests/test_fidelity.py)
    # fewer usable prompts than the target: every one gives a pair, still 30/70
    online, offline = fake_pairs(50, 2)
    pairs, note = feedback.mix_pairs(online, offline, target=100, seed=0, rule="keep_ratio")
    assert [p["kind"] for p in pairs].count("online") == 15 and len(pairs) == 50
    assert "only 50 prompts give an offline pair" in note
    # too few online pairs (10 for 15 wanted): keep the ratio by making fewer pairs ...
    online, offline = fake_pairs(100, 10)
    pairs, note = feedback.mix_pairs(online, offline, target=50, seed=0, rule="keep_ratio")
    kinds = [p["kind"] for p in pairs]
    assert (kinds.count("online"), kinds.count("offline")) == (10, 23)  # 10 / 0.3 = 33.3 -> 33 pairs
    assert "only 10 online pairs: kept the 30% online ratio by making 33 pairs" in note
    # ... or fill the target with offline pairs
    pairs, note = feedback.mix_pairs(online, offline, target=50, seed=0, rule="fill")
    kinds = [p["kind"] for p in pairs]
    assert (kinds.count("online"), kinds.count("offline")) == (10, 40)
    assert "filled up with offline pairs" in note
    # no online pair at all: keep_ratio makes nothing, fill makes offline pairs only
    assert feedback.mix_pairs([], offline, target=10, rule="keep_ratio")[0] == []
    assert [p["kind"] for p in feedback.mix_pairs([], offline, target=10, rule="fill")[0]] == ["offline"] * 10
    # the ratio's extremes
    assert {p["kind"] for p in feedback.mix_pairs(online, offline, target=20, online_ratio=0.0, rule="keep_ratio")[0]} == {"offline"}
    assert [p["kind"] for p in feedback.mix_pairs(online, offline, target=20, online_ratio=1.0, rule="keep_ratio")[0]] == ["online"] * 10
    assert feedback.mix_pairs([], [], target=10, rule="keep_ratio")[0] == []


# ----------------------------------------------------------------------------------------------------------------
# Resuming: samples files with a torn last line

def test_torn_last_lines_are_cut_and_prompts_resampled(tmp_path):
    pool = [{"index": i, "id": f"d/train/{i}", "prompt_sha": f"sha{i}"} for i in range(5)]
    line = lambda i: json.dumps({"index": i, "id": f"d/train/{i}", "prompt_sha": f"sha{i}", "samples": ["x"],
                                 "finished": [True]}) + "\n"
    (tmp_path / "samples.rank0.jsonl").write_text(line(0) + line(2) + line(4)[:17])  # killed while writing 4
    (tmp_path / "samples.rank1.jsonl").write_text(line(1)[:5])  # killed while writing its first line
    (tmp_path / "samples.rank2.jsonl").write_text(line(3))  # from a 3-process run: still read
    assert feedback.repair_sample_files(tmp_path) == 2
    assert (tmp_path / "samples.rank0.jsonl").read_text() == line(0) + line(2)
    assert (tmp_path / "samples.rank1.jsonl").read_text() == ""
    done, outside = feedback.read_samples(tmp_path, pool)
    assert sorted(done) == [0, 2, 3] and outside == 0  # 1 and 4 will be sampled again
    assert feedback.repair_sample_files(tmp_path) == 0
    # fewer prompts in the pool now (--max_prompts smaller): extra lines are counted, not used
    assert feedback.read_samples(tmp_path, pool[:3]) == ({0: done[0], 2: done[2]}, 1)


def test_samples_of_another_pool_or_a_broken_line_are_errors(tmp_path):
    pool = [{"index": 0, "id": "d/train/0", "prompt_sha": "new"}]
    path = tmp_path / "samples.rank0.jsonl"
    path.write_text(json.dumps({"index": 0, "id": "d/train/0", "prompt_sha": "old", "samples": [], "finished": []})
                    + "\n")
    with pytest.raises(ValueError, match=r"samples.rank0.jsonl:1: prompt 0 \(d/train/0\) was sampled from another"):
        feedback.read_samples(tmp_path, pool)
    path.write_text("{broken\n" + json.dumps({"index": 0}) + "\n")
    with pytest.raises(ValueError, match=r"samples.rank0.jsonl:1: not a JSON line"):
        feedback.read_samples(tmp_path, pool)


# ----------------------------------------------------------------------------------------------------------------
# Summary: the Table 8 view

def test_summary_counts_the_hand_made_samples():
    records, scores = load_samples()
    for r in records:
        r["finished"] = [True] * 4 + [False]  # the last sample of each prompt hit max_new_tokens
    online, online_skipped = feedback.online_pairs(records, scores)
    offline, offline_skipped = feedback.offline_pairs(records, scores, skip_identical=True)
    mixed, _ = feedback.mix_pairs(online, offline, target=4, online_ratio=0.5, seed=0)
    summary = feedback.summarize(records, records, scores, online, online_skipped, offline, offline_skipped, mixed)
    conll = summary["datasets"]["conll2003"]
    assert conll["prompts"] == conll["sampled"] == 3 and conll["samples"] == 15
    assert conll["samples_without_answer"] == 1 + 5 and conll["samples_cut_at_max_new_tokens"] == 3
    assert (conll["online_eligible"], conll["online_skipped_no_answer"], conll["online_skipped_gap_too_small"]) == \
        (1, 1, 1)
    assert (conll["offline_eligible"], conll["offline_skipped_identical"]) == (2, 1)
    assert summary["total"]["online_used"] == 2 and summary["total"]["offline_used"] == 2
    gaps = [p["chosen_score"] - p["rejected_score"] for p in mixed]
    assert summary["total"]["delta"] == pytest.approx(sum(gaps) / 4)
    table = feedback.format_table(summary)
    assert table.splitlines()[0].split()[:3] == ["data", "set", "task"]
    assert table.splitlines()[-1].split()[0] == "total"
    assert {"conll2003", "tacred", "maven-ere"} <= {line.split()[0] for line in table.splitlines()}


# ----------------------------------------------------------------------------------------------------------------
# End to end: feedback.py on a tiny random model under torchrun

ARGS = ["--max_per_dataset", "8", "--max_new_tokens", "40", "--target_pairs", "12", "--mix_rule", "fill"]


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    """A random "tiny" model with the shipped tokenizer, a few synthetic training records of three data sets, and a
    reference run of feedback.py on them (1 process, 4 prompts per generate call)."""
    from conftest import save_tiny_model
    import synthetic
    tmp = tmp_path_factory.mktemp("feedback")
    save_tiny_model(tmp / "model")
    names = ["syn_news_ner", "syn_pair_ere", "syn_odie_people"]
    records = synthetic.generate_corpus(seed=0, n_train=10, n_test=0, datasets=names)["train"]
    with open(tmp / "records.jsonl", "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    run_feedback(tmp, tmp / "reference", 1, "--flush_every", "4")
    return tmp


def feedback_cmd(setup, out_dir, *extra):
    return ["feedback.py", "--model", setup / "model", "--records", setup / "records.jsonl", "--out_dir", out_dir,
            *ARGS, *extra]


def run_feedback(setup, out_dir, nproc, *extra):
    from conftest import run_torchrun
    script, *args = feedback_cmd(setup, out_dir, *extra)
    return run_torchrun(script, args, nproc=nproc)


def all_samples(out_dir):
    rows = [json.loads(line) for p in sorted(Path(out_dir).glob("samples.rank*.jsonl"))
            for line in p.read_text().splitlines()]
    assert len({r["index"] for r in rows}) == len(rows)  # each prompt sampled once
    return {r["index"]: r["samples"] for r in rows}


def test_reference_run_writes_ie_feedback_that_dpo_reads(tiny_setup):
    """What a run leaves: the pool, 5 samples per prompt, scores, IEFeedback in the released format (read by
    data.load_conversations and tokenised by data.tokenize_preference, as dpo.py does), pairs.jsonl, a summary."""
    import data
    import model as llama
    out = tiny_setup / "reference"
    pool = [json.loads(line) for line in (out / "prompts.jsonl").read_text().splitlines()]
    assert len(pool) == 24 and {p["dataset"] for p in pool} == {"syn_news_ner", "syn_pair_ere", "syn_odie_people"}
    tokenizer = llama.Tokenizer(data.DEFAULT_TOKENIZER)
    # a prompt is sampled only if it leaves room for 40 new tokens in the tiny model's 512-token context
    fits = [p["index"] for p in pool if len(data.encode_prompt(tokenizer, p["messages"][:-1])) + 40 <= 512]
    assert 12 < len(fits) < 24  # some few-shot prompts are too long
    samples = all_samples(out)
    assert sorted(samples) == fits and all(len(s) == 5 for s in samples.values())
    assert all(len(set(s)) > 1 for s in samples.values())  # independent samples, not one sample repeated
    released = json.loads((out / "ie_feedback.json").read_text())
    assert len(released) == 12 and all(list(r) == ["dataset", "id", "messages", "chosen", "rejected"]
                                       for r in released)
    meta = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    by_index = {p["index"]: p for p in pool}
    for r, m in zip(released, meta):
        prompt = by_index[m["index"]]
        assert r["id"] == m["id"] == prompt["id"] and r["messages"] == prompt["messages"]
        assert r["chosen"][:-1] == r["rejected"][:-1] == prompt["messages"][:-1]
        assert r["rejected"][-1]["content"] == samples[m["index"]][m["rejected_sample"]]
        if m["kind"] == "offline":
            assert r["chosen"][-1] == prompt["messages"][-1]
    conversations = data.load_conversations(out / "ie_feedback.json")
    assert [c["id"] for c in conversations] == [r["id"] for r in released]
    pairs, stats = data.tokenize_preference(tokenizer, conversations, max_len=2048)
    assert len(pairs) == 12 and stats["kept"] == 12
    summary = json.loads((out / "summary.json").read_text())
    assert summary["total"]["prompts"] == 24 and summary["total"]["sampled"] == len(fits)
    assert summary["total"]["samples"] == 5 * len(fits)
    assert sum(row.get("prompts_too_long_for_model", 0) for row in summary["datasets"].values()) == 24 - len(fits)
    assert summary["total"]["online_used"] + summary["total"]["offline_used"] == 12
    # the run's own `feedback.py stats` figures: an online pair whose best sample is the gold answer reads as offline
    audit = summary["statistics"]["total"]
    same_as_gold = sum(r["chosen"][-1]["content"].strip() == r["messages"][-1]["content"].strip()
                       for r, m in zip(released, meta) if m["kind"] == "online")
    assert (audit["pairs"], audit["gold_from_messages"]) == (12, 12)
    assert audit["offline"] == summary["total"]["offline_used"] + same_as_gold


def test_two_processes_sample_what_one_does(tiny_setup, tmp_path):
    """Prompts split over 2 ranks, 1 prompt per generate call, other batches: the same samples, the same pairs."""
    run_feedback(tiny_setup, tmp_path / "two", 2, "--flush_every", "1", "--batch_size", "5")
    assert all_samples(tmp_path / "two") == all_samples(tiny_setup / "reference")
    assert (tmp_path / "two" / "ie_feedback.json").read_bytes() == \
        (tiny_setup / "reference" / "ie_feedback.json").read_bytes()


def test_killed_run_resumes_to_the_same_result(tiny_setup, tmp_path):
    """SIGKILL a 1-process run (python feedback.py) after its first samples reach the disk, tear its last line as a
    kill mid-write would, then run again on 2 processes: only the missing prompts are sampled, the torn line is
    redone, and the result is the reference's."""
    from conftest import kill_when_held, start_held
    out = tmp_path / "killed"
    # A plain process (no torchrun launcher between us and the worker), so that after wait() nothing writes any more.
    # It holds when model.generate is called a third time, after two prompts' samples are on disk: killed there, it
    # can never have sampled them all first.
    script, *args = feedback_cmd(tiny_setup, out, "--flush_every", "1")
    marker = tmp_path / "held"
    kill_when_held(start_held(script, args, "model", "generate", 2, marker), marker)
    samples_file = out / "samples.rank0.jsonl"
    lines = samples_file.read_text().splitlines()
    n_fit = len(all_samples(tiny_setup / "reference"))
    assert 2 <= len(lines) < n_fit, f"the run was not killed part-way ({len(lines)} of {n_fit} prompts sampled)"
    samples_file.write_text("".join(line + "\n" for line in lines[:-1]) + lines[-1][:40])  # tear the last line
    from conftest import run_torchrun
    script, *args = feedback_cmd(tiny_setup, out, "--clear_stale_lock")  # the killed run left OUT_DIR/LOCK
    resumed = run_torchrun(script, args, nproc=2)
    assert "1 torn last lines cut" in resumed.stdout
    assert f"samples on disk for {len(lines) - 1} prompts" in resumed.stdout
    assert f"{n_fit - len(lines) + 1} prompts to sample" in resumed.stdout  # the missing ones and the torn one
    assert all_samples(out) == all_samples(tiny_setup / "reference")
    assert (out / "ie_feedback.json").read_bytes() == (tiny_setup / "reference" / "ie_feedback.json").read_bytes()


def test_pool_uses_training_records_of_ie_sets_only(tmp_path):
    """The pool (docs/fidelity.md §3): train split only, held-out evaluation sets left out (counted), the canonical
    format always, gold answers with [Answer]: , at most max_per_dataset per data set, seeded."""
    import synthetic
    corpus = synthetic.generate_corpus(seed=0, n_train=12, n_test=3, datasets=["syn_news_ner", "syn_kb_rc"])
    semeval = [{**r, "dataset": "semeval", "id": r["id"].replace("syn_kb_rc", "semeval")}
               for r in corpus["train"] if r["dataset"] == "syn_kb_rc"]
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in corpus["train"] + corpus["test"] + semeval))
    records, _, left_out = data.read_ie_records(data.IEInstructConfig(records=str(path)))  # as feedback.main
    assert {r["dataset"] for r in records} == {"syn_news_ner", "syn_kb_rc"} and {r["split"] for r in records} == \
        {"train"}
    assert left_out == {"records of held-out evaluation sets (section 5.1), not used": 12,
                        "records of other splits than ['train'], not used": 6}
    pool, stats = feedback.ie_feedback_prompts(records, max_per_dataset=5, seed=3)
    assert [p["index"] for p in pool] == list(range(len(pool)))
    for name in ("syn_news_ner", "syn_kb_rc"):
        assert 0 < sum(p["dataset"] == name for p in pool) <= 5 and stats[name]["instances"] <= 5
    for p in pool:
        assert p["messages"][-1]["role"] == "assistant" and feedback.scored_answer(p["messages"][-1]["content"])
        assert p["prompt_sha"] == feedback.prompt_sha(p["messages"])
    measured = audit.corpus_stats(pool)["datasets"]  # the formats as the prompts' text shows them
    assert all(m["format_canonical"] == m["ie"] > 0 for m in measured.values())
    again, _ = feedback.ie_feedback_prompts(records, max_per_dataset=5, seed=3)
    assert again == pool
    assert feedback.ie_feedback_prompts(records, max_per_dataset=5, seed=4)[0] != pool


def test_pool_word_limit_and_odie_cot_share():
    import synthetic
    records = synthetic.generate_corpus(seed=0, n_train=10, n_test=0, datasets=["syn_news_ner", "syn_odie_people"])
    records = records["train"]
    pool, stats = feedback.ie_feedback_prompts(records, max_words=40, seed=0)
    assert all(sum(len(m["content"].split(" ")) for m in p["messages"]) <= 40 for p in pool)
    assert sum(st.get("dropped: too long", 0) for st in stats.values()) > 0  # dropped and counted
    for ratio, expected in ((1.0, True), (0.0, False)):
        pool, _ = feedback.ie_feedback_prompts(records, odie_cot_ratio=ratio, seed=0)
        odie = [p["messages"][-1]["content"] for p in pool if p["task"] == "ODIE"]
        assert len(odie) == 10 and all(a.startswith("[Explanation]: ") == expected for a in odie)


def test_samples_made_with_other_settings_are_not_mixed_in(tiny_setup):
    """An output directory whose samples came from other sampling settings is refused, not silently extended."""
    from conftest import run_torchrun
    script, *args = feedback_cmd(tiny_setup, tiny_setup / "reference", "--num_samples", "4")
    proc = run_torchrun(script, args, nproc=1, check=False)
    assert proc.returncode != 0
    assert "holds samples made with other settings {'num_samples': (5, 4)}" in proc.stderr
