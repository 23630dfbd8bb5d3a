"""data.py: IEInstruct construction (paper section 3, appendix A, B.1; docs/fidelity.md §1), loss masks, loaders, CLI.

The central test builds IEInstruct from >10,000 synthetic records through the command-line path
(`python data.py build --records FILE`) and then reads ONLY the written conversations: every augmentation rate is
measured from what a conversation shows (the schema lines, the format request, the [Explanation]: prefix, the
number of turns), never from a counter the builder keeps, and compared with its setting (within 2 points).
"""
import dataclasses
import doctest
import json
import random
import re
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import torch

import data
import scorers
import ie_formats
import model
import synthetic
from data import LABEL_FIELD, SYMBOLS

PROMPTS = data.load_prompts()
CLOSED = set(data.CLOSED_TASKS)


def format_requests() -> list[str]:
    """Every output-format request sentence, longest first (they quote format specs such as {entity}: braces that
    are not placeholders)."""
    out = set(data.FORMAT_REQUESTS.values())
    for f in PROMPTS.formats.values():
        out |= {f["canonical"], *f["json"], *(t["request"] for t in f["templates"])}
    return sorted(out, key=len, reverse=True)


# ----------------------------------------------------------------------------------------------------------------
# The inverse of data.canonical_answer (test helpers: the method never parses its own targets back)

def _item_key(task: str, it: dict) -> str:
    """A canonical string for an item, for multiset comparisons (ignores argument order inside EE events)."""
    if task == "EE":
        it = {**it, "arguments": sorted((a["argument"], a["role"]) for a in it["arguments"])}
    return json.dumps(it, sort_keys=True, ensure_ascii=False)


def same_items(task: str, a: list[dict], b: list[dict]) -> bool:
    """True when two item lists hold the same items, counted with multiplicity, in any order."""
    return Counter(_item_key(task, x) for x in data.plain_items(task, a)) == \
        Counter(_item_key(task, x) for x in data.plain_items(task, b))


def _tuples(body: str, bad) -> list[list[str]]:
    """The '; '-separated fields of every '(...)' tuple in `body`: one or more per line, ';' between them allowed."""
    out = []
    for line in body.split("\n"):
        s = line.strip().rstrip(";").strip()
        if not s:
            continue
        if not (s.startswith("(") and s.endswith(")")):
            bad(line)
            continue
        out += [t.split("; ") for t in re.split(r"\)\s*;?\s*\(", s[1:-1])]
    return out


def parse_canonical(task: str, text: str, strict: bool = False) -> list[dict]:
    """Plain items from a canonical answer (the inverse of canonical_answer, in any item order).

    `text` may be a whole model output (the part after "[Answer]:" is used). "NA" or nothing -> []. A malformed
    piece is skipped, or with strict=True raises ValueError naming it. Mention strings that themselves contain the
    separators ("; ", ": " or ")(") cannot round-trip; synthetic.py's lexicons avoid them."""
    body = scorers.answer_part(text).strip()

    def bad(piece):
        if strict:
            raise ValueError(f"malformed {task} answer piece {piece!r} in {body!r}")

    if task == "ODIE":
        header, rows, _ = ie_formats.parse_markdown_table(body)
        if not header:
            bad(body)
            return []
        return [{"header": header, "rows": rows}]
    if body in ("", "NA"):
        return []
    items = []
    if task in ("NER", "ED", "EAE"):
        keys = {"NER": ("entity", "type"), "ED": ("trigger", "type"), "EAE": ("argument", "role")}[task]
        for seg in body.split(";"):
            seg = seg.strip()
            if not seg:
                continue
            parts = seg.rsplit(": ", 1)
            if len(parts) != 2 or not all(parts):
                bad(seg)
                continue
            items.append(dict(zip(keys, parts)))
        return items


# ----------------------------------------------------------------------------------------------------------------
# Reading a built conversation back: what the test sees is only the text

    for fields in _tuples(body, bad):
        if task in ("RC", "RE", "ERE"):
            if len(fields) != 3:
                bad("; ".join(fields))
                continue
            keys = ("head", "relation", "tail") if task != "ERE" else ("event1", "relation", "event2")
            items.append(dict(zip(keys, fields)))
        elif task == "OpenIE":
            if not 2 <= len(fields) <= 5:
                bad("; ".join(fields))
                continue
            fields = fields + [""] * (5 - len(fields))
            items.append(dict(zip(data.ITEM_FIELDS["OpenIE"], fields)))
        elif task == "EE":
            args = [a.rsplit(": ", 1) for a in fields[2:]]
            if len(fields) < 2 or any(len(a) != 2 for a in args):
                bad("; ".join(fields))
                continue
            items.append({"trigger": fields[0], "type": fields[1],
                          "arguments": [{"argument": a, "role": r} for a, r in args]})
        else:
            raise ValueError(f"unknown task {task!r}")
    return items


def instruction_of(conv):
    """The instruction of a conversation's first user turn (before the blank line and "Text: '...'")."""
    user = next(m for m in conv["messages"] if m["role"] == "user")["content"]
    return user.split("\n\nText: '")[0]


def request_kind(task, instruction):
    """canonical | json | template, from the format request sentence that ends the instruction."""
    formats = PROMPTS.formats[task]
    kinds = [k for k, reqs in (("canonical", [formats["canonical"]]), ("json", formats["json"]),
                               ("template", [t["request"] for t in formats["templates"]]))
             if any(instruction.endswith(r) for r in reqs)]
    assert len(kinds) == 1, instruction
    return kinds[0]


def schema_of(task, instruction):
    """(kind, options, has_examples): kind = list | guidelines | examples, as the schema description shows it."""
    lines = instruction.split("\n")
    intros = PROMPTS.schema[task]
    for line in lines:
        for intro in intros["list"]:
            if line.startswith(intro + " [") and line.endswith("]."):
                return "list", line[len(intro) + 2:-2].split(", "), False
    for i, line in enumerate(lines):
        for kind in ("guidelines", "examples"):
            if line in intros[kind]:
                block = []
                for l in lines[i + 1:]:
                    if not l.startswith("- "):
                        break
                    block.append(l)
                options = [re.split(r": | \(such as ", l[2:], maxsplit=1)[0].rstrip(".") for l in block]
                return kind, options, any(" (such as " in l for l in block)
    raise AssertionError(f"no schema description in {instruction!r}")


def final_answer(conv):
    return conv["messages"][-1]["content"]


def is_na(task, conv):
    answer = scorers.answer_part(final_answer(conv)).strip()
    kind = request_kind(task, instruction_of(conv))
    if kind == "canonical":
        return parse_canonical(task, answer, strict=True) == []
    if kind == "json":
        return json.loads(answer) == []
    request = instruction_of(conv)
    return answer in {t["none"] for t in PROMPTS.formats[task]["templates"] if request.endswith(t["request"])}


