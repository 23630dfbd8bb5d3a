"""Readers for the published IE data set formats -> unified IE records (paper section 3.1, Table 7).

ADELIE trains on 9 IE tasks drawn from ~20 public data sets (paper Table 7) and evaluates on held-out sets (paper
section 5). Each data set ships in its own format; this module turns every one of them into ONE record shape, the
unified IE record of docs/design.md, so that data.py (IEInstruct construction) and evaluate.py (held-out test sets)
never see a source format:

    {"dataset": "conll2003", "split": "train", "id": "conll2003/train/17", "task": "NER",
     "text": "EU rejects German call to boycott British lamb .", "labels": ["LOC", "MISC", "ORG", "PER"],
     "query": null, "items": [{"entity": {"text": "EU", "start": 0, "end": 2}, "type": "ORG"}, ...], "meta": {}}

A mention is {"text", "start", "end"}: character offsets into the record's text (end exclusive) and the text
found there.
The id is "{dataset}/{split}/{index}", index = position of the sentence/document/line in its source file (0-based);
when one source unit yields several records (one EAE record per trigger, one MAVEN-ERE record per subtask, ROBUST
paraphrases), a suffix names which: "maven-arg/train/3/1", "maven-ere/train/3/temporal", "robust/test/12/0".

Readers are grouped by task. Each is a plain function `read_x(path, split, dataset=..., counts=None, ...)` that
returns a list of validated records. Anything a reader cannot use is counted, never dropped silently: the counts go
into the `counts` Counter you pass (keys are readable sentences) and are logged. A malformed line, a missing field,
a span that is not where the file says, or a label outside a fixed inventory raises ValueError naming the file, the
line (or record number for whole-file JSON) and the problem.

`DATASETS` is the table of data sets (task, reader, relative path of each split under a data root, as in
../shared/data/MANIFEST.md); `load_dataset(name, root, split)` reads one split, `convert_all(root)` every present
one. CLI:
    python ie_formats.py convert NAME PATH --split S --out FILE.jsonl
    python ie_formats.py convert-all --root ../shared/data --out_dir DIR [--splits train dev test]
"""
import argparse
import glob
import json
import logging
import os
import re
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

log = logging.getLogger("ie_formats")

TASKS = ("NER", "RC", "RE", "ED", "EAE", "EE", "ERE", "OpenIE", "ODIE")
SPLITS = ("train", "dev", "test")
ERE_SUBTASKS = ("temporal", "causal", "subevent", "coreference")
RECORD_FIELDS = ("dataset", "split", "id", "task", "text", "labels", "query", "items", "meta")


# ----------------------------------------------------------------------------------------------------------------
# The unified record: building and validating

def mention(text: str, start: int, end: int) -> dict:
    """The mention text[start:end] (character offsets, end exclusive)."""
    return {"text": text[start:end], "start": start, "end": end}


def make_record(dataset: str, split: str, index, task: str, text: str, labels, items: list, query=None,
                meta=None) -> dict:
    """One unified IE record (docs/design.md); `index` is the position of the source unit in its file."""
    return {"dataset": dataset, "split": split, "id": f"{dataset}/{split}/{index}", "task": task, "text": text,
            "labels": list(labels), "query": query, "items": items, "meta": meta or {}}


def _check_mention(m, text: str, where: str, what: str) -> None:
    if not isinstance(m, dict) or set(m) != {"text", "start", "end"}:
        raise ValueError(f"{where}: {what} must be a mention {{text, start, end}}, got {m!r}")
    s, e = m["start"], m["end"]
    if not (isinstance(s, int) and isinstance(e, int) and isinstance(m["text"], str)):
        raise ValueError(f"{where}: {what} needs int start/end and str text, got {m!r}")
    if not 0 <= s < e <= len(text):
        raise ValueError(f"{where}: {what} span [{s}, {e}) is outside the text (length {len(text)})")
    if text[s:e] != m["text"]:
        raise ValueError(f"{where}: {what} text {m['text']!r} != text[{s}:{e}] = {text[s:e]!r}")


def _check_keys(obj, keys, where: str, what: str, optional=()) -> None:
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: {what} must be an object with keys {sorted(keys)}, got {obj!r}")
    missing, extra = set(keys) - set(obj), set(obj) - set(keys) - set(optional)
    if missing or extra:
        raise ValueError(f"{where}: {what} has keys {sorted(obj)}; expected {sorted(keys)}"
                         + (f" (optional {sorted(optional)})" if optional else ""))


def _check_label(label, labels, where: str, what: str, inventory: str = "the record's labels") -> None:
    if not isinstance(label, str) or label not in labels:
        raise ValueError(f"{where}: {what} {label!r} is not in {inventory} {labels}")


def validate_record(record: dict, where: str = "") -> None:
    """Check one unified IE record against docs/design.md; raise ValueError naming `where` and the problem.

    Checks: the nine fields and their types; task in TASKS; id = "{dataset}/{split}/..."; every mention inside the
    text and equal to text[start:end]; query and items shaped as the design table says for the task; closed-IE
    labels (entity/event types, relations, roles) within `labels`; OpenIE/ODIE have labels == [].
    """
    if not where:
        where = str(record.get("id", "record")) if isinstance(record, dict) else "record"
    _check_keys(record, RECORD_FIELDS, where, "record")
    for key in ("dataset", "split", "id", "text"):
        if not isinstance(record[key], str):
            raise ValueError(f"{where}: field '{key}' must be a string, got {record[key]!r}")
    task, text, labels, query, items = (record[k] for k in ("task", "text", "labels", "query", "items"))
    if task not in TASKS:
        raise ValueError(f"{where}: unknown task {task!r}; expected one of {', '.join(TASKS)}")
    if record["split"] not in SPLITS:
        raise ValueError(f"{where}: split {record['split']!r} is not one of {SPLITS}")
    if not record["id"].startswith(f"{record['dataset']}/{record['split']}/"):
        raise ValueError(f"{where}: id {record['id']!r} does not start with '{record['dataset']}/{record['split']}/'")
    if not text:
        raise ValueError(f"{where}: empty text")
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise ValueError(f"{where}: labels must be a list of strings, got {labels!r}")
    if not isinstance(items, list):
        raise ValueError(f"{where}: items must be a list, got {items!r}")
    if not isinstance(record["meta"], dict):
        raise ValueError(f"{where}: meta must be an object, got {record['meta']!r}")
    if task in ("OpenIE", "ODIE") and labels:
        raise ValueError(f"{where}: {task} records have no label inventory (labels must be []), got {labels}")

    def item_where(i):
        return f"{where}: item {i}"

    if task in ("NER", "RE", "ED", "EE", "OpenIE") and query is not None:
        raise ValueError(f"{where}: {task} records take no query (null), got {query!r}")
    if task == "RC":
        _check_keys(query, ("head", "tail"), where, "RC query")
        _check_mention(query["head"], text, where, "query head")
        _check_mention(query["tail"], text, where, "query tail")
    if task == "EAE":
        _check_keys(query, ("trigger", "event_type"), where, "EAE query")
        _check_mention(query["trigger"], text, where, "query trigger")
        if not isinstance(query["event_type"], str):
            raise ValueError(f"{where}: query event_type must be a string, got {query['event_type']!r}")
    if task == "ERE":
        if isinstance(query, dict) and "events" in query:
            _check_keys(query, ("events",), where, "ERE query")
            if not isinstance(query["events"], list):
                raise ValueError(f"{where}: query events must be a list of mentions")
            for k, m in enumerate(query["events"]):
                _check_mention(m, text, where, f"query event {k}")
        else:
            _check_keys(query, ("event1", "event2"), where, "ERE query")
            _check_mention(query["event1"], text, where, "query event1")
            _check_mention(query["event2"], text, where, "query event2")
        if record["meta"].get("subtask") not in ERE_SUBTASKS:
            raise ValueError(f"{where}: ERE records need meta.subtask in {ERE_SUBTASKS}, "
                             f"got {record['meta'].get('subtask')!r}")
    if task == "ODIE":
        _check_keys(query, ("instruction",), where, "ODIE query")
        if not isinstance(query["instruction"], str) or not query["instruction"]:
            raise ValueError(f"{where}: ODIE query instruction must be a non-empty string")
        if len(items) != 1:
            raise ValueError(f"{where}: ODIE records hold exactly one item (the gold table), got {len(items)}")
    roles = record["meta"].get("roles") if task == "EE" else None
    if roles is not None and not isinstance(roles, dict):
        raise ValueError(f"{where}: meta.roles must map event type -> [roles], got {roles!r}")

    for i, item in enumerate(items):
        w = item_where(i)
        if task == "NER":
            _check_keys(item, ("entity", "type"), w, "NER item")
            _check_mention(item["entity"], text, w, "entity")
            _check_label(item["type"], labels, w, "entity type")
        elif task in ("RC", "RE"):
            _check_keys(item, ("head", "relation", "tail"), w, f"{task} item")
            _check_mention(item["head"], text, w, "head")
            _check_mention(item["tail"], text, w, "tail")
            _check_label(item["relation"], labels, w, "relation")
            if task == "RC" and (item["head"], item["tail"]) not in ((query["head"], query["tail"]),
                                                                      (query["tail"], query["head"])):
                raise ValueError(f"{w}: RC item pair differs from the query's head/tail pair")
        elif task == "ED":
            _check_keys(item, ("trigger", "type"), w, "ED item")
            _check_mention(item["trigger"], text, w, "trigger")
            _check_label(item["type"], labels, w, "event type")
        elif task == "EAE":
            _check_keys(item, ("argument", "role"), w, "EAE item")
            _check_mention(item["argument"], text, w, "argument")
            _check_label(item["role"], labels, w, "role")
        elif task == "EE":
            _check_keys(item, ("trigger", "type", "arguments"), w, "EE item")
            _check_mention(item["trigger"], text, w, "trigger")
            _check_label(item["type"], labels, w, "event type")
            if not isinstance(item["arguments"], list):
                raise ValueError(f"{w}: EE arguments must be a list")
            for k, arg in enumerate(item["arguments"]):
                _check_keys(arg, ("argument", "role"), w, f"argument {k}")
                _check_mention(arg["argument"], text, w, f"argument {k}")
                if roles is not None:
                    _check_label(arg["role"], roles.get(item["type"], []), w, f"role of argument {k}",
                                 f"meta.roles[{item['type']!r}]")
                elif not isinstance(arg["role"], str):
                    raise ValueError(f"{w}: role of argument {k} must be a string")
        elif task == "ERE":
            _check_keys(item, ("event1", "relation", "event2"), w, "ERE item")
            _check_mention(item["event1"], text, w, "event1")
            _check_mention(item["event2"], text, w, "event2")
            _check_label(item["relation"], labels, w, "relation")
        elif task == "OpenIE":
            _check_keys(item, ("predicate", "subject", "object", "time", "location"), w, "OpenIE item",
                        optional=("extra",))
            for key in ("predicate", "subject", "object", "time", "location"):
                if not isinstance(item[key], str):
                    raise ValueError(f"{w}: OpenIE {key} must be a string ('' when absent), got {item[key]!r}")
            if "extra" in item and not (isinstance(item["extra"], list)
                                        and all(isinstance(x, str) for x in item["extra"])):
                raise ValueError(f"{w}: OpenIE extra must be a list of strings, got {item['extra']!r}")
        elif task == "ODIE":
            _check_keys(item, ("header", "rows"), w, "ODIE item")
            if not (isinstance(item["header"], list) and item["header"]
                    and all(isinstance(x, str) for x in item["header"])):
                raise ValueError(f"{w}: ODIE header must be a non-empty list of strings")
            if not (isinstance(item["rows"], list) and all(isinstance(r, list) and all(isinstance(c, str) for c in r)
                                                           for r in item["rows"])):
                raise ValueError(f"{w}: ODIE rows must be a list of lists of strings")


# ----------------------------------------------------------------------------------------------------------------
# Shared helpers: reading files with line numbers, token offsets, counting

