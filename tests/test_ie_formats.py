"""ie_formats.py: every published IE format -> the unified IE record of docs/design.md.

Read as the specification of the readers:
  * validate_record accepts the design's record for each task and rejects each kind of broken record, naming where;
  * each hand-made file in tests/data/formats/ (written by us in the format's documented layout) converts to exactly
    the records listed here;
  * each real data set in ../shared/data converts with the counts its own documentation gives (where a number is our
    own count, the test says so) and with items hand-checked against the raw files;
  * SemEval-2010 Task 8's test file, converted, reproduces the gold answers of ADELIE's released zero-shot prompts.
"""
import json
import re
import subprocess
import sys
from collections import Counter

import pytest

import ie_formats as F
from conftest import REPO, shared_path

FORMATS = REPO / "tests" / "data" / "formats"


def m(text, start, end):
    return {"text": text, "start": start, "end": end}


def record(dataset, split, index, task, text, labels, items, query=None, meta=None):
    return {"dataset": dataset, "split": split, "id": f"{dataset}/{split}/{index}", "task": task, "text": text,
            "labels": labels, "query": query, "items": items, "meta": meta or {}}


# ------------------------------------------------------------------------------------------------------------------
# validate_record

TEXT = "Alice met Bob in Paris."
VALID = {
    "NER": record("d", "train", 0, "NER", TEXT, ["LOC", "PER"], [{"entity": m("Alice", 0, 5), "type": "PER"}]),
    "RC": record("d", "train", 0, "RC", TEXT, ["met"], [{"head": m("Alice", 0, 5), "relation": "met",
                                                         "tail": m("Bob", 10, 13)}],
                 {"head": m("Alice", 0, 5), "tail": m("Bob", 10, 13)}),
    "RE": record("d", "train", 0, "RE", TEXT, ["met"], [{"head": m("Alice", 0, 5), "relation": "met",
                                                         "tail": m("Bob", 10, 13)}]),
    "ED": record("d", "train", 0, "ED", TEXT, ["Meet"], [{"trigger": m("met", 6, 9), "type": "Meet"}]),
    "EAE": record("d", "train", 0, "EAE", TEXT, ["Entity", "Place"], [{"argument": m("Paris", 17, 22),
                                                                       "role": "Place"}],
                  {"trigger": m("met", 6, 9), "event_type": "Meet"}),
    "EE": record("d", "train", 0, "EE", TEXT, ["Meet"],
                 [{"trigger": m("met", 6, 9), "type": "Meet", "arguments": [{"argument": m("Bob", 10, 13),
                                                                             "role": "Entity"}]}],
                 meta={"roles": {"Meet": ["Entity", "Place"]}}),
    "ERE": record("d", "train", 0, "ERE", TEXT, ["before"], [], {"event1": m("met", 6, 9), "event2": m("met", 6, 9)},
                  meta={"subtask": "temporal"}),
    "OpenIE": record("d", "test", 0, "OpenIE", TEXT, [], [{"predicate": "met", "subject": "Alice", "object": "Bob",
                                                           "time": "", "location": "in Paris", "extra": []}]),
    "ODIE": record("d", "test", 0, "ODIE", TEXT, [], [{"header": ["Person"], "rows": [["Alice"], ["Bob"]]}],
                   {"instruction": "List the people."}),
}


@pytest.mark.parametrize("task", F.TASKS)
def test_validate_record_accepts_one_valid_record_per_task(task):
    F.validate_record(VALID[task], "x.jsonl:1")


def broken(task, change):
    r = json.loads(json.dumps(VALID[task]))
    change(r)
    return r


@pytest.mark.parametrize("task, change, problem", [
    ("NER", lambda r: r.pop("labels"), "keys"),
    ("NER", lambda r: r.update(task="SRL"), "unknown task 'SRL'"),
    ("NER", lambda r: r.update(id="other/train/0"), "does not start with 'd/train/'"),
    ("NER", lambda r: r["items"][0].update(entity=m("Alice", 0, 99)), "outside the text"),
    ("NER", lambda r: r["items"][0].update(entity=m("Alicia", 0, 5)), "'Alicia' != text[0:5] = 'Alice'"),
    ("NER", lambda r: r["items"][0].update(type="ORG"), "entity type 'ORG' is not in the record's labels"),
    ("NER", lambda r: r.update(query={"head": m("Alice", 0, 5)}), "take no query"),
    ("RC", lambda r: r["items"][0].update(tail=m("Paris", 17, 22)), "differs from the query's head/tail pair"),
    ("RC", lambda r: r.update(query=None), "RC query"),
    ("EAE", lambda r: r["items"][0].update(role="Time"), "role 'Time' is not in the record's labels"),
    ("EE", lambda r: r["items"][0]["arguments"][0].update(role="Time"), "'Time' is not in meta.roles['Meet']"),
    ("ERE", lambda r: r.update(meta={}), "meta.subtask"),
    ("OpenIE", lambda r: r.update(labels=["x"]), "labels must be []"),
    ("OpenIE", lambda r: r["items"][0].update(time=None), "time must be a string"),
    ("ODIE", lambda r: r.update(items=r["items"] * 2), "exactly one item"),
])
def test_validate_record_names_where_and_the_problem(task, change, problem):
    with pytest.raises(ValueError) as e:
        F.validate_record(broken(task, change), "users.jsonl:7")
    assert "users.jsonl:7" in str(e.value) and problem in str(e.value)


# ------------------------------------------------------------------------------------------------------------------
# Hand-made files in the formats we cannot obtain here: the exact records expected

