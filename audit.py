"""Auditing a corpus from its text: `python data.py stats` and `python data.py show` (tooling, not the method).

stats: the statistics of an IEInstruct file measured from its text alone (conversations {dataset, id, messages}:
ours or the authors' release), so two corpora compare side by side: paper Table 7 and the rates of sections
3.1-3.3 and 4. Each feature is recognised by the marker data.py renders it with (and, where the release wrote it
differently, the release's marker); what the text cannot show is reported as such, never guessed. `data.py build`'s
statistics table is this code run over what was built.

show: conversations as the model sees them, the tokens it is trained on marked.
"""
import ast
import dataclasses
import json
import random
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from config import flag
from robust import atomic_file
from data import (ANSWER, CLOSED_TASKS, DEFAULT_TOKENIZER, EXPLANATION, FORMAT_REQUESTS, ODIE_SYSTEM, SUCH_AS,
                  SYMBOLS, TABLE7_INSTANCES, Prompts, TokenCounter, load_conversations, load_prompts, markdown_table,
                  tokenize_chat)
from ie_formats import TASKS
from scorers import answer_part

RELEASE_SUCH_AS = ": such as "  # the release's: '"LABEL: such as a, b."' inside its [option, ...] list
NOT_INFERABLE = "n/a: not inferable"
# Tasks whose records offer the data set's whole label inventory (EAE offers the roles of one event type, ERE one
# subtask's relations), so the union of the options shown over a data set is the
# inventory and the share of it an instance leaves out estimates class dropout.
ONE_INVENTORY_TASKS = ("NER", "RC", "RE", "ED", "EE")


@dataclass
class Markers:
    """The strings the statistics recognise, all taken from prompts/ and the constants above."""
    requests: dict         # output-format request sentence -> (kind canonical|json|other, tasks it belongs to)
    request_re: re.Pattern  # any of them (longest first)
    list_intros: set       # schema intros followed by " [a, b, ...]."
    guideline_intros: set  # schema intros followed by "- option: definition." lines
    example_intros: set    # schema intros followed by "- option (such as ...)" lines
    na_answers: set        # answers that state "nothing to extract": canonical NA, every template's, JSON [],
                           # nothing at all (the release's test files)


def stats_markers(prompts: Prompts | None = None) -> Markers:
    """The markers of prompts/ (default: this project's pools) and of Table 9."""
    prompts = prompts or load_prompts()
    requests = defaultdict(lambda: ["", set()])
    for task, f in prompts.formats.items():
        for kind, sentences in (("canonical", [f["canonical"]]), ("json", f["json"]),
                                ("other", [t["request"] for t in f["templates"]])):
            for s in sentences:
                requests[s][0] = requests[s][0] or kind
                requests[s][1].add(task)
    for task, s in FORMAT_REQUESTS.items():  # Table 9: the canonical requests the release wrote
        requests[s][0] = "canonical"
        requests[s][1].add(task)
    requests = {s: (k, frozenset(t)) for s, (k, t) in requests.items()}
    pattern = re.compile("|".join(re.escape(s) for s in sorted(requests, key=len, reverse=True)))
    intros = {kind: {i for task, s in prompts.schema.items() if isinstance(s, dict) for i in s.get(kind, [])}
              for kind in ("list", "guidelines", "examples")}
    nones = {"", "NA", "[]"} | {t["none"] for f in prompts.formats.values() for t in f["templates"]}
    return Markers(requests, pattern, intros["list"], intros["guidelines"], intros["examples"], nones)


def _literal(body: str):
    """A JSON value (ours) or a Python literal (the release wrote dict reprs), else None."""
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(body) if body[:1] in ("[", "{") else None
        except (ValueError, SyntaxError, MemoryError, RecursionError):  # json.JSONDecodeError is a ValueError
            pass
    return None


def _is_na_answer(output: str, markers: Markers) -> bool:
    """An assistant turn that extracts nothing: "NA", a template's none sentence, an empty JSON list, or (the
    release's JSON) an object whose lists are all empty."""
    body = answer_part(output).strip()
    if body in markers.na_answers:
        return True
    value = _literal(body)
    return isinstance(value, dict) and bool(value) and all(v in ([], "", None) for v in value.values())