def strip_label(task, items):
    """The items without their label, as a multiset (EE arguments in any order)."""
    def key(it):
        it = {k: v for k, v in it.items() if k != LABEL_FIELD[task]}
        if "arguments" in it:
            it["arguments"] = sorted((a["argument"], a["role"]) for a in it["arguments"])
        return json.dumps(it, sort_keys=True)
    return Counter(key(it) for it in items)


def check_canonical_target(record, options, answer):
    """The canonical answer parses back to exactly the record's gold under the schema the prompt shows: items of
    visible labels with the label as shown (original or varied), items of a label shown as a symbol with that
    symbol (one symbol per label), items of dropped labels absent."""
    task = record["task"]
    parsed = parse_canonical(task, answer, strict=True)
    gold = data.plain_items(task, record["items"])
    if task not in CLOSED:
        assert same_items(task, parsed, gold)
        return
    key = LABEL_FIELD[task]
    plain = [o for o in options if o not in SYMBOLS]
    image = None
    for fn in [lambda s: s, *data.LABEL_VARIATIONS.values()]:  # which label-string variation the prompt shows
        if all(o in {fn(l) for l in record["labels"]} for o in plain):
            image = {l: fn(l) for l in record["labels"]}
            break
    assert image is not None, (options, record["labels"])
    visible = {l: image[l] for l in record["labels"] if image[l] in plain}
    expected = [{**it, key: visible[it[key]]} for it in gold if it[key] in visible]
    assert same_items(task, [it for it in parsed if it[key] not in SYMBOLS], expected)
    hidden = defaultdict(list)
    for it in gold:
        if it[key] not in visible:
            hidden[it[key]].append(it)
    by_symbol = defaultdict(list)
    for it in parsed:
        if it[key] in SYMBOLS:
            assert it[key] in options
            by_symbol[it[key]].append(it)
    used = set()
    for sym, items in by_symbol.items():
        match = [l for l, its in hidden.items() if l not in used and strip_label(task, its) == strip_label(task, items)]
        assert match, (sym, items, hidden)
        used.add(match[0])


# ----------------------------------------------------------------------------------------------------------------
# The large build (>10,000 IE instances from synthetic records), read back from the file

N_PER_DATASET, N_ODIE = 560, 1500  # ODIE gets more records: its explanation rate (20%) is measured on ODIE alone


