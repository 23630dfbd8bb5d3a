"""Auditing corpora from their text: `python data.py stats` (IEInstruct, paper Table 7 and every rate of sections
3.1-3.3 and 4) and `python feedback.py stats` (IEFeedback, Table 8, the online/offline split, BLEU gaps).

The files are written here, in the released layouts: a corpus in this project's rendering whose every rate is
known by construction (the expected figures are counted by hand below), a corpus in the rendering of the authors'
release (options in one [..] list, quoted with ": such as" examples, JSON written as a Python dict), general chat,
and IEFeedback pairs. Then: a build's statistics table is what `data.py stats` measures on the built file.
"""
import json

import pytest
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

import audit
import data
import feedback

P = data.load_prompts()
NER_DESCRIPTION = P.descriptions["NER"][0]
CANONICAL = P.formats["NER"]["canonical"]
JSON_REQUEST = P.formats["NER"]["json"][0]
TEMPLATE = P.formats["NER"]["templates"][2]   # one line per entity, "{entity} => {type}"; NA = "none"
LIST, GUIDE, EXAMPLES = P.schema["NER"]["list"][0], P.schema["NER"]["guidelines"][0], P.schema["NER"]["examples"][0]


def ours(schema: str, request: str, answers: list[str], explain: bool = False) -> list[dict]:
    """A conversation as data.py renders one: instruction (description, schema, format request) + blank line +
    text block in the first user turn, one more user turn per further answer (the demonstrations come first)."""
    instruction = "\n".join([NER_DESCRIPTION, schema, (P.explanations["_requests"][0] + " " if explain else "")
                             + request])
    msgs = []
    for k, answer in enumerate(answers):
        msgs += [{"role": "user", "content": (instruction + "\n\n" if k == 0 else "") + f"Text: 'Sentence {k}.'"},
                 {"role": "assistant", "content": answer}]
    return msgs


def listed(*options):
    return f"{LIST} [{', '.join(options)}]."


# Ten NER instances of a data set whose label inventory is PER, ORG, LOC, MISC; each line says what it shows.
TOY_NER = [
    ours(listed("PER", "ORG", "LOC", "MISC"), CANONICAL, ["[Answer]: Anna: PER;"]),
    ours(listed("ORG", "PER", "LOC"), CANONICAL, ["[Answer]: NA"]),                          # NA, MISC dropped
    ours(listed("A", "PER", "LOC", "MISC"), CANONICAL,                                       # ORG as symbol A
         ["[Answer]: NA", "[Answer]: Omar: PER;", "[Answer]: Acme: A;"]),                    # 2 demos, 1 NA
    ours(listed("PER", "ORG", "LOC", "MISC"), JSON_REQUEST,
         ["[Answer]: []", '[Answer]: [{"entity": "Anna", "type": "PER"}]']),                 # json; 1 NA demo
    ours(listed("PER", "LOC", "MISC", "ORG"), TEMPLATE["request"], ["[Answer]: Anna => PER"]),  # other format
    ours(f'{GUIDE}\n- PER: people.\n- ORG: companies (such as "Acme").', CANONICAL,          # guidelines, such as
         ["[Answer]: NA", "[Answer]: Omar: PER;", "[Answer]: Acme: ORG;",
          "[Explanation]: Anna names a person. [Answer]: Anna: PER;"], explain=True),         # 3 demos, explained
    ours(f"{GUIDE}\n- LOC: places.\n- PER: people.", CANONICAL, ["[Answer]: NA"]),            # guidelines, NA
    ours(f'{EXAMPLES}\n- PER (such as "Anna", "Omar")\n- MISC', CANONICAL,                   # such as
         ["[Answer]: Omar: PER;"] * 4 + ["[Answer]: Anna: PER;"]),                           # 4 demos
    ours(listed("LOC", "PER", "ORG", "MISC"), CANONICAL, ["[Answer]: Oslo: LOC;"]),
    ours(listed("PER", "ORG", "MISC"), CANONICAL, ["[Answer]: Omar: PER;", "[Answer]: Anna: PER;"]),  # 1 demo
]
TOY_NER_EXPECTED = {  # counted by hand from the list above
    "instances": 10, "NA %": 20.0, "few-shot %": 50.0, "demos per few-shot": round(11 / 5, 2),
    "NA demos %": round(100 * 3 / 11, 1),  # demos: 2 (1 NA) + 1 ([] = NA) + 3 (1 NA) + 4 + 1
    "explained %": 10.0, "canonical %": 80.0, "json %": 10.0, "other %": 10.0, "guidelines %": 20.0,
    "such as %": 20.0, "symbols % of options": round(100 * 1 / 32, 1),  # options: 4+3+4+4+4+2+2+2+4+3
    # full option lists (instances 0-4, 8, 9) show 26 of 7 x 4 labels (the union over the data set)
    "class dropout % (est.)": round(100 * 2 / 28, 1)}