def test_maven_ed_jsonl():
    counts = Counter()
    got = F.read_maven_ed(FORMATS / "maven_ed.jsonl", "train", counts=counts)
    labels = ["Conquering", "Military_operation"]
    doc1, doc2 = "a1f3c0de00000000000000000000d001", "a1f3c0de00000000000000000000d002"
    assert got == [
        record("maven", "train", 0, "ED", "The Battle of Example Ridge was fought in 1862 .", labels,
               [{"trigger": m("Battle", 4, 10), "type": "Military_operation"}], meta={"doc_id": doc1, "sent_id": 0}),
        record("maven", "train", 1, "ED", "Union troops attacked the ridge and captured it .", labels,
               [{"trigger": m("attacked", 13, 21), "type": "Military_operation"},
                {"trigger": m("captured", 36, 44), "type": "Conquering"}], meta={"doc_id": doc1, "sent_id": 1}),
        record("maven", "train", 2, "ED", "It is now a quiet park .", labels, [], meta={"doc_id": doc2, "sent_id": 0}),
    ]
    assert not counts  # negative_triggers are candidates, not events: nothing skipped


def test_maven_arg_jsonl():
    counts = Counter()
    got = F.read_maven_arg(FORMATS / "maven_arg.jsonl", "train", counts=counts)
    text = "Madison Hall hosted the annual science fair on Friday . The fair drew 300 students from Lincoln High ."
    doc = "b2e4d1ef00000000000000000000a001"
    assert got == [
        record("maven-arg", "train", "0/0", "EAE", text, ["Event", "Host", "Place", "Time"],
               [{"argument": m("Madison Hall", 0, 12), "role": "Host"},
                {"argument": m("the annual science fair", 20, 43), "role": "Event"},
                {"argument": m("Friday", 47, 53), "role": "Time"}],
               {"trigger": m("hosted", 13, 19), "event_type": "Hosting"}, {"doc_id": doc, "event_id": "EVENT_0001"}),
        # the entity argument ENTITY_0002 has two mentions: "The fair" is the one closest to "drew"
        record("maven-arg", "train", "0/1", "EAE", text, ["Attendee", "Event", "Time"],
               [{"argument": m("300 students from Lincoln High", 70, 100), "role": "Attendee"},
                {"argument": m("The fair", 56, 64), "role": "Event"}],
               {"trigger": m("drew", 65, 69), "event_type": "Attending"}, {"doc_id": doc, "event_id": "EVENT_0002"}),
    ]
    assert counts == {"entity argument with several mentions (the one closest to the trigger used)": 1}


def test_maven_ere_jsonl():
    counts = Counter()
    got = F.read_maven_ere(FORMATS / "maven_ere.jsonl", "train", counts=counts)
    text = ("The storm hit the coast on Monday . It destroyed homes and forced an evacuation . "
            "The evacuation ended on Friday .")
    storm, destroyed, forced = m("storm", 4, 9), m("destroyed", 39, 48), m("forced", 59, 65)
    evac1, evac2, ended = m("evacuation", 69, 79), m("evacuation", 86, 96), m("ended", 97, 102)
    events = {"events": [storm, destroyed, forced, evac1, ended]}  # one (first) mention per event chain
    doc = "c3f5e2f000000000000000000000e001"
    assert got == [
        record("maven-ere", "train", "0/temporal", "ERE", text, F.MAVEN_ERE_LABELS["temporal"],
               [{"event1": storm, "relation": "before", "event2": evac1},
                {"event1": evac1, "relation": "before", "event2": ended},
                {"event1": destroyed, "relation": "simultaneous", "event2": forced}],
               events, {"subtask": "temporal", "doc_id": doc}),
        record("maven-ere", "train", "0/causal", "ERE", text, ["cause", "precondition"],
               [{"event1": storm, "relation": "cause", "event2": destroyed},
                {"event1": forced, "relation": "precondition", "event2": evac1}],
               events, {"subtask": "causal", "doc_id": doc}),
        record("maven-ere", "train", "0/subevent", "ERE", text, ["subevent"],
               [{"event1": storm, "relation": "subevent", "event2": destroyed}], events,
               {"subtask": "subevent", "doc_id": doc}),
        record("maven-ere", "train", "0/coreference", "ERE", text, ["coreference"],
               [{"event1": evac1, "relation": "coreference", "event2": evac2}],
               {"events": [storm, destroyed, forced, evac1, evac2, ended]}, {"subtask": "coreference", "doc_id": doc}),
    ]
    assert counts == {"temporal relation with a TIMEX argument (skipped)": 2}  # storm-Monday, ended-Friday


def test_omnievent_unified_ed_and_eae():
    path = FORMATS / "omnievent.unified.jsonl"
    t1, t2, t3 = ("Rebels attacked the convoy near Kabul on Tuesday.", "Two soldiers died and the commander resigned.",
                  "The weather was mild.")
    types = ["Conflict.Attack", "Life.Die", "Personnel.End-Position"]
    assert F.read_omnievent(path, "test", dataset="richere-ed", task="ED") == [
        record("richere-ed", "test", 0, "ED", t1, types, [{"trigger": m("attacked", 7, 15), "type": "Conflict.Attack"}],
               meta={"source_id": "ACE_DOC_1-0"}),
        record("richere-ed", "test", 1, "ED", t2, types,
               [{"trigger": m("died", 13, 17), "type": "Life.Die"},
                {"trigger": m("resigned", 36, 44), "type": "Personnel.End-Position"}],
               meta={"source_id": "ACE_DOC_1-1"}),
        record("richere-ed", "test", 2, "ED", t3, types, [], meta={"source_id": "ACE_DOC_2-0"}),
    ]
    assert F.read_omnievent(path, "test", dataset="richere-eae", task="EAE") == [
        record("richere-eae", "test", "0/0", "EAE", t1, ["Attacker", "Place", "Target"],
               [{"argument": m("Rebels", 0, 6), "role": "Attacker"},
                {"argument": m("the convoy", 16, 26), "role": "Target"},
                {"argument": m("Kabul", 32, 37), "role": "Place"}],
               {"trigger": m("attacked", 7, 15), "event_type": "Conflict.Attack"}, {"source_id": "ACE_DOC_1-0"}),
        record("richere-eae", "test", "1/0", "EAE", t2, ["Victim"],
               [{"argument": m("Two soldiers", 0, 12), "role": "Victim"}],
               {"trigger": m("died", 13, 17), "event_type": "Life.Die"}, {"source_id": "ACE_DOC_1-1"}),
        record("richere-eae", "test", "1/1", "EAE", t2, ["Person"],
               [{"argument": m("the commander", 22, 35), "role": "Person"}],
               {"trigger": m("resigned", 36, 44), "event_type": "Personnel.End-Position"},
               {"source_id": "ACE_DOC_1-1"}),
    ]