@pytest.fixture(scope="module")
def big_build(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ie")
    records = []
    for name, task in synthetic.DATASETS.items():
        records += synthetic.generate_dataset(name, "train", N_ODIE if task == "ODIE" else N_PER_DATASET, seed=0)
    path = tmp / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp / "ie.jsonl"
    data.main(["build", "--out", str(out), "--records", str(path), "--seed", "1"])
    conversations = data.load_conversations(out)
    by_id = {r["id"]: r for r in records}
    ie = [c for c in conversations if c["id"] in by_id]
    summary = json.loads((tmp / "ie.stats.json").read_text())
    return {"records": by_id, "ie": ie, "all": conversations, "out": out, "summary": summary}


def test_the_big_build_has_over_ten_thousand_ie_instances_at_ie_proportion_20(big_build):
    ie, everything = big_build["ie"], big_build["all"]
    assert len(ie) >= 10_000
    n_general = sum(c["dataset"] == "syn_general" for c in everything)
    assert len(ie) + n_general == len(everything)
    assert abs(len(ie) / len(everything) - 0.2) < 1e-4  # section 4: IE is 20% of the SFT mixture


def rate(hits, total):
    return sum(hits) / max(1, total)


def test_realised_rates_are_the_settings(big_build):
    """Each augmentation's rate, measured from the conversations, within 2 points of its setting."""
    cfg, recs = data.IEInstructConfig(), big_build["records"]
    closed = [c for c in big_build["ie"] if recs[c["id"]]["task"] in CLOSED]
    ie_tasks = [c for c in big_build["ie"] if recs[c["id"]]["task"] != "ODIE"]
    odie = [c for c in big_build["ie"] if recs[c["id"]]["task"] == "ODIE"]
    n_turns = [sum(m["role"] == "user" for m in c["messages"]) for c in ie_tasks]
    measured = {}
    measured["few-shot"] = (rate([n > 1 for n in n_turns], len(ie_tasks)), cfg.fewshot_rate)
    measured["explanation"] = (rate([final_answer(c).startswith("[Explanation]: ") for c in ie_tasks], len(ie_tasks)),
                               cfg.explanation_rate)
    measured["odie explanation"] = (rate([final_answer(c).startswith("[Explanation]: ") for c in odie], len(odie)),
                                    cfg.odie_cot_rate)
    kinds = Counter(request_kind(recs[c["id"]]["task"], instruction_of(c)) for c in ie_tasks)
    measured["canonical format"] = (kinds["canonical"] / len(ie_tasks), cfg.canonical_rate)
    measured["json format"] = (kinds["json"] / len(ie_tasks), cfg.json_rate)
    measured["template formats"] = (kinds["template"] / len(ie_tasks), 1 - cfg.canonical_rate - cfg.json_rate)
    schemas = [(c, recs[c["id"]], *schema_of(recs[c["id"]]["task"], instruction_of(c))) for c in closed]
    measured["guidelines"] = (rate([kind == "guidelines" for _, _, kind, _, _ in schemas], len(schemas)),
                              cfg.guideline_rate)
    measured["such as examples"] = (rate([kind == "examples" or (kind == "guidelines" and ex)
                                          for _, _, kind, _, ex in schemas], len(schemas)), cfg.example_rate)
    options = [o for *_, opts, _ in schemas for o in opts]
    measured["symbols per option"] = (rate([o in SYMBOLS for o in options], len(options)), cfg.symbol_rate)
    uncut = [(r, opts) for _, r, kind, opts, _ in schemas if kind == "list"]  # no cut to 10/15: dropout alone
    measured["class dropout per option"] = (1 - sum(len(o) for _, o in uncut) / sum(len(r["labels"]) for r, _ in uncut),
                                            cfg.class_dropout)
    varied = [any(o not in r["labels"] and o not in SYMBOLS for o in opts) for _, r, _, opts, _ in schemas]
    measured["label-string variation"] = (rate(varied, len(schemas)), cfg.label_variation_rate)
    report = {k: (round(100 * got, 2), round(100 * want, 2)) for k, (got, want) in measured.items()}
    print("realised vs set (%):", json.dumps(report))
    for name, (got, want) in measured.items():
        assert abs(got - want) <= 0.02, f"{name}: realised {got:.4f}, set {want:.4f}"
    # schema sampling: at most 10 options with guidelines, 15 with examples (gold labels are never cut), and at
    # most 3 'such as' examples per option
    for c, r, kind, opts, _ in schemas:
        n_gold = len({it[LABEL_FIELD[r["task"]]] for it in r["items"]})
        assert len(opts) <= max({"guidelines": 10, "examples": 15, "list": len(r["labels"])}[kind], n_gold)
        for line in instruction_of(c).split("\n"):
            if " (such as " in line:
                strings_per_example = 2 if r["task"] in ("RC", "RE", "ERE") else 1  # pairs for relations
                assert 1 <= line.split(" (such as ", 1)[1].count('"') // 2 <= 3 * strings_per_example
    # few-shot: 1..8 demonstrations, uniform (mean 4.5)
    demos = Counter(n - 1 for n in n_turns if n > 1)
    assert set(demos) == set(range(1, 9))
    assert abs(sum(k * v for k, v in demos.items()) / sum(demos.values()) - 4.5) < 0.2


def test_na_share_at_most_twenty_percent_per_data_set_and_na_demos_rare(big_build):
    recs = big_build["records"]
    by_dataset = defaultdict(list)
    for c in big_build["ie"]:
        by_dataset[c["dataset"]].append(is_na(recs[c["id"]]["task"], c) if recs[c["id"]]["task"] != "ODIE" else False)
    for name, flags in by_dataset.items():
        assert sum(flags) / len(flags) <= 0.2, name
    assert any(sum(f) / len(f) > 0.15 for f in by_dataset.values())  # the cap binds somewhere
    # NA demonstrations are kept with probability 0.1 only: in RC (54% NA records) they stay a small minority
    na_demo, demo = 0, 0
    for c in big_build["ie"]:
        if c["dataset"] == "syn_kb_rc" and request_kind("RC", instruction_of(c)) == "canonical":
            for m in c["messages"][1:-1:2]:
                demo += 1
                na_demo += scorers.answer_part(m["content"]).strip() == "NA"
    assert demo > 500 and 0 < na_demo / demo < 0.15


def test_no_unfilled_placeholder_anywhere(big_build):
    """No {placeholder}, <text>, <entity1>-style marker left in any prompt or target (the release left them in
    ~30% of zero-shot and all few-shot prompts). Format requests quote their format ("{entity}: {type}")
    on purpose: those sentences are taken out before looking."""
    requests = format_requests()
    marker = re.compile(r"\{[^{}]*\}|<[a-z_0-9]+>|<entity\d*>|<text>|<options>")
    for c in big_build["ie"]:
        task = big_build["records"][c["id"]]["task"]
        json_answers = request_kind(task, instruction_of(c)) == "json" if task != "ODIE" else False
        for m in c["messages"]:
            text = m["content"]
            if m["role"] == "user":
                for r in requests:
                    text = text.replace(r, "")
            if m["role"] == "assistant" and json_answers:
                json.loads(scorers.answer_part(text).strip())  # real JSON, braces and all
                continue
            assert not marker.search(text), (c["id"], text)


def test_every_canonical_target_parses_back_to_its_gold(big_build):
    n = 0
    for c in big_build["ie"]:
        record = big_build["records"][c["id"]]
        task = record["task"]
        if task != "ODIE" and request_kind(task, instruction_of(c)) != "canonical":
            continue
        options = schema_of(task, instruction_of(c))[1] if task in CLOSED else []
        check_canonical_target(record, options, final_answer(c))
        n += 1
    assert n > 8000


def test_build_report_is_a_table_like_table_7(big_build):
    stem = str(big_build["out"])[:-len(".jsonl")]
    table = open(stem + ".stats.md").read()
    assert "| task | data set | records |" in table and "| NER | syn_news_ner |" in table and "**IE total**" in table
    summary = big_build["summary"]
    assert summary["ie_instances"] == len(big_build["ie"])
    assert sum(s["instances"] for s in summary["datasets"].values()) == len(big_build["ie"])


# ----------------------------------------------------------------------------------------------------------------
# Determinism, and errors on bad input

def test_same_seed_same_file_other_seed_other_file(tmp_path):
    """Byte-identical output for one seed, also from another process with another string-hash seed (no set or
    hash order leaks into the file); another seed gives another file."""
    import os
    import subprocess
    import sys
    paths = {name: tmp_path / f"{name}.jsonl" for name in "abc"}
    for name, seed in (("a", 3), ("c", 4)):
        data.main(["build", "--out", str(paths[name]), "--seed", str(seed), "--synthetic_n_train", "40"])
    subprocess.run([sys.executable, "data.py", "build", "--out", str(paths["b"]), "--seed", "3",
                    "--synthetic_n_train", "40"], cwd=data.REPO, check=True, capture_output=True,
                   env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert paths["a"].read_bytes() == paths["b"].read_bytes()
    assert paths["a"].read_bytes() != paths["c"].read_bytes()


GOOD = {"dataset": "toy", "split": "train", "id": "toy/train/0", "task": "NER", "text": "Anna met Omar.",
        "labels": ["PER"], "query": None,
        "items": [{"entity": {"text": "Anna", "start": 0, "end": 4}, "type": "PER"}], "meta": {}}


def bad_records_file(tmp_path):
    lines = [json.dumps({**GOOD, "id": f"toy/train/{i}"}) for i in range(30)]
    lines[3] = '{"dataset": "toy", "split": "train"'                                          # line 4: malformed
    lines[7] = json.dumps({k: v for k, v in GOOD.items() if k != "labels"})                   # line 8: missing field
    lines[12] = json.dumps({**GOOD, "items": [{"entity": {"text": "Omar", "start": 9, "end": 40}, "type": "PER"}]})
    lines[20] = json.dumps({**GOOD, "task": "NERD"})                                          # line 21: unknown task
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("line,problem", [(4, "malformed JSON"), (8, "labels"), (13, "outside the text"),
                                          (21, "unknown task")])
def test_bad_input_names_file_line_and_problem(tmp_path, line, problem):
    path = bad_records_file(tmp_path)
    text = path.read_text().split("\n")
    good = [json.dumps({**GOOD, "id": f"toy/train/{i}"}) for i in range(30)]
    only = good[:]
    only[line - 1] = text[line - 1]  # one bad line at a time
    path.write_text("\n".join(only) + "\n")
    with pytest.raises(ValueError) as e:
        data.main(["build", "--out", str(tmp_path / "x.jsonl"), "--records", str(path)])
    assert f"{path}:{line}:" in str(e.value) and problem in str(e.value)


def test_build_preset_under_the_flags_given(tmp_path, capsys):
    """`data.py build --preset P` puts config.PRESETS[P]["ie_instruct"] over the defaults (the paper's numbers:
    preset paper, the default); a flag given on the command line wins over both. The resolved settings and the
    preset's name are printed at the start and kept in the build's statistics (OUT.stats.json)."""
    import config
    demo = config.PRESETS["demo"]["ie_instruct"]
    defaults = {k: getattr(data.IEInstructConfig(), k) for k in demo}
    assert demo and all(demo[k] != defaults[k] != 0.3 for k in demo)  # every case below tells the sources apart
    records = tmp_path / "records.jsonl"
    records.write_text("".join(json.dumps({**GOOD, "id": f"toy/train/{i}"}) + "\n" for i in range(10)))
    for argv, preset, want in (([], "paper", defaults), (["--preset", "demo"], "demo", demo),
                               (["--preset=demo", "--fewshot_rate", "0.3"], "demo", {**demo, "fewshot_rate": 0.3})):
        out = tmp_path / f"{len(argv)}.jsonl"
        data.main(["build", "--out", str(out), "--records", str(records), "--max_tokens", "0", *argv])
        printed = capsys.readouterr().out.split("\n")
        assert printed[0].startswith(f"preset {preset} sets ")
        assert all(f" {k}={v} " in printed[1] + " " for k, v in want.items()), printed[1]
        saved = json.loads((tmp_path / f"{len(argv)}.stats.json").read_text())["config"]
        assert saved["preset"] == preset and {k: saved[k] for k in want} == want


def test_skip_bad_counts_and_reports_the_skips(tmp_path, capsys):
    path = bad_records_file(tmp_path)
    data.main(["build", "--out", str(tmp_path / "x.jsonl"), "--records", str(path), "--skip-bad",
               "--ie_proportion", "1"])
    summary = json.loads((tmp_path / "x.stats.json").read_text())
    counts = summary["input_counts"]
    assert sum(v for k, v in counts.items() if k.startswith("bad line")) == 4
    assert counts["bad line: malformed JSON"] == 1 and counts["bad line: unknown task"] == 1
    assert summary["datasets"]["toy"]["records"] == 26
    assert summary["datasets"]["toy"]["labels without a guideline"] == 1  # "toy" has none in prompts/
    assert "bad line" in capsys.readouterr().out


def test_held_out_evaluation_sets_stay_out_of_ie_instruct(tmp_path):
    """Section 5.1: FewNERD, SemEval, RichERE, MATRES, CaRB and ROBUST are held out. Their train records (which
    ie_formats reads) are left out of IEInstruct and counted; --include_held_out puts them back."""
    import synthetic
    corpus = synthetic.generate_corpus(0, 6, 0, datasets=["syn_semantic_rc", "syn_news_ner"])["train"]
    for r in corpus:
        if r["dataset"] == "syn_semantic_rc":  # the same records, under the held-out SemEval's name
            r["dataset"], r["id"] = "semeval", r["id"].replace("syn_semantic_rc", "semeval")
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in corpus))
    data.main(["build", "--out", str(tmp_path / "x.jsonl"), "--records", str(path), "--ie_proportion", "1"])
    summary = json.loads((tmp_path / "x.stats.json").read_text())
    assert set(summary["datasets"]) == {"syn_news_ner"}
    assert summary["input_counts"]["records of held-out evaluation sets (section 5.1), not used"] == 6
    data.main(["build", "--out", str(tmp_path / "y.jsonl"), "--records", str(path), "--ie_proportion", "1",
               "--include_held_out"])
    assert "semeval" in json.loads((tmp_path / "y.stats.json").read_text())["datasets"]