ODIE = [[{"role": "system", "content": data.ODIE_SYSTEM},
         {"role": "user", "content": "List the people and their jobs.\nText: Anna is a nurse."},
         {"role": "assistant", "content": ("[Explanation]: Anna is a nurse. " if k == 0 else "")
          + "[Answer]: | name | job |\n| --- | --- |\n| Anna | nurse |"}] for k in range(2)]
CHAT = [[{"role": "user", "content": f"Write a haiku number {k}."}, {"role": "assistant", "content": "Leaves fall."}]
        for k in range(8)]


def write_jsonl(path, conversations):
    path.write_text("".join(json.dumps(c) + "\n" for c in conversations))
    return path


def known_file(tmp_path):
    convs = ([{"dataset": "toy_ner", "id": f"toy_ner/{k}", "messages": m} for k, m in enumerate(TOY_NER)]
             + [{"dataset": "toy_odie", "id": f"toy_odie/{k}", "messages": m} for k, m in enumerate(ODIE)]
             + [{"dataset": "toy_chat", "id": f"toy_chat/{k}", "messages": m} for k, m in enumerate(CHAT)])
    return write_jsonl(tmp_path / "known.jsonl", convs)


def test_every_rate_of_a_corpus_known_by_construction(tmp_path):
    conversations = data.load_conversations(known_file(tmp_path))
    s = audit.stats_summary(audit.corpus_stats(conversations))
    assert s["summary"]["conversations"] == 20 and s["summary"]["ie instances"] == 12
    assert s["summary"]["general chat"] == 8 and s["summary"]["general chat %"] == 40.0
    assert s["summary"]["general data sets"] == {"toy_chat": 8}
    assert s["summary"]["ODIE explained %"] == 50.0
    assert {n: r["task"] for n, r in s["datasets"].items()} == {"toy_ner": "NER", "toy_odie": "ODIE"}
    assert list(s["tasks"]) == ["NER", "ODIE"] and s["tasks"]["ODIE"]["instances"] == 2
    ner = s["datasets"]["toy_ner"]
    assert {k: ner[k] for k in TOY_NER_EXPECTED} == TOY_NER_EXPECTED
    assert {k: s["ie"][k] for k in TOY_NER_EXPECTED if k != "instances"} == \
        {k: v for k, v in TOY_NER_EXPECTED.items() if k != "instances"}  # IE total leaves ODIE out
    words = [sum(len(m["content"].split(" ")) for m in c) for c in TOY_NER]
    assert ner["words mean"] == round(sum(words) / 10, 1) and ner["words max"] == max(words)
    assert ner["tokens mean"].startswith("n/a: not inferable")  # no tokenizer given
    for key in ("NA %", "few-shot %", "canonical %", "guidelines %"):  # ODIE has none of these
        assert s["datasets"]["toy_odie"][key].startswith("-")


def test_lengths_in_tokens_are_tokenize_chats(tmp_path):
    import model
    tokenizer = model.Tokenizer(data.DEFAULT_TOKENIZER)
    s = audit.stats_summary(audit.corpus_stats(data.load_conversations(known_file(tmp_path)), tokenizer))
    lengths = [len(data.tokenize_chat(tokenizer, m)[0]) for m in TOY_NER]
    assert s["datasets"]["toy_ner"]["tokens mean"] == round(sum(lengths) / len(lengths), 1)
    assert s["datasets"]["toy_ner"]["tokens max"] == max(lengths)


# The release's rendering (THU-KEG/ADELIE scripts/tasks/*/load_data_fs.py): the options replace <options> in the
# task description as one "[a, b]" list, quoted when some carry '"LABEL: such as x, y."' examples; the first user
# turn is instruction.strip() + "\n" + "Text: '...'"; the format request is Table 9's; JSON answers are Python
# dict reprs, one list per label (all empty = NA).
def release(options: str, request: str, answers: list[str]) -> list[dict]:
    instruction = f"Identify the named entities and classify them into {options}.{request}"
    msgs = []
    for k, answer in enumerate(answers):
        msgs += [{"role": "user", "content": (instruction + "\n" if k == 0 else "") + f"Text: 'Sentence {k}.'"},
                 {"role": "assistant", "content": answer}]
    return msgs


