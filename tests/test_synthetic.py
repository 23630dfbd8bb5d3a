"""synthetic.py: the embedded default data (a seeded synthetic IE corpus for all nine tasks + general chat).

What the corpus promises and these tests check: every record is a valid unified IE record with exact spans; all
nine tasks (and ERE's four subtasks) are covered by at least two data sets with their own label sets; the held-out
split shares no text with the train split; everything is a function of the seed; the gold is read off the text
by type lexicons and patterns; the general chat answers are right.
"""
import json
import re
from collections import Counter, defaultdict

import pytest

import synthetic
from data import DEFAULT_TOKENIZER
from ie_formats import validate_record

N_TRAIN, N_TEST = 150, 30


@pytest.fixture(scope="module")
def corpus():
    return synthetic.generate_corpus(seed=0, n_train=N_TRAIN, n_test=N_TEST)


def test_every_record_is_a_valid_unified_record(corpus):
    for split in ("train", "test"):
        for r in corpus[split]:
            validate_record(r, r["id"])  # fields, task shapes, spans inside the text and equal to it, labels
            assert r["split"] == split and r["id"] == f"{r['dataset']}/{split}/{r['id'].split('/')[-1]}"


def test_all_nine_tasks_with_several_data_sets_each(corpus):
    by_task = defaultdict(set)
    for r in corpus["train"]:
        by_task[r["task"]].add(r["dataset"])
    assert set(by_task) == {"NER", "RC", "RE", "ED", "EAE", "EE", "ERE", "OpenIE", "ODIE"}
    assert all(len(names) >= 2 for names in by_task.values()), by_task
    subtasks = {r["meta"]["subtask"] for r in corpus["train"] if r["task"] == "ERE"}
    assert subtasks == {"temporal", "causal", "subevent", "coreference"}
    # different data sets of one task have different label sets (so per-data-set caps and stats mean something)
    for task in ("NER", "RC", "RE", "ED", "EE"):
        inventories = {tuple(r["labels"]) for r in corpus["train"] if r["task"] == task}
        assert len(inventories) >= 2
    counts = Counter((r["dataset"], r["split"]) for s in ("train", "test") for r in corpus[s])
    assert set(counts.values()) == {N_TRAIN, N_TEST}


def test_held_out_split_shares_no_text_with_train(corpus):
    train_texts = {r["text"] for r in corpus["train"]}
    assert not any(r["text"] in train_texts for r in corpus["test"])


def test_same_seed_same_corpus_other_seed_other_corpus():
    a = synthetic.generate_corpus(seed=7, n_train=20, n_test=5)
    b = synthetic.generate_corpus(seed=7, n_train=20, n_test=5)
    c = synthetic.generate_corpus(seed=8, n_train=20, n_test=5)
    assert json.dumps(a) == json.dumps(b)
    assert json.dumps(a) != json.dumps(c)
    assert synthetic.generate_general(50, 3) == synthetic.generate_general(50, 3)


def test_gold_follows_the_lexicons_and_patterns(corpus):
    """The gold is learnable from the text: a news-NER Person is a first+last name from the name lexicons, a
    Location a city/country; a fine-NER politician follows a political title; MATRES-like pairs flip BEFORE/AFTER
    with the query order."""
    lexicon = {"Person": {f"{f} {l}" for f in synthetic.FIRST for l in synthetic.LAST},
               "Location": set(synthetic.CITY) | set(synthetic.COUNTRY),
               "Organization": {f"{h} {t}" for h in synthetic.ORG_HEAD for t in synthetic.ORG_TAIL}}
    for r in corpus["train"]:
        if r["dataset"] == "syn_news_ner":
            for it in r["items"]:
                assert it["entity"]["text"] in lexicon[it["type"]]
        if r["dataset"] == "syn_fine_ner":
            for it in r["items"]:
                if it["type"] == "person-politician":
                    before = r["text"][:it["entity"]["start"]]
                    title = re.search(r"(Senator|Minister) $", before)
                    assert title or before == "" or before.endswith(", "), r["text"]
        if r["dataset"] == "syn_pair_ere":
            (it,) = r["items"]
            e1_first = it["event1"]["start"] < it["event2"]["start"]
            if it["relation"] in ("BEFORE", "AFTER") and " before " in r["text"]:
                assert (it["relation"] == "BEFORE") == e1_first  # "X e1 before Y e2": the earlier-written happens first


def test_na_sentences_exist_where_the_na_cap_matters(corpus):
    """Data sets hold NA records (no gold), so data.py's NA cap has something to cap."""
    na = Counter(r["dataset"] for r in corpus["train"] if not r["items"])
    for name in ("syn_news_ner", "syn_bio_ner", "syn_kb_rc", "syn_news_re", "syn_news_ed", "syn_cyber_ee",
                 "syn_story_ere"):
        assert na[name] > 0, name


def test_odie_tables_come_from_the_text(corpus):
    for r in corpus["train"]:
        if r["task"] != "ODIE":
            continue
        (table,) = r["items"]
        assert all(len(row) == len(table["header"]) for row in table["rows"]) and table["rows"]
        for row in table["rows"]:
            assert row[0] in r["text"]  # the row's key (person / product) is in the text