def _schema_options(instruction: str, markers: Markers):
    """(form, options shown, any 'such as' shown) of a closed-IE instruction; form = "list" | "guidelines" |
    "examples" (this project's schema intros) | "bracket" (an [a, b, ...] list, as the release wrote) | None."""
    lines = instruction.split("\n")
    for i, line in enumerate(lines):
        head, sep, _ = line.partition(" [")
        if sep and head in markers.list_intros and line.endswith("]."):
            return "list", line[len(head) + 2:-2].split(", "), False
        kind = "guidelines" if line in markers.guideline_intros else "examples" if line in markers.example_intros \
            else None
        if kind:
            options, such_as = [], False
            for option_line in lines[i + 1:]:
                if not option_line.startswith("- "):
                    break
                body, has, _ = option_line[2:].partition(SUCH_AS)
                such_as |= bool(has)
                options.append(body.split(": ", 1)[0] if kind == "guidelines" else body)
            return kind, options, such_as
    best = None
    for m in re.finditer(r"\[([^\[\]]+)\]", instruction):
        inner = m.group(1)
        if inner in ("Answer", "Explanation") or "{" in inner:  # a format request's own brackets
            continue
        if best is None or inner.count(", ") > best.count(", "):
            best = inner
    if best is None:
        return None, [], False
    quoted = re.findall(r'"([^"]*)"', best)
    if quoted:  # the release quotes options when some carry 'such as' examples
        options = [q.split(RELEASE_SUCH_AS, 1)[0] for q in quoted]
        return "bracket", options, any(RELEASE_SUCH_AS in q for q in quoted)
    return "bracket", best.split(", "), False


def _label_key(label: str) -> str:
    """A label with case and separators ignored: the same key under every LABEL_VARIATIONS rewrite."""
    return re.sub(r"[-_.:/\s]+", "", label.lower())


def conversation_features(messages: list[dict], markers: Markers) -> dict:
    """What one conversation shows: whether it looks like an IE instance (the ODIE system prompt, a known
    output-format request or one quoting "[Answer]", or an assistant turn with "[Answer]:"), the task its format
    request names, its demonstrations, NA, explanation, answer format and schema."""
    system = messages[0]["content"] if messages[0]["role"] == "system" else None
    assistant = [m["content"] for m in messages if m["role"] == "assistant"]
    user = [m["content"] for m in messages if m["role"] == "user"]
    final = assistant[-1] if assistant else ""
    first = user[0] if user else ""
    odie = system is not None and system.strip() == ODIE_SYSTEM
    m = markers.request_re.search(first)  # the whole turn: the release put some requests after the text
    kind, tasks = markers.requests[m.group()] if m else ("", frozenset())
    if kind != "canonical" and isinstance(_literal(answer_part(final).strip()), (list, dict)):
        kind = "json"  # the release's JSON requests are not ours: its answers show it
    cut = first.find("\nText: ")  # the schema is in the instruction, before the text block
    return {"ie": odie or m is not None or "[Answer]" in first or any(ANSWER.strip() in a for a in assistant),
            "tasks": frozenset(["ODIE"]) if odie else tasks,
            "demos": max(0, len(user) - 1),
            "na_demos": sum(_is_na_answer(a, markers) for a in assistant[:-1]),
            "na": _is_na_answer(final, markers),
            "explained": final.lstrip().startswith(EXPLANATION.strip()),
            "format": None if odie else kind if kind in ("canonical", "json") else "other",  # ODIE: a table
            "schema": (None, [], False) if odie else _schema_options(first[:cut] if cut >= 0 else first, markers)}


# Per data set, the counts corpus_stats keeps. All add up over data sets, except the two maxima.
STAT_COUNTS = ("conversations", "ie", "ie_marked", "na", "fewshot", "demos", "na_demos", "explained",
               "format_canonical", "format_json", "format_other", "schema_ours", "schema_any", "guidelines",
               "such_as", "options", "symbols", "dropout_instances", "dropout_shown", "dropout_offered", "words",
               "words_max", "tokens", "tokens_max")
STAT_MAXIMA = ("words_max", "tokens_max")