# ----------------------------------------------------------------------------------------------------------------
# Prompt pools (prompts/)

TASK_WORDS = {"NER": "entit", "RC": "relat", "RE": "relat", "ED": "event", "EAE": "argument|role",
              "EE": "event", "ERE": "relat", "OpenIE": "tuple|fact|predicate|relat"}


def test_task_description_pools_are_on_task_with_allowed_placeholders():
    for task, pool in PROMPTS.descriptions.items():
        assert len(pool) >= 10 and len(set(pool)) == len(pool)
        for d in pool:
            assert re.search(TASK_WORDS[task], d, re.I), (task, d)  # on task (the release's ED pool was not)
            assert set(data.PLACEHOLDER_RE.findall(d)) <= set(data.DESCRIPTION_PLACEHOLDERS[task])
            assert "{text}" not in d and "<text>" not in d


def test_output_formats_about_fifteen_per_task_and_guidelines_for_every_synthetic_label():
    for task, f in PROMPTS.formats.items():
        assert 1 + len(f["json"]) + len(f["templates"]) >= 15 and len(f["templates"]) >= 13
        for t in f["templates"]:  # every placeholder has a value (data._template_item)
            fields = set(data.ITEM_FIELDS[task]) | ({"rest"} if task == "OpenIE" else set())
            assert set(data.PLACEHOLDER_RE.findall(t["item"])) <= fields and {"sep", "none"} <= set(t), (task, t)
            if task == "EE":
                assert set(data.PLACEHOLDER_RE.findall(t["argument"])) <= {"argument", "role"}, t
            if task == "OpenIE":
                assert all(set(data.PLACEHOLDER_RE.findall(p)) <= {k} for k, p in t["parts"].items()), t
    for name, task in synthetic.DATASETS.items():
        if task in CLOSED:
            labels = {l for r in synthetic.generate_dataset(name, "train", 60) for l in r["labels"]}
            assert labels <= set(PROMPTS.guidelines[name]), name


def test_load_prompts_rejects_a_bad_placeholder_and_appends_extra_descriptions(tmp_path):
    shutil.copytree(data.PROMPTS_DIR, tmp_path / "prompts")
    path = tmp_path / "prompts" / "task_descriptions.json"
    pools = json.loads(path.read_text())
    pools["NER"].append("Find the entities in {text}.")
    path.write_text(json.dumps(pools))
    with pytest.raises(ValueError, match=r"task_descriptions.json: NER description 12: placeholder\(s\) \{text\}"):
        data.load_prompts(prompts_dir=tmp_path / "prompts")
    extra = tmp_path / "generated.json"
    extra.write_text(json.dumps({"ED": ["Spot every event trigger and name its event type."]}))
    prompts = data.load_prompts([extra])
    assert prompts.descriptions["ED"][-1] == "Spot every event trigger and name its event type."
    assert len(prompts.descriptions["ED"]) == len(PROMPTS.descriptions["ED"]) + 1


# ----------------------------------------------------------------------------------------------------------------
# Answers: the canonical format (docs/fidelity.md §1) and its inverse

def M(text, start):
    return {"text": text, "start": start, "end": start + len(text)}