def test_general_chat_answers_are_right():
    convs = synthetic.generate_general(400, seed=1)
    assert len({c["id"] for c in convs}) == 400
    for c in convs:
        roles = [m["role"] for m in c["messages"] if m["role"] != "system"]
        assert roles == ["user", "assistant"] * (len(roles) // 2) and roles
        for k, m in enumerate(c["messages"]):
            if m["role"] != "user":
                continue
            answer = c["messages"][k + 1]["content"]
            add = re.fullmatch(r"What is (\d+) \+ (\d+)\?", m["content"])
            if add:
                assert answer == f"{add[1]} + {add[2]} = {int(add[1]) + int(add[2])}."
            rev = re.fullmatch(r"Reverse the word '(\w+)'\.", m["content"])
            if rev:
                assert answer.endswith(f"'{rev[1][::-1]}'.")
            srt = re.fullmatch(r"Sort these numbers from smallest to largest: ([\d, ]+)\.", m["content"])
            if srt:
                assert answer == ", ".join(map(str, sorted(int(x) for x in srt[1].split(", "))))
    assert sum(any(m["role"] == "system" for m in c["messages"]) for c in convs) > 0
    assert sum(len(c["messages"]) > 3 for c in convs) > 0  # some multi-turn


def test_cli_writes_the_splits(tmp_path):
    synthetic.main(["--out", str(tmp_path), "--n_train", "5", "--n_test", "2", "--n_general", "3"])
    lines = {s: (tmp_path / f"{s}.jsonl").read_text().splitlines() for s in ("train", "test", "general")}
    assert len(lines["train"]) == 5 * len(synthetic.DATASETS) and len(lines["general"]) == 3
    assert json.loads(lines["test"][0])["split"] == "test"


def test_generated_names_are_valid_and_unseen_in_the_held_out_split():
    """--names generated: the same templates with pseudo-word names; records stay valid; the lexicon corpus is
    unchanged by the option; held-out person / location / chemical names are (almost all) not training names."""
    gen = synthetic.generate_corpus(seed=0, n_train=N_TRAIN, n_test=N_TEST, names="generated")
    for split in ("train", "test"):
        for r in gen[split]:
            validate_record(r, r["id"])

    def names(records):
        return {it["entity"]["text"] for r in records if r["task"] == "NER" for it in r["items"]
                if it["type"] in ("Person", "Location", "Chemical")}
    train, test = names(gen["train"]), names(gen["test"])
    assert len(test) > 50 and len(test & train) <= 0.1 * len(test)  # short one-word names can recur by chance
    lexicon_names = {f"{f} {l}" for f in synthetic.FIRST for l in synthetic.LAST} | set(synthetic.CITY)
    assert not test & lexicon_names
    lex = synthetic.generate_corpus(seed=0, n_train=N_TRAIN, n_test=N_TEST)
    assert lex == synthetic.generate_corpus(seed=0, n_train=N_TRAIN, n_test=N_TEST, names="lexicon")
    with pytest.raises(ValueError, match="names='other'"):
        synthetic.generate_dataset("syn_news_ner", "train", 1, names="other")


def test_copy_warmup_alternates_train_texts_and_random_strings_of_the_vocabulary():
    # Odd passages are random pieces of the tokenizer's vocabulary: only copying predicts them (README, demo).
    records = synthetic.generate_corpus(seed=0, n_train=5, n_test=1)["train"]
    texts = {r["text"] for r in records}
    warm = synthetic.generate_copy_warmup(records, 40, seed=3, tokenizer=DEFAULT_TOKENIZER)
    assert warm == synthetic.generate_copy_warmup(records, 40, seed=3, tokenizer=DEFAULT_TOKENIZER)
    for i, c in enumerate(warm):
        user, assistant = c["messages"]
        assert user["content"] == assistant["content"] and user["content"]
        assert any(user["content"].startswith(t) for t in texts) == (i % 2 == 0), (i, user["content"])
    random_strings = [c["messages"][0]["content"] for c in warm[1::2]]
    assert len(set(random_strings)) == 20 and all(len(s.split()) >= 2 for s in random_strings)


def test_copy_warmup_repeats_a_passage_of_train_texts():
    records = synthetic.generate_corpus(seed=0, n_train=5, n_test=1)["train"]
    texts = {r["text"] for r in records}
    warm = synthetic.generate_copy_warmup(records, 20, seed=3, min_texts=1, max_texts=3)
    assert warm == synthetic.generate_copy_warmup(records, 20, seed=3, min_texts=1, max_texts=3)
    for c in warm:
        user, assistant = c["messages"]
        assert (user["role"], assistant["role"]) == ("user", "assistant") and user["content"] == assistant["content"]
        # the passage is 1-3 train texts joined by spaces
        assert any(user["content"].startswith(t) for t in texts)
    assert len({c["messages"][0]["content"] for c in warm}) > 10