def _count_instance(st: Counter, task: str, f: dict) -> None:
    """Add one instance's features to its data set's counts (the schema figures only for closed IE)."""
    st["ie"] += 1
    st["fewshot"] += f["demos"] > 0
    st["demos"] += f["demos"]
    st["na_demos"] += f["na_demos"]
    st["na"] += f["na"]
    st["explained"] += f["explained"]
    if f["format"]:
        st[f"format_{f['format']}"] += 1
    form, options, such_as = f["schema"]
    if task in CLOSED_TASKS and form:
        st["schema_any"] += 1
        st["schema_ours"] += form != "bracket"
        st["guidelines"] += form == "guidelines"
        st["such_as"] += such_as
        st["options"] += len(options)
        st["symbols"] += sum(o in SYMBOLS for o in options)


def _full_option_list(task: str, f: dict) -> list[str] | None:
    """The options of an instance that shows its whole schema but for class dropout (a plain list: no cut to 10
    or 15 options for guidelines or examples), in a task whose schema is the data set's inventory; else None."""
    form, options, such_as = f["schema"]
    return options if task in ONE_INVENTORY_TASKS and form in ("list", "bracket") and not such_as else None


def corpus_stats(conversations, tokenizer=None, tasks: dict | None = None, markers: Markers | None = None) -> dict:
    """The statistics of a corpus from its conversations' text: {"datasets": {name: {"task", "kind" (ie |
    general), counts of STAT_COUNTS}}, "tokenizer": bool}. A data set is IE when most of its conversations look
    like IE instances (ie_marked), and then all of them are its instances; its task is the one most of its format
    requests name (RC and RE share the canonical one: the other requests decide; "RC/RE" when none does), "?"
    when no request names one, or tasks[name] when given. With a tokenizer, lengths also in tokens, as
    tokenize_chat counts them."""
    markers = markers or stats_markers()
    counter = tokenizer if tokenizer is None or isinstance(tokenizer, TokenCounter) else TokenCounter(tokenizer)
    rows, feats = defaultdict(Counter), defaultdict(list)
    for c in conversations:
        name, msgs = c["dataset"], c["messages"]
        f = conversation_features(msgs, markers)
        feats[name].append(f)
        row = rows[name]
        row["conversations"] += 1
        row["ie_marked"] += f["ie"]
        words = sum(len(m["content"].split(" ")) for m in msgs)
        row["words"] += words
        row["words_max"] = max(row["words_max"], words)
        if counter is not None:
            n = counter(msgs)[0]
            row["tokens"] += n
            row["tokens_max"] = max(row["tokens_max"], n)
    out = {"datasets": {}, "tokenizer": counter is not None}
    for name in sorted(rows):
        st = rows[name]
        ie = st["ie_marked"] * 2 > st["conversations"]
        votes = Counter("/".join(sorted(f["tasks"])) for f in feats[name] if f["tasks"])
        single = Counter({t: n for t, n in votes.items() if "/" not in t})
        task = (tasks or {}).get(name) or (single or votes or Counter({"?": 1})).most_common(1)[0][0]
        if ie:
            lists = [o for o in (_full_option_list(task, f) for f in feats[name]) if o is not None]
            inventory = {_label_key(o) for options in lists for o in options if o not in SYMBOLS}
            for f in feats[name]:
                _count_instance(st, task, f)
            st["dropout_instances"] = len(lists)
            st["dropout_shown"] = sum(map(len, lists))
            st["dropout_offered"] = len(lists) * len(inventory)
        out["datasets"][name] = {"task": task if ie else "", "kind": "ie" if ie else "general",
                                 **{k: st[k] for k in STAT_COUNTS}}
    return out


def _sum_rows(rows) -> Counter:
    total = Counter()
    for r in rows:
        for k in STAT_COUNTS:
            total[k] = max(total[k], r[k]) if k in STAT_MAXIMA else total[k] + r[k]
    return total