CANONICAL = [
    ("NER", [{"entity": M("EU", 0), "type": "ORG"}, {"entity": M("German", 11), "type": "MISC"}],
     "[Answer]: EU: ORG; German: MISC;"),
    ("RC", [{"head": M("audits", 0), "relation": "Message and Topic", "tail": M("waste", 20)}],
     "[Answer]: (audits; Message and Topic; waste)"),
    ("RE", [{"head": M("a", 0), "relation": "USED-FOR", "tail": M("b", 2)},
            {"head": M("c", 4), "relation": "PART-OF", "tail": M("d", 6)}],
     "[Answer]: (a; USED-FOR; b)\n(c; PART-OF; d)"),
    ("ED", [{"trigger": M("attacked", 3), "type": "Attack"}], "[Answer]: attacked: Attack;"),
    ("EAE", [{"argument": M("rebels", 0), "role": "Attacker"}, {"argument": M("Lima", 20), "role": "Place"}],
     "[Answer]: rebels: Attacker; Lima: Place;"),
    ("EE", [{"trigger": M("developed", 10), "type": "Adverse_event",
             "arguments": [{"argument": M("A man", 0), "role": "Subject"},
                           {"argument": M("rash", 20), "role": "Effect"}]},
            {"trigger": M("cured", 30), "type": "Therapy", "arguments": []}],
     "[Answer]: (developed; Adverse_event; A man: Subject; rash: Effect)\n(cured; Therapy)"),
    ("ERE", [{"event1": M("storm", 4), "relation": "CAUSE", "event2": M("flood", 20)},
             {"event1": M("flood", 20), "relation": "BEFORE", "event2": M("rescue", 40)}],
     "[Answer]: (storm; CAUSE; flood); (flood; BEFORE; rescue);"),
    ("OpenIE", [{"predicate": "opened", "subject": "Anna", "object": "a cafe", "time": "", "location": "in Lima"},
                {"predicate": "slept", "subject": "Omar", "object": "", "time": "", "location": ""}],
     "[Answer]: (opened; Anna; a cafe; ; in Lima)\n(slept; Omar)"),
    ("ODIE", [{"header": ["Name", "Job"], "rows": [["Anna", "nurse"], ["Omar", "chef"]]}],
     "[Answer]: | Name | Job |\n| --- | --- |\n| Anna | nurse |\n| Omar | chef |"),
]


@pytest.mark.parametrize("task,items,text", CANONICAL, ids=[c[0] for c in CANONICAL])
def test_canonical_answer_by_hand_and_back(task, items, text):
    """Spec 2's canonical formats, written out; parse_canonical inverts them (also inside a full output with an
    explanation, and with the items in another order)."""
    assert data.canonical_answer(task, items) == text
    assert same_items(task, parse_canonical(task, text, strict=True), items)
    output = "[Explanation]: Because the text says so. " + text
    assert same_items(task, parse_canonical(task, output, strict=True), items)
    shuffled = data.canonical_answer(task, random.Random(5).sample(items, len(items)))
    assert same_items(task, parse_canonical(task, shuffled, strict=True), items)


def test_items_are_shuffled_in_the_target():
    """Spec 2: the order of items in a target varies (no order bias), while the items stay the same."""
    records, ctx = toy_context(60, "syn_news_ner")
    record = max(records, key=lambda r: len(r["items"]))
    targets = set()
    for k in range(30):
        messages = data.ie_instruct_instance(record, ctx, PROMPTS, data.IEInstructConfig(class_dropout=0, symbol_rate=0,
                                             label_variation_rate=0), random.Random(k), output_format="canonical",
                                             demos=[], explanation=False)
        targets.add(messages[-1]["content"])
        assert same_items("NER", parse_canonical("NER", messages[-1]["content"]), record["items"])
    assert len(record["items"]) >= 3 and len(targets) > 1
    # --no-shuffle_items (the demo preset): the record's order, whatever the seed
    in_order = data.canonical_answer("NER", data.plain_items("NER", record["items"]))
    for k in range(5):
        messages = data.ie_instruct_instance(record, ctx, PROMPTS, data.IEInstructConfig(
            class_dropout=0, symbol_rate=0, label_variation_rate=0, shuffle_items=False), random.Random(k),
            output_format="canonical", demos=[], explanation=False)
        assert messages[-1]["content"] == in_order


def test_na_and_malformed_answers():
    assert data.canonical_answer("NER", []) == "[Answer]: NA"
    assert parse_canonical("RE", "[Answer]: NA") == []
    assert parse_canonical("NER", "[Answer]: Anna: PER; garbage; Oslo: LOC;") == \
        [{"entity": "Anna", "type": "PER"}, {"entity": "Oslo", "type": "LOC"}]
    with pytest.raises(ValueError, match="malformed NER answer piece 'garbage'"):
        parse_canonical("NER", "[Answer]: Anna: PER; garbage;", strict=True)
    with pytest.raises(ValueError, match="malformed RE"):
        parse_canonical("RE", "[Answer]: (a; b)", strict=True)


def test_every_synthetic_record_round_trips():
    for r in synthetic.generate_corpus(seed=2, n_train=80, n_test=0)["train"]:
        items = random.Random(0).sample(r["items"], len(r["items"]))
        back = parse_canonical(r["task"], data.canonical_answer(r["task"], items), strict=True)
        assert same_items(r["task"], back, r["items"]), r["id"]


def round_trips(record):
    """Whether the record's gold survives canonical_answer -> parse_canonical (not when a string holds a separator)."""
    try:
        return same_items(record["task"], parse_canonical(
            record["task"], data.canonical_answer(record["task"], record["items"]), strict=True), record["items"])
    except ValueError:
        return False


def test_real_training_sets_round_trip_except_separator_strings(shared):
    """On the real data sets (via ie_formats), the canonical format loses only items whose strings contain its
    own separators ("; ", ": ", ")(" as in "t(14;14)(q11;q32.1)")."""
    import ie_formats
    failures, total = [], 0
    for name in ("conll2003", "semeval", "scierc", "ade", "phee", "matres"):
        for r in ie_formats.load_dataset(name, shared / "data", "train"):
            total += 1
            if not round_trips(r):
                failures.append(json.dumps(data.plain_items(r["task"], r["items"])))
    assert total > 40_000 and len(failures) <= total * 0.001
    assert all(re.search(r";|\)\s*\(|: ", f) for f in failures)


# ----------------------------------------------------------------------------------------------------------------
# One instance: forced options (feedback.py, evaluate.py), placeholders, class dropout

def toy_context(n=40, name="syn_kb_rc"):
    records = synthetic.generate_dataset(name, "train", n, seed=0)
    return records, data.dataset_context(records)


def test_forced_options_canonical_zero_shot_no_explanation():
    records, ctx = toy_context()
    for r in records[:20]:
        messages = data.ie_instruct_instance(r, ctx, PROMPTS, data.IEInstructConfig(), random.Random(0),
                                             output_format="canonical", demos=[], explanation=False)
        assert [m["role"] for m in messages] == ["user", "assistant"]
        assert messages[0]["content"].split("\n\n")[0].endswith(PROMPTS.formats["RC"]["canonical"])
        assert messages[1]["content"].startswith("[Answer]: ")
        with_expl = data.ie_instruct_instance(r, ctx, PROMPTS, data.IEInstructConfig(), random.Random(0),
                                              explanation=True, demos=[])
        assert with_expl[-1]["content"].startswith("[Explanation]: ")