def test_openie6_labels():
    assert F.read_openie6_labels(FORMATS / "openie4_labels", "train") == [
        record("openie6", "train", 0, "OpenIE", "Obama gave a speech in Berlin on Monday .", [],
               [{"predicate": "gave", "subject": "Obama", "object": "a speech", "time": "on Monday",
                 "location": "in Berlin"}]),
        # REL on [unused2] = the implicit "is ... of" (openie6 metric.py)
        record("openie6", "train", 1, "OpenIE", "Paris , the capital of France , is large .", [],
               [{"predicate": "is capital of", "subject": "Paris", "object": "France", "time": "", "location": ""},
                {"predicate": "is", "subject": "Paris", "object": "large", "time": "", "location": ""}]),
        record("openie6", "train", 2, "OpenIE", "Hello there .", [], []),
    ]


def test_tacred_json():
    text = "Anna Smith , the chief executive of Acme ( ACM ) , spoke ."  # -LRB- / -RRB- written back as brackets
    labels = F.TACRED_RELATIONS
    assert len(labels) == 41
    anna, acme = m("Anna Smith", 0, 10), m("Acme", 36, 40)
    assert F.read_tacred(FORMATS / "tacred.json", "dev") == [
        record("tacred", "dev", 0, "RC", text, labels,
               [{"head": anna, "relation": "per:title", "tail": m("chief executive", 17, 32)}],
               {"head": anna, "tail": m("chief executive", 17, 32)},
               {"tacred_id": "e00000000000000000001", "subj_type": "PERSON", "obj_type": "TITLE"}),
        record("tacred", "dev", 1, "RC", text, labels,
               [{"head": acme, "relation": "org:alternate_names", "tail": m("ACM", 43, 46)}],
               {"head": acme, "tail": m("ACM", 43, 46)},
               {"tacred_id": "e00000000000000000002", "subj_type": "ORGANIZATION", "obj_type": "ORGANIZATION"}),
        record("tacred", "dev", 2, "RC", "Acme hired Bob in 2010 .", labels, [],  # no_relation: NA
               {"head": m("Acme", 0, 4), "tail": m("2010", 18, 22)},
               {"tacred_id": "e00000000000000000003", "subj_type": "ORGANIZATION", "obj_type": "DATE"}),
    ]


def test_fewnerd_supervised_txt():
    got = F.read_fewnerd(FORMATS / "fewnerd_supervised.txt", "test")
    assert got == [
        # IO tags: a run of equal labels is one entity; types renamed as ADELIE writes them
        record("fewnerd", "test", 0, "NER", "Hayao Miyazaki directed Spirited Away in Tokyo .", F.FEWNERD_TYPES,
               [{"entity": m("Hayao Miyazaki", 0, 14), "type": "person_director"},
                {"entity": m("Spirited Away", 24, 37), "type": "art_film"},
                {"entity": m("Tokyo", 41, 46), "type": "location_GPE"}],
               meta={"raw_types": ["person-director", "art-film", "location-GPE"]}),
        record("fewnerd", "test", 1, "NER", "The Nile flows north through Egypt and Sudan .", F.FEWNERD_TYPES,
               [{"entity": m("Nile", 4, 8), "type": "location_bodiesofwater"},
                {"entity": m("Egypt", 29, 34), "type": "location_GPE"},
                {"entity": m("Sudan", 39, 44), "type": "location_GPE"}],
               meta={"raw_types": ["location-bodiesofwater", "location-GPE", "location-GPE"]}),
    ]


def test_fewnerd_types_are_the_66_adelie_prompts_list():
    row = json.loads(shared_path("data", "adelie_test_format", "zeroshot", "few-nerd-supervised.jsonl")
                     .open().readline())
    listed = re.search(r"categories: \[(.*?)\]", row["messages"][0]["content"]).group(1).split(", ")
    assert listed == F.FEWNERD_TYPES and len(set(listed)) == 66


def test_robust_json():
    ori = "Marie Curie won the Nobel Prize in 1903 ."
    assert F.read_robust(FORMATS / "robust.json", "test") == [
        record("robust", "test", "0/0", "OpenIE", ori, [],
               [{"predicate": "won", "subject": "Marie Curie", "object": "the Nobel Prize", "time": "", "location": "",
                 "extra": ["in 1903"]}], meta={"clique": 0, "paraphrase": 0, "ori_sent": ori}),
        record("robust", "test", "0/1", "OpenIE", "In 1903 , the Nobel Prize was won by Marie Curie .", [],
               [{"predicate": "was won by", "subject": "the Nobel Prize", "object": "Marie Curie", "time": "",
                 "location": "", "extra": ["In 1903"]}], meta={"clique": 0, "paraphrase": 1, "ori_sent": ori}),
        record("robust", "test", "0/2", "OpenIE", "The Nobel Prize went to Marie Curie in 1903 .", [],
               [{"predicate": "went to", "subject": "The Nobel Prize", "object": "Marie Curie", "time": "",
                 "location": ""}], meta={"clique": 0, "paraphrase": 2, "ori_sent": ori}),
        record("robust", "test", "1/0", "OpenIE", "Bees make honey .", [],
               [{"predicate": "make", "subject": "Bees", "object": "honey", "time": "", "location": ""}],
               meta={"clique": 1, "paraphrase": 0, "ori_sent": "Bees make honey ."}),
    ]


