"""Fidelity to the paper and to the authors' release (docs/fidelity.md): each default is checked against the
paper's numbers or against an independent implementation written here.

- model.py: a transformers-5 config (`rope_theta` inside `rope_parameters`) loads with transformers' logits; RoPE
  scaling is refused.
- ie_formats.py: the readers for ACE 2005 (OneIE and DyGIE++ layouts), OntoNotes 5 (CoNLL-2012) and NYT11, on
  small files written here in each real layout.
- evaluate.py: the ids fed to the model for every released test prompt equal the release's evaluation template,
  restated here and tokenised by transformers' slow Llama tokenizer (conftest.SlowLlamaTokenizer).
- training.py: batches in a random order by default, length grouping as an option.
- feedback.py: the release's online/offline mix against its merge rule restated here, in simulations; the prompt
  pool holds Table 8's data sets only.
- scorers.py: `--scorer strict` for open IE equals carb.py's algorithm, restated here, to 1e-6.
- data.py: Table 7's counts are the paper's, and a build on the shared data gives them.
"""
import json
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import ie_formats as F  # noqa: E402
from checkpoints import hf_config, model_args_from_hf  # noqa: E402
from conftest import SlowLlamaTokenizer, shared_path  # noqa: E402
from model import ModelArgs, Transformer  # noqa: E402


# --- Hugging Face configs written by transformers 5 ------------------------------------------------------------------

def _to_transformers5_layout(config_path: Path, theta: float) -> None:
    """Rewrite a transformers-4 config.json the way transformers 5 writes it: no top-level rope_theta/rope_scaling,
    both inside rope_parameters."""
    cfg = json.loads(config_path.read_text())
    cfg.pop("rope_theta", None)
    cfg.pop("rope_scaling", None)
    cfg["rope_parameters"] = {"rope_type": "default", "rope_theta": theta}
    config_path.write_text(json.dumps(cfg))