def test_description_placeholders_come_from_the_first_turn_and_every_turn_names_its_pair():
    """RC descriptions may name the entity pair ({head}, {tail}); with demonstrations the description opens the
    first demonstration's turn, so it names that pair, and every turn (query included) carries its own pair."""
    records, ctx = toy_context()
    description = 'Determine the relation between "{head}" and "{tail}" in the text.'
    query, demos = records[0], records[1:4]
    prompts = dataclasses.replace(PROMPTS, descriptions={**PROMPTS.descriptions, "RC": [description]})
    messages = data.ie_instruct_instance(query, ctx, prompts, data.IEInstructConfig(), random.Random(0), demos=demos)
    first = demos[0]["query"]
    assert messages[0]["content"].startswith(
        f'Determine the relation between "{first["head"]["text"]}" and "{first["tail"]["text"]}"')
    for m, r in zip(messages[::2], demos + [query]):
        assert m["content"].endswith(f"Text: '{r['text']}'\nHead entity: \"{r['query']['head']['text']}\"\n"
                                     f"Tail entity: \"{r['query']['tail']['text']}\"")
    assert [m["content"].startswith("Text: '") for m in messages[2::2]] == [True] * 3


def test_class_dropout_takes_the_items_of_dropped_labels_out_of_the_answer():
    records, ctx = toy_context(200, "syn_fine_ner")
    cfg = data.IEInstructConfig(class_dropout=0.5, symbol_rate=0, label_variation_rate=0, guideline_rate=0,
                                example_rate=0)
    emptied = 0
    for k, r in enumerate(records):
        messages = data.ie_instruct_instance(r, ctx, PROMPTS, cfg, random.Random(k), output_format="canonical",
                                             demos=[], explanation=False)
        _, options, _ = schema_of("NER", messages[0]["content"].split("\n\nText: '")[0])
        got = parse_canonical("NER", messages[1]["content"], strict=True)
        want = [it for it in data.plain_items("NER", r["items"]) if it["type"] in options]
        assert same_items("NER", got, want)
        emptied += bool(r["items"]) and not want
    assert emptied > 0  # dropout can turn an instance into NA (which the NA cap then counts)


def test_evaluation_conversation_uses_table_9_full_schema_and_the_given_demos():
    records, _ = toy_context(30, "syn_fine_ner")
    query, demos = records[0], records[1:5]
    messages = data.evaluation_conversation(query, demos, seed=24)
    assert messages == data.evaluation_conversation(query, demos, seed=24)
    instruction = messages[0]["content"].split("\n\nText: '")[0]
    assert instruction.endswith(data.FORMAT_REQUESTS["NER"])
    assert data.FORMAT_REQUESTS["NER"] == 'Please give the answer in the form "[Answer]: {entity}: {type}; ".'
    kind, options, _ = schema_of("NER", instruction)
    assert kind == "list" and sorted(options) == sorted(query["labels"])  # no dropout, symbols or variation
    assert len(messages) == 2 * (len(demos) + 1)
    for m, r in zip(messages[1::2], demos + [query]):
        assert m["content"] == data.canonical_answer("NER", r["items"]) or \
            same_items("NER", parse_canonical("NER", m["content"], strict=True), r["items"])
        assert not m["content"].startswith("[Explanation]")


def test_odie_instances_follow_spec_2():
    records = synthetic.generate_dataset("syn_odie_people", "train", 30, seed=0)
    ctx = data.dataset_context(records)
    m = data.ie_instruct_instance(records[0], ctx, PROMPTS, data.IEInstructConfig(), random.Random(0),
                                  explanation=False)
    assert m[0] == {"role": "system", "content": data.ODIE_SYSTEM}
    assert m[1]["content"] == records[0]["query"]["instruction"] + "\nText: " + records[0]["text"]
    assert m[2]["content"] == data.canonical_answer("ODIE", records[0]["items"])


# ----------------------------------------------------------------------------------------------------------------
# Corpus level: caps, length filter, general data

def test_caps_per_data_set_and_na_cap():
    records = synthetic.generate_corpus(seed=0, n_train=200, n_test=0)["train"]
    cfg = data.IEInstructConfig(max_per_dataset=50, max_tokens=0)
    ie, stats = data.ie_instruct(records, cfg, progress=False)
    per = Counter(c["dataset"] for c in ie)
    assert max(per.values()) == 50
    assert stats["syn_kb_rc"]["instances"] == 50 and stats["syn_kb_rc"]["na_instances"] <= 10
    assert stats["syn_kb_rc"]["dropped: NA over the cap"] > 0
    assert stats["syn_kb_rc"]["not used: data set cap"] + stats["syn_kb_rc"]["dropped: NA over the cap"] + 50 == 200


def test_length_filter_sheds_demonstrations_then_drops():
    tokenizer = model.Tokenizer(data.DEFAULT_TOKENIZER)
    records = synthetic.generate_dataset("syn_news_ner", "train", 120, seed=0)
    ie, stats = data.ie_instruct(records, data.IEInstructConfig(max_tokens=140), tokenizer=tokenizer, progress=False)
    st = stats["syn_news_ner"]
    assert st["demonstrations removed for length"] > 0 and st["dropped: too long"] > 0
    for c in ie:
        assert len(data.tokenize_chat(tokenizer, c["messages"])[0]) <= 140
    # the release's word filter instead (docs/fidelity.md §1: 1500 words); here a small limit so that it bites
    ie_w, stats_w = data.ie_instruct(records, data.IEInstructConfig(max_tokens=0, max_words=60), progress=False)
    assert all(sum(len(m["content"].split(" ")) for m in c["messages"]) <= 60 for c in ie_w)
    assert stats_w["syn_news_ner"]["demonstrations removed for length"] > 0


def test_token_counter_equals_tokenize_chat():
    """TokenCounter (line by line, cached) against tokenize_chat's ids in total, and per stretch between special
    tokens against one encode call per stretch."""
    tokenizer = model.Tokenizer(data.DEFAULT_TOKENIZER)
    counter = data.TokenCounter(tokenizer)
    records = synthetic.generate_corpus(seed=1, n_train=15, n_test=0)["train"]
    ie, _ = data.ie_instruct(records, data.IEInstructConfig(max_tokens=0), progress=False)
    extra = [{"messages": [{"role": "user", "content": "  a\n\n\nb </s> c <s>\n"},
                           {"role": "assistant", "content": "\n x"}]}]
    for c in ie + extra:
        total, per_stretch = counter(c["messages"])
        assert total == len(data.tokenize_chat(tokenizer, c["messages"])[0])
        assert per_stretch == [len(tokenizer.encode(s)) if s else 0
                               for s in data.SPECIAL_RE.split(data.render_chat(c["messages"]))]