def _lines(path):
    """(line number from 1, line without its newline) for each line of a UTF-8 text file."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            yield lineno, line.rstrip("\n").rstrip("\r")


def _jsonl(path):
    """(line number, object) for each non-blank line of a JSON Lines file; a bad line raises naming file:line."""
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{lineno}: malformed JSON line ({e.msg} at column {e.colno})") from None


def _json(path):
    """A whole-file JSON document; errors name the file and the line."""
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{e.lineno}: malformed JSON ({e.msg} at column {e.colno})") from None


def _get(obj, key, where):
    """obj[key], or ValueError naming where and the missing field."""
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a JSON object with field '{key}', got {type(obj).__name__}")
    if key not in obj:
        raise ValueError(f"{where}: missing field '{key}'")
    return obj[key]


def _token_text(tokens, where):
    """Text = tokens joined by single spaces, and span(i, j) -> mention of tokens[i:j] (j exclusive)."""
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise ValueError(f"{where}: tokens must be a list of strings")
    starts, pos = [], 0
    for t in tokens:
        starts.append(pos)
        pos += len(t) + 1
    text = " ".join(tokens)

    def span(i, j, what="span"):
        if not (isinstance(i, int) and isinstance(j, int) and 0 <= i < j <= len(tokens)):
            raise ValueError(f"{where}: {what} token range [{i}, {j}) is outside the {len(tokens)} tokens")
        return mention(text, starts[i], starts[j - 1] + len(tokens[j - 1]))
    return text, span


def _ner_items(tokens, ents, inventory, dataset: str, where: str):
    """(text, NER items) of a tokenised sentence with entities (start, end exclusive, type) in token indices."""
    text, span = _token_text(tokens, where)
    for _, _, typ in ents:
        if typ not in inventory:
            raise ValueError(f"{where}: unknown entity type {typ!r}; {dataset} types are {inventory}")
    return text, [{"entity": span(s, e), "type": typ} for s, e, typ in ents]


def _char_mention(text, start, end, expected, where, what):
    """The mention text[start:end], checked against the text the file gives for it."""
    if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
        raise ValueError(f"{where}: {what} span [{start}, {end}) is outside the text (length {len(text)})")
    if expected is not None and text[start:end] != expected:
        raise ValueError(f"{where}: {what} {expected!r} is not at [{start}, {end}): the text there is "
                         f"{text[start:end]!r}")
    return mention(text, start, end)


# PTB bracket escapes (TACRED, SciERC tokens) written back as the characters they stand for.
PTB_ESCAPES = {"-LRB-": "(", "-RRB-": ")", "-LSB-": "[", "-RSB-": "]", "-LCB-": "{", "-RCB-": "}"}


def _unescape_ptb(tokens):
    return [PTB_ESCAPES.get(t, t) for t in tokens]


def _report(dataset, split, counts):
    """Log every count a reader kept: what it skipped, repaired or merged (never dropped silently)."""
    for what, n in counts.items():
        if n:
            log.info("%s/%s: %d x %s", dataset, split, n, what)


def _validated(records, path):
    for r in records:
        validate_record(r, f"{path} -> {r['id']}")
    return records


def _dedupe(items, counts, what):
    """Items without exact repeats (first kept), counting the repeats."""
    seen, out = set(), []
    for it in items:
        key = json.dumps(it, sort_keys=True)
        if key in seen:
            counts[what] += 1
            continue
        seen.add(key)
        out.append(it)
    return out


# ----------------------------------------------------------------------------------------------------------------
# NER

def _bio_entities(tags, where, counts):
    """Entity token ranges [(start, end, type)] from BIO tags, read as conlleval does.

    B-X starts an entity; I-X continues the open entity when it has type X and otherwise starts a new one (IOB1
    leftovers in some CoNLL-2003 copies; counted); O closes it.
    """
    spans, cur = [], None
    for i, tag in enumerate(tags):
        if tag == "O":
            cur = None
            continue
        m = re.fullmatch(r"([BI])-(.+)", tag)
        if m is None:
            raise ValueError(f"{where}: tag {tag!r} is not O, B-<type> or I-<type>")
        bi, typ = m.groups()
        if bi == "I" and cur is not None and cur[2] == typ:
            cur[1] = i + 1
            continue
        if bi == "I":
            counts["I- tag without an open entity of its type (started a new entity, as conlleval does)"] += 1
        cur = [i, i + 1, typ]
        spans.append(cur)
    return [tuple(s) for s in spans]


def _token_blocks(path, counts):
    """Blank-line separated blocks of (line number, line); -DOCSTART- lines are document marks, not sentences."""
    block = []
    for lineno, line in _lines(path):
        if not line.strip():
            if block:
                yield block
            block = []
        elif "-DOCSTART-" in line and "-DOCSTART-" in (line.split()[0], line.split()[-1]):
            counts["-DOCSTART- document marks (not sentences)"] += 1
            if block:
                yield block
            block = []
        else:
            block.append((lineno, line))
    if block:
        yield block


def read_conll_bio(path, split, dataset="conll2003", labels=None, label_first=False, counts=None):
    """CoNLL-style token-per-line BIO files -> NER records, one per sentence.

    Formats: CoNLL-2003 (`token label`, or the original 4 columns `token POS chunk label`), BC5CDR and JNLPBA from
    cambridgeltl/MTL-Bioinformatics-2016 (`token\\tlabel`), MIT-Restaurant (label first: `label\\ttoken`, pass
    label_first=True). Sentences are separated by blank lines; -DOCSTART- lines mark documents and are not
    sentences. Example lines: `EU B-ORG`, `Selegiline\\tB-Chemical`, `B-Rating\\tfour`.
    `labels`: the fixed type inventory (a tag outside it raises); None = the types seen in the file, sorted.
    """
    counts = Counter() if counts is None else counts
    sentences = []
    for block in _token_blocks(path, counts):
        tokens, tags = [], []
        for lineno, line in block:
            cols = line.split("\t") if "\t" in line else line.split()
            if len(cols) < 2 or (label_first and len(cols) != 2):
                raise ValueError(f"{path}:{lineno}: expected "
                                 f"{'label<TAB>token' if label_first else 'token and label columns'}, got {line!r}")
            tag, tok = (cols[0], cols[1]) if label_first else (cols[-1], cols[0])
            tokens.append(tok.strip())
            tags.append(tag.strip())
        where = f"{path}:{block[0][0]}"
        sentences.append((where, tokens, _bio_entities(tags, where, counts)))
    inventory = sorted(labels) if labels is not None else sorted({t for _, _, ents in sentences for *_, t in ents})
    records = []
    for index, (where, tokens, ents) in enumerate(sentences):
        text, items = _ner_items(tokens, ents, inventory, dataset, where)
        records.append(make_record(dataset, split, index, "NER", text, inventory, items))
    _report(dataset, split, counts)
    return _validated(records, path)


# Few-NERD's 66 fine-grained types (the Few-NERD schema, Ding et al. 2021), written as ADELIE names them: the coarse type, "_",
# the fine type (e.g. `person_artist/author`; Few-NERD's files write `person-artist/author`). The order is ADELIE's
# released zero-shot prompt (../shared/data/adelie_test_format/zeroshot/few-nerd-supervised.jsonl).
FEWNERD_TYPES = [
    "person_artist/author", "art_broadcastprogram", "event_other", "other_chemicalthing", "building_hospital",
    "person_soldier", "other_award", "person_athlete", "person_director", "organization_showorganization",
    "event_protest", "event_attack/battle/war/militaryconflict", "location_park", "organization_religion",
    "building_airport", "product_software", "other_language", "product_food", "person_scholar", "other_biologything",
    "other_currency", "person_politician", "building_theater", "art_music", "location_other", "product_car",
    "organization_media/newspaper", "organization_sportsteam", "product_game", "organization_sportsleague",
    "other_livingthing", "product_other", "organization_education", "location_bodiesofwater", "event_sportsevent",
    "product_airplane", "other_disease", "person_other", "location_road/railway/highway/transit", "event_disaster",
    "art_painting", "person_actor", "location_GPE", "building_restaurant", "building_hotel", "organization_company",
    "art_film", "art_writtenart", "product_train", "other_astronomything", "art_other", "building_sportsfacility",
    "organization_government/governmentagency", "other_educationaldegree", "building_library", "product_weapon",
    "event_election", "other_medical", "other_law", "other_god", "location_island", "product_ship",
    "location_mountain", "organization_other", "building_other", "organization_politicalparty"]


def read_fewnerd(path, split, dataset="fewnerd", counts=None):
    """Few-NERD supervised (thunlp/Few-NERD data/supervised/{train,dev,test}.txt) -> NER records.

    Format (Few-NERD README): `token\\tlabel` per line, sentences separated by blank lines, IO tags: `O` or
    `coarse-fine` with no B-/I- prefix, so consecutive tokens with the same label form one entity. Example line:
    `Galicia\\tother-law`. Types are renamed to ADELIE's `coarse_fine` (`person-artist/author` ->
    `person_artist/author`; raw label kept in meta.raw_types); a type outside the 66 raises.
    """
    counts = Counter() if counts is None else counts
    records = []
    for index, block in enumerate(_token_blocks(path, counts)):
        where = f"{path}:{block[0][0]}"
        tokens, tags = [], []
        for lineno, line in block:
            cols = line.split("\t")
            if len(cols) != 2:
                raise ValueError(f"{path}:{lineno}: expected token<TAB>label, got {line!r}")
            tokens.append(cols[0])
            tags.append(cols[1].strip())
        text, span = _token_text(tokens, where)
        items, raw, start = [], [], 0
        for i in range(1, len(tags) + 1):  # close a run of equal tags at each change
            if i == len(tags) or tags[i] != tags[start]:
                tag = tags[start]
                if tag != "O":
                    typ = tag.replace("-", "_", 1)
                    if typ not in FEWNERD_TYPES:
                        raise ValueError(f"{path}:{block[start][0]}: unknown Few-NERD label {tag!r}")
                    items.append({"entity": span(start, i), "type": typ})
                    raw.append(tag)
                start = i
        records.append(make_record(dataset, split, index, "NER", text, FEWNERD_TYPES, items,
                                   meta={"raw_types": raw}))
    _report(dataset, split, counts)
    return _validated(records, path)


def read_w2ner_json(path, split, dataset="genia", labels=None, counts=None):
    """W2NER-style nested NER JSON (GENIA test set, nlpdjk/UniHetero data/genia/test.json) -> NER records.

    Format: a JSON list of `{"sentence": [tokens], "ner": [{"index": [token indices], "type": label}]}`; entities
    may nest and overlap (all kept). Example: `{"sentence": ["IL-2", "gene", ...], "ner": [{"index": [0, 1],
    "type": "DNA"}]}`. Non-contiguous indices are not a W2NER NER span here and raise.
    """
    counts = Counter() if counts is None else counts
    data = _json(path)
    inventory = sorted(labels) if labels is not None else sorted(
        {e.get("type") for x in data if isinstance(x, dict) for e in x.get("ner", []) if isinstance(e, dict)})
    records = []
    for index, x in enumerate(data):
        where = f"{path} (record {index})"
        text, span = _token_text(_get(x, "sentence", where), where)
        items = []
        for e in _get(x, "ner", where):
            idx, typ = _get(e, "index", where), _get(e, "type", where)
            if not idx or idx != list(range(idx[0], idx[-1] + 1)):
                raise ValueError(f"{where}: entity token indices {idx} are not one contiguous span")
            if typ not in inventory:
                raise ValueError(f"{where}: unknown entity type {typ!r}; {dataset} types are {inventory}")
            items.append({"entity": span(idx[0], idx[-1] + 1), "type": typ})
        items = _dedupe(items, counts, "repeated entity (same span and type)")
        records.append(make_record(dataset, split, index, "NER", text, inventory, items))
    _report(dataset, split, counts)
    return _validated(records, path)


# OntoNotes 5's 18 entity types (Weischedel et al. 2013; the CoNLL-2012 release's name column).
ONTONOTES_TYPES = ["CARDINAL", "DATE", "EVENT", "FAC", "GPE", "LANGUAGE", "LAW", "LOC", "MONEY", "NORP", "ORDINAL",
                   "ORG", "PERCENT", "PERSON", "PRODUCT", "QUANTITY", "TIME", "WORK_OF_ART"]
# Escapes of the CoNLL-2012 word column (besides PTB brackets): "/." "/?" "/-" stand for the bare character.
CONLL2012_ESCAPES = {"/.": ".", "/?": "?", "/-": "-"}


def read_conll2012(path, split, dataset="ontonotes5", labels=None, counts=None):
    """OntoNotes 5.0 (LDC2013T19, licensed) in the CoNLL-2012 shared task format -> NER records, one per sentence.

    Layout (conll.cemantix.org/2012/data.html; the `*_gold_conll` files made by the task's skeleton2conll script,
    or one concatenated file such as `train.english.v4_gold_conll`): `#begin document (bc/cctv/00/cctv_0001); part
    000` ... `#end document`, one token per line with whitespace-separated columns `document_id part word_number
    word POS parse_bit predicate_lemma frameset sense speaker named_entities [predicate_arguments...] coreference`,
    sentences separated by blank lines. Column 11 (named entities) brackets each name: `(PERSON)` one token,
    `(ORG*` ... `*)` several, `*` none. Example: `bc/cctv/00/cctv_0001 0 3 Hong NNP (NP(NNP* - - - Speaker#1
    (GPE* -` then `... 4 Kong NNP *) - - - Speaker#1 *) -`. `path` is one such file or a folder searched for
    `*gold_conll` files (in sorted order). Words are written back from their escapes (-LRB-, /. ...: counted).
    `labels`: the type inventory (default the 18 OntoNotes types; a type outside it raises)."""
    counts = Counter() if counts is None else counts
    inventory = sorted(labels or ONTONOTES_TYPES)
    path = Path(path)
    files = sorted(path.rglob("*gold_conll")) if path.is_dir() else [path]
    if not files:
        raise FileNotFoundError(f"{path}: no *gold_conll files in this folder")
    records = []

    def flush(block, doc):
        if not block:
            return
        where = f"{block[0][0]}:{block[0][1]}"
        tokens, ents, open_ = [], [], None
        for f, lineno, cols in block:
            word = CONLL2012_ESCAPES.get(cols[3], PTB_ESCAPES.get(cols[3], cols[3]))
            counts["escaped words written back (-LRB-, /. ...)"] += word != cols[3]
            i, ne = len(tokens), cols[10]
            tokens.append(word)
            m = re.fullmatch(r"\(([^()*]+)(\*?)(\)?)|\*(\)?)", ne)
            if m is None or (m.group(1) and not (m.group(2) or m.group(3))):
                raise ValueError(f"{f}:{lineno}: named-entity column {ne!r} is not (TYPE), (TYPE*, *, or *)")
            if m.group(1):
                if open_ is not None:
                    raise ValueError(f"{f}:{lineno}: name {m.group(1)} opens inside the open name {open_[1]}")
                open_ = (i, m.group(1))
            if m.group(3) or m.group(4):
                if open_ is None:
                    raise ValueError(f"{f}:{lineno}: a name closes with none open")
                ents.append((open_[0], i + 1, open_[1]))
                open_ = None
        if open_ is not None:
            raise ValueError(f"{where}: name {open_[1]} opened and never closed in its sentence")
        text, items = _ner_items(tokens, ents, inventory, dataset, where)
        records.append(make_record(dataset, split, len(records), "NER", text, inventory, items, meta={"doc": doc}))

    for f in files:
        block, doc = [], None
        for lineno, line in _lines(f):
            if line.startswith("#begin document"):
                flush(block, doc)
                block, doc = [], line[len("#begin document"):].strip()
            elif line.startswith("#end document") or not line.strip():
                flush(block, doc)
                block = []
            else:
                cols = line.split()
                if len(cols) < 12:
                    raise ValueError(f"{f}:{lineno}: expected at least 12 columns (CoNLL-2012), got {len(cols)}")
                block.append((f, lineno, cols))
        flush(block, doc)
    _report(dataset, split, counts)
    return _validated(records, path)


# ----------------------------------------------------------------------------------------------------------------
# RC (the pair is given; classify its relation)

def read_fewrel(path, split, dataset="fewrel", pid2name=None, counts=None):
    """FewRel 1.0 (thunlp/FewRel data/{train,val}_wiki.json + pid2name.json) -> RC records.

    Format: `{"P177": [{"tokens": [...], "h": [name, wikidata id, [[token positions], ...]], "t": [...]}, ...]}`,
    700 instances per relation. The relation name is pid2name[pid][0] (e.g. P177 -> "crosses"); the raw pid is kept
    in meta. An entity with several occurrences uses its first one (as FewRel's own loader does; counted).
    `pid2name` defaults to pid2name.json beside `path`. Index = position in the file (relations in file order).
    """
    counts = Counter() if counts is None else counts
    path = Path(path)
    names = _json(pid2name or path.parent / "pid2name.json")
    data = _json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object relation id -> instances")
    for pid in data:
        if pid not in names:
            raise ValueError(f"{path}: relation {pid} has no name in pid2name.json")
    labels = sorted(names[pid][0] for pid in data)
    records = []
    for pid, instances in data.items():
        for x in instances:
            index = len(records)
            where = f"{path} ({pid} instance {index})"
            text, span = _token_text(_get(x, "tokens", where), where)
            ends = {}
            for key in ("h", "t"):
                ent = _get(x, key, where)
                if not (isinstance(ent, list) and len(ent) == 3 and ent[2]):
                    raise ValueError(f"{where}: '{key}' must be [name, id, [[positions], ...]], got {ent!r}")
                if len(ent[2]) > 1:
                    counts["entity with several occurrences (first occurrence used)"] += 1
                pos = ent[2][0]
                if pos != list(range(pos[0], pos[-1] + 1)):
                    raise ValueError(f"{where}: '{key}' positions {pos} are not contiguous")
                ends[key] = span(pos[0], pos[-1] + 1, key)
            query = {"head": ends["h"], "tail": ends["t"]}
            items = [{"head": ends["h"], "relation": names[pid][0], "tail": ends["t"]}]
            records.append(make_record(dataset, split, index, "RC", text, labels, items, query,
                                       meta={"pid": pid, "head_id": x["h"][1], "tail_id": x["t"][1]}))
    _report(dataset, split, counts)
    return _validated(records, path)


SEMEVAL_RELATIONS = ["Cause-Effect", "Component-Whole", "Content-Container", "Entity-Destination", "Entity-Origin",
                     "Instrument-Agency", "Member-Collection", "Message-Topic", "Product-Producer"]
# ADELIE's directed names (the released zero-shot semeval.jsonl): X-Y(e1,e2) is "(e1; X and Y; e2)" and
# X-Y(e2,e1) is "(e1; Y and X; e2)". 18 labels; "Other" is no relation (items == []).
SEMEVAL_LABELS = sorted(f"{a} and {b}" for r in SEMEVAL_RELATIONS for a, b in [r.split("-"), r.split("-")[::-1]])


def _semeval_label(raw, where):
    """'Component-Whole(e2,e1)' -> 'Whole and Component' (read from e1 to e2); 'Other' -> None."""
    if raw == "Other":
        return None
    m = re.fullmatch(r"([A-Za-z]+)-([A-Za-z]+)\((e[12]),(e[12])\)", raw)
    if m is None or f"{m[1]}-{m[2]}" not in SEMEVAL_RELATIONS or {m[3], m[4]} != {"e1", "e2"}:
        raise ValueError(f"{where}: unknown SemEval-2010 Task 8 label {raw!r}")
    return f"{m[1]} and {m[2]}" if m[3] == "e1" else f"{m[2]} and {m[1]}"


def read_semeval2010(path, split, dataset="semeval", counts=None):
    """SemEval-2010 Task 8 (TRAIN_FILE.TXT, TEST_FILE_FULL.TXT of the full release) -> RC records.

    Format (TRAINING_README.txt): `8001\\t"The most common <e1>audits</e1> were about <e2>waste</e2> ..."`, then
    the label line `Message-Topic(e1,e2)` (or `Other`), then `Comment: ...`, then a blank line. The text is the
    sentence without the quotes and the entity tags; query = (e1, e2); the label is ADELIE's directed name, always
    as (e1; label; e2): `Component-Whole(e2,e1)` -> (e1; Whole and Component; e2). Raw label and id in meta.
    """
    counts = Counter() if counts is None else counts
    records, pending = [], None

    def finish(label_line, label_lineno):
        sid, sent, where = pending
        text, spans, pos = "", {}, 0
        for m in re.finditer(r"</?e[12]>", sent):
            text += sent[pos:m.start()]
            tag = m.group()
            key = tag.strip("</>")
            if tag.startswith("</"):
                if key not in spans or len(spans[key]) != 1:
                    raise ValueError(f"{where}: closing {tag} without its opening tag")
                spans[key].append(len(text))
            else:
                if key in spans:
                    raise ValueError(f"{where}: entity tag <{key}> appears twice")
                spans[key] = [len(text)]
            pos = m.end()
        text += sent[pos:]
        if sorted(spans) != ["e1", "e2"] or any(len(v) != 2 for v in spans.values()):
            raise ValueError(f"{where}: expected exactly one <e1>...</e1> and one <e2>...</e2>")
        e1, e2 = (mention(text, *spans[k]) for k in ("e1", "e2"))
        label = _semeval_label(label_line.strip(), f"{path}:{label_lineno}")
        items = [] if label is None else [{"head": e1, "relation": label, "tail": e2}]
        records.append(make_record(dataset, split, len(records), "RC", text, SEMEVAL_LABELS, items,
                                   {"head": e1, "tail": e2},
                                   meta={"semeval_id": sid, "raw_label": label_line.strip()}))

    expect_label = False
    for lineno, line in _lines(path):
        line = line.lstrip("\ufeff")
        if not line.strip() or line.startswith("Comment:"):
            continue
        m = re.fullmatch(r"(\d+)\t\"(.*)\"\s*", line)
        if m:
            if expect_label:
                raise ValueError(f"{pending[2]}: sentence {pending[0]} has no label line "
                                 f"(a test file without labels? use TEST_FILE_FULL.TXT)")
            pending, expect_label = (m[1], m[2], f"{path}:{lineno}"), True
        elif expect_label:
            finish(line, lineno)
            expect_label = False
        else:
            raise ValueError(f"{path}:{lineno}: expected `id<TAB>\"sentence\"`, a label or a Comment line, "
                             f"got {line!r}")
    if expect_label:
        raise ValueError(f"{pending[2]}: sentence {pending[0]} has no label line")
    _report(dataset, split, counts)
    return _validated(records, path)


# TACRED's 41 relations (Zhang et al. 2017, Table 2; the TAC KBP slot names); `no_relation` means NA.
TACRED_RELATIONS = [
    "org:alternate_names", "org:city_of_headquarters", "org:country_of_headquarters", "org:dissolved",
    "org:founded", "org:founded_by", "org:member_of", "org:members", "org:number_of_employees/members",
    "org:parents", "org:political/religious_affiliation", "org:shareholders", "org:stateorprovince_of_headquarters",
    "org:subsidiaries", "org:top_members/employees", "org:website", "per:age", "per:alternate_names",
    "per:cause_of_death", "per:charges", "per:children", "per:cities_of_residence", "per:city_of_birth",
    "per:city_of_death", "per:countries_of_residence", "per:country_of_birth", "per:country_of_death",
    "per:date_of_birth", "per:date_of_death", "per:employee_of", "per:origin", "per:other_family", "per:parents",
    "per:religion", "per:schools_attended", "per:siblings", "per:spouse", "per:stateorprovince_of_birth",
    "per:stateorprovince_of_death", "per:stateorprovinces_of_residence", "per:title"]


def read_tacred(path, split, dataset="tacred", counts=None):
    """TACRED (LDC2018T24, data/json/{train,dev,test}.json) -> RC records.

    Format: a JSON list of `{"id", "docid", "relation", "token": [...], "subj_start", "subj_end", "obj_start",
    "obj_end", "subj_type", "obj_type", "stanford_pos", ...}` with INCLUSIVE token ends. Example:
    `{"id": "e7798...", "relation": "per:title", "token": ["Tom", "Thabane", "resigned", ...], "subj_start": 0,
    "subj_end": 1, "obj_start": 8, "obj_end": 8, "subj_type": "PERSON", "obj_type": "TITLE"}`.
    query = (subject, object); `no_relation` -> items == []; PTB bracket tokens (-LRB- ...) become brackets.
    """
    counts = Counter() if counts is None else counts
    data = _json(path)
    records = []
    for index, x in enumerate(data):
        where = f"{path} (record {index}, id {x.get('id') if isinstance(x, dict) else '?'})"
        text, span = _token_text(_unescape_ptb(_get(x, "token", where)), where)
        subj = span(_get(x, "subj_start", where), _get(x, "subj_end", where) + 1, "subject")
        obj = span(_get(x, "obj_start", where), _get(x, "obj_end", where) + 1, "object")
        rel = _get(x, "relation", where)
        if rel != "no_relation" and rel not in TACRED_RELATIONS:
            raise ValueError(f"{where}: unknown TACRED relation {rel!r}")
        items = [] if rel == "no_relation" else [{"head": subj, "relation": rel, "tail": obj}]
        records.append(make_record(dataset, split, index, "RC", text, TACRED_RELATIONS, items,
                                   {"head": subj, "tail": obj},
                                   meta={"tacred_id": x.get("id"), "subj_type": x.get("subj_type"),
                                         "obj_type": x.get("obj_type")}))
    _report(dataset, split, counts)
    return _validated(records, path)


# ----------------------------------------------------------------------------------------------------------------
# RE (find the pairs and their relations)

def read_dygie_re(path, split, dataset="scierc", labels=None, counts=None):
    """DyGIE JSON lines (SciERC: JerryHao2001/thesis-tanl data/scierc/*.json) -> RE records, one per sentence.

    Format: one abstract per line, `{"doc_key", "sentences": [[tokens]...], "ner": [[[s, e, type]...]...],
    "relations": [[[s1, e1, s2, e2, label]...]...], "clusters": ...}` with document-level INCLUSIVE token offsets.
    Example relation: `[0, 3, 19, 20, "PART-OF"]`. Index = position of the sentence in the file (all abstracts'
    sentences in order); doc_key and sentence number in meta. Repeated relations are counted and kept once.
    """
    counts = Counter() if counts is None else counts
    docs = list(_jsonl(path))
    inventory = sorted(labels) if labels is not None else sorted(
        {r[4] for _, d in docs for rs in d.get("relations", []) for r in rs if isinstance(r, list) and len(r) == 5})
    records = []
    for lineno, doc in docs:
        where = f"{path}:{lineno}"
        sentences, relations = _get(doc, "sentences", where), _get(doc, "relations", where)
        if len(relations) != len(sentences):
            raise ValueError(f"{where}: {len(sentences)} sentences but {len(relations)} relation lists")
        offset = 0
        for k, (tokens, rels) in enumerate(zip(sentences, relations)):
            text, span = _token_text(_unescape_ptb(tokens), where)
            items = []
            for r in rels:
                if not (isinstance(r, list) and len(r) == 5):
                    raise ValueError(f"{where}: relation must be [s1, e1, s2, e2, label], got {r!r}")
                s1, e1, s2, e2, rel = r
                if rel not in inventory:
                    raise ValueError(f"{where}: unknown relation {rel!r}; {dataset} relations are {inventory}")
                items.append({"head": span(s1 - offset, e1 - offset + 1, "head"), "relation": rel,
                              "tail": span(s2 - offset, e2 - offset + 1, "tail")})
            items = _dedupe(items, counts, "repeated relation (same head, tail and label)")
            records.append(make_record(dataset, split, len(records), "RE", text, inventory, items,
                                       meta={"doc_key": doc.get("doc_key"), "sentence": k}))
            offset += len(tokens)
    _report(dataset, split, counts)
    return _validated(records, path)


def read_gliner_re(path, split, dataset="ade", labels=None, counts=None):
    """GLiNER-style JSON (ADE: gabrielrsilva11/gliner-finetune-biomed data/ade/*.json) -> RE records.

    Format: a JSON list of `{"tokenized_text": [...], "ner": [[s, e, type], ...], "relations": [[i, j, label]]}`
    with INCLUSIVE token ends; i, j index the `ner` list (head, tail). Example: `{"ner": [[22, 22, "Drug"],
    [15, 16, "Adverse Effect"]], "relations": [[0, 1, "causes"]]}` -> (cetrimide; causes; metabolic acidosis).
    Repeated relations (same spans and label) are counted and kept once.
    """
    counts = Counter() if counts is None else counts
    data = _json(path)
    inventory = sorted(labels) if labels is not None else sorted(
        {r[2] for x in data if isinstance(x, dict) for r in x.get("relations", []) if len(r) == 3})
    records = []
    for index, x in enumerate(data):
        where = f"{path} (record {index})"
        text, span = _token_text(_get(x, "tokenized_text", where), where)
        ner = _get(x, "ner", where)
        items = []
        for r in _get(x, "relations", where):
            if not (isinstance(r, list) and len(r) == 3 and all(isinstance(k, int) and 0 <= k < len(ner)
                                                                 for k in r[:2])):
                raise ValueError(f"{where}: relation must be [head entity index, tail entity index, label], "
                                 f"got {r!r} ({len(ner)} entities)")
            if r[2] not in inventory:
                raise ValueError(f"{where}: unknown relation {r[2]!r}; {dataset} relations are {inventory}")
            (hs, he, _), (ts, te, _) = ner[r[0]], ner[r[1]]
            items.append({"head": span(hs, he + 1, "head"), "relation": r[2], "tail": span(ts, te + 1, "tail")})
        items = _dedupe(items, counts, "repeated relation (same head, tail and label)")
        records.append(make_record(dataset, split, index, "RE", text, inventory, items))
    _report(dataset, split, counts)
    return _validated(records, path)


def read_nyt11(path, split, dataset="nyt11", labels=None, counts=None):
    """NYT11 (Hoffmann et al. 2011; the version of Takanobu et al. 2019, truthless11/HRL-RE data/NYT11) -> RE
    records, one per sentence.

    Layout: one sentence per line, `{"sentext": str, "relations": [{"em1": str, "em2": str, "rtext": str,
    "tags": [...]}], "entities": [...]}`; rtext is a Freebase relation path. Example relation: `{"em1": "Bobby
    Fischer", "em2": "Iceland", "rtext": "/people/person/nationality"}`. Mentions are given as strings, not
    spans: each is placed at its first whole-word occurrence in the sentence (a mention that occurs more than once
    is counted; one that does not occur raises). A relation whose rtext is "None" or "NA" is no relation (counted).
    `labels`: the relation inventory (None = the rtexts seen in the file, sorted)."""
    counts = Counter() if counts is None else counts
    lines = list(_jsonl(path))
    no_relation = {"None", "NA"}
    inventory = sorted(labels) if labels is not None else sorted(
        {r["rtext"] for _, x in lines for r in x.get("relations", []) if r.get("rtext") not in no_relation})
    records = []
    for index, (lineno, x) in enumerate(lines):
        where = f"{path}:{lineno}"
        text = _get(x, "sentext", where).strip()

        def place(s, what):
            hits = [m.start() for m in re.finditer(r"(?<!\w)" + re.escape(s) + r"(?!\w)", text)]
            if not hits:
                raise ValueError(f"{where}: {what} {s!r} does not occur in the sentence {text[:120]!r}")
            counts["mention occurring more than once (first occurrence taken)"] += len(hits) > 1
            return mention(text, hits[0], hits[0] + len(s))
        items = []
        for r in _get(x, "relations", where):
            rel = _get(r, "rtext", where)
            if rel in no_relation:
                counts["relation 'None' / 'NA' (no relation)"] += 1
                continue
            if rel not in inventory:
                raise ValueError(f"{where}: unknown relation {rel!r}; {dataset} relations are {inventory}")
            items.append({"head": place(_get(r, "em1", where).strip(), "em1"), "relation": rel,
                          "tail": place(_get(r, "em2", where).strip(), "em2")})
        items = _dedupe(items, counts, "repeated relation (same head, tail and label)")
        records.append(make_record(dataset, split, index, "RE", text, inventory, items))
    _report(dataset, split, counts)
    return _validated(records, path)


# ----------------------------------------------------------------------------------------------------------------
# ED and EAE

def read_maven_ed(path, split, dataset="maven", counts=None):
    """MAVEN event detection (THU-KEG/MAVEN-dataset, train.jsonl / valid.jsonl) -> ED records, one per sentence.

    Format (MAVEN DataFormat.md): one document per line, `{"id", "title", "content": [{"sentence": str,
    "tokens": [...]}], "events": [{"id", "type", "type_id", "mention": [{"id", "trigger_word", "sent_id",
    "offset": [s, e]}]}], "negative_triggers": [...]}`; offsets index the sentence's tokens, end exclusive.
    Text = the sentence's tokens joined by spaces; every mention of every event is an item. Index = position of
    the sentence in the file (documents, then sentences, in order). test.jsonl hides the gold and raises.
    Labels = the event types seen in the file, sorted.
    """
    counts = Counter() if counts is None else counts
    docs = list(_jsonl(path))
    for lineno, doc in docs:
        if "events" not in doc:
            raise ValueError(f"{path}:{lineno}: no 'events' field (MAVEN's test.jsonl hides the gold labels; "
                             f"use train.jsonl / valid.jsonl)")
    labels = sorted({_get(ev, "type", f"{path}:{n}") for n, doc in docs for ev in doc["events"]})
    records = []
    for lineno, doc in docs:
        where = f"{path}:{lineno}"
        content = _get(doc, "content", where)
        per_sentence = [[] for _ in content]
        for ev in doc["events"]:
            for m in _get(ev, "mention", where):
                sid = _get(m, "sent_id", where)
                if not (isinstance(sid, int) and 0 <= sid < len(content)):
                    raise ValueError(f"{where}: mention {m.get('id')} sent_id {sid} is outside the "
                                     f"{len(content)} sentences")
                per_sentence[sid].append((m, ev["type"]))
        for sid, sent in enumerate(content):
            text, span = _token_text(_get(sent, "tokens", where), where)
            items = []
            for m, typ in sorted(per_sentence[sid], key=lambda p: p[0]["offset"]):
                s, e = _get(m, "offset", where)
                trig = span(s, e, f"trigger {m.get('id')}")
                if trig["text"] != m.get("trigger_word", trig["text"]):
                    raise ValueError(f"{where}: trigger_word {m['trigger_word']!r} != tokens {s}:{e} "
                                     f"{trig['text']!r}")
                items.append({"trigger": trig, "type": typ})
            records.append(make_record(dataset, split, len(records), "ED", text, labels, items,
                                       meta={"doc_id": doc.get("id"), "sent_id": sid}))
    _report(dataset, split, counts)
    return _validated(records, path)


def read_omnievent(path, split, dataset="ace2005-ed", task="ED", counts=None):
    """OmniEvent's unified format (THU-KEG/OmniEvent; ACE2005, RichERE/ERE, MAVEN, ...) -> ED or EAE records.

    Format (OmniEvent docs, "Unified OmniEvent Format"): one instance per line, `{"id", "text", "events": [{"type",
    "triggers": [{"id", "trigger_word", "position": [s, e], "arguments": [{"role", "mentions": [{"id", "mention",
    "position": [s, e]}]}]}]}], "negative_triggers": [...], "entities": [...]}` with CHARACTER positions, end
    exclusive. Example trigger: `{"trigger_word": "sentenced", "position": [19, 28], "arguments": [{"role":
    "defendant", "mentions": [{"mention": "Chun", "position": [10, 14]}]}]}`.
    task="ED": one record per line, every trigger an item, labels = event types seen in the file.
    task="EAE": one record per trigger ("{index}/{k}"), query = (trigger, event type), labels = the roles seen with
    that event type in the file; triggers without an "arguments" field (ED-only data) are counted and skipped.
    """
    if task not in ("ED", "EAE"):
        raise ValueError(f"read_omnievent: task must be 'ED' or 'EAE', got {task!r}")
    counts = Counter() if counts is None else counts
    lines = list(_jsonl(path))
    types, roles = set(), {}
    for lineno, x in lines:
        for ev in _get(x, "events", f"{path}:{lineno}"):
            typ = _get(ev, "type", f"{path}:{lineno}")
            types.add(typ)
            for trig in _get(ev, "triggers", f"{path}:{lineno}"):
                for arg in trig.get("arguments", []):
                    roles.setdefault(typ, set()).add(_get(arg, "role", f"{path}:{lineno}"))
    types = sorted(types)
    records = []
    for index, (lineno, x) in enumerate(lines):
        where = f"{path}:{lineno}"
        text = _get(x, "text", where)
        items, k = [], 0
        for ev in x["events"]:
            for trig in ev["triggers"]:
                s, e = _get(trig, "position", where)
                t = _char_mention(text, s, e, trig.get("trigger_word"), where, "trigger")
                items.append({"trigger": t, "type": ev["type"]})
                if task != "EAE":
                    continue
                if "arguments" not in trig:
                    counts["trigger without an 'arguments' field (no EAE record)"] += 1
                    continue
                args = []
                for arg in trig["arguments"]:
                    for m in _get(arg, "mentions", where):
                        ms, me = _get(m, "position", where)
                        args.append({"argument": _char_mention(text, ms, me, m.get("mention"), where, "argument"),
                                     "role": arg["role"]})
                args = _dedupe(args, counts, "repeated argument (same span and role)")
                records.append(make_record(dataset, split, f"{index}/{k}", "EAE", text,
                                           sorted(roles.get(ev["type"], ())), args,
                                           {"trigger": t, "event_type": ev["type"]},
                                           meta={"source_id": x.get("id")}))
                k += 1
        if task == "ED":
            items = _dedupe(items, counts, "repeated trigger (same span and type)")
            records.append(make_record(dataset, split, index, "ED", text, types, items,
                                       meta={"source_id": x.get("id")}))
    _report(dataset, split, counts)
    return _validated(records, path)


def _ace_oneie_sentence(x, where):
    """One OneIE line -> (tokens, entities [(s, e, type, id)], events [(s, e, type, [(s, e, role)])]), token
    offsets end exclusive; an argument is found through its entity_id."""
    tokens = _get(x, "tokens", where)
    entities, by_id = [], {}
    for m in _get(x, "entity_mentions", where):
        s, e = _get(m, "start", where), _get(m, "end", where)
        entities.append((s, e, _get(m, "entity_type", where), m.get("id")))
        by_id[m.get("id")] = (s, e)
    events = []
    for ev in _get(x, "event_mentions", where):
        trig = _get(ev, "trigger", where)
        args = []
        for a in _get(ev, "arguments", where):
            eid = _get(a, "entity_id", where)
            if eid not in by_id:
                raise ValueError(f"{where}: argument {a.get('text')!r} names entity_id {eid!r}, which is not among "
                                 f"the line's entity_mentions")
            args.append((*by_id[eid], _get(a, "role", where)))
        events.append((_get(trig, "start", where), _get(trig, "end", where), _get(ev, "event_type", where), args))
    return tokens, entities, events


def _ace_dygie_sentences(doc, where):
    """One DyGIE++ document line -> per sentence (tokens, entities, events) as _ace_oneie_sentence gives them.
    DyGIE++ offsets are document-level token indices with INCLUSIVE ends; a trigger is one token."""
    sentences = _get(doc, "sentences", where)
    ner = doc.get("ner", [[] for _ in sentences])
    events = doc.get("events", [[] for _ in sentences])
    if not (len(ner) == len(events) == len(sentences)):
        raise ValueError(f"{where}: {len(sentences)} sentences but {len(ner)} ner and {len(events)} events lists")
    out, offset = [], 0
    for tokens, ents, evs in zip(sentences, ner, events):
        sent_ents = [(s - offset, e - offset + 1, typ, None) for s, e, typ in ents]
        sent_evs = []
        for ev in evs:
            (t, typ), *args = ev
            sent_evs.append((t - offset, t - offset + 1, typ, [(s - offset, e - offset + 1, r) for s, e, r in args]))
        out.append((tokens, sent_ents, sent_evs))
        offset += len(tokens)
    return out


def read_ace2005(path, split, dataset="ace2005-ed", task="ED", counts=None):
    """ACE 2005 (LDC2006T06, licensed; preprocessed by the widely used OneIE or DyGIE++ scripts) -> NER, ED or EAE
    records, one per sentence (EAE: one per trigger, "{index}/{k}"). The layout is recognised per line:

    - OneIE (blender-nlp OneIE, preprocessing/process_ace.py -> {train,dev,test}.oneie.json): one sentence per line,
      `{"doc_id", "sent_id", "tokens": [...], "sentence", "entity_mentions": [{"id", "text", "entity_type",
      "mention_type", "start", "end"}], "relation_mentions": [...], "event_mentions": [{"id", "event_type",
      "trigger": {"start", "end", "text"}, "arguments": [{"entity_id", "text", "role"}]}]}`; token offsets, end
      exclusive; an argument is the entity mention its entity_id names. Example event: `{"event_type":
      "Justice:Sentence", "trigger": {"start": 3, "end": 4, "text": "sentenced"}, "arguments": [{"entity_id":
      "E1", "text": "Chun", "role": "Defendant"}]}`.
    - DyGIE++ (dwadden/dygiepp, scripts/data/ace-event -> {train,dev,test}.json): one document per line,
      `{"doc_key", "sentences": [[tokens]], "ner": [[[s, e, type]]], "relations": ..., "events": [[[[trigger,
      event_type], [s, e, role], ...]]]}`; document-level token indices, ends INCLUSIVE.
    - OmniEvent's unified format (`{"id", "text", "events": [{"type", "triggers": ...}]}`) is read by
      read_omnievent (the first line decides).

    Text = the sentence's tokens joined by spaces. NER: every entity mention (ACE's 7 types, with VALUE/TIME
    mentions where the preprocessing kept them), labels = types seen in the file; ED: every trigger, labels =
    event types seen; EAE: query = (trigger, event type), labels = roles seen with that event type. Repeated items
    are counted and kept once."""
    if task not in ("NER", "ED", "EAE"):
        raise ValueError(f"read_ace2005: task must be 'NER', 'ED' or 'EAE', got {task!r}")
    counts = Counter() if counts is None else counts
    lines = list(_jsonl(path))
    if lines and "text" in lines[0][1] and "events" in lines[0][1] and "tokens" not in lines[0][1]:
        if task == "NER":
            raise ValueError(f"{path}: OmniEvent's format has no entity annotation usable for NER")
        return read_omnievent(path, split, dataset=dataset, task=task, counts=counts)
    sentences = []  # (where, meta, tokens, entities, events)
    for lineno, x in lines:
        where = f"{path}:{lineno}"
        if "sentences" in x:
            for k, sent in enumerate(_ace_dygie_sentences(x, where)):
                sentences.append((where, {"doc_key": x.get("doc_key"), "sentence": k}, *sent))
        elif "entity_mentions" in x:
            sentences.append((where, {"doc_id": x.get("doc_id"), "sent_id": x.get("sent_id")},
                              *_ace_oneie_sentence(x, where)))
        else:
            raise ValueError(f"{where}: neither a OneIE line (tokens, entity_mentions, event_mentions) nor a DyGIE++ "
                             f"line (doc_key, sentences, ner, events); keys are {sorted(x)}")
    types = sorted({t for *_, ents, evs in sentences for t in
                    ([e[2] for e in ents] if task == "NER" else [ev[2] for ev in evs])})
    roles = {}
    for *_, evs in sentences:
        for ev in evs:
            roles.setdefault(ev[2], set()).update(r for *_, r in ev[3])
    records = []
    for index, (where, meta, tokens, ents, evs) in enumerate(sentences):
        text, span = _token_text(_unescape_ptb(tokens), where)
        if task == "NER":
            items = [{"entity": span(s, e, "entity"), "type": t} for s, e, t, _ in sorted(ents)]
            items = _dedupe(items, counts, "repeated entity mention (same span and type)")
            records.append(make_record(dataset, split, index, "NER", text, types, items, meta=meta))
            continue
        if task == "ED":
            items = [{"trigger": span(s, e, "trigger"), "type": t} for s, e, t, _ in sorted(evs, key=lambda v: v[:2])]
            items = _dedupe(items, counts, "repeated trigger (same span and type)")
            records.append(make_record(dataset, split, index, "ED", text, types, items, meta=meta))
            continue
        for k, (s, e, t, args) in enumerate(evs):
            trig = span(s, e, "trigger")
            items = _dedupe([{"argument": span(a, b, "argument"), "role": r} for a, b, r in sorted(args)], counts,
                            "repeated argument (same span and role)")
            records.append(make_record(dataset, split, f"{index}/{k}", "EAE", text, sorted(roles.get(t, ())), items,
                                       {"trigger": trig, "event_type": t}, meta=meta))
    _report(dataset, split, counts)
    return _validated(records, path)


def read_maven_arg(path, split, dataset="maven-arg", counts=None):
    """MAVEN-Arg (THU-KEG/MAVEN-Argument, train.jsonl / valid.jsonl) -> EAE records, one per event.

    Format (MAVEN-Argument README): one document per line, `{"id", "title", "document": str, "events": [{"id",
    "type", "type_id", "mention": [{"id", "trigger_word", "offset": [s, e]}], "argument": {role: [{"content": str,
    "offset": [s, e]} | {"entity_id": id}]}}], "entities": [{"id", "type", "mention": [{"id", "mention",
    "offset": [s, e]}]}]}`; offsets are CHARACTER offsets into "document", end exclusive. The argument dict lists
    every role of the event type (empty ones too), so labels = its keys. Trigger = the event's first mention (other
    coreferent mentions counted); an entity argument is the entity mention closest to the trigger (counted).
    """
    counts = Counter() if counts is None else counts
    records = []
    for index, (lineno, doc) in enumerate(_jsonl(path)):
        where = f"{path}:{lineno}"
        text = _get(doc, "document", where)
        if "events" not in doc:
            raise ValueError(f"{where}: no 'events' field (MAVEN-Arg's test.jsonl hides the gold labels)")
        entities = {e["id"]: e for e in doc.get("entities", [])}
        for k, ev in enumerate(doc["events"]):
            mentions = _get(ev, "mention", where)
            if not mentions:
                raise ValueError(f"{where}: event {ev.get('id')} has no mention")
            if len(mentions) > 1:
                counts["coreferent trigger mentions beyond an event's first (one EAE record per event)"] += \
                    len(mentions) - 1
            m0 = mentions[0]
            trig = _char_mention(text, *_get(m0, "offset", where), m0.get("trigger_word"), where, "trigger")
            args = []
            for role, fillers in _get(ev, "argument", where).items():
                for f in fillers:
                    if "entity_id" in f:
                        ent = entities.get(f["entity_id"])
                        if ent is None:
                            raise ValueError(f"{where}: argument refers to unknown entity {f['entity_id']}")
                        if len(ent["mention"]) > 1:
                            counts["entity argument with several mentions (the one closest to the trigger used)"] += 1
                        best = min(ent["mention"], key=lambda m: abs(m["offset"][0] - trig["start"]))
                        arg = _char_mention(text, *best["offset"], best.get("mention"), where, "argument")
                    else:
                        arg = _char_mention(text, *_get(f, "offset", where), f.get("content"), where, "argument")
                    args.append({"argument": arg, "role": role})
            args = _dedupe(args, counts, "repeated argument (same span and role)")
            records.append(make_record(dataset, split, f"{index}/{k}", "EAE", text, sorted(ev["argument"]), args,
                                       {"trigger": trig, "event_type": _get(ev, "type", where)},
                                       meta={"doc_id": doc.get("id"), "event_id": ev.get("id")}))
    _report(dataset, split, counts)
    return _validated(records, path)


def read_rams(path, split, dataset="rams", ontology=None, counts=None):
    """RAMS 1.0 (.jsonlines; LWL-cpu/SCPRG-master data/rams/{dev,test}.jsonlines + meta.json) -> EAE records.

    Format: one 5-sentence window per line, `{"doc_key", "sentences": [[tokens]...], "evt_triggers": [[s, e,
    [[event type, 1.0]]]], "gold_evt_links": [[[ts, te], [as, ae], "evt043arg01communicator"]], ...}` with
    document-level INCLUSIVE token offsets. meta.json (beside `path` by default) lists each event type's roles.
    Text = all tokens joined by spaces; query = the trigger and its type; roles lose their "evtNNNargNN" prefix
    ("communicator"; raw role in meta). A role outside its type's ontology is kept, added to that record's labels
    and counted.
    """
    counts = Counter() if counts is None else counts
    path = Path(path)
    onto = {t: [re.sub(r"^evt\d+arg\d+", "", r) for r in rs] for t, rs in _json(ontology or path.parent / "meta.json")}
    records = []
    for index, (lineno, x) in enumerate(_jsonl(path)):
        where = f"{path}:{lineno}"
        tokens = [t for sent in _get(x, "sentences", where) for t in sent]
        text, span = _token_text(tokens, where)
        triggers = _get(x, "evt_triggers", where)
        links = _get(x, "gold_evt_links", where)
        for k, (ts, te, types) in enumerate(triggers):
            typ = types[0][0]
            if typ not in onto:
                raise ValueError(f"{where}: event type {typ!r} is not in the RAMS ontology (meta.json)")
            labels, items, raw = list(onto[typ]), [], []
            for (lts, lte), (a_s, a_e), role in links:
                if [lts, lte] != [ts, te]:
                    continue
                name = re.sub(r"^evt\d+arg\d+", "", role)
                if name not in labels:
                    counts["argument role outside its event type's ontology (kept)"] += 1
                    labels.append(name)
                items.append({"argument": span(a_s, a_e + 1, "argument"), "role": name})
                raw.append(role)
            suffix = index if len(triggers) == 1 else f"{index}/{k}"
            records.append(make_record(dataset, split, suffix, "EAE", text, sorted(labels), items,
                                       {"trigger": span(ts, te + 1, "trigger"), "event_type": typ},
                                       meta={"doc_key": x.get("doc_key"), "raw_roles": raw}))
    _report(dataset, split, counts)
    return _validated(records, path)


# ----------------------------------------------------------------------------------------------------------------
# EE (triggers, types and arguments together)

# PHEE v1 argument roles (Sun et al. 2022, section 3): main arguments and their sub-arguments, named by path.
PHEE_ROLES = ["Subject", "Subject.Age", "Subject.Disorder", "Subject.Gender", "Subject.Population", "Subject.Race",
              "Treatment", "Treatment.Disorder", "Treatment.Dosage", "Treatment.Drug", "Treatment.Duration",
              "Treatment.Freq", "Treatment.Route", "Treatment.Time_elapsed", "Effect"]
PHEE_ATTRIBUTES = ["Severity", "Speculated", "Negated"]  # event attributes, kept in meta (not arguments)
PHEE_TYPES = ["Adverse_event", "Potential_therapeutic_event"]


def read_phee(path, split, dataset="phee", counts=None):
    """PHEE v1 (ZhaoyueSun/PHEE data/json/{train,dev,test}.json, JSON lines) -> EE records, one per sentence.

    Format: `{"id", "context", "is_mult_event", "annotations": [{"events": [{"event_id", "event_type",
    "Trigger": {"text": [[str]], "start": [[int]], "entity_id": [...]}, "Treatment": {"text", "start", ...,
    "Drug": {...}}, "Effect": {...}, "Severity": {..., "value": "High"}, ...}]}]}`. Each role holds a list of
    mentions, each a list of fragments (text, character start). Roles are named by their path ("Treatment.Drug").
    A discontinuous mention (several fragments) becomes one argument per fragment (counted). Attributes
    (Severity/Speculated/Negated) go to meta.attributes.
    """
    counts = Counter() if counts is None else counts
    records = []
    for index, (lineno, x) in enumerate(_jsonl(path)):
        where = f"{path}:{lineno}"
        text = _get(x, "context", where)
        annotations = _get(x, "annotations", where)
        if len(annotations) != 1:
            raise ValueError(f"{where}: expected one annotation set, got {len(annotations)}")
        items, attributes = [], []

        def fragments(node, what):
            out = []
            for frags, starts in zip(_get(node, "text", where), _get(node, "start", where)):
                if len(frags) > 1:
                    counts["discontinuous mention (one argument per fragment)"] += 1
                for t, s in zip(frags, starts):
                    out.append(_char_mention(text, s, s + len(t), t, where, what))
            return out

        def arguments(node, prefix):
            for key, sub in node.items():
                if not (isinstance(sub, dict) and "text" in sub):
                    continue
                role = prefix + key
                if role in PHEE_ATTRIBUTES:
                    attributes.append({"event": len(items), "attribute": role, "value": sub.get("value"),
                                       "mentions": fragments(sub, role)})
                    continue
                if role not in PHEE_ROLES:
                    raise ValueError(f"{where}: unknown PHEE argument role {role!r}")
                for m in fragments(sub, role):
                    yield {"argument": m, "role": role}
                yield from arguments(sub, role + ".")

        for ev in _get(annotations[0], "events", where):
            typ = _get(ev, "event_type", where)
            if typ not in PHEE_TYPES:
                raise ValueError(f"{where}: unknown PHEE event type {typ!r}")
            triggers = fragments(_get(ev, "Trigger", where), "trigger")
            if len(triggers) != 1:
                raise ValueError(f"{where}: event {ev.get('event_id')} has {len(triggers)} trigger fragments")
            args = list(arguments({k: v for k, v in ev.items() if k != "Trigger"}, ""))
            items.append({"trigger": triggers[0], "type": typ,
                          "arguments": _dedupe(args, counts, "repeated argument (same span and role)")})
        records.append(make_record(dataset, split, index, "EE", text, PHEE_TYPES, items,
                                   meta={"roles": {t: PHEE_ROLES for t in PHEE_TYPES}, "phee_id": x.get("id"),
                                         "attributes": attributes}))
    _report(dataset, split, counts)
    return _validated(records, path)


# CASIE event types and their argument roles (Satyapanich et al. 2020, Table 1).
CASIE_ROLES = {
    "Databreach": ["Attack-Pattern", "Attacker", "Compromised-Data", "Damage-Amount", "Number-of-Data",
                   "Number-of-Victim", "Place", "Purpose", "Time", "Tool", "Victim"],
    "Phishing": ["Attack-Pattern", "Attacker", "Damage-Amount", "Place", "Purpose", "Time", "Tool", "Trusted-Entity",
                 "Victim"],
    "Ransom": ["Attack-Pattern", "Attacker", "Damage-Amount", "Payment-Method", "Place", "Price", "Time", "Tool",
               "Victim"],
    "DiscoverVulnerability": ["CVE", "Capabilities", "Discoverer", "Supported_Platform", "Time", "Vulnerability",
                              "Vulnerable_System", "Vulnerable_System_Owner", "Vulnerable_System_Version"],
    "PatchVulnerability": ["CVE", "Issues-Addressed", "Patch", "Patch-Number", "Releaser", "Supported_Platform",
                           "Time", "Vulnerability", "Vulnerable_System", "Vulnerable_System_Version"]}


def _casie_span(text, node, shift, where, what, counts):
    """A CASIE mention at its offsets moved by the document's shift; a stray one is moved to the nearest copy."""
    s, e, t = (_get(node, k, where) for k in ("startOffset", "endOffset", "text"))
    if text[s + shift:e + shift] == t:
        return mention(text, s + shift, e + shift)
    hits = [m.start() for m in re.finditer(re.escape(t), text)]
    if not hits:
        raise ValueError(f"{where}: {what} {t!r} at [{s}, {e}) does not occur in the text")
    best = min(hits, key=lambda h: abs(h - s))
    counts["mention not at its offsets (moved to the nearest occurrence of its text)"] += 1
    return mention(text, best, best + len(t))


def read_casie(path, split, dataset="casie", counts=None):
    """CASIE (Ebiquity/CASIE data/annotation/*.json, one file per article) -> EE records, one per article.

    `path` is the folder; files are read in file-name order (index = position in that order). Format: `{"sourcefile",
    "info", "content": str, "cyberevent": {"hopper": [{"events": [{"nugget": {"startOffset", "endOffset", "text"},
    "type", "subtype": "Databreach", "realis", "argument": [{"startOffset", "endOffset", "text", "role": {"type":
    "Victim"}, "type": "Person"}]}]}]}}` with CHARACTER offsets. Some files' offsets are all shifted by one character
    (the content lost a leading character): the shift is detected per file and applied (counted). Event type =
    subtype; coreferent events (one hopper) stay separate items.
    """
    counts = Counter() if counts is None else counts
    files = sorted(glob.glob(os.path.join(path, "*.json")), key=os.path.basename)
    if not files:
        raise ValueError(f"{path}: no CASIE *.json annotation files")
    records = []
    for index, file in enumerate(files):
        doc = _json(file)
        text = _get(doc, "content", file)
        events = [ev for h in _get(doc, "cyberevent", file).get("hopper", []) for ev in _get(h, "events", file)]
        spans = [(_get(n, "startOffset", file), _get(n, "endOffset", file), _get(n, "text", file))
                 for ev in events for n in [_get(ev, "nugget", file)] + ev.get("argument", [])]
        shift = 0
        if spans and all(text[s:e] != t for s, e, t in spans):  # every offset off: look for one common shift
            votes = Counter(d for s, e, t in spans for d in (-2, -1, 1, 2) if text[s + d:e + d] == t)
            if votes:
                shift = votes.most_common(1)[0][0]
                counts[f"file whose offsets are all shifted by {shift} (shift applied)"] += 1
        items = []
        for k, ev in enumerate(events):
            where = f"{file} (event {k})"
            typ = _get(ev, "subtype", where)
            if typ not in CASIE_ROLES:
                raise ValueError(f"{where}: unknown CASIE event subtype {typ!r}")
            trig = _casie_span(text, ev["nugget"], shift, where, "nugget", counts)
            args = []
            for a in ev.get("argument", []):
                role = _get(_get(a, "role", where), "type", where)
                if role not in CASIE_ROLES[typ]:
                    raise ValueError(f"{where}: role {role!r} is not a {typ} role {CASIE_ROLES[typ]}")
                args.append({"argument": _casie_span(text, a, shift, where, "argument", counts), "role": role})
            items.append({"trigger": trig, "type": typ,
                          "arguments": _dedupe(args, counts, "repeated argument (same span and role)")})
        items = _dedupe(items, counts, "repeated event (same trigger, type and arguments)")
        records.append(make_record(dataset, split, index, "EE", text, sorted(CASIE_ROLES), items,
                                   meta={"roles": CASIE_ROLES, "file": os.path.basename(file)}))
    _report(dataset, split, counts)
    return _validated(records, path)


# ----------------------------------------------------------------------------------------------------------------
# ERE (relations between events)

MATRES_LABELS = ["after", "before", "equal", "vague"]  # lowercase, as ADELIE's released MATRES prompts name them


def _timeml(path, counts):
    """TimeML document -> (TEXT without tags, {eid: (start, end)}, {eiid: eid}); leading whitespace stripped."""
    root = ET.parse(path).getroot()
    text_el = root.find("TEXT")
    if text_el is None:
        raise ValueError(f"{path}: no <TEXT> element")
    parts, spans, pos = [], {}, 0

    def walk(el):
        nonlocal pos
        if el.text:
            parts.append(el.text)
            pos += len(el.text)
        for child in el:
            start = pos
            walk(child)
            if child.tag == "EVENT":
                spans[child.get("eid")] = (start, pos)
            if child.tail:
                parts.append(child.tail)
                pos += len(child.tail)
    walk(text_el)
    raw = "".join(parts)
    lead = len(raw) - len(raw.lstrip())
    text = raw.strip()
    events = {}
    for eid, (s, e) in spans.items():  # the text inside an EVENT tag sometimes carries a space: trim it
        s2, e2 = s + len(raw[s:e]) - len(raw[s:e].lstrip()), e - (len(raw[s:e]) - len(raw[s:e].rstrip()))
        if (s2, e2) != (s, e):
            counts["TimeML EVENT text with surrounding spaces (trimmed)"] += 1
        events[eid] = (s2 - lead, e2 - lead)
    instances = {mi.get("eiid"): mi.get("eventID") for mi in root.iter("MAKEINSTANCE")}
    return text, events, instances


def read_matres(path, split, dataset="matres", tml_dir=None, counts=None):
    """MATRES (qiangning/MATRES timebank.txt / aquaint.txt / platinum.txt) + TempEval-3 TimeML -> pairwise ERE.

    Format (MATRES README): `docid\\tverb1\\tverb2\\teiid1\\teiid2\\trelation`, e.g.
    `ABC19980120.1830.0957\\tpredicted\\ttried\\t415\\t417\\tBEFORE`. The events are found by joining eiid ->
    MAKEINSTANCE eiid="ei415" -> eventID -> <EVENT eid> in `tml_dir`/**/docid.tml (default: the "tml" folder beside
    the relation file). One record per relation line: text = the document's TEXT, query = (event1, event2), one
    item with the lowercase label (ADELIE's names). `path` may be a list of relation files (train = timebank.txt
    then aquaint.txt): the index runs on across them. Relations whose event cannot be found, and repeated pairs,
    are counted and skipped.
    """
    counts = Counter() if counts is None else counts
    paths = [Path(p) for p in (path if isinstance(path, (list, tuple)) else [path])]
    tml_dir = Path(tml_dir) if tml_dir else paths[0].parent / "tml"
    tml_files = {Path(p).stem: p for p in glob.glob(str(tml_dir / "**" / "*.tml"), recursive=True)}
    docs, seen, records = {}, set(), []
    for rel_path in paths:
        for lineno, line in _lines(rel_path):
            if not line.strip():
                continue
            where = f"{rel_path}:{lineno}"
            fields = line.split("\t")
            if len(fields) != 6:
                raise ValueError(f"{where}: expected 6 tab-separated fields docid verb1 verb2 eiid1 eiid2 relation, "
                                 f"got {len(fields)}")
            doc_id, verb1, verb2, eiid1, eiid2, raw = fields
            if raw.lower() not in MATRES_LABELS:
                raise ValueError(f"{where}: unknown MATRES relation {raw!r}; expected one of "
                                 f"{[x.upper() for x in MATRES_LABELS]}")
            if doc_id not in docs:
                if doc_id not in tml_files:
                    raise ValueError(f"{where}: no TimeML file {doc_id}.tml under {tml_dir}")
                docs[doc_id] = _timeml(tml_files[doc_id], counts)
            text, events, instances = docs[doc_id]
            key = (doc_id, eiid1, eiid2)
            if key in seen or (doc_id, eiid2, eiid1) in seen:
                counts["repeated event pair (skipped)"] += 1
                continue
            seen.add(key)
            ends = []
            for eiid, verb in ((eiid1, verb1), (eiid2, verb2)):
                eid = instances.get("ei" + eiid)
                if eid is None or eid not in events:
                    break
                m = mention(text, *events[eid])
                if m["text"] != verb:
                    counts["verb in the relation file differs from the TimeML event text (TimeML kept)"] += 1
                ends.append(m)
            if len(ends) != 2:
                counts["relation whose event cannot be found in the TimeML file (eiid without MAKEINSTANCE)"] += 1
                continue
            items = [{"event1": ends[0], "relation": raw.lower(), "event2": ends[1]}]
            records.append(make_record(dataset, split, len(records), "ERE", text, MATRES_LABELS, items,
                                       {"event1": ends[0], "event2": ends[1]},
                                       meta={"subtask": "temporal", "doc_id": doc_id, "eiid1": eiid1,
                                             "eiid2": eiid2, "raw_label": raw, "source": f"{rel_path.name}:{lineno}"}))
    _report(dataset, split, counts)
    return _validated(records, paths[0])


MAVEN_ERE_LABELS = {"temporal": ["before", "begins-on", "contains", "ends-on", "overlap", "simultaneous"],
                    "causal": ["cause", "precondition"], "subevent": ["subevent"], "coreference": ["coreference"]}


def read_maven_ere(path, split, dataset="maven-ere", counts=None):
    """MAVEN-ERE (THU-KEG/MAVEN-ERE, train.jsonl / valid.jsonl) -> ERE records, one per document and subtask.

    Format (MAVEN-ERE README): one document per line, `{"id", "title", "tokens": [[...] per sentence],
    "sentences": [str], "events": [{"id", "type", "type_id", "mention": [{"id", "trigger_word", "sent_id",
    "offset": [s, e]}]}], "TIMEX": [...], "temporal_relations": {"BEFORE": [[id1, id2]], ...},
    "causal_relations": {"CAUSE": [...], "PRECONDITION": [...]}, "subevent_relations": [[id1, id2]]}`; offsets index
    the sentence's tokens, end exclusive. Text = all tokens joined by spaces. Four records per document, ids
    "{index}/{subtask}": temporal, causal and subevent relate events, each shown by its first mention (query.events
    = those mentions); coreference pairs each chain's first mention with each later one (query.events = all
    mentions). Pairs keep MAVEN-ERE's order: (e1; subevent; e2) means e2 is a subevent of e1, (e1; cause; e2) that
    e1 causes e2. Relations with a TIMEX argument are counted and skipped (ADELIE's ERE is between events).
    """
    counts = Counter() if counts is None else counts
    records = []
    for index, (lineno, doc) in enumerate(_jsonl(path)):
        where = f"{path}:{lineno}"
        if "events" not in doc:
            raise ValueError(f"{where}: no 'events' field (MAVEN-ERE's test.jsonl hides the gold labels)")
        sentences = _get(doc, "tokens", where)
        tokens = [t for s in sentences for t in s]
        text, span = _token_text(tokens, where)
        first, n = [], 0  # document token offset of each sentence
        for sent in sentences:
            first.append(n)
            n += len(sent)
        chains = {}
        for ev in doc["events"]:
            ms = []
            for m in _get(ev, "mention", where):
                sid, (s, e) = _get(m, "sent_id", where), _get(m, "offset", where)
                if not (isinstance(sid, int) and 0 <= sid < len(sentences) and 0 <= s < e <= len(sentences[sid])):
                    raise ValueError(f"{where}: mention {m.get('id')} (sentence {sid}, tokens {s}:{e}) is outside "
                                     f"the document")
                men = span(first[sid] + s, first[sid] + e, f"mention {m.get('id')}")
                if men["text"] != m.get("trigger_word", men["text"]):
                    raise ValueError(f"{where}: trigger_word {m['trigger_word']!r} != {men['text']!r}")
                ms.append(men)
            if not ms:
                raise ValueError(f"{where}: event {ev.get('id')} has no mention")
            chains[ev["id"]] = sorted(ms, key=lambda m: m["start"])
        heads = {eid: ms[0] for eid, ms in chains.items()}
        groups = {"temporal": doc.get("temporal_relations", {}), "causal": doc.get("causal_relations", {}),
                  "subevent": {"SUBEVENT": doc.get("subevent_relations", [])}}
        for subtask in ("temporal", "causal", "subevent"):
            items = []
            for raw, pairs in groups[subtask].items():
                label = raw.lower()
                if label not in MAVEN_ERE_LABELS[subtask]:
                    raise ValueError(f"{where}: unknown {subtask} relation {raw!r}")
                for a, b in pairs:
                    if a not in heads or b not in heads:
                        if str(a).startswith("TIME") or str(b).startswith("TIME"):
                            counts[f"{subtask} relation with a TIMEX argument (skipped)"] += 1
                            continue
                        unknown = a if a not in heads else b
                        raise ValueError(f"{where}: {subtask} relation refers to unknown event {unknown}")
                    items.append({"event1": heads[a], "relation": label, "event2": heads[b]})
            items = _dedupe(items, counts, "repeated relation (same events and label)")
            records.append(make_record(dataset, split, f"{index}/{subtask}", "ERE", text, MAVEN_ERE_LABELS[subtask],
                                       items, {"events": sorted(heads.values(), key=lambda m: m["start"])},
                                       meta={"subtask": subtask, "doc_id": doc.get("id")}))
        items = [{"event1": ms[0], "relation": "coreference", "event2": m} for ms in chains.values() for m in ms[1:]]
        records.append(make_record(dataset, split, f"{index}/coreference", "ERE", text, ["coreference"], items,
                                   {"events": sorted((m for ms in chains.values() for m in ms),
                                                     key=lambda m: m["start"])},
                                   meta={"subtask": "coreference", "doc_id": doc.get("id")}))
    _report(dataset, split, counts)
    return _validated(records, path)


# ----------------------------------------------------------------------------------------------------------------
# Open IE

def _openie_item(predicate, subject, obj="", time="", location="", extra=()):
    item = {"predicate": predicate, "subject": subject, "object": obj, "time": time, "location": location}
    if extra:
        item["extra"] = list(extra)  # arguments beyond arg2 (CaRB, ROBUST n-ary tuples)
    return item


def read_carb(path, split, dataset="carb", gold=None, counts=None):
    """CaRB (dair-iitd/CaRB data/{dev,test}.txt + data/gold/{dev,test}.tsv) -> OpenIE records, one per sentence.

    Sentences: one per line. Gold (default: gold/<name>.tsv beside `path`): `sentence\\tpredicate\\targ1\\targ2
    [\\targ3 ...]` per tuple, e.g. `A CEN forms an important but small part of a Local Strategic Partnership .\\tforms
    \\tA CEN\\tan important part of a Local Strategic Partnership`. Fields are stripped; arguments beyond arg2 go to
    the item's "extra"; time/location are "" (CaRB does not separate them). Sentences without gold tuples have
    items == [] (counted); repeated tuples are counted and kept (carb.py scores each copy).
    """
    counts = Counter() if counts is None else counts
    path = Path(path)
    gold = Path(gold) if gold else path.parent / "gold" / f"{path.stem}.tsv"
    sentences = [line.strip() for _, line in _lines(path)]
    index = {}
    for i, s in enumerate(sentences):
        index.setdefault(s, i)
    tuples = [[] for _ in sentences]
    for lineno, line in _lines(gold):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) < 3:
            raise ValueError(f"{gold}:{lineno}: expected sentence, predicate, arg1[, arg2, ...], got "
                             f"{len(fields)} fields")
        if fields[0] not in index:
            raise ValueError(f"{gold}:{lineno}: gold sentence is not in {path}: {fields[0][:80]!r}")
        if not fields[1]:
            counts["gold tuple with an empty predicate (kept)"] += 1
        tuples[index[fields[0]]].append(_openie_item(fields[1], fields[2], fields[3] if len(fields) > 3 else "",
                                                     extra=fields[4:]))
    records = []
    for i, (sent, items) in enumerate(zip(sentences, tuples)):
        if not items:
            counts["sentence without gold tuples (items == [])"] += 1
        # carb.py's gold reader keeps a repeated tuple, and each copy counts in its recall: kept (and counted)
        counts["repeated gold tuple (kept, as carb.py scores it)"] += len(items) - len({json.dumps(t) for t in items})
        records.append(make_record(dataset, split, i, "OpenIE", sent, [], items))
    _report(dataset, split, counts)
    return _validated(records, path)


# OpenIE6 word labels (dair-iitd/openie6 data.py label_dict); LOC/TIME fill the item's location/time here.
OPENIE6_TAGS = ("NONE", "ARG1", "REL", "ARG2", "LOC", "TIME", "TYPE", "ARGS")


def read_openie6_labels(path, split, dataset="openie6", counts=None):
    """OpenIE6 training labels (dair-iitd/openie6 data/openie4_labels) -> OpenIE records, one per sentence.

    Format (read by openie6 data.py): a sentence line `word word ... [unused1] [unused2] [unused3]`, then one line
    per extraction with one label per word (the three [unused] words included) from NONE ARG1 REL ARG2 LOC TIME
    TYPE ARGS; blank lines may separate sentences. Example: `Obama gave a speech . [unused1] [unused2] [unused3]`
    / `ARG1 REL ARG2 ARG2 NONE NONE NONE NONE`. A REL label on [unusedK] means the implicit relation words
    (openie6 metric.py): K=1 "is <rel>", K=2 "is <rel> of", K=3 "is <rel> from". ARGS words go to "extra";
    TYPE labels are not part of a tuple (counted).
    """
    counts = Counter() if counts is None else counts
    sentences = []  # (line number, words, [label lists])
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        words = line.split()
        if words[-3:] == ["[unused1]", "[unused2]", "[unused3]"]:
            sentences.append((lineno, words, []))
            continue
        if not sentences:
            raise ValueError(f"{path}:{lineno}: label line before any sentence line (sentence lines end with "
                             f"'[unused1] [unused2] [unused3]')")
        bad = [w for w in words if w not in OPENIE6_TAGS]
        if bad:
            raise ValueError(f"{path}:{lineno}: unknown OpenIE6 label {bad[0]!r}; expected {OPENIE6_TAGS}")
        if len(words) != len(sentences[-1][1]):
            raise ValueError(f"{path}:{lineno}: {len(words)} labels for {len(sentences[-1][1])} words")
        sentences[-1][2].append(words)
    records = []
    for index, (lineno, words, extractions) in enumerate(sentences):
        text = " ".join(words[:-3])
        if not text:
            raise ValueError(f"{path}:{lineno}: empty sentence")
        items = []
        for tags in extractions:
            parts, case = {t: [] for t in OPENIE6_TAGS}, 0
            for w, t in zip(words, tags):
                if w.startswith("[unused"):
                    case = int(w[7]) if t == "REL" else case
                    continue
                parts[t].append(w)
            if parts["TYPE"]:
                counts["TYPE-labelled words (not part of a tuple)"] += 1
            rel = " ".join(parts["REL"])
            rel = {0: rel, 1: f"is {rel}", 2: f"is {rel} of", 3: f"is {rel} from"}[case]
            extra = [" ".join(parts["ARGS"])] if parts["ARGS"] else []
            items.append(_openie_item(rel, " ".join(parts["ARG1"]), " ".join(parts["ARG2"]), " ".join(parts["TIME"]),
                                      " ".join(parts["LOC"]), extra))
        records.append(make_record(dataset, split, index, "OpenIE", text, [],
                                   _dedupe(items, counts, "repeated extraction (kept once)")))
    _report(dataset, split, counts)
    return _validated(records, path)


def read_robust(path, split="test", dataset="robust", counts=None):
    """ROBUST (qijimrc/ROBUST; read by its src/robust_scorer.py read_unified) -> OpenIE records, one per sentence.

    Format: a JSON list of knowledge-invariant cliques `{"ori_sent": str, "ori_args": [[predicate, arg1, arg2, ...],
    ...], "paraphrases": [{"sent": str, "args": [[predicate, arg1, ...], ...]}]}`. Record ids "{clique}/0" for
    the original sentence and "{clique}/{k}" for paraphrase k (1-based); meta.clique and meta.paraphrase let the
    scorer take each clique's worst sentence. Arguments beyond arg2 go to "extra".
    """
    counts = Counter() if counts is None else counts
    data = _json(path)
    records = []
    for c, clique in enumerate(data):
        where = f"{path} (clique {c})"
        sents = [(_get(clique, "ori_sent", where), _get(clique, "ori_args", where))]
        for p in _get(clique, "paraphrases", where):
            sents.append((_get(p, "sent", where), _get(p, "args", where)))
        for k, (sent, tuples) in enumerate(sents):
            items = []
            for t in tuples:
                if not (isinstance(t, list) and len(t) >= 2 and all(isinstance(x, str) for x in t)):
                    raise ValueError(f"{where}: a tuple must be [predicate, arg1, ...] strings, got {t!r}")
                items.append(_openie_item(t[0], t[1], t[2] if len(t) > 2 else "", extra=t[3:]))
            records.append(make_record(dataset, split, f"{c}/{k}", "OpenIE", sent, [],
                                       _dedupe(items, counts, "repeated tuple (kept once)"),
                                       meta={"clique": c, "paraphrase": k, "ori_sent": sents[0][0]}))
    _report(dataset, split, counts)
    return _validated(records, path)


# ----------------------------------------------------------------------------------------------------------------
# ODIE (on-demand IE: an instruction and a gold markdown table)

def parse_markdown_table(text: str) -> tuple[list[str], list[list[str]], bool]:
    """(header cells, body rows, well_formed) of the first markdown table in `text` ([] and [] when none): its
    lines are the first run of lines starting with "|"; well_formed when a separator line follows the header
    ('| a | b |\n| --- | --- |\n| 1 | 2 |' -> (["a", "b"], [["1", "2"]], True)). The one table parser: gold
    tables here, canonical answers and the ODIE scorers (scorers.py)."""
    lines = [ln.strip() for ln in text.split("\n")]
    start = next((i for i, ln in enumerate(lines) if ln.startswith("|")), None)
    if start is None:
        return [], [], False
    block = []
    for ln in lines[start:]:
        if not ln.startswith("|"):
            break
        block.append([c.strip() for c in ln.strip("|").split("|")])
    header, rows = block[0], block[1:]
    is_rule = bool(rows) and all(re.fullmatch(r":?-{1,}:?", c) for c in rows[0] if c) and any(rows[0])
    if is_rule:
        rows = rows[1:]
    return header, rows, is_rule


def read_instructie(path, split, dataset="instructie", counts=None):
    """InstructIE / On-Demand IE (yzjiao/On-Demand-IE dataset/test_data.json) -> ODIE records.

    Format: a JSON list of `{"instruction", "text", "table" (gold markdown), "source", "source_type", "domain",
    "category", "difficulty"}`. query = {instruction}; one item {header, rows} parsed from the table (the raw table
    string stays in meta.table for scorers that read markdown). Rows whose cell count differs from the header's
    are kept as they are and counted.
    """
    counts = Counter() if counts is None else counts
    records = []
    for index, x in enumerate(_json(path)):
        where = f"{path} (record {index})"
        table = _get(x, "table", where)
        header, rows, _ = parse_markdown_table(table)
        if not header:
            raise ValueError(f"{where}: not a markdown table: {table[:80]!r}")
        counts["table row whose cell count differs from the header's (kept)"] += sum(len(r) != len(header)
                                                                                     for r in rows)
        meta = {"table": table, **{k: x[k] for k in ("source", "source_type", "domain", "category", "difficulty")
                                   if k in x}}
        records.append(make_record(dataset, split, index, "ODIE", _get(x, "text", where), [],
                                   [{"header": header, "rows": rows}],
                                   {"instruction": _get(x, "instruction", where)}, meta))
    _report(dataset, split, counts)
    return _validated(records, path)


# ----------------------------------------------------------------------------------------------------------------
# The table of data sets (paths relative to a data root laid out as ../shared/data/MANIFEST.md)

# The held-out evaluation sets (paper section 5.1): never in IEInstruct (Table 7) or IEFeedback (Table 8), although
# convert_all reads the train splits that some of them have (FewNERD, SemEval, RichERE, MATRES). data.py and
# feedback.py leave their records out (and count them).
HELD_OUT = frozenset({"fewnerd", "semeval", "richere-ed", "richere-eae", "matres", "carb", "robust"})

DATASETS = {
    # NER (paper Table 7; GENIA's nested test set also serves as a stand-in for GENIA training data)
    "conll2003": {"task": "NER", "reader": read_conll_bio, "kwargs": {"labels": ["LOC", "MISC", "ORG", "PER"]},
                  "splits": {"train": "conll2003/train.txt", "dev": "conll2003/dev.txt", "test": "conll2003/test.txt"}},
    "bc5cdr": {"task": "NER", "reader": read_conll_bio, "kwargs": {"labels": ["Chemical", "Disease"]},
               "splits": {"train": "bc5cdr/train.tsv", "dev": "bc5cdr/devel.tsv", "test": "bc5cdr/test.tsv"}},
    "jnlpba": {"task": "NER", "reader": read_conll_bio,
               "kwargs": {"labels": ["DNA", "RNA", "cell_line", "cell_type", "protein"]},
               "splits": {"train": "genia_jnlpba/train.tsv", "dev": "genia_jnlpba/devel.tsv",
                          "test": "genia_jnlpba/test.tsv"}},
    "genia": {"task": "NER", "reader": read_w2ner_json,
              "kwargs": {"labels": ["DNA", "RNA", "cell_line", "cell_type", "protein"]},
              "splits": {"train": "genia_nested/train.json", "dev": "genia_nested/dev.json",
                         "test": "genia_nested/test.json"}},
    "mit-restaurant": {"task": "NER", "reader": read_conll_bio,
                       "kwargs": {"label_first": True,
                                  "labels": ["Amenity", "Cuisine", "Dish", "Hours", "Location", "Price", "Rating",
                                             "Restaurant_Name"]},
                       "splits": {"train": "mit_restaurant/restauranttrain.bio",
                                  "test": "mit_restaurant/restauranttest.bio"}},
    # ACE 2005 (LDC, licensed) in OneIE's layout (read_ace2005 also reads DyGIE++ and OmniEvent files)
    "ace2005-ner": {"task": "NER", "reader": read_ace2005, "kwargs": {"task": "NER"},
                    "splits": {"train": "ace2005/train.oneie.json", "dev": "ace2005/dev.oneie.json",
                               "test": "ace2005/test.oneie.json"}},
    # OntoNotes 5 (LDC, licensed) in the CoNLL-2012 format: a folder of *_gold_conll files per split
    "ontonotes5": {"task": "NER", "reader": read_conll2012,
                   "splits": {"train": "ontonotes5/train", "dev": "ontonotes5/development", "test": "ontonotes5/test"}},
    "fewnerd": {"task": "NER", "reader": read_fewnerd,
                "splits": {"train": "fewnerd/supervised/train.txt", "dev": "fewnerd/supervised/dev.txt",
                           "test": "fewnerd/supervised/test.txt"}},
    # RC
    "tacred": {"task": "RC", "reader": read_tacred,
               "splits": {"train": "tacred/train.json", "dev": "tacred/dev.json", "test": "tacred/test.json"}},
    "fewrel": {"task": "RC", "reader": read_fewrel,
               "splits": {"train": "fewrel/train_wiki.json", "dev": "fewrel/val_wiki.json"}},
    "semeval": {"task": "RC", "reader": read_semeval2010,
                "splits": {"train": "semeval2010_task8/TRAIN_FILE.TXT",
                           "test": "semeval2010_task8/TEST_FILE_FULL.TXT"}},
    # RE
    "scierc": {"task": "RE", "reader": read_dygie_re,
               "kwargs": {"labels": ["COMPARE", "CONJUNCTION", "EVALUATE-FOR", "FEATURE-OF", "HYPONYM-OF", "PART-OF",
                                     "USED-FOR"]},
               "splits": {"train": "scierc/train.json", "dev": "scierc/dev.json", "test": "scierc/test.json"}},
    "ade": {"task": "RE", "reader": read_gliner_re, "kwargs": {"labels": ["causes"]},
            "splits": {"train": "ade/train.json", "dev": "ade/eval.json", "test": "ade/test.json"}},
    "nyt11": {"task": "RE", "reader": read_nyt11,
              "splits": {"train": "nyt11/train.json", "dev": "nyt11/valid.json", "test": "nyt11/test.json"}},
    # ED / EAE
    "maven": {"task": "ED", "reader": read_maven_ed,
              "splits": {"train": "maven/train.jsonl", "dev": "maven/valid.jsonl"}},
    "ace2005-ed": {"task": "ED", "reader": read_ace2005, "kwargs": {"task": "ED"},
                   "splits": {"train": "ace2005/train.oneie.json", "dev": "ace2005/dev.oneie.json",
                              "test": "ace2005/test.oneie.json"}},
    "richere-ed": {"task": "ED", "reader": read_omnievent, "kwargs": {"task": "ED"},
                   "splits": {"train": "richere/train.unified.jsonl", "dev": "richere/valid.unified.jsonl",
                              "test": "richere/test.unified.jsonl"}},
    "ace2005-eae": {"task": "EAE", "reader": read_ace2005, "kwargs": {"task": "EAE"},
                    "splits": {"train": "ace2005/train.oneie.json", "dev": "ace2005/dev.oneie.json",
                               "test": "ace2005/test.oneie.json"}},
    "richere-eae": {"task": "EAE", "reader": read_omnievent, "kwargs": {"task": "EAE"},
                    "splits": {"train": "richere/train.unified.jsonl", "dev": "richere/valid.unified.jsonl",
                               "test": "richere/test.unified.jsonl"}},
    "rams": {"task": "EAE", "reader": read_rams,
             "splits": {"train": "rams/train.jsonlines", "dev": "rams/dev.jsonlines", "test": "rams/test.jsonlines"}},
    "maven-arg": {"task": "EAE", "reader": read_maven_arg,
                  "splits": {"train": "maven-arg/train.jsonl", "dev": "maven-arg/valid.jsonl"}},
    # EE (CASIE has no official split: the annotation folder is its train split here)
    "phee": {"task": "EE", "reader": read_phee,
             "splits": {"train": "phee/train.json", "dev": "phee/dev.json", "test": "phee/test.json"}},
    "casie": {"task": "EE", "reader": read_casie, "splits": {"train": "casie/annotation"}},
    # ERE
    "maven-ere": {"task": "ERE", "reader": read_maven_ere,
                  "splits": {"train": "maven-ere/train.jsonl", "dev": "maven-ere/valid.jsonl"}},
    "matres": {"task": "ERE", "reader": read_matres,
               "splits": {"train": ["matres/timebank.txt", "matres/aquaint.txt"], "test": "matres/platinum.txt"}},
    # Open IE
    "openie6": {"task": "OpenIE", "reader": read_openie6_labels, "splits": {"train": "openie6/openie4_labels"}},
    "carb": {"task": "OpenIE", "reader": read_carb, "splits": {"dev": "carb/dev.txt", "test": "carb/test.txt"}},
    "robust": {"task": "OpenIE", "reader": read_robust, "splits": {"test": "robust/robust.json"}},
    # ODIE (training_data.json: assumed to share test_data.json's format; not obtainable here)
    "instructie": {"task": "ODIE", "reader": read_instructie,
                   "splits": {"train": "ondemand_ie/training_data.json", "test": "ondemand_ie/test_data.json"}},
}


def _split_paths(name, root, split):
    entry = DATASETS[name]
    if split not in entry["splits"]:
        raise ValueError(f"{name} has no {split!r} split (it has {sorted(entry['splits'])})")
    rel = entry["splits"][split]
    return [Path(root) / p for p in (rel if isinstance(rel, list) else [rel])]


def load_dataset(name: str, root, split: str, counts=None) -> list:
    """Read one split of a DATASETS entry from a data root laid out as ../shared/data (see MANIFEST.md)."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    paths = _split_paths(name, root, split)
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"{name}/{split}: missing {', '.join(missing)}")
    entry = DATASETS[name]
    path = paths if len(paths) > 1 else paths[0]
    return entry["reader"](path, split, dataset=name, counts=counts, **entry.get("kwargs", {}))


def convert_path(name: str, path, split: str, counts=None) -> list:
    """Read a split from `path`: a data root laid out as DATASETS says, or the split's own file (folder for CASIE).

    A reader's companion files (FewRel pid2name.json, RAMS meta.json, MATRES tml/, CaRB gold/) are looked up
    beside the file, where their releases put them.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    path = Path(path)
    if split in DATASETS[name]["splits"] and all(p.exists() for p in _split_paths(name, path, split)):
        return load_dataset(name, path, split, counts=counts)
    if not (path.is_file() or (path.is_dir() and DATASETS[name]["reader"] in (read_casie, read_conll2012))):
        rel = DATASETS[name]["splits"].get(split)
        raise FileNotFoundError(f"{path}: neither a {name} file nor a data root holding {rel} for split {split!r}")
    entry = DATASETS[name]
    return entry["reader"](path, split, dataset=name, counts=counts, **entry.get("kwargs", {}))


def convert_all(root, splits=("train",), report=None) -> dict:
    """Convert every data set split present under `root`: {name: records of all requested splits}.

    Absent ones are skipped and logged; if `report` (a dict) is given it receives report["absent"] = ["name/split"],
    report["counts"] = {"name/split": Counter of what each reader skipped or repaired}, report["seconds"] =
    {"name/split": conversion time}.
    """
    out, absent, all_counts, seconds = {}, [], {}, {}
    for name in DATASETS:
        for split in splits:
            if split not in DATASETS[name]["splits"]:
                continue
            if not all(p.exists() for p in _split_paths(name, root, split)):
                absent.append(f"{name}/{split}")
                continue
            t0, counts = time.perf_counter(), Counter()
            out.setdefault(name, []).extend(load_dataset(name, root, split, counts=counts))
            all_counts[f"{name}/{split}"], seconds[f"{name}/{split}"] = counts, time.perf_counter() - t0
    if absent:
        log.info("absent under %s (skipped): %s", root, ", ".join(absent))
    if report is not None:
        report.update(absent=absent, counts=all_counts, seconds=seconds)
    return out


def write_jsonl(records, path) -> None:
    """One record per line, UTF-8, keys in the design order."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


# ----------------------------------------------------------------------------------------------------------------
# CLI

def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Convert published IE data sets to unified IE records (JSONL).")
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("convert", help="convert one data set split")
    one.add_argument("name", choices=sorted(DATASETS), help="data set name (DATASETS table)")
    one.add_argument("path", help="a data root laid out as ../shared/data, or the split's own file/folder")
    one.add_argument("--split", default="train", choices=SPLITS, help="which split (default: train)")
    one.add_argument("--out", required=True, help="output .jsonl file")
    every = sub.add_parser("convert-all", help="convert every data set present under a data root")
    every.add_argument("--root", default="../shared/data", help="data root (default: ../shared/data)")
    every.add_argument("--out_dir", required=True, help="folder for {name}.{split}.jsonl files")
    every.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS,
                       help="splits to convert (default: all three)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        _run(args)
    except (ValueError, FileNotFoundError) as e:  # bad data or paths: the message names file, line and problem
        parser.exit(1, f"error: {e}\n")


def _run(args) -> None:
    if args.command == "convert":
        t0 = time.perf_counter()
        records = convert_path(args.name, args.path, args.split, counts=Counter())
        write_jsonl(records, args.out)
        print(f"{args.name}\t{args.split}\t{len(records)} records\t{time.perf_counter() - t0:.2f}s\t-> {args.out}")
        return
    report = {}
    t0 = time.perf_counter()
    data = convert_all(args.root, splits=args.splits, report=report)
    for key, seconds in report["seconds"].items():
        name, split = key.split("/")
        records = [r for r in data[name] if r["split"] == split]
        out = Path(args.out_dir) / f"{name}.{split}.jsonl"
        write_jsonl(records, out)
        print(f"{name}\t{split}\t{len(records)} records\t{seconds:.2f}s\t-> {out}")
    print(f"absent: {', '.join(report['absent']) or 'none'}")
    print(f"total: {sum(len(v) for v in data.values())} records in {time.perf_counter() - t0:.1f}s")


if __name__ == "__main__":
    main()