def stats_rates(s, task: str, tokenizer: bool) -> dict:
    """The rates of one row of counts (a data set, a task, or all IE) as numbers (percent, means) or a string
    saying why there is none. task: the row's task, "IE" for all IE tasks together."""
    def pct(a, b, why="none to count"):
        return round(100 * a / b, 1) if b else f"-: {why}"
    n = s["ie"]
    extractive = task not in ("ODIE",)
    closed = task in CLOSED_TASKS or task == "IE"
    schema_figures = ("guidelines %", "such as %", "symbols % of options", "class dropout % (est.)")
    r = {"instances": n}
    r["NA %"] = pct(s["na"], n) if extractive else "-: ODIE has no NA"
    r["few-shot %"] = pct(s["fewshot"], n) if extractive else "-: ODIE has no demonstrations"
    r["demos per few-shot"] = round(s["demos"] / s["fewshot"], 2) if s["fewshot"] else "-: no few-shot instance"
    r["NA demos %"] = pct(s["na_demos"], s["demos"], "no demonstration")
    r["explained %"] = pct(s["explained"], n)
    for f in ("canonical", "json", "other"):
        r[f"{f} %"] = pct(s[f"format_{f}"], n) if extractive else "-: ODIE answers a table"
    if task == "?":
        r.update(dict.fromkeys(schema_figures, f"{NOT_INFERABLE} (task unknown: give --task NAME=TASK)"))
    elif not closed:
        r.update(dict.fromkeys(schema_figures, "-: no schema (open IE / ODIE)"))
    else:
        r["guidelines %"] = pct(s["guidelines"], s["schema_any"]) if s["schema_ours"] else \
            f"{NOT_INFERABLE} (no schema in this project's rendering)"
        r["such as %"] = pct(s["such_as"], s["schema_any"]) if s["schema_any"] else \
            f"{NOT_INFERABLE} (no schema recognised)"
        r["symbols % of options"] = pct(s["symbols"], s["options"]) if s["options"] else \
            f"{NOT_INFERABLE} (no schema recognised)"
        r["class dropout % (est.)"] = pct(s["dropout_offered"] - s["dropout_shown"], s["dropout_offered"]) \
            if s["dropout_offered"] else f"{NOT_INFERABLE} (the label inventory varies per instance in " \
                                         f"{'EAE/ERE' if task != 'IE' else 'these tasks'})"
    conv = s["conversations"]
    r["words mean"] = round(s["words"] / conv, 1) if conv else "-"
    r["words max"] = s["words_max"] if conv else "-"
    r["tokens mean"] = (round(s["tokens"] / conv, 1) if conv else "-") if tokenizer else \
        f"{NOT_INFERABLE} without --tokenizer"
    r["tokens max"] = (s["tokens_max"] if conv else "-") if tokenizer else f"{NOT_INFERABLE} without --tokenizer"
    return r


def stats_summary(st: dict) -> dict:
    """Per data set, per task and over all IE: counts and rates; the general-chat share."""
    ds = st["datasets"]
    ie = {k: v for k, v in ds.items() if v["kind"] == "ie"}
    general = {k: v for k, v in ds.items() if v["kind"] == "general"}
    by_task = defaultdict(list)
    for name, v in ie.items():
        by_task[v["task"]].append(v)
    order = {t: i for i, t in enumerate(TASKS)}
    tasks = sorted(by_task, key=lambda t: (order.get(t, len(TASKS)), t))
    total_ie, total_all = _sum_rows(ie.values()), _sum_rows(ds.values())
    n_conv, n_general = total_all["conversations"], sum(v["conversations"] for v in general.values())
    tok = st["tokenizer"]
    odie = _sum_rows(by_task.get("ODIE", []))
    non_odie = _sum_rows(v for t in tasks if t != "ODIE" for v in by_task[t])
    summary = {"conversations": n_conv, "ie instances": total_ie["ie"],
               "general chat": n_general, "general chat %": round(100 * n_general / n_conv, 1) if n_conv else "-",
               "general data sets": {k: v["conversations"] for k, v in general.items()},
               "conversations with IE markers in general data sets": sum(v["ie_marked"] for v in general.values()),
               "conversations without IE markers in IE data sets": sum(v["ie"] - v["ie_marked"] for v in ie.values()),
               "ODIE explained %": round(100 * odie["explained"] / odie["ie"], 1) if odie["ie"] else "-"}
    return {"summary": summary,
            "datasets": {name: {"task": v["task"], **stats_rates(v, v["task"], tok)} for name, v in ie.items()},
            "tasks": {t: stats_rates(_sum_rows(by_task[t]), t, tok) for t in tasks},
            "ie": stats_rates(non_odie if odie["ie"] else total_ie, "IE", tok) | {"instances": total_ie["ie"]},
            "all conversations": {k: stats_rates(total_all, "IE", tok)[k] for k in
                                  ("words mean", "words max", "tokens mean", "tokens max")}}


TABLE_RATES = ("NA %", "few-shot %", "demos per few-shot", "NA demos %", "explained %", "canonical %", "json %",
               "other %", "guidelines %", "such as %", "symbols % of options", "class dropout % (est.)", "words mean",
               "words max", "tokens mean", "tokens max")