def test_general_data_loading_and_mixing(tmp_path):
    self_instruct = tmp_path / "seed_tasks.jsonl"
    self_instruct.write_text(json.dumps({"id": "t1", "instruction": "Add the numbers.", "instances": [
        {"input": "2 and 3", "output": "5"}, {"input": "", "output": "nothing to add"}]}) + "\n")
    tulu = tmp_path / "tulu.jsonl"
    tulu.write_text(json.dumps({"dataset": "sharegpt", "id": "s1", "messages": [
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}) + "\n")
    general = data.load_general(tmp_path)
    assert [c["messages"][0]["content"] for c in general] == ["Add the numbers.\n\n2 and 3", "Add the numbers.",
                                                              "Hi"]
    records = tmp_path / "ie" / "records.jsonl"  # outside the general chat directory
    records.parent.mkdir()
    records.write_text("".join(json.dumps({**GOOD, "id": f"toy/train/{i}"}) + "\n" for i in range(10)))
    many = tmp_path / "many" / "tulu.jsonl"
    many.parent.mkdir()
    many.write_text(tulu.read_text() * 100)
    for source, n_general in ((many, 40), (tmp_path, 3)):  # 10 IE = 20% of 50; fewer available: all of them
        out = tmp_path / "out" / f"{n_general}.jsonl"
        summary = data.build(data.IEInstructConfig(out=str(out), records=str(records), general=str(source),
                                                   max_tokens=0), progress=False)
        assert (summary["ie_instances"], summary["general"]) == (10, n_general)


def test_shared_self_instruct_general_data(shared):
    general = data.load_general(shared / "data" / "general_self_instruct")
    assert len(general) > 400 and all(m["content"] for c in general for m in c["messages"])


# ----------------------------------------------------------------------------------------------------------------
# Tokenisation for training: truncation, drops, collators

def conv(answer, prompt="Text: 'a b c d e f g h'"):
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]}


def test_tokenize_sft_truncates_and_drops_examples_without_trainable_tokens():
    tok = model.Tokenizer(data.DEFAULT_TOKENIZER)
    ok, long_prompt = conv("[Answer]: NA"), conv("[Answer]: NA", prompt="Text: '" + "word " * 200 + "'")
    n_prompt = len(data.encode_prompt(tok, ok["messages"][:1]))
    examples, stats = data.tokenize_sft(tok, [ok, long_prompt], max_len=n_prompt + 2)
    assert stats == {"conversations": 2, "truncated": 2, "dropped_no_trainable_token": 1, "examples": 1}
    ids, labels = examples[0]
    assert len(ids) == n_prompt + 2 and labels[-2:] == ids[-2:] and set(labels[:n_prompt]) == {-100}


def test_tokenize_preference_drops_a_pair_when_either_side_has_nothing_to_train():
    tok = model.Tokenizer(data.DEFAULT_TOKENIZER)
    prompt = [{"role": "user", "content": "Text: 'x'"}]
    short = {"chosen": prompt + [{"role": "assistant", "content": "[Answer]: NA"}],
             "rejected": prompt + [{"role": "assistant", "content": "[Answer]: x: PER;"}]}
    long_prompt = [{"role": "user", "content": "Text: '" + "word " * 100 + "'"}]
    broken = {"chosen": long_prompt + [{"role": "assistant", "content": "A"}],
              "rejected": long_prompt + [{"role": "assistant", "content": "B"}]}
    pairs, stats = data.tokenize_preference(tok, [short, broken], max_len=40)
    assert stats["kept"] == 1 and stats["dropped_no_trainable_token"] == 1 and stats["truncated_chosen"] == 1
    (c_ids, c_labels), (r_ids, r_labels) = pairs[0]
    assert c_ids[:len(c_ids) - 6] == r_ids[:len(c_ids) - 6]  # same prompt, tokenised separately
    assert c_labels[-1] == r_labels[-1] == tok.eos_id


def test_dpo_response_is_the_final_answer_only():
    """A few-shot pair: the demonstration's answer is the same in chosen and rejected, so only the final answer is
    labelled (its log-probs are what DPO compares); SFT labels every assistant turn. A pair whose final answer is
    truncated away is dropped even though a demonstration's answer is still inside max_len."""
    tok = model.Tokenizer(data.DEFAULT_TOKENIZER)
    demo = [{"role": "user", "content": "Find the people. Text: 'Ann met Bo.'"},
            {"role": "assistant", "content": "[Answer]: Ann: PER; Bo: PER;"},
            {"role": "user", "content": "Text: 'Cy left.'"}]
    pair = {"chosen": demo + [{"role": "assistant", "content": "[Answer]: Cy: PER;"}],
            "rejected": demo + [{"role": "assistant", "content": "[Answer]: NA"}]}
    (pairs, _), (sft_ids, sft_labels) = data.tokenize_preference(tok, [pair], 512), data.tokenize_chat(tok, pair["chosen"])
    (c_ids, c_labels), _ = pairs[0]
    assert c_ids == sft_ids
    trained = [i for i, l in enumerate(c_labels) if l != -100]
    assert trained == [i for i, l in enumerate(sft_labels) if l != -100][-len(trained):]  # the last run only
    assert tok.decode([c_ids[i] for i in trained]).startswith("[Answer]: Cy")
    assert sum(l != -100 for l in sft_labels) > len(trained)
    n_upto_demo = max(i for i, l in enumerate(sft_labels) if l != -100 and i < trained[0]) + 1
    dropped, stats = data.tokenize_preference(tok, [pair], max_len=n_upto_demo + 3)
    assert dropped == [] and stats["dropped_no_trainable_token"] == 1


def test_collators_pad_right_with_masked_labels_and_stack_chosen_over_rejected():
    batch = data.collate_sft([([1, 7, 8], [-100, 7, 8]), ([1, 9], [-100, 9])], pad_id=0)
    assert batch["input_ids"].shape == (2, 3) and batch["input_ids"].dtype == torch.long
    assert batch["input_ids"].tolist() == [[1, 7, 8], [1, 9, 0]]
    assert batch["labels"].tolist() == [[-100, 7, 8], [-100, 9, -100]]
    pairs = [(([1, 2], [-100, 2]), ([1, 3, 4], [-100, 3, 4])), (([1, 5, 6, 7], [-100, 5, 6, 7]), ([1, 8], [-100, 8]))]
    b = data.collate_preference(pairs)
    assert b["input_ids"].shape == (4, 4)
    chosen, rejected = b["input_ids"].chunk(2)
    assert chosen.tolist() == [[1, 2, 0, 0], [1, 5, 6, 7]] and rejected.tolist() == [[1, 3, 4, 0], [1, 8, 0, 0]]
    with pytest.raises(ValueError, match="pad_id"):
        data.collate_sft([([1], [1])], pad_id=-1)


def test_collate_preference_docstring_example_runs():
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner()
    (test,) = finder.find(data.collate_preference, "collate_preference", globs={"collate_preference":
                                                                               data.collate_preference})
    assert test.examples and runner.run(test).failed == 0


# ----------------------------------------------------------------------------------------------------------------
# Reading conversation files

def test_load_conversations_reads_the_released_formats(tmp_path):
    msgs = [{"role": "user", "content": "Text: 'x'"}, {"role": "assistant", "content": "[Answer]: NA"}]
    ie = tmp_path / "ie.jsonl"
    ie.write_text(json.dumps({"dataset": "conll2003", "id": "7", "messages": msgs}) + "\n\n")
    feedback = tmp_path / "fb.json"
    feedback.write_text(json.dumps([{"dataset": "semeval", "id": 3, "messages": msgs, "chosen": msgs,
                                     "rejected": msgs[:1] + [{"role": "assistant", "content": "no"}]}], indent=2))
    released_test = tmp_path / "semeval.jsonl"  # adelie_test_format/ files say "datasets" and use integer ids
    released_test.write_text(json.dumps({"datasets": "semeval", "id": 0, "messages": msgs}) + "\n")
    assert data.load_conversations(ie) == [{"dataset": "conll2003", "id": "7", "messages": msgs}]
    (fb,) = data.load_conversations(feedback)
    assert fb["id"] == "3" and fb["rejected"][-1]["content"] == "no" and fb["chosen"] == msgs
    assert data.load_conversations(released_test)[0]["dataset"] == "semeval"