RELEASE_REQUEST = data.FORMAT_REQUESTS["NER"]
RELEASE_NER = [
    release("[PER, ORG, LOC, MISC]", RELEASE_REQUEST, ["[Answer]: Anna: PER; "]),
    release('["PER: such as Anna, Omar.", "ORG", "LOC"]', RELEASE_REQUEST, ["[Answer]: NA"]),  # such as; NA
    release("[PER, ORG, LOC]", "Please answer in JSON.", ["[Answer]: {'PER': [], 'ORG': [], 'LOC': []}"]),
    release("[PER, LABEL_1, LOC, MISC]", RELEASE_REQUEST,                                     # ORG as LABEL_1
            ["[Answer]: Omar: PER; ", "[Answer]: NA",
             "[Explanation]: Acme is a company. [Answer]: Acme: LABEL_1; "]),                 # 2 demos, explained
    release("[ORG, PER, MISC, LOC]", "Please answer in JSON.", ["[Answer]: {'PER': ['Anna'], 'ORG': []}"]),
]


def test_the_releases_rendering_is_read_and_what_it_cannot_show_is_said(tmp_path):
    path = write_jsonl(tmp_path / "release.jsonl",
                       [{"dataset": "conll-2003", "id": k, "messages": m} for k, m in enumerate(RELEASE_NER)])
    s = audit.stats_summary(audit.corpus_stats(data.load_conversations(path)))
    r = s["datasets"]["conll-2003"]
    assert r["task"] == "NER"  # Table 9's request names it
    assert (r["instances"], r["NA %"], r["few-shot %"], r["demos per few-shot"], r["NA demos %"]) == \
        (5, 40.0, 20.0, 2.0, 50.0)
    assert (r["explained %"], r["canonical %"], r["json %"], r["other %"]) == (20.0, 60.0, 40.0, 0.0)
    assert (r["such as %"], r["symbols % of options"]) == (20.0, round(100 * 1 / 18, 1))  # 4 + 3 + 3 + 4 + 4 options
    # the lists without 'such as' (instances 0, 2, 3, 4) show 4 + 3 + 4 + 4 options of the union PER ORG LOC MISC
    assert r["class dropout % (est.)"] == round(100 * 1 / 16, 1)
    assert r["guidelines %"] == "n/a: not inferable (no schema in this project's rendering)"


def test_task_that_the_text_does_not_name_is_unknown_until_given(tmp_path):
    """RC and RE share the canonical request: a data set with only canonical requests does not say which it is."""
    rc = P.formats["RC"]["canonical"]
    conv = ours(f"{P.schema['RC']['list'][0]} [founder of, born in].", rc, ["[Answer]: (Anna; born in; Oslo)"])
    path = write_jsonl(tmp_path / "rc.jsonl", [{"dataset": "kb", "id": "0", "messages": conv}])
    assert audit.stats_summary(audit.corpus_stats(data.load_conversations(path)))["datasets"]["kb"]["task"] == "RC/RE"
    kb = data.main(["stats", str(path), "--task", "kb=RC", "--json"])[str(path)]["datasets"]["kb"]
    assert kb["task"] == "RC" and kb["symbols % of options"] == 0.0  # a closed task: its schema figures appear


def test_two_files_side_by_side(tmp_path, capsys):
    a = known_file(tmp_path)
    b = write_jsonl(tmp_path / "release.jsonl",
                    [{"dataset": "conll-2003", "id": k, "messages": m} for k, m in enumerate(RELEASE_NER)])
    data.main(["stats", str(a), str(b)])
    out = capsys.readouterr().out
    assert f"| figure | {a} | {b} |" in out
    assert "|   NER / toy_ner | 10 | 0 |" in out and "|   NER / conll-2003 | 0 | 5 |" in out
    assert "| IE NA % | 20.0 | 40.0 |" in out and "| IE guidelines % | 20.0 | n/a |" in out
    assert "| general chat % | 40.0 | 0.0 |" in out
    data.main(["stats", str(a), str(b), "--json"])
    figures = json.loads(capsys.readouterr().out)
    assert figures[str(a)]["ie"]["NA %"] == 20.0 and figures[str(b)]["ie"]["NA %"] == 40.0