def test_parse_markdown_table():
    table = "| a | b |\n| --- | --- |\n| 1 | 2 |\n|  | x |"
    assert F.parse_markdown_table(table) == (["a", "b"], [["1", "2"], ["", "x"]], True)
    # the first table of a longer text; no separator line -> not well formed
    assert F.parse_markdown_table("Table:\n| a |\n| 1 |\nafter\n| z |") == (["a"], [["1"]], False)
    assert F.parse_markdown_table("no table") == ([], [], False)


# ------------------------------------------------------------------------------------------------------------------
# Errors name the file, the line and the problem

def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_malformed_json_line_names_file_and_line(tmp_path):
    lines = (FORMATS / "maven_ed.jsonl").read_text().splitlines()
    p = write(tmp_path, "train.jsonl", lines[0] + "\n{not json\n")
    with pytest.raises(ValueError, match=r"train\.jsonl:2: malformed JSON line"):
        F.read_maven_ed(p, "train")


def test_missing_field_names_file_record_and_field(tmp_path):
    data = json.loads((FORMATS / "tacred.json").read_text())
    del data[1]["relation"]
    p = write(tmp_path, "train.json", json.dumps(data))
    where = r"train\.json \(record 1, id e00000000000000000002\)"
    with pytest.raises(ValueError, match=where + ": missing field 'relation'"):
        F.read_tacred(p, "train")