def test_transformers5_config_with_non_default_theta_gives_transformers_logits(tmp_path):
    transformers = pytest.importorskip("transformers")
    theta = 500000.0   # not LLaMA-2's 10000: a loader that ignores rope_parameters would be off by ~1e-2
    torch.manual_seed(0)
    config = transformers.LlamaConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, vocab_size=512,
                                      max_position_embeddings=256, rope_theta=theta, tie_word_embeddings=False)
    hf = transformers.LlamaForCausalLM(config).eval()
    hf.save_pretrained(tmp_path)
    _to_transformers5_layout(tmp_path / "config.json", theta)
    ours = Transformer.from_pretrained(tmp_path)
    assert ours.args.rope_theta == theta
    x = torch.randint(0, 512, (2, 200), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (ours(x) - hf(x).logits).abs().max().item() <= 1e-4
    # the same checkpoint read with the default theta would differ: the test can fail
    wrong = Transformer(ModelArgs(**{**ours.args.__dict__, "rope_theta": 10000.0}))
    wrong.load_state_dict(ours.state_dict())
    wrong.init_rope()
    with torch.no_grad():
        assert (wrong(x) - hf(x).logits).abs().max().item() > 1e-3


@pytest.mark.parametrize("rope", [{"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0},
                                  {"rope_type": "llama3", "factor": 8.0, "rope_theta": 500000.0},
                                  {"rope_type": "default", "rope_theta": 10000.0, "factor": 2.0}])
def test_rope_scaling_in_either_layout_is_refused(rope):
    base = hf_config(ModelArgs(dim=64, n_layers=1, n_heads=4, vocab_size=512, multiple_of=32))
    v5 = {k: v for k, v in base.items() if k not in ("rope_theta", "rope_scaling")}
    with pytest.raises(ValueError, match="rope_parameters.*not supported"):
        model_args_from_hf({**v5, "rope_parameters": rope})
    with pytest.raises(ValueError, match="rope_scaling.*not supported"):
        model_args_from_hf({**base, "rope_scaling": rope})


def test_both_layouts_read_the_same_theta():
    base = hf_config(ModelArgs(dim=64, n_layers=1, n_heads=4, vocab_size=512, multiple_of=32, rope_theta=1e6))
    v5 = {k: v for k, v in base.items() if k not in ("rope_theta", "rope_scaling")}
    assert model_args_from_hf({**v5, "rope_parameters": {"rope_type": "default", "rope_theta": 1e6}}).rope_theta \
        == model_args_from_hf(base).rope_theta == 1e6
    with pytest.raises(ValueError, match="disagree"):
        model_args_from_hf({**base, "rope_parameters": {"rope_type": "default", "rope_theta": 5e5}})


# --- readers for the Table 7 sets that need a licence: ACE 2005, OntoNotes 5, NYT11 ------------------------------------
# Small files written here in each release's real layout; the data are licensed and not in ../shared.


def _m(text, start, end):
    return {"text": text, "start": start, "end": end}


ACE_TEXT = ["Chun was sentenced in Seoul .", "Police arrested him ."]
# OneIE (preprocessing/process_ace.py): one sentence per line, token offsets with exclusive ends, arguments by id
ACE_ONEIE = [
    {"doc_id": "D1", "sent_id": "D1-0", "tokens": ACE_TEXT[0].split(), "sentence": ACE_TEXT[0],
     "entity_mentions": [
         {"id": "D1-E1-1", "text": "Chun", "entity_type": "PER", "mention_type": "NAM", "entity_subtype": "Individual",
          "start": 0, "end": 1},
         {"id": "D1-E2-1", "text": "Seoul", "entity_type": "GPE", "mention_type": "NAM",
          "entity_subtype": "Population-Center", "start": 4, "end": 5}],
     "relation_mentions": [],
     "event_mentions": [{"id": "D1-EV1-1", "event_type": "Justice:Sentence",
                         "trigger": {"start": 2, "end": 3, "text": "sentenced"},
                         "arguments": [{"entity_id": "D1-E1-1", "text": "Chun", "role": "Defendant"},
                                       {"entity_id": "D1-E2-1", "text": "Seoul", "role": "Place"}]}]},
    {"doc_id": "D1", "sent_id": "D1-1", "tokens": ACE_TEXT[1].split(), "sentence": ACE_TEXT[1],
     "entity_mentions": [
         {"id": "D1-E3-1", "text": "Police", "entity_type": "PER", "mention_type": "NOM", "start": 0, "end": 1},
         {"id": "D1-E1-2", "text": "him", "entity_type": "PER", "mention_type": "PRO", "start": 2, "end": 3}],
     "relation_mentions": [],
     "event_mentions": [{"id": "D1-EV2-1", "event_type": "Justice:Arrest-Jail",
                         "trigger": {"start": 1, "end": 2, "text": "arrested"},
                         "arguments": [{"entity_id": "D1-E3-1", "text": "Police", "role": "Agent"},
                                       {"entity_id": "D1-E1-2", "text": "him", "role": "Person"}]}]},
]
# DyGIE++ (scripts/data/ace-event): one document per line, document-level token indices, INCLUSIVE ends
ACE_DYGIE = [{"doc_key": "D1", "sentences": [t.split() for t in ACE_TEXT],
              "ner": [[[0, 0, "PER"], [4, 4, "GPE"]], [[6, 6, "PER"], [8, 8, "PER"]]],
              "relations": [[], []],
              "events": [[[[2, "Justice:Sentence"], [0, 0, "Defendant"], [4, 4, "Place"]]],
                         [[[7, "Justice:Arrest-Jail"], [6, 6, "Agent"], [8, 8, "Person"]]]]}]


def _jsonl(tmp_path, name, rows):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("layout", ["oneie", "dygie"])
def test_ace2005_ner_ed_eae_in_oneie_and_dygie_layouts(tmp_path, layout):
    path = _jsonl(tmp_path, "train.json", ACE_ONEIE if layout == "oneie" else ACE_DYGIE)
    t0, t1 = ACE_TEXT
    ner = F.read_ace2005(path, "train", dataset="ace2005-ner", task="NER")
    assert [r["text"] for r in ner] == ACE_TEXT and ner[0]["labels"] == ["GPE", "PER"]
    assert [r["items"] for r in ner] == [
        [{"entity": _m("Chun", 0, 4), "type": "PER"}, {"entity": _m("Seoul", 22, 27), "type": "GPE"}],
        [{"entity": _m("Police", 0, 6), "type": "PER"}, {"entity": _m("him", 16, 19), "type": "PER"}]]
    ed = F.read_ace2005(path, "train", dataset="ace2005-ed", task="ED")
    assert [r["items"] for r in ed] == [[{"trigger": _m("sentenced", 9, 18), "type": "Justice:Sentence"}],
                                        [{"trigger": _m("arrested", 7, 15), "type": "Justice:Arrest-Jail"}]]
    assert ed[0]["labels"] == ["Justice:Arrest-Jail", "Justice:Sentence"]
    eae = F.read_ace2005(path, "train", dataset="ace2005-eae", task="EAE")
    assert [r["id"] for r in eae] == ["ace2005-eae/train/0/0", "ace2005-eae/train/1/0"]
    assert eae[0]["query"] == {"trigger": _m("sentenced", 9, 18), "event_type": "Justice:Sentence"}
    assert eae[0]["labels"] == ["Defendant", "Place"]
    assert eae[0]["items"] == [{"argument": _m("Chun", 0, 4), "role": "Defendant"},
                               {"argument": _m("Seoul", 22, 27), "role": "Place"}]
    assert eae[1]["items"] == [{"argument": _m("Police", 0, 6), "role": "Agent"},
                               {"argument": _m("him", 16, 19), "role": "Person"}]


def test_ace2005_in_a_data_root_and_a_bad_argument(tmp_path):
    (tmp_path / "ace2005").mkdir()
    _jsonl(tmp_path / "ace2005", "train.oneie.json", ACE_ONEIE)
    by_name = F.convert_all(tmp_path)
    assert {n: len(v) for n, v in by_name.items()} == {"ace2005-ner": 2, "ace2005-ed": 2, "ace2005-eae": 2}
    bad = json.loads(json.dumps(ACE_ONEIE))
    bad[1]["event_mentions"][0]["arguments"][0]["entity_id"] = "nope"
    with pytest.raises(ValueError, match=r"train.json:2: argument 'Police' names entity_id 'nope'"):
        F.read_ace2005(_jsonl(tmp_path, "train.json", bad), "train", task="EAE")


# CoNLL-2012 *_gold_conll: doc part word# word POS parse lemma frameset sense speaker NE [pred-args] coref
ONTONOTES = """#begin document (bc/cctv/00/cctv_0001); part 000
bc/cctv/00/cctv_0001   0   0        Hong   NNP  (TOP(S(NP*      -   -   -   Speaker#1       (GPE*       *   -
bc/cctv/00/cctv_0001   0   1        Kong   NNP         *)      -   -   -   Speaker#1          *)      *   -
bc/cctv/00/cctv_0001   0   2    welcomed   VBD        (VP*  welcome  01   1   Speaker#1          *    (V*)   -
bc/cctv/00/cctv_0001   0   3          Li   NNP       (NP*)     -   -   -   Speaker#1    (PERSON)   (ARG1*)   (12)
bc/cctv/00/cctv_0001   0   4          /.     .         *))     -   -   -   Speaker#1          *       *   -

bc/cctv/00/cctv_0001   0   0       -LRB-  -LRB-   (TOP(S*      -   -   -   Speaker#1          *   -
bc/cctv/00/cctv_0001   0   1         Two     CD      (NP*      -   -   -   Speaker#1   (CARDINAL)   -
bc/cctv/00/cctv_0001   0   2       -RRB-  -RRB-        *))     -   -   -   Speaker#1          *   -

#end document
"""


def test_ontonotes5_conll2012_file_and_folder(tmp_path):
    (tmp_path / "train" / "bc").mkdir(parents=True)
    path = tmp_path / "train" / "bc" / "cctv_0001.gold_conll"
    path.write_text(ONTONOTES)
    for source in (path, tmp_path / "train"):
        counts = Counter()
        recs = F.read_conll2012(source, "train", counts=counts)
        assert [r["text"] for r in recs] == ["Hong Kong welcomed Li .", "( Two )"]
        assert [r["items"] for r in recs] == [
            [{"entity": _m("Hong Kong", 0, 9), "type": "GPE"}, {"entity": _m("Li", 19, 21), "type": "PERSON"}],
            [{"entity": _m("Two", 2, 5), "type": "CARDINAL"}]]
        assert len(recs[0]["labels"]) == 18 and recs[0]["meta"] == {"doc": "(bc/cctv/00/cctv_0001); part 000"}
        assert counts["escaped words written back (-LRB-, /. ...)"] == 3
    assert len(F.convert_all(_onto_root(tmp_path))["ontonotes5"]) == 2
    bad = tmp_path / "bad.gold_conll"
    bad.write_text(ONTONOTES.replace("(PERSON)", "(PERSON*"))
    with pytest.raises(ValueError, match="opens inside the open name PERSON|opened and never closed"):
        F.read_conll2012(bad, "train")


def _onto_root(tmp_path):
    root = tmp_path / "root"
    (root / "ontonotes5" / "train").mkdir(parents=True)
    (root / "ontonotes5" / "train" / "a_gold_conll").write_text(ONTONOTES)
    return root


def test_nyt11_published_json_lines(tmp_path):
    rows = [{"sentext": "Bobby Fischer , the chess champion , left Iceland .",
             "relations": [{"em1": "Bobby Fischer", "em2": "Iceland", "rtext": "/people/person/nationality",
                            "tags": [1, 2, 0, 0, 0, 0, 0, 0, 4, 0]}],
             "entities": ["Bobby Fischer", "Iceland"]},
            {"sentext": "Paris is in France , and Paris is big .",
             "relations": [{"em1": "Paris", "em2": "France", "rtext": "/location/location/contained_by", "tags": []},
                           {"em1": "Paris", "em2": "France", "rtext": "None", "tags": []}]}]
    counts = Counter()
    recs = F.read_nyt11(_jsonl(tmp_path, "train.json", rows), "train", counts=counts)
    assert recs[0]["labels"] == ["/location/location/contained_by", "/people/person/nationality"]
    assert recs[0]["items"] == [{"head": _m("Bobby Fischer", 0, 13), "relation": "/people/person/nationality",
                                 "tail": _m("Iceland", 42, 49)}]
    assert recs[1]["items"] == [{"head": _m("Paris", 0, 5), "relation": "/location/location/contained_by",
                                 "tail": _m("France", 12, 18)}]
    assert counts["relation 'None' / 'NA' (no relation)"] == 1
    assert counts["mention occurring more than once (first occurrence taken)"] == 1
    rows[0]["relations"][0]["em2"] = "Greenland"
    with pytest.raises(ValueError, match=r"train.json:1: em2 'Greenland' does not occur"):
        F.read_nyt11(_jsonl(tmp_path, "train.json", rows), "train")


# --- the evaluation prompt: the release's template, token for token ---------------------------------------------------

def release_eval_template(messages):
    """open-instruct's create_prompt_with_tulu_chat_format as ADELIE's evaluation called it (add_bos=False, the
    tokenizer adds BOS), restated here: a system or user turn is its tag, its content untouched and a newline; an
    assistant turn its tag, its content with surrounding whitespace removed, the EOS string and a newline; then the
    assistant tag that asks for the answer."""
    out = ""
    for m in messages:
        if m["role"] == "assistant":
            out += "<|assistant|>\n" + m["content"].strip() + "</s>" + "\n"
        else:
            out += "<|" + m["role"] + "|>\n" + m["content"] + "\n"
    return out + "<|assistant|>\n"


def test_evaluation_prompt_ids_equal_the_release_template_on_every_released_prompt(llama_tokenizer_path):
    import evaluate
    from model import Tokenizer
    root = shared_path("data", "adelie_test_format")
    theirs = SlowLlamaTokenizer(llama_tokenizer_path)  # transformers' slow LlamaTokenizer: what ADELIE tokenised with
    ours = Tokenizer(llama_tokenizer_path)
    files = sorted(root.rglob("*.jsonl"))
    assert len(files) == 6
    n = same = differs_from_training = 0
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            prompt = evaluate.prompt_messages(record, str(path))
            expected = theirs(release_eval_template(prompt))["input_ids"]
            got = evaluate.prompt_ids(ours, prompt)
            n += 1
            same += got == expected
            differs_from_training += evaluate.prompt_ids(ours, prompt, "training") != expected
    assert n == 5150 and same == n
    # the rendering the model was trained with differs from the release's evaluation prompt on many prompts,
    # so the choice matters (the issue measured 623/1000 FewNERD zero-shot prompts one newline token apart)
    assert differs_from_training > 1000


# --- batch order: the release shuffles (SFT and DPO); length grouping is an option --------------------------------------

def test_default_batches_are_a_random_order_and_grouping_is_an_option():
    import training as T
    lengths = list(range(1000))  # length = index: a batch's spread of lengths shows whether it was grouped
    one_rank = T.Dist(0, 1, 0, torch.device("cpu"))
    batches, n_fill = T.epoch_batches(lengths, 10, seed=42, epoch=0)
    flat = [i for b in batches for i in b]
    assert n_fill == 0 and sorted(flat) == lengths  # every example once per epoch
    spread = sum(max(b) - min(b) for b in batches) / len(batches)
    assert spread > 600  # random batches of 10 from 0..999: expected spread ~818
    assert T.rank_micro_batches(batches[0], lengths, 5, one_rank) == [batches[0][:5], batches[0][5:]]  # not sorted
    assert T.epoch_batches(lengths, 10, seed=42, epoch=1)[0] != batches  # reshuffled each epoch
    grouped, _ = T.epoch_batches(lengths, 10, seed=42, epoch=0, group_by_length=True)
    assert sum(max(b) - min(b) for b in grouped) / len(grouped) < 50
    micro = T.rank_micro_batches(grouped[0], lengths, 5, one_rank, group_by_length=True)
    assert micro == [sorted(grouped[0])[:5], sorted(grouped[0])[5:]]


# --- the 30/70 mix: the release's rule (utils/DPO/merge.py), simulated ----------------------------------------------------

def release_merge(prompts, gaps_online, worst, target=10_000, n_offline=7_000, min_gap=0.1, rng=None):
    """The release's merge, restated on raw scores: walk the prompts in order; a prompt whose best - worst gap is
    over min_gap is an online pair while fewer than target - n_offline are taken; all others form the remainder;
    n_offline prompts drawn at random from the remainder each give an offline pair when 1 - worst > min_gap.
    Returns (online prompt list, drawn prompt list, offline prompt list)."""
    online, rest = [], []
    for i in prompts:
        if gaps_online[i] > min_gap and len(online) < target - n_offline:
            online.append(i)
        else:
            rest.append(i)
    drawn = rng.sample(rest, min(n_offline, len(rest)))
    return online, drawn, [i for i in drawn if 1 - worst[i] > min_gap]


@pytest.mark.parametrize("n_prompts, online_share", [(20_000, 0.05), (20_000, 0.4), (5_000, 0.3)])
def test_release_mix_rule_equals_the_releases_merge_in_a_simulation(n_prompts, online_share):
    import random

    import feedback
    rng = random.Random(7)
    order = list(range(n_prompts))
    rng.shuffle(order)  # the walk order: the sampled file's order (our pool is shuffled, so any order)
    worst = {i: rng.choice([-1.0, rng.random()]) if rng.random() < 0.9 else 0.95 for i in order}
    best = {i: min(1.0, worst[i] + (rng.random() if rng.random() < online_share else 0.05)) for i in order}
    gap = {i: best[i] - worst[i] for i in order}
    recs = {i: {"index": i, "dataset": "d", "id": f"d/{i}"} for i in order}
    online = [{**recs[i], "kind": "online"} for i in order if gap[i] > 0.1]
    offline = [{**recs[i], "kind": "offline"} for i in order if 1 - worst[i] > 0.1]
    pairs, note = feedback.mix_pairs(online, offline, target=10_000, online_ratio=0.3, seed=3, prompts=order)
    # the same draw as mix_pairs's seeded generator, on the remainder it builds
    exp_on, _, exp_off = release_merge(order, gap, worst, rng=random.Random("ie_feedback mix 3"))
    assert sorted(p["index"] for p in pairs if p["kind"] == "online") == sorted(exp_on)
    assert sorted(p["index"] for p in pairs if p["kind"] == "offline") == sorted(exp_off)
    assert len(exp_on) == min(3000, len(online))
    print(f"{n_prompts} prompts, {len(online)} online-eligible: release rule {len(exp_on)} + {len(exp_off)}; "
          f"mix_pairs: {note}")


def test_release_rule_with_scarce_online_pairs_keeps_drawing_offline_prompts():
    """The issue's case: 1,019 online pairs. The release still draws 7,000 offline prompts; keep_ratio (this
    project's earlier default) shrinks the whole set to keep 30/70."""
    import feedback
    n = 12_000
    online = [{"index": i, "dataset": "d", "id": str(i), "kind": "online"} for i in range(0, 1019 * 10, 10)]
    offline = [{"index": i, "dataset": "d", "id": str(i), "kind": "offline"} for i in range(n) if i % 7]
    pairs, _ = feedback.mix_pairs(online, offline, target=10_000, seed=0, prompts=list(range(n)))
    kinds = [p["kind"] for p in pairs]
    assert kinds.count("online") == 1019
    drawn_from = n - 1019  # 7,000 drawn from the other prompts; those with i % 7 == 0 have no offline pair
    assert 5500 < kinds.count("offline") <= 7000 and drawn_from > 7000
    keep, _ = feedback.mix_pairs(online, offline, target=10_000, seed=0, rule="keep_ratio")
    assert [p["kind"] for p in keep].count("offline") == 2378  # round(1019 / 0.3) - 1019
    fill, _ = feedback.mix_pairs(online, offline, target=10_000, seed=0, rule="fill")
    assert [p["kind"] for p in fill].count("offline") == 10_000 - 1019


# --- Open IE: `--scorer strict` is carb.py's single-threshold P/R/F1 --------------------------------------------------
# carb.py (dair-iitd/CaRB) restated in our own words, as an independent check of scorers.strict_carb. An extraction
# is (predicate, [arguments]); gold and predictions are lists of extractions per sentence.

BE = {"be", "is", "am", "are", "was", "were", "been", "being"}
SAID = ("said", "told", "added", "adds", "says")


def carb_lenient(gold, pred):
    """matcher.py's stricter `linient_tuple_match`: [precision, recall] of word overlaps, or [0, 0] when the
    predicates share no word or the prediction lacks one of the gold's first two arguments."""
    p_num = p_den = r_num = r_den = 0
    left = pred[0].split()  # predicted predicate words not yet matched
    g = gold[0].split()
    p_den, r_den = len(left), len(g)
    hits = 0
    for w in g:
        if w in left:
            hits += 1
            left.remove(w)
    if "be" in left and any(form in g for form in ["be", "is", "am", "are", "was", "were", "been", "being"]):
        hits += 1
        left.remove("be")
    if hits == 0:
        return [0, 0]
    p_num = r_num = hits
    for k, gold_arg in enumerate(gold[1]):
        g = gold_arg.split()
        r_den += len(g)
        if k >= len(pred[1]):
            if k < 2:
                return [0, 0]
            continue
        left = pred[1][k].split()
        p_den += len(left)
        hits = 0
        for w in g:
            if w in left:
                hits += 1
                left.remove(w)
        p_num += hits
        r_num += hits
    return [p_num / p_den if p_den else 0, r_num / r_den if r_den else 0]


def carb_binary_lenient(gold, pred):
    """`binary_linient_tuple_match`: both sides cut to (first argument, the rest joined); for a gold predicate
    containing a said-type verb, the prediction with its two halves swapped is tried too; the larger [p, r] list."""
    def two(ex):
        return (ex[0], [ex[1][0], " ".join(ex[1][1:])]) if len(ex[1]) >= 2 else ex
    g2 = two(gold)
    straight = carb_lenient(g2, two(pred))
    if not any(v in gold[0] for v in SAID):
        return straight
    flipped = (pred[0], [" ".join(pred[1][1:]), pred[1][0]]) if len(pred[1]) >= 2 else pred
    return max(straight, carb_lenient(g2, flipped))


def carb_compare_one_threshold(gold_by_sentence, pred_by_sentence):
    """Benchmark.compare with every prediction at the same confidence: per gold sentence, recall numerator = sum
    over gold of the best recall; precision numerator = a greedy matching that min(#gold, #pred) times takes the
    free (gold, prediction) pair of highest precision (the first found, gold-major, on ties; a pair of precision 0
    can be taken); denominators = #predictions and #gold. No prediction anywhere: (0, 0, 0). P = 1 if its
    denominator is 0, R = 0 if its denominator is 0."""
    if not any(pred_by_sentence.values()):
        return 0.0, 0.0, 0.0
    pn = pd = rn = rd = 0
    for sent, golds in gold_by_sentence.items():
        preds = pred_by_sentence.get(sent, [])
        rd += len(golds)
        if not preds:
            continue
        table = [[carb_binary_lenient(g, p) for p in preds] for g in golds]
        rn += sum(max(cell[1] for cell in row) for row in table)
        used_g, used_p = [], []
        for _ in range(min(len(golds), len(preds))):
            best = (-1, None, None)
            for i in range(len(golds)):
                if i in used_g:
                    continue
                for j in range(len(preds)):
                    if j not in used_p and table[i][j][0] > best[0]:
                        best = (table[i][j][0], i, j)
            used_g.append(best[1])
            used_p.append(best[2])
            pn += best[0]
        pd += len(preds)
    p = pn / pd if pd > 0 else 1
    r = rn / rd if rd > 0 else 0
    f = 2 * p * r / (p + r) if p + r else 0
    return p, r, f


def _output(extractions):
    """A model output in the Table 9 format: one `(predicate; arg1; arg2; ...)` per line after `[Answer]: `."""
    return "[Answer]: " + "\n".join("(" + "; ".join([p, *args]) + ")" for p, args in extractions)


def _strict_vs_carb(gold, preds):
    import scorers
    sentences = [f"s{i}" for i in range(len(gold))]
    ours = scorers.strict_carb(gold, [_output(p) for p in preds])
    # carb.py's gold reader only knows sentences that have a gold line
    theirs = carb_compare_one_threshold({s: g for s, g in zip(sentences, gold) if g}, dict(zip(sentences, preds)))
    got = (ours.precision / 100, ours.recall / 100, ours.f1 / 100)
    assert got == pytest.approx(theirs, abs=1e-6), (gold, preds)
    return got


def test_carb_parity_on_hand_made_cases():
    said = ("said", ["the minister", "the talks had failed"])
    nary = ("was born in", ["Ann", "Paris", "in 1950", "to a family of bakers"])
    # repeated gold tuples count twice in recall (carb.py keeps them): 2/3 here, 1/2 if deduplicated
    p, r, f = _strict_vs_carb([[said, said, ("left", ["Bob", "the room"])]], [[said]])
    assert (p, r) == (1.0, pytest.approx(2 / 3))
    # n-ary gold against a binary prediction: the gold's arguments after the first are joined
    p, r, f = _strict_vs_carb([[nary]], [[("was born", ["Ann", "in Paris in 1950"])]])
    assert 0 < r < 1
    # said-type predicate: the prediction's halves may be swapped
    p, r, f = _strict_vs_carb([[said]], [[("said", ["the talks had failed", "the minister"])]])
    assert (p, r) == (1.0, 1.0)
    # "be" in a prediction matches a form of be in the gold predicate
    _strict_vs_carb([[("is", ["Rome", "the capital"])]], [[("be", ["Rome", "the capital"])]])
    # empty predictions: for one sentence, for every sentence, and only for a sentence without gold
    _strict_vs_carb([[said], [nary]], [[said], []])
    assert _strict_vs_carb([[said], [nary]], [[], []]) == (0.0, 0.0, 0.0)
    assert _strict_vs_carb([[said], []], [[], [said]]) == (1.0, 0.0, 0.0)
    # a prediction missing the gold's second argument scores nothing; greedy precision with ties
    _strict_vs_carb([[("met", ["Ann", "Bob"]), ("met", ["Ann", "Bob"])]], [[("met", ["Ann"]), ("met", ["Ann", "Bob"]),
                                                                            ("met", ["Bob", "Ann"])]])


def test_carb_parity_on_random_extraction_lists():
    import random
    rng = random.Random(0)
    words = ["Ann", "Bob", "said", "is", "be", "met", "in", "Paris", "the", "told", "was", "1950", "adds", "deal"]

    def phrase(k):
        return " ".join(rng.choice(words) for _ in range(k))

    def extraction():
        return (phrase(rng.randint(1, 3)), [phrase(rng.randint(1, 3)) for _ in range(rng.randint(1, 4))])

    for trial in range(300):
        n = rng.randint(1, 4)
        gold = [[extraction() for _ in range(rng.randint(0, 4))] for _ in range(n)]
        for g in gold:  # repeated gold tuples now and then
            if g and rng.random() < 0.3:
                g.append(g[0])
        preds = [[extraction() for _ in range(rng.randint(0, 4))] for _ in range(n)]
        _strict_vs_carb(gold, preds)


def test_carb_test_set_keeps_repeated_gold_tuples(shared):
    import ie_formats
    records = ie_formats.read_carb(shared / "data" / "carb" / "test.txt", "test")
    assert sum(len(r["items"]) for r in records) == 2715  # carb.py's count; deduplicated it would be 2,712


# --- IEInstruct's make-up (Table 7) and IEFeedback's prompt pool (Table 8) ------------------------------------------

PAPER_TABLE7 = {  # the paper's Table 7, #Instances column, by this project's data set names
    "conll2003": 5000, "ace2005-ner": 5000, "ontonotes5": 5000, "bc5cdr": 1666, "genia": 1667,
    "mit-restaurant": 1667,  # NER total 20,000
    "tacred": 5000, "fewrel": 5000, "scierc": 3332, "nyt11": 3334, "ade": 3334, "ace2005-ed": 4067, "maven": 5000,
    "phee": 2500, "casie": 2500, "ace2005-eae": 4420, "rams": 5000, "maven-arg": 5000, "maven-ere": 4278,
    "openie6": 5000, "instructie": 4904}
PAPER_TABLE8 = {"conll2003", "ace2005-ner", "ontonotes5", "tacred", "fewrel", "ace2005-ed", "maven", "ace2005-eae",
                "rams", "maven-arg", "maven-ere", "instructie", "openie6"}


def test_table7_counts_are_the_papers_and_every_set_has_a_reader():
    import data
    assert data.TABLE7_INSTANCES == PAPER_TABLE7
    assert set(PAPER_TABLE7) <= set(F.DATASETS)  # ACE 2005, OntoNotes 5 and NYT11 included
    # per task, the totals of Table 7's "#total" column
    task_total = {}
    for name, n in PAPER_TABLE7.items():
        task_total[F.DATASETS[name]["task"]] = task_total.get(F.DATASETS[name]["task"], 0) + n
    assert task_total == {"NER": 20000, "RC": 10000, "RE": 10000, "ED": 9067, "EE": 5000, "EAE": 14420, "ERE": 4278,
                          "OpenIE": 5000, "ODIE": 4904}


def test_a_build_on_the_shared_data_gives_table7_counts(shared, tmp_path):
    import data
    out = tmp_path / "ie.jsonl"
    summary = data.build(data.IEInstructConfig(out=str(out), data_dir=str(shared / "data"), general="none"),
                         progress=False)
    stats = summary["datasets"]
    present = [n for n in PAPER_TABLE7 if n in stats]
    assert summary["table7_absent"] == [n for n in PAPER_TABLE7 if n not in stats]
    for name in present:
        s = stats[name]
        # Table 7's count, or every usable record when the set has fewer (none left unused by the cap)
        assert s["instances"] == PAPER_TABLE7[name] or (s["instances"] < PAPER_TABLE7[name]
                                                         and s["not used: data set cap"] == 0), name
    counts = {n: stats[n]["instances"] for n in present}
    print(f"Table 7 counts built from {shared / 'data'}: {counts}; absent: {summary['table7_absent']}")
    assert counts["bc5cdr"] == 1666 and counts["mit-restaurant"] == 1667 and counts["conll2003"] == 5000
    report = (tmp_path / "ie.stats.md").read_text()
    assert "Table 7 sets absent: " + ", ".join(summary["table7_absent"]) in report
    # the earlier single cap: BC5CDR over its Table 7 share
    uniform = data.build(data.IEInstructConfig(out=str(tmp_path / "u.jsonl"), data_dir=str(shared / "data"),
                                               general="none", dataset_caps="uniform"), progress=False)
    assert uniform["datasets"]["bc5cdr"]["instances"] > 4000


def test_feedback_pool_defaults_to_table8_sets():
    import feedback
    assert set(feedback.TABLE8_DATASETS) == PAPER_TABLE8
    records = [{"dataset": name, "id": f"{name}/train/{i}"} for name in ("conll2003", "bc5cdr", "ade", "rams",
                                                                          "syn_news_ner") for i in range(3)]
    kept, info = feedback.select_prompt_pool(records)
    # the embedded default's synthetic stand-ins stay (its demo samples every synthetic set)
    assert {r["dataset"] for r in kept} == {"conll2003", "rams", "syn_news_ner"}
    assert info["left_out"] == {"ade": 3, "bc5cdr": 3}
    assert info["table8_absent"] == [n for n in feedback.TABLE8_DATASETS if n not in ("conll2003", "rams")]
    assert feedback.select_prompt_pool(records, "all")[0] == records


def test_feedback_pool_on_the_shared_data(shared):
    import data
    import feedback
    records, _, _ = data.read_ie_records(data.IEInstructConfig(data_dir=str(shared / "data")))
    kept, info = feedback.select_prompt_pool(records)
    assert {r["dataset"] for r in kept} <= PAPER_TABLE8
    pool, stats = feedback.ie_feedback_prompts(kept, seed=42)
    everything, _ = feedback.ie_feedback_prompts(records, seed=42)
    per_set = {n: s["instances"] for n, s in stats.items()}
    print(f"IEFeedback pool on {shared / 'data'}: table8 {len(pool)} prompts {per_set}, all {len(everything)}; "
          f"left out {info['left_out']}; absent {info['table8_absent']}")
    assert {p["dataset"] for p in pool} == {r["dataset"] for r in kept}
    assert len(pool) < len(everything)