def test_a_builds_own_statistics_are_what_stats_measures_on_the_built_file(tmp_path, capsys):
    out = tmp_path / "ie.jsonl"
    summary = data.build(data.IEInstructConfig(out=str(out), synthetic_n_train=30), progress=False)
    table = (tmp_path / "ie.stats.md").read_text()
    capsys.readouterr()
    measured = data.main(["stats", str(out), "--tokenizer", str(data.DEFAULT_TOKENIZER)])
    printed = capsys.readouterr().out
    own = audit.dataset_table(summary["statistics"])
    assert own in table and own in printed  # the same table, to the character
    assert measured[str(out)] == json.loads(json.dumps(summary["statistics"]))
    assert summary["statistics"]["summary"]["ie instances"] == summary["ie_instances"]
    assert summary["statistics"]["summary"]["general chat"] == summary["general"]
    assert "## Build-only facts (not in the text)" in table and "| task | data set | records |" in table
    for name, built in summary["datasets"].items():  # the instances the build kept are the ones the text shows
        assert summary["statistics"]["datasets"][name]["instances"] == built["instances"]


# ----------------------------------------------------------------------------------------------------------------
# IEFeedback

PROMPT = ours(listed("PER", "ORG"), CANONICAL, ["[Answer]: Anna: PER;"])[:-1]


def pair(dataset, k, chosen, rejected, gold="[Answer]: Anna: PER;", with_gold=True):
    prompt = [dict(m, content=m["content"].replace("Sentence 0", f"Sentence {dataset} {k}")) for m in PROMPT]
    out = {"dataset": dataset, "id": f"{dataset}/{k}",
           "chosen": prompt + [{"role": "assistant", "content": chosen}],
           "rejected": prompt + [{"role": "assistant", "content": rejected}]}
    if with_gold:
        out["messages"] = prompt + [{"role": "assistant", "content": gold}]
    return out


GOLD = "[Answer]: Anna: PER;"
PAIRS = [pair("news", 0, GOLD, "[Answer]: NA"),                                  # offline
         pair("news", 1, GOLD, "Anna is a person."),                             # offline, rejected without answer
         pair("news", 2, "[Answer]: Anna: PER; Oslo: LOC;", "[Answer]: NA"),     # online
         pair("bio", 0, "[Answer]: NA", "[Answer]: NA", gold="[Answer]: NA"),    # offline, identical
         pair("bio", 1, "[Answer]: Anna: ORG;", "[Answer]: Omar: LOC;")]         # online


def nltk_score(sample, gold):
    if "[Answer]: " not in sample:
        return -1.0
    hyp, ref = sample.split("[Answer]: ")[1], gold.split("[Answer]: ")[1]
    return sentence_bleu([list(ref)], list(hyp), smoothing_function=SmoothingFunction().method3)


def expected_gaps():
    gaps = []
    for p in PAIRS:
        gold, chosen, rejected = (p["messages"][-1]["content"], p["chosen"][-1]["content"],
                                  p["rejected"][-1]["content"])
        gaps.append((1.0 if chosen == gold else nltk_score(chosen, gold)) - nltk_score(rejected, gold))
    return gaps


def test_ie_feedback_pairs_per_data_set_split_gaps_and_identical_pairs(tmp_path):
    path = tmp_path / "ie_feedback.json"
    path.write_text(json.dumps(PAIRS, indent=1))  # the released layout: one JSON list
    s = feedback.stats_main([str(path), "--json"])[str(path)]
    t = s["total"]
    assert (t["pairs"], t["online"], t["offline"], t["identical"], t["gold_from_messages"]) == (5, 2, 3, 1, 5)
    assert (t["online %"], t["identical %"], t["rejected_without_answer"], t["chosen_without_answer"]) == \
        (40.0, 20.0, 1, 0)
    gaps = expected_gaps()
    assert t["gap mean"] == pytest.approx(sum(gaps) / 5, abs=1e-4)
    assert t["gap mean online"] == pytest.approx((gaps[2] + gaps[4]) / 2, abs=1e-4)
    assert t["gap_at_most_min"] == sum(g <= 0.1 for g in gaps)
    assert {n: (d["task"], d["pairs"], d["online"], d["offline"]) for n, d in s["datasets"].items()} == \
        {"bio": ("NER", 2, 1, 1), "news": ("NER", 3, 1, 2)}