def test_span_not_where_the_file_says_names_line_and_text(tmp_path):
    lines = (FORMATS / "omnievent.unified.jsonl").read_text().splitlines()
    lines[1] = lines[1].replace('"position": [13, 17]', '"position": [14, 18]')  # "died" moved by one character
    p = write(tmp_path, "test.unified.jsonl", "\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"test\.unified\.jsonl:2: trigger 'died' is not at \[14, 18\)"):
        F.read_omnievent(p, "test")


def test_span_outside_text_names_the_span(tmp_path):
    d = json.loads((FORMATS / "maven_arg.jsonl").read_text())
    d["events"][0]["argument"]["Time"][0]["offset"] = [47, 500]
    p = write(tmp_path, "valid.jsonl", json.dumps(d) + "\n")
    with pytest.raises(ValueError, match=r"valid\.jsonl:1: argument span \[47, 500\) is outside the text"):
        F.read_maven_arg(p, "dev")


def test_unknown_labels_raise(tmp_path):
    data = json.loads((FORMATS / "tacred.json").read_text())
    data[0]["relation"] = "per:favourite_colour"
    with pytest.raises(ValueError, match=r"record 0.*unknown TACRED relation 'per:favourite_colour'"):
        F.read_tacred(write(tmp_path, "t.json", json.dumps(data)), "train")
    with pytest.raises(ValueError, match=r"fn\.txt:2: unknown Few-NERD label 'person-wizard'"):
        F.read_fewnerd(write(tmp_path, "fn.txt", "The\tO\nMerlin\tperson-wizard\n"), "train")
    with pytest.raises(ValueError, match=r"c\.txt:1: unknown entity type 'GPE'"):
        F.read_conll_bio(write(tmp_path, "c.txt", "Paris B-GPE\n"), "train", labels=["LOC", "MISC", "ORG", "PER"])
    with pytest.raises(ValueError, match=r"c2\.txt:1: tag 'X-LOC' is not O, B-<type> or I-<type>"):
        F.read_conll_bio(write(tmp_path, "c2.txt", "Paris X-LOC\n"), "train")
    with pytest.raises(ValueError, match=r"s\.txt:2: unknown SemEval-2010 Task 8 label 'Part-Whole\(e1,e2\)'"):
        F.read_semeval2010(write(tmp_path, "s.txt", '1\t"A <e1>b</e1> c <e2>d</e2>."\nPart-Whole(e1,e2)\n'), "train")


def test_semeval_file_without_labels_is_refused(tmp_path):
    p = write(tmp_path, "TEST_FILE.TXT", '8001\t"The <e1>a</e1> b <e2>c</e2>."\n\n8002\t"The <e1>d</e1> <e2>e</e2>."\n')
    with pytest.raises(ValueError, match=r"TEST_FILE\.TXT:1: sentence 8001 has no label line"):
        F.read_semeval2010(p, "test")


def test_openie6_label_count_must_match_words(tmp_path):
    p = write(tmp_path, "labels", "A b . [unused1] [unused2] [unused3]\nARG1 REL NONE\n")
    with pytest.raises(ValueError, match=r"labels:2: 3 labels for 6 words"):
        F.read_openie6_labels(p, "train")


def test_iob1_leftovers_start_a_new_entity_and_are_counted(tmp_path):
    # conlleval's reading: I-X after O or after another type opens a new entity
    p = write(tmp_path, "x.txt", "the O\nIranian I-MISC\nResistance I-ORG\nmovement I-ORG\n")
    counts = Counter()
    [r] = F.read_conll_bio(p, "train", counts=counts)
    assert r["items"] == [{"entity": m("Iranian", 4, 11), "type": "MISC"},
                          {"entity": m("Resistance movement", 12, 31), "type": "ORG"}]
    assert sum(counts.values()) == 2


# ------------------------------------------------------------------------------------------------------------------
# The table, load_dataset, convert_all and the CLI

def test_convert_all_converts_what_is_present_and_lists_the_rest(tmp_path):
    (tmp_path / "tacred").mkdir()
    (tmp_path / "tacred" / "train.json").write_text((FORMATS / "tacred.json").read_text())
    (tmp_path / "maven").mkdir()
    (tmp_path / "maven" / "valid.jsonl").write_text((FORMATS / "maven_ed.jsonl").read_text())
    report = {}
    out = F.convert_all(tmp_path, splits=("train", "dev"), report=report)
    assert {k: len(v) for k, v in out.items()} == {"tacred": 3, "maven": 3}
    assert [r["id"] for r in out["maven"]] == ["maven/dev/0", "maven/dev/1", "maven/dev/2"]
    assert "tacred/dev" in report["absent"] and "conll2003/train" in report["absent"]
    assert "maven/train" in report["absent"] and "maven/dev" not in report["absent"]
    assert set(report["counts"]) == {"tacred/train", "maven/dev"}
    with pytest.raises(FileNotFoundError, match="tacred/test: missing"):
        F.load_dataset("tacred", tmp_path, "test")
    with pytest.raises(ValueError, match="casie has no 'test' split"):
        F.load_dataset("casie", tmp_path, "test")


def test_cli_convert_a_file_and_a_root(tmp_path):
    out = tmp_path / "tacred.jsonl"
    proc = subprocess.run([sys.executable, "ie_formats.py", "convert", "tacred", str(FORMATS / "tacred.json"),
                           "--split", "dev", "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("tacred\tdev\t3 records")
    assert [json.loads(line) for line in out.read_text().splitlines()] == F.read_tacred(FORMATS / "tacred.json", "dev")
    (tmp_path / "robust").mkdir()
    (tmp_path / "robust" / "robust.json").write_text((FORMATS / "robust.json").read_text())
    proc = subprocess.run([sys.executable, "ie_formats.py", "convert-all", "--root", str(tmp_path), "--out_dir",
                           str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "robust\ttest\t4 records" in proc.stdout and "total: 4 records" in proc.stdout
    assert len((tmp_path / "out" / "robust.test.jsonl").read_text().splitlines()) == 4
    proc = subprocess.run([sys.executable, "ie_formats.py", "convert", "tacred", str(tmp_path), "--out",
                           str(tmp_path / "x.jsonl")], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "error:" in proc.stderr and "tacred/train.json" in proc.stderr


# ------------------------------------------------------------------------------------------------------------------
# Real data sets in ../shared/data: documented counts and hand-checked items

@pytest.fixture(scope="module")
def real():
    """Every split present in ../shared/data, converted once: ({(name, split): records}, report)."""
    root = shared_path("data")
    report = {}
    data = F.convert_all(root, splits=F.SPLITS, report=report)
    by_split = {}
    for name, records in data.items():
        for r in records:
            by_split.setdefault((name, r["split"]), []).append(r)
    return by_split, report


def entity_counts(records):
    return dict(Counter(i["type"] for r in records for i in r["items"]))


def test_every_shared_data_set_converts(real):
    got, report = real
    assert sorted({name for name, _ in got}) == sorted(
        ["conll2003", "bc5cdr", "jnlpba", "genia", "mit-restaurant", "fewrel", "semeval", "scierc", "ade", "phee",
         "casie", "rams", "matres", "carb", "instructie"])
    assert "tacred/train" in report["absent"] and "maven-ere/train" in report["absent"]


def test_conll2003(real):
    got, _ = real
    # Tjong Kim Sang & De Meulder 2003, Table 1: 14,987 / 3,466 / 3,684 "sentences" counting one -DOCSTART- line per
    # article (946 / 216 / 231); this copy keeps 230 of the test marks and none in train/dev.
    assert [len(got["conll2003", s]) for s in ("train", "dev", "test")] == [14041, 3250, 3453]
    # Table 2 (entities): dev matches exactly; train/test differ by 2-3 because this copy mixes IOB1 leftovers
    # (read as conlleval does). Documented: train MISC 3438, test LOC 1668 / ORG 1661.
    assert entity_counts(got["conll2003", "dev"]) == {"LOC": 1837, "MISC": 922, "ORG": 1341, "PER": 1842}
    assert entity_counts(got["conll2003", "train"]) == {"LOC": 7140, "MISC": 3440, "ORG": 6321, "PER": 6600}
    assert entity_counts(got["conll2003", "test"]) == {"LOC": 1669, "MISC": 702, "ORG": 1663, "PER": 1617}
    r = got["conll2003", "train"][0]
    assert r["id"] == "conll2003/train/0" and r["labels"] == ["LOC", "MISC", "ORG", "PER"]
    assert r["text"] == "EU rejects German call to boycott British lamb ."
    assert r["items"] == [{"entity": m("EU", 0, 2), "type": "ORG"}, {"entity": m("German", 11, 17), "type": "MISC"},
                          {"entity": m("British", 34, 41), "type": "MISC"}]
    r = got["conll2003", "test"][0]  # the sentence after the first -DOCSTART-; "CHINA B-PER" is in the raw file
    assert r["text"] == "SOCCER - JAPAN GET LUCKY WIN , CHINA IN SURPRISE DEFEAT ."
    assert r["items"] == [{"entity": m("JAPAN", 9, 14), "type": "LOC"}, {"entity": m("CHINA", 31, 36), "type": "PER"}]
    r = got["conll2003", "train"][133]  # raw lines 2388-2389: "Iranian I-MISC" / "Resistance I-ORG"
    assert r["items"][1:3] == [{"entity": m("Iranian", 29, 36), "type": "MISC"},
                               {"entity": m("Resistance", 37, 47), "type": "ORG"}]


def test_bc5cdr(real):
    got, _ = real
    # sentence counts: MANIFEST.md (our count of the MTL-Bioinformatics-2016 IOB files; BC5CDR documents 500 abstracts
    # per split). Mentions, Li et al. 2016: Chemical 5203 / 5347 / 5385, Disease 4182 / 4244 / 4424; this IOB copy
    # has 4246 dev Disease mentions (2 more than documented).
    assert [len(got["bc5cdr", s]) for s in ("train", "dev", "test")] == [4560, 4581, 4797]
    assert entity_counts(got["bc5cdr", "train"]) == {"Chemical": 5203, "Disease": 4182}
    assert entity_counts(got["bc5cdr", "dev"]) == {"Chemical": 5347, "Disease": 4246}
    assert entity_counts(got["bc5cdr", "test"]) == {"Chemical": 5385, "Disease": 4424}
    r = got["bc5cdr", "train"][0]
    assert r["text"].startswith("Selegiline - induced postural hypotension in Parkinson ' s disease :")
    assert r["items"] == [{"entity": m("Selegiline", 0, 10), "type": "Chemical"},
                          {"entity": m("postural hypotension", 21, 41), "type": "Disease"},
                          {"entity": m("Parkinson ' s disease", 45, 66), "type": "Disease"}]


def test_jnlpba(real):
    got, _ = real
    # Kim et al. 2004 (JNLPBA shared task), Table: test = 404 abstracts, 3,856 sentences, 5,067 protein / 1,056 DNA /
    # 118 RNA / 1,921 cell_type / 500 cell_line. devel.tsv is the MTL repository's split of the training data (our
    # count, as in MANIFEST.md); the 200 + 404 -DOCSTART- marks are not sentences.
    assert len(got["jnlpba", "test"]) == 3856 and len(got["jnlpba", "dev"]) == 1739
    assert entity_counts(got["jnlpba", "test"]) == {"protein": 5067, "DNA": 1056, "RNA": 118, "cell_type": 1921,
                                                    "cell_line": 500}
    r = got["jnlpba", "test"][0]
    assert r["text"] == "Number of glucocorticoid receptors in lymphocytes and their sensitivity to hormone action ."
    assert r["items"] == [{"entity": m("glucocorticoid receptors", 10, 34), "type": "protein"},
                          {"entity": m("lymphocytes", 38, 49), "type": "cell_type"}]


def test_genia_nested(real):
    got, _ = real
    # GENIA nested NER test split (Finkel & Manning 2009 split, as W2NER uses it): 1,854 sentences, 5,506 entities
    records = got["genia", "test"]
    assert len(records) == 1854 and sum(len(r["items"]) for r in records) == 5506
    r = records[74]  # nested: the protein "LIM domains" inside the DNA "tandem cysteine -rich LIM domains"
    assert r["text"].startswith("Human and mouse Rhom-2 are highly conserved and, like rhombotin ,")
    assert r["items"] == [{"entity": m("tandem cysteine -rich LIM domains", 77, 110), "type": "DNA"},
                          {"entity": m("rhombotin", 54, 63), "type": "DNA"},
                          {"entity": m("LIM domains", 99, 110), "type": "protein"}]


def test_mit_restaurant(real):
    got, _ = real
    # Liu et al. 2013 / the corpus page: 7,660 training and 1,521 test queries; entity counts are our own
    assert len(got["mit-restaurant", "train"]) == 7660 and len(got["mit-restaurant", "test"]) == 1521
    assert sum(entity_counts(got["mit-restaurant", "train"]).values()) == 15363  # our count
    r = got["mit-restaurant", "train"][0]  # label-first lines: "B-Rating\t2", "I-Rating\tstart", ...
    assert r["text"] == "2 start restaurants with inside dining"
    assert r["items"] == [{"entity": m("2 start", 0, 7), "type": "Rating"},
                          {"entity": m("inside dining", 25, 38), "type": "Amenity"}]


def test_fewrel(real):
    got, report = real
    records = got["fewrel", "dev"]
    assert len(records) == 16 * 700  # Han et al. 2018: the validation set has 16 relations x 700 instances
    assert len(records[0]["labels"]) == 16 and Counter(r["items"][0]["relation"] for r in records)["crosses"] == 700
    r = records[0]  # P177 first instance: h = tokens 26-28, t = tokens 19-20
    assert r["query"] == {"head": m("Cape Girardeau Bridge", 166, 187), "tail": m("Mississippi River", 112, 129)}
    assert r["items"] == [{"head": r["query"]["head"], "relation": "crosses", "tail": r["query"]["tail"]}]
    assert r["meta"] == {"pid": "P177", "head_id": "Q5034838", "tail_id": "Q1497"}
    assert report["counts"]["fewrel/dev"] == {"entity with several occurrences (first occurrence used)": 425}


def test_semeval(real):
    got, _ = real
    train, test = got["semeval", "train"], got["semeval", "test"]
    assert (len(train), len(test)) == (8000, 2717)  # TRAINING_README.txt / the task paper
    # Hendrickx et al. 2010, Table 1: per-relation counts (train / test), Other = no relation
    for split, other, cause_effect in (("train", 1410, 1003), ("test", 454, 328)):
        raw = Counter(r["meta"]["raw_label"].split("(")[0] for r in got["semeval", split])
        assert raw["Other"] == other and raw["Cause-Effect"] == cause_effect
        assert sum(1 for r in got["semeval", split] if not r["items"]) == other
    assert len(train[0]["labels"]) == 18
    r = train[0]  # 1 "... an arrayed <e1>configuration</e1> of antenna <e2>elements</e2>." Component-Whole(e2,e1)
    assert r["text"] == ("The system as described above has its greatest application in an arrayed configuration of "
                         "antenna elements.")
    assert r["items"] == [{"head": m("configuration", 73, 86), "relation": "Whole and Component",
                           "tail": m("elements", 98, 106)}]
    assert train[1]["items"] == [] and train[1]["meta"] == {"semeval_id": "2", "raw_label": "Other"}
    r = train[19]  # 20 "... a <e1>battalion</e1> of Panzer <e2>grenadiers</e2>." Member-Collection(e2,e1)
    assert r["items"] == [{"head": m("battalion", 96, 105), "relation": "Collection and Member",
                           "tail": m("grenadiers", 116, 126)}]


def test_semeval_test_file_reproduces_adelie_zero_shot_gold(real):
    """Each of the 1000 sentences of ADELIE's released zero-shot SemEval prompts is found in TEST_FILE_FULL.TXT
    (by its text with the two entities marked, lowercased, letters and digits only) and our gold equals theirs:
    `(e1; label; e2)` or "" for Other."""
    got, _ = real
    rows = [json.loads(line) for line in shared_path("data", "adelie_test_format", "zeroshot", "semeval.jsonl").open()]

    def norm(s):
        return re.sub(r"[^a-z0-9#]", "", s.lower())

    def marked(r):  # "#" around the two query mentions
        (a, b), (c, d) = sorted((x["start"], x["end"]) for x in (r["query"]["head"], r["query"]["tail"]))
        t = r["text"]
        return norm(f"{t[:a]}#{t[a:b]}#{t[b:c]}#{t[c:d]}#{t[d:]}")

    ours = [(marked(r), r) for r in got["semeval", "test"]]
    matched = agree = 0
    for row in rows:
        after = norm(re.sub(r"</?entity>", "#", row["messages"][0]["content"].split("Text: '", 1)[1]))
        found = [r for key, r in ours if after.startswith(key)]  # the prompt goes on after the sentence
        assert len(found) == 1, row["id"]
        matched += 1
        r, gold = found[0], row["messages"][-1]["content"].strip()
        want = "" if not r["items"] else "({}; {}; {})".format(
            norm(r["items"][0]["head"]["text"]), r["items"][0]["relation"], norm(r["items"][0]["tail"]["text"]))
        g = re.fullmatch(r"\((.*?); (.*?); (.*?)\)", gold)
        agree += want == ("" if not gold else f"({norm(g[1])}; {g[2]}; {norm(g[3])})")
    assert (len(rows), matched, agree) == (1000, 1000, 1000)


def test_scierc(real):
    got, report = real
    # sentences: the DyGIE/PURE SciERC split (Luan et al. 2018 data; 1,861 / 275 / 551); relations are our count
    # (4 exact repeats in train counted and kept once)
    assert [len(got["scierc", s]) for s in ("train", "dev", "test")] == [1861, 275, 551]
    assert [sum(len(r["items"]) for r in got["scierc", s]) for s in ("train", "dev", "test")] == [3215, 455, 974]
    assert report["counts"]["scierc/train"] == {"repeated relation (same head, tail and label)": 4}
    r = got["scierc", "train"][1]  # J87-1003 sentence 1: [17,17,19,20,CONJUNCTION] etc. (document token offsets)
    assert r["meta"] == {"doc_key": "J87-1003", "sentence": 1}
    assert [(i["head"]["text"], i["relation"], i["tail"]["text"]) for i in r["items"]] == [
        ("nouns", "CONJUNCTION", "reflexive pronouns"), ("grammatical gender", "FEATURE-OF", "languages"),
        ("French", "HYPONYM-OF", "languages")]
    assert got["scierc", "train"][0]["items"] == []


def test_ade(real):
    got, report = real
    # a third-party re-split of ADE v2 (MANIFEST.md: 2988 / 641 / 640 sentences, our count). The ADE corpus documents
    # 4,272 sentences and 6,821 drug-effect relations; this copy has 4,269 and 6,819 relation entries, of which
    # 147 / 24 / 24 repeat an earlier one exactly (counted, kept once).
    assert [len(got["ade", s]) for s in ("train", "dev", "test")] == [2988, 641, 640]
    assert [sum(len(r["items"]) for r in got["ade", s]) for s in ("train", "dev", "test")] == [4605, 1004, 1015]
    assert [report["counts"][f"ade/{s}"]["repeated relation (same head, tail and label)"]
            for s in ("train", "dev", "test")] == [147, 24, 24]
    r = got["ade", "train"][0]
    assert r["text"] == ("OBJECTIVE : To report the occurrence of anaphylactoid reactions to intraperitoneal cisplatin "
                         "in 3 patients .")
    assert r["items"] == [{"head": m("cisplatin", 83, 92), "relation": "causes",
                           "tail": m("anaphylactoid reactions", 40, 63)}]


def test_rams(real):
    got, report = real
    # Ebner et al. 2020, Table: dev 924 documents / 2,188 arguments, test 871 / 2,023
    assert [len(got["rams", s]) for s in ("dev", "test")] == [924, 871]
    assert [sum(len(r["items"]) for r in got["rams", s]) for s in ("dev", "test")] == [2188, 2023]
    assert report["counts"]["rams/test"] == {"argument role outside its event type's ontology (kept)": 1}
    r = got["rams", "test"][0]  # trigger [31, 31] "deceive"; links to 27 (communicator), 32-36 (recipient), 48 (place)
    assert r["query"] == {"trigger": m("deceive", 158, 165), "event_type": "contact.prevarication.broadcast"}
    assert r["items"] == [{"argument": m("athletes", 136, 144), "role": "communicator"},
                          {"argument": m("us , and the world", 166, 184), "role": "recipient"},
                          {"argument": m("Russia", 238, 244), "role": "place"}]
    assert r["labels"] == ["communicator", "place", "recipient"]


def test_phee(real):
    got, report = real
    # Sun et al. 2022: 4,827 sentences and 5,019 events (the split sizes are MANIFEST.md's / our count)
    assert [len(got["phee", s]) for s in ("train", "dev", "test")] == [2898, 961, 968]
    assert sum(len(r["items"]) for s in ("train", "dev", "test") for r in got["phee", s]) == 5019
    assert report["counts"]["phee/train"]["discontinuous mention (one argument per fragment)"] == 381  # our count
    r = got["phee", "test"][0]  # id 3708949_1
    assert r["meta"]["phee_id"] == "3708949_1"
    [ev] = r["items"]
    assert ev["trigger"] == m("After", 0, 5) and ev["type"] == "Adverse_event"
    assert [(a["role"], a["argument"]["text"], a["argument"]["start"]) for a in ev["arguments"]] == [
        ("Treatment", "parenteral amiodarone (2300 mg in 3 days) and other measures", 19),
        ("Treatment.Drug", "amiodarone", 30), ("Treatment.Route", "parenteral", 19),
        ("Treatment.Dosage", "2300 mg in 3 days", 42), ("Treatment.Disorder", "congestive heart failure", 90),
        ("Effect", r["text"][163:335], 163)]
    assert r["meta"]["attributes"] == [{"event": 0, "attribute": "Severity", "value": "High",
                                        "mentions": [m("severe", 274, 280)]}]


def test_casie(real):
    got, report = real
    records = got["casie", "train"]
    assert len(records) == 300  # MANIFEST.md: the first 300 annotation files by name
    assert sum(len(r["items"]) for r in records) == 3036  # events, our count
    assert report["counts"]["casie/train"] == {"file whose offsets are all shifted by -1 (shift applied)": 14}
    r = records[0]  # 10001.json, nugget T8 "had been accessed" [273, 290) Databreach with 4 arguments
    assert r["meta"]["file"] == "10001.json"
    assert r["items"][0]["trigger"] == m("had been accessed", 273, 290) and r["items"][0]["type"] == "Databreach"
    assert r["items"][0]["arguments"][0] == {"argument": m("addresses", 262, 271), "role": "Compromised-Data"}
    r = next(r for r in records if r["meta"]["file"] == "10059.json")  # the raw file says "held to ransom" at 36-50
    assert r["text"][:21] == "The Managing Director"
    assert r["items"][0]["trigger"] == m("held to ransom", 35, 49)


def test_matres(real):
    got, report = real
    # MATRES README + MANIFEST.md: timebank.txt 6,336 + aquaint.txt 6,404 relations = train, platinum.txt 837 = test;
    # 4 timebank relations name eiid 0, which has no MAKEINSTANCE in WSJ910225-0066.tml (skipped, counted)
    assert len(got["matres", "test"]) == 837 and len(got["matres", "train"]) == 6336 + 6404 - 4
    assert report["counts"]["matres/train"][
        "relation whose event cannot be found in the TimeML file (eiid without MAKEINSTANCE)"] == 4
    assert Counter(r["items"][0]["relation"] for r in got["matres", "test"]) == {
        "before": 424, "after": 269, "vague": 113, "equal": 31}  # our count
    r = got["matres", "train"][0]  # ABC19980120.1830.0957 predicted tried 415 417 BEFORE
    assert r["query"] == {"event1": m("predicted", 75, 84), "event2": m("tried", 126, 131)}
    assert r["items"] == [{"event1": r["query"]["event1"], "relation": "before", "event2": r["query"]["event2"]}]
    assert r["meta"]["subtask"] == "temporal" and r["labels"] == ["after", "before", "equal", "vague"]
    r = got["matres", "test"][0]  # WSJ_20130322_159 apologized happened 1 5 VAGUE
    assert r["text"].startswith("Israeli Prime Minister Benjamin Netanyahu apologized on Friday")
    assert r["items"][0] == {"event1": m("apologized", 42, 52), "relation": "vague", "event2": m("happened", 233, 241)}


def test_carb(real):
    got, report = real
    # Bhardwaj et al. 2019: 641 dev and 641 test sentences. Gold tuples, our count: test.tsv has 2,715 lines
    # (MANIFEST.md's 2714 is `wc -l`: the last line has no newline), 3 exact repeats; 7 test sentences have none.
    assert len(got["carb", "test"]) == 641 and len(got["carb", "dev"]) == 641
    assert sum(len(r["items"]) for r in got["carb", "test"]) == 2715  # repeats kept: carb.py scores each copy
    assert report["counts"]["carb/test"]["repeated gold tuple (kept, as carb.py scores it)"] == 3
    assert report["counts"]["carb/test"]["sentence without gold tuples (items == [])"] == 7
    r = got["carb", "test"][0]
    assert r["items"] == [
        {"predicate": "were made up of", "subject": "32.7 % of all households", "object": "individuals", "time": "",
         "location": ""},
        {"predicate": "had", "subject": "15.7 % of all households",
         "object": "someone living alone who was 65 years of age or older", "time": "", "location": ""}]
    assert any("extra" in i for r in got["carb", "test"] for i in r["items"])  # arg3+ kept


def test_instructie(real):
    got, _ = real
    records = got["instructie", "test"]
    assert len(records) == 150  # On-Demand-IE README: 150 test samples
    r = records[0]
    assert r["query"]["instruction"].startswith("Could you collate data from medical literature")
    [table] = r["items"]
    assert table["header"] == ["Drug-drug Interactions", "Side Effects", "Suggestions"] and len(table["rows"]) == 3
    assert table["rows"][0] == ["Amlodipine & Atorvastatin",
                                "lower blood pressure, may result in an increased risk of hypotension",
                                "Monitor blood pressure closely"]
    assert r["meta"]["table"].startswith("| Drug-drug Interactions |")