def _cell(v) -> str:
    """A table cell: the number, or '-' / 'n/a' (the reason is in the JSON and the notes below the table)."""
    if isinstance(v, str):
        return "n/a" if v.startswith("n/a") else v.split(":", 1)[0]
    return str(v)


def dataset_table(summary: dict) -> str:
    """One file's statistics as the paper's Table 7 (instances per task and data set) with every rate measured
    from the text, as a markdown table; per-task and IE-total rows."""
    def row(task, name, r):
        return [task, name, str(r["instances"]), *(_cell(r[k]) for k in TABLE_RATES)]

    rows = []
    for task, trow in summary["tasks"].items():
        rows += [row(task, name, r) for name, r in summary["datasets"].items() if r["task"] == task]
        rows.append(row(task, "**all**", trow))
    ie, s = summary["ie"], summary["summary"]
    lines = [markdown_table(["task", "data set", "instances", *TABLE_RATES], rows + [row("IE", "**IE total**", ie)])]
    notes = sorted({f"{k} {v.removeprefix(NOT_INFERABLE).strip()}"
                    for r in [*summary["datasets"].values(), *summary["tasks"].values(), ie]
                    for k, v in r.items() if isinstance(v, str) and v.startswith("n/a")})
    lines += ["", f"Conversations: {s['conversations']}; IE instances: {s['ie instances']}; general chat: "
                  f"{s['general chat']} ({s['general chat %']}%); ODIE explained: {s['ODIE explained %']}%."
                  " IE total rates leave ODIE out (it has no NA, demonstrations or format request); "
                  "guidelines / such as / symbols / dropout are over closed-IE instances; dropout is estimated "
                  "from instances that show the full option list.",
              *([f"{NOT_INFERABLE}: " + "; ".join(notes) + "."] if notes else [])]
    return "\n".join(lines)


def compare_table(named: list[tuple[str, dict]]) -> str:
    """Several files side by side: one column per file, one row per figure (Table 7's instances per task and
    data set, then every rate over all IE)."""
    heads = ["figure", *(n for n, _ in named)]
    rows = [["conversations", *(str(s["summary"]["conversations"]) for _, s in named)],
            ["general chat", *(str(s["summary"]["general chat"]) for _, s in named)],
            ["general chat %", *(str(s["summary"]["general chat %"]) for _, s in named)],
            ["IE instances", *(str(s["summary"]["ie instances"]) for _, s in named)]]
    tasks = list(dict.fromkeys(t for _, s in named for t in s["tasks"]))
    for t in tasks:
        rows.append([f"{t} instances", *(str(s["tasks"].get(t, {}).get("instances", 0)) for _, s in named)])
        names = sorted({n for _, s in named for n, r in s["datasets"].items() if r["task"] == t})
        for name in names:
            rows.append([f"  {t} / {name}", *(str(s["datasets"].get(name, {}).get("instances", 0))
                                               for _, s in named)])
    for k in TABLE_RATES:
        rows.append([f"IE {k}", *(_cell(s["ie"][k]) for _, s in named)])
    rows.append(["ODIE explained %", *(str(s["summary"]["ODIE explained %"]) for _, s in named)])
    for k in ("words mean", "tokens mean"):
        rows.append([f"all conversations {k}", *(_cell(s["all conversations"][k]) for _, s in named)])
    return markdown_table(heads, rows)


# ----------------------------------------------------------------------------------------------------------------
# What only `data.py build` knows (data.ie_instruct's per-data-set counts), beside the table measured from the text