def test_gold_from_a_file_matched_by_prompt_or_not_inferable(tmp_path):
    bare = [{k: v for k, v in p.items() if k != "messages"} for p in PAIRS]
    path = tmp_path / "released.json"
    path.write_text(json.dumps(bare))
    s = feedback.stats_main([str(path), "--json"])[str(path)]["total"]
    assert s["gold_unknown"] == 5 and s["online %"].startswith("n/a: not inferable")
    assert s["identical"] == 1 and s["pairs"] == 5  # what needs no gold is still measured
    gold = write_jsonl(tmp_path / "gold.jsonl", [{"dataset": p["dataset"], "id": "other id", "messages": p["messages"]}
                                                  for p in PAIRS])
    s = feedback.stats_main([str(path), "--gold", str(gold), "--json"])[str(path)]["total"]
    assert (s["gold_from_file"], s["online"], s["offline"]) == (5, 2, 3)
    assert s["gap mean"] == pytest.approx(sum(expected_gaps()) / 5, abs=1e-4)


def test_a_runs_pairs_measured_from_the_file_agree_with_what_the_run_recorded(tmp_path):
    """write_ie_feedback's file, measured: its online/offline counts are the run's pair kinds and its gaps the
    recorded score differences (no online sample here is the gold answer itself, which text cannot tell apart)."""
    import synthetic
    records = synthetic.generate_corpus(0, 12, 0)["train"]
    pool, _ = feedback.ie_feedback_prompts(records, max_per_dataset=6, seed=1)
    sampled = []
    for p in pool:
        gold = p["messages"][-1]["content"]
        body = feedback.scored_answer(gold)
        sampled.append({**p, "samples": [gold + " x", "[Answer]: " + body[: len(body) // 2], "no answer",
                                         "[Answer]: " + body[::-1], gold + "  y"], "finished": [True] * 5})
    scores = [[feedback.score_sample(x, r["messages"][-1]["content"]) for x in r["samples"]] for r in sampled]
    online, _ = feedback.online_pairs(sampled, scores)
    offline, _ = feedback.offline_pairs(sampled, scores)
    mixed, _ = feedback.mix_pairs(online, offline, 60, 0.3, 1)
    path = tmp_path / "ie_feedback.json"
    feedback.write_ie_feedback(mixed, path)
    s = feedback.stats_main([str(path), "--json"])[str(path)]
    assert s["total"]["online"] == sum(p["kind"] == "online" for p in mixed) > 0
    assert s["total"]["offline"] == sum(p["kind"] == "offline" for p in mixed) > 0
    recorded = [p["chosen_score"] - p["rejected_score"] for p in mixed]
    assert s["total"]["gap mean"] == pytest.approx(sum(recorded) / len(recorded), abs=1e-4)
    for name, d in s["datasets"].items():
        assert d["pairs"] == sum(p["dataset"] == name for p in mixed)


def test_the_authors_released_test_prompts_read_as_built():
    """The release's own held-out prompts (adelie_test_format, section 5.1: 4-shot closed IE, Table 9's requests,
    NA at most 20%, no augmentation) measured from their text."""
    from conftest import shared_path
    root = shared_path("data", "adelie_test_format")
    fewshot = audit.stats_summary(audit.corpus_stats(data.load_conversations(
        root / "fewshot_test_history" / "few-nerd-supervised.jsonl")))
    ner = fewshot["tasks"]["NER"]
    assert fewshot["summary"]["ie instances"] == 1000 and fewshot["summary"]["general chat"] == 0
    assert (ner["few-shot %"], ner["demos per few-shot"], ner["canonical %"]) == (100.0, 4.0, 100.0)
    assert (ner["symbols % of options"], ner["class dropout % (est.)"], ner["such as %"]) == (0.0, 0.0, 0.0)
    assert 10 < ner["NA %"] <= 20
    zeroshot = audit.stats_summary(audit.corpus_stats(data.load_conversations(root / "zeroshot" / "semeval.jsonl")))
    assert zeroshot["datasets"]["semeval"]["task"] == "RC/RE"  # only the shared canonical request names a task
    assert zeroshot["datasets"]["semeval"]["few-shot %"] == 0.0