def test_load_conversations_errors_name_file_and_line(tmp_path):
    msgs = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
    good = json.dumps({"messages": msgs})
    cases = [(good + "\n" + good + "\n{oops\n", ":3: malformed JSON"),
             (good + "\n" + json.dumps({"text": "x"}) + "\n", ":2: missing field 'messages'"),
             (json.dumps({"messages": [{"role": "robot", "content": "x"}]}) + "\n", ":1: messages[0] must be")]
    for k, (text, expected) in enumerate(cases):
        path = tmp_path / f"bad{k}.jsonl"
        path.write_text(text)
        with pytest.raises(ValueError, match=re.escape(str(path) + expected)):
            data.load_conversations(path)
    listed = tmp_path / "list.json"  # a JSON list (IEFeedback): the bad item is named by its position
    listed.write_text("[\n  " + json.dumps({"messages": msgs}) + ",\n  " + json.dumps({"chosen": msgs}) + "\n]")
    with pytest.raises(ValueError, match=re.escape(f"{listed} (list item 2): 'rejected' must be")):
        data.load_conversations(listed)


def test_load_conversations_reads_the_released_test_files(shared):
    convs = data.load_conversations(shared / "data" / "adelie_test_format" / "fewshot_test_history" / "semeval.jsonl")
    assert len(convs) == 1000 and all(c["messages"][-1]["role"] == "assistant" for c in convs)


# ----------------------------------------------------------------------------------------------------------------
# show, and the embedded tokenizer

def test_show_marks_the_trained_tokens(tmp_path, capsys):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"dataset": "d", "id": "1", "messages": [
        {"role": "user", "content": "Text: 'Anna'"}, {"role": "assistant", "content": "[Answer]: Anna: PER;"}]}) + "\n")
    data.main(["show", str(path), "--n", "1", "--color", "never"])
    out = capsys.readouterr().out
    assert "⟦[Answer]: Anna: PER;</s>⟧" in out and "<|assistant|>\n⟦" in out and "d / 1:" in out


def test_embedded_tokenizer_is_llama_like_and_small():
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=str(data.DEFAULT_TOKENIZER))
    assert sp.vocab_size() == 2048 and (sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id()) == (0, 1, 2, -1)
    assert data.DEFAULT_TOKENIZER.stat().st_size < 1 << 20
    assert sp.encode("日", out_type=str) == ["▁", "<0xE6>", "<0x97>", "<0xA5>"]  # byte fallback
    assert sp.encode("1234", out_type=str) == ["▁", "1", "2", "3", "4"]  # digits split
    assert sp.decode(sp.encode("a  b\n c")) == "a  b\n c"  # identity normalisation keeps whitespace


def test_train_tokenizer_reproduces_the_committed_model(tmp_path):
    """`python tools/train_tokenizer.py` re-makes assets/tokenizer.model byte for byte (a change to synthetic.py,
    prompts/ or the builder changes the training text: then retrain and commit the model)."""
    out = tmp_path / "tok.model"
    repo = Path(data.__file__).resolve().parent
    subprocess.run([sys.executable, str(repo / "tools" / "train_tokenizer.py"), "--out", str(out)], check=True,
                   cwd=tmp_path)  # run from elsewhere: the tool finds the top-level modules itself
    assert out.read_bytes() == data.DEFAULT_TOKENIZER.read_bytes()


# ----------------------------------------------------------------------------------------------------------------
# LLM-written explanations (llm.py's file) and real data

def test_llm_explanations_are_used_with_the_full_gold(tmp_path):
    """An instance whose record has an LLM explanation (paper 3.3, written for the full gold answer) uses it, and
    keeps every gold label as it is, so that explanation and answer agree."""
    records, ctx = toy_context(120, "syn_fine_ner")
    path = tmp_path / "expl.jsonl"
    path.write_text("".join(json.dumps({"id": r["id"], "explanation": f"Step by step for {r['id']}."}) + "\n"
                            for r in records))
    explanations = data.read_explanations(path)
    ctx = data.dataset_context(records, explanations)
    cfg = data.IEInstructConfig(class_dropout=0.5, symbol_rate=0.5)
    for k, r in enumerate(records):
        messages = data.ie_instruct_instance(r, ctx, PROMPTS, cfg, random.Random(k), explanation=True, demos=[],
                                             output_format="canonical")
        answer = messages[-1]["content"]
        assert answer.startswith(f"[Explanation]: Step by step for {r['id']}. [Answer]: ")
        assert same_items("NER", parse_canonical("NER", answer, strict=True), r["items"])
    ie, stats = data.ie_instruct(records, data.IEInstructConfig(explanation_rate=1.0, max_tokens=0),
                                 explanations=explanations, progress=False)
    assert stats["syn_fine_ner"]["LLM explanations used"] == len(ie) > 0  # the build counts them
    path.write_text('{"id": "x"}\n')
    with pytest.raises(ValueError, match=re.escape(f"{path}:1: expected JSON")):
        data.read_explanations(path)


def test_real_data_sets_build_into_valid_instances(shared, llama_tokenizer_path):
    """A slice of the real training sets (ie_formats readers) through the builder with the LLaMA-2 length filter:
    canonical targets parse back to the gold, nothing is left unfilled, nothing exceeds 2048 tokens."""
    import ie_formats
    records = []
    for name, n in (("conll2003", 400), ("semeval", 400), ("phee", 200), ("matres", 150), ("scierc", 150)):
        records += ie_formats.load_dataset(name, shared / "data", "train")[:n]
    tokenizer = model.Tokenizer(llama_tokenizer_path)
    ie, stats = data.ie_instruct(records, data.IEInstructConfig(), tokenizer=tokenizer, progress=False)
    by_id = {r["id"]: r for r in records}
    requests = format_requests()
    n_canonical = 0
    for c in ie:
        r = by_id[c["id"]]
        assert len(data.tokenize_chat(tokenizer, c["messages"])[0]) <= 2048
        instruction = instruction_of(c)
        for req in requests:
            instruction = instruction.replace(req, "")
        assert not re.search(r"\{[a-z_ ]+\}", instruction)
        if request_kind(r["task"], instruction_of(c)) == "canonical" and round_trips(r):
            check_canonical_target(r, schema_of(r["task"], instruction_of(c))[1], final_answer(c))
            n_canonical += 1
    assert n_canonical > 800
    for name, st in stats.items():
        assert st["na_instances"] <= 0.2 * st["instances"]