def write_build_report(cfg, source: str, general_source: str, mixed: list[dict], n_ie: int, stats: dict,
                       counts: Counter, skipped: list[str], tokenizer, seconds: float) -> dict:
    """`data.py build`'s statistics, written beside its output (OUT.stats.md, OUT.stats.json) and printed: the
    table measured from the text of what was built, by the code `data.py stats` runs on any file (so the two
    agree), then what only the build knows, then the Table 7 comparison. Returns the summary."""
    counts = counts + Counter(f"bad line: {_problem_kind(message)}" for message in skipped)
    measured = stats_summary(corpus_stats(mixed, tokenizer))
    table = (f"{dataset_table(measured)}\nGeneral chat source: {general_source}.\n\n"
             f"## Build-only facts (not in the text)\n\n{build_facts_table(stats)}\n\n"
             f"{table7_report(stats, cfg.dataset_caps)}")
    summary = {"out": str(cfg.out), "source": source, "ie_instances": n_ie, "general": len(mixed) - n_ie,
               "seconds": round(seconds, 2), "input_counts": dict(counts), "datasets": stats, "statistics": measured,
               "table7_absent": [n for n in TABLE7_INSTANCES if n not in stats], "config": dataclasses.asdict(cfg)}
    stem = Path(cfg.out).with_suffix("") if cfg.out.endswith(".jsonl") else Path(cfg.out)
    with atomic_file(f"{stem}.stats.md") as tmp:
        tmp.write_text(f"# IEInstruct statistics ({source})\n\n{table}\n", encoding="utf-8")
    with atomic_file(f"{stem}.stats.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1, default=dict) + "\n", encoding="utf-8")
    print(table)
    if counts:
        print(f"input: {json.dumps(counts)}" + (f"; first bad line: {skipped[0]}" if skipped else ""))
    print(f"built in {seconds:.1f}s; statistics in {stem}.stats.md")
    return summary


def _problem_kind(message: str) -> str:
    """A short class of a validation message, for counting skipped lines."""
    for kind in ("malformed JSON", "unknown task", "outside the text", "has keys", "not in the record's labels"):
        if kind in message:
            return {"has keys": "missing or extra field"}.get(kind, kind)
    return "other problem"


def build_facts_table(stats: dict) -> str:
    """What a build knows that its output's text cannot show (the rest of the statistics table is measured from the
    text by corpus_stats): per data set and per task, the records read and their NA share, what was dropped
    or left unused, demonstrations removed for length, labels without a guideline, LLM explanations used."""
    cols = ["dropped: NA over the cap", "dropped: too long", "not used: data set cap",
            "demonstrations removed for length", "labels without a guideline", "LLM explanations used"]

    def row(task, name, s):
        na = f"{100 * s['na_records'] / s['records']:.1f}" if s["records"] else "-"
        return [task, name, str(s["records"]), na, *(str(s[c]) for c in cols)]

    rows, totals = [], defaultdict(Counter)
    for name in sorted(stats, key=lambda k: (TASKS.index(stats[k]["task"]), k)):
        rows.append(row(stats[name]["task"], name, stats[name]))
        totals[stats[name]["task"]].update({k: v for k, v in stats[name].items() if k != "task"})
    rows += [row(task, "**all**", totals[task]) for task in TASKS if task in totals]
    return markdown_table(["task", "data set", "records", "NA% in", *cols], rows)


def table7_report(stats: dict, dataset_caps: str) -> str:
    """Instances built per Table 7 data set against the paper's count (all of a set's usable records when it has
    fewer), and the Table 7 sets absent from the input."""
    present = [n for n in TABLE7_INSTANCES if n in stats]
    absent = [n for n in TABLE7_INSTANCES if n not in stats]
    rows = ", ".join(f"{n} {stats[n]['instances']}/{TABLE7_INSTANCES[n]}"
                     + ("" if stats[n]["instances"] == TABLE7_INSTANCES[n] else
                        f" (cap {stats[n]['cap']})" if stats[n]["not used: data set cap"] else
                        f" (all usable: {stats[n]['records']} records, "
                        f"{stats[n]['dropped: NA over the cap'] + stats[n]['dropped: too long']} dropped)")
                     for n in present)
    return (f"Table 7 (instances built / paper, --dataset_caps {dataset_caps}): {rows or 'none present'}. "
            f"Table 7 sets absent: {', '.join(absent) or 'none'}.")


# ----------------------------------------------------------------------------------------------------------------
# The commands

@dataclass
class StatsConfig:
    files: list = flag((), "IEInstruct-format files (JSONL {dataset, id, messages}: ours, or the authors' "
                           "released IEInstruct); one column per file", positional=True, nargs="+")
    tokenizer: str = flag("", "SentencePiece model to count tokens with (e.g. assets/tokenizer.model or the LLaMA-2 "
                              "tokenizer); without it lengths are in words only")
    task: str = flag("", "tasks of data sets the text does not name, NAME=TASK,... (e.g. nyt11=RE)")
    json: bool = flag(False, "print the statistics as JSON instead of tables")
    by_dataset: bool = flag(True, "also print each file's per-data-set table (Table 7 with every rate)")


def stats(cfg: StatsConfig) -> dict:
    """`python data.py stats FILE [FILE ...]`: Table 7 and every augmentation rate, measured from the files."""
    tokenizer = None
    if cfg.tokenizer:
        import model
        tokenizer = model.Tokenizer(cfg.tokenizer)
    tasks = {}
    for pair in filter(None, cfg.task.split(",")):
        name, _, task = pair.partition("=")
        if task not in TASKS:
            sys.exit(f"error: --task {pair!r}: expected NAME=TASK with TASK one of {', '.join(TASKS)}")
        tasks[name.strip()] = task
    markers = stats_markers()
    named = [(str(f), stats_summary(corpus_stats(load_conversations(f), tokenizer, tasks, markers)))
             for f in cfg.files]
    if cfg.json:
        print(json.dumps({name: s for name, s in named}, indent=1))
    else:
        print(compare_table(named))
        if cfg.by_dataset:
            for name, s in named:
                print(f"\n## {name}\n\n{dataset_table(s)}")
    return dict(named)


@dataclass
class ShowConfig:
    file: str = flag("", "conversations to show (IEInstruct JSONL, IEFeedback, TULU-v2 JSONL)", positional=True)
    n: int = flag(3, "how many conversations to show")
    seed: int = flag(0, "which ones: a seeded random sample (-1: the first n)")
    tokenizer: str = flag(str(DEFAULT_TOKENIZER), "SentencePiece model to tokenise with (the one training uses)")
    max_len: int = flag(2048, "truncate like SFT does (docs/fidelity.md §2: 2048 tokens)")
    color: str = flag("auto", "mark trained tokens with a green background (always), with ⟦ ⟧ brackets (never), "
                              "or by whether stdout is a terminal (auto)", choices=["auto", "always", "never"])


def _piece_text(tokenizer, ids: list[int]) -> str:
    """The text of a run of tokens, piece by piece: "▁" shown as a space, byte pieces decoded, BOS/EOS named."""
    out, pending = [], bytearray()
    for i in ids:
        piece = "<s>" if i == tokenizer.bos_id else "</s>" if i == tokenizer.eos_id else tokenizer.id_to_piece(i)
        m = re.fullmatch(r"<0x([0-9A-Fa-f]{2})>", piece)
        if m:
            pending.append(int(m.group(1), 16))
            continue
        if pending:
            out.append(pending.decode("utf-8", errors="replace"))
            pending = bytearray()
        out.append(piece.replace("▁", " "))
    if pending:
        out.append(pending.decode("utf-8", errors="replace"))
    return "".join(out)


def marked_text(tokenizer, ids: list[int], labels: list[int], color: bool) -> str:
    """The tokens as text, trained runs (label != -100) marked: green background, or ⟦ ⟧ brackets."""
    out, k = [], 0
    while k < len(ids):
        j, trained = k, labels[k] != -100
        while j < len(ids) and (labels[j] != -100) == trained:
            j += 1
        text = _piece_text(tokenizer, ids[k:j])
        if trained:
            text = "\x1b[30;42m" + text.replace("\n", "\x1b[0m\n\x1b[30;42m") + "\x1b[0m" if color else \
                "⟦" + text + "⟧"
        out.append(text)
        k = j
    return "".join(out)


def show(cfg: ShowConfig) -> None:
    """`python data.py show FILE`: conversations as the model sees them, the tokens it is trained on marked."""
    import model
    tokenizer = model.Tokenizer(cfg.tokenizer)
    conversations = load_conversations(cfg.file)
    if cfg.seed < 0:
        picked = conversations[:cfg.n]
    else:
        picked = random.Random(cfg.seed).sample(conversations, min(cfg.n, len(conversations)))
    color = cfg.color == "always" or (cfg.color == "auto" and sys.stdout.isatty())
    for c in picked:
        for side in ("messages", "chosen", "rejected"):
            if side not in c:
                continue
            ids, labels = tokenize_chat(tokenizer, c[side], cfg.max_len)
            n_trained = sum(x != -100 for x in labels)
            title = f"{c['dataset']} / {c['id']}" + (f" / {side}" if side != "messages" else "")
            print(f"{'=' * 20} {title}: {len(ids)} tokens, {n_trained} trained "
                  f"({'green' if color else 'inside ⟦ ⟧'})")
            print(marked_text(tokenizer, ids, labels, color))
            print()


