"""Reports of the evaluation and of IEFeedback: tooling around the method, not the method itself.

    python evaluate.py report runs/sft runs/dpo [--feedback runs/feedback]   (this module's `report_command`)
    python feedback.py stats FILE [FILE ...] [--gold FILE]                   (this module's `stats_main`)

- `make_report`: the paper's Tables 1-3 with our numbers beside the paper's (adelie / strict scorers), the examples
  where the two scorers disagree, the training curves, PNG plots; with two runs, the last minus the one before it
  (e.g. DPO - SFT) with paired bootstrap intervals (`paired_bootstrap`, `compare_runs`); the IEFeedback summary
  (`feedback_section`); every run's answers to the same held-out questions side by side.
- `summarize`, `format_table`: what feedback.py made, per data set (Table 8's pairs and Delta).
- `pair_stats`: Table 8 and the make-up of any IEFeedback file (ours or the authors' release).

A run directory, as `report` reads it (sft.py and dpo.py write the first two, `evaluate.py run --out` the third):
  RUN_DIR/config.json                  the training config (optional; "name" labels the run)
  RUN_DIR/metrics.jsonl                per optimizer step {"step","loss","lr","grad_norm","tokens_per_s"} (+ DPO
                                       "rewards_chosen","rewards_rejected","reward_margin","reward_accuracy")
  RUN_DIR/eval/{TASK}.{SETTING}.jsonl  predictions; TASK one of evaluate.HELD_OUT_TASKS, SETTING zeroshot|fewshot
`report` writes RUN_DIR/report.md, RUN_DIR/eval_table.png and RUN_DIR/curves.png.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

import ie_formats
import scorers as S
from config import flag, parse_config
from evaluate import HELD_OUT_TASKS, BadInput, check_predictions, read_jsonl, score_predictions, summarise

SETTINGS = ("zeroshot", "fewshot")  # the held-out test sets' settings, as predictions files are named

# The paper's numbers (F1 %), copied from its Tables 1-3 (Qi, Peng, Wang, Xu, Hou and Li, "ADELIE: Aligning Large
# Language Models on Information Extraction"). Columns as in the tables; AVG as printed.
PAPER_TABLE1_COLUMNS = ("fewnerd", "semeval", "richere-ed", "richere-eae", "matres", "AVG")
PAPER_TABLE1 = {  # held-out closed IE
    "zeroshot": {
        "GoLLIE": (29.7, 29.2, 21.0, 39.2, 25.9, 29.0),
        "InstructUIE": (33.5, 43.9, 40.8, 17.4, 30.2, 33.2),  # trained on SemEval (the paper's dagger)
        "ADELIE-SFT": (32.7, 21.8, 24.5, 45.8, 47.8, 34.5),
        "ADELIE-DPO": (32.1, 22.9, 26.9, 47.9, 47.9, 35.5),
    },
    "fewshot": {
        "LLAMA 2": (4.4, 8.2, 3.0, 8.9, 3.8, 5.7),
        "TULU 2": (24.4, 25.1, 11.8, 24.4, 16.8, 20.5),
        "GoLLIE": (30.0, 17.5, 19.1, 24.3, 32.6, 24.7),
        "InstructUIE": (35.6, 38.3, 42.7, 17.8, 10.4, 29.0),
        "GPT-3.5": (44.1, 24.0, 18.8, 28.7, 41.0, 31.3),
        "GPT-4": (52.2, 39.5, 23.8, 41.0, 59.0, 43.1),
        "ADELIE-SFT": (39.0, 33.8, 38.1, 54.2, 48.0, 42.6),
        "ADELIE-DPO": (37.9, 34.2, 39.7, 53.5, 48.1, 42.7),
    },
}
PAPER_TABLE2_COLUMNS = ("carb", "robust", "AVG")
PAPER_TABLE2 = {  # held-out open IE
    "zeroshot": {"ADELIE-SFT": (52.3, 35.3, 43.8), "ADELIE-DPO": (53.0, 36.6, 44.8)},
    "fewshot": {"LLAMA 2": (10.9, 0.2, 5.6), "TULU 2": (32.5, 11.0, 21.8), "GPT-3.5": (51.6, 27.5, 39.6),
                "ADELIE-SFT": (55.3, 38.5, 46.9), "ADELIE-DPO": (56.0, 39.2, 47.6),
                "OpenIE6 (fine-tuned)": (55.2, 35.8, 45.5)},
}
PAPER_TABLE3_COLUMNS = ("header_f1", "content_rougeL", "AVG")
PAPER_TABLE3 = {  # on-demand IE (zero-shot); ADELIE-DPO's AVG is missing from our copy of the table: (73.7+47.3)/2
    "zeroshot": {"LLAMA 2": (36.5, 8.2, 22.4), "TULU 2": (66.9, 47.4, 57.2), "GPT-3.5": (74.5, 51.4, 63.0),
                 "GPT-4": (74.5, 59.1, 66.8), "ODIE-Direct": (73.8, 45.9, 59.9), "ADELIE-SFT": (73.4, 47.3, 60.4),
                 "ADELIE-DPO": (73.7, 47.3, 60.5)},
}

# ----------------------------------------------------------------------------------------------------------------
# Reports: the paper's Tables 1-3 with our numbers beside the paper's, adelie and strict side by side

def _example_f1(entry) -> float:
    """One example's F1 in [0, 1] from its (gold, predicted, correct) counts; an NA example answered NA is 1."""
    g, p, c = entry[:3]
    if g == 0 and p == 0:
        return 1.0
    return S.prf(c, p, g)[2]


def disagreements(task: str, records: list[dict], outputs: list[str], adelie, strict, limit: int) -> tuple[int, list]:
    """(count, up to `limit` examples) where the adelie and strict scorers judge an example differently: its F1
    (micro tasks: from its own counts; CaRB and ODIE: its own score) differs by more than 0.005."""
    if task == "robust":  # per clique, not per record
        a = [x[2] for x in adelie.per_example]
        s = [x[2] for x in strict.per_example]
        keys = sorted({r["meta"]["clique"] for r in records}, key=[r["meta"]["clique"] for r in records].index)
        rows = [(f"clique {k}", "", "", x, y) for k, x, y in zip(keys, a, s)] if len(a) == len(s) else []
    else:
        if task in ("carb",):
            a, s = [x[2] for x in adelie.per_example], [x[2] for x in strict.per_example]
        elif task == "odie":
            a, s = adelie.per_example, strict.per_example
        else:
            a = [_example_f1(x) for x in adelie.per_example]
            s = [_example_f1(x) for x in strict.per_example]
        rows = []
        for r, out, x, y, ea, es in zip(records, outputs, a, s, adelie.per_example, strict.per_example):
            gold = r["messages"][-1]["content"] if r.get("messages") else json.dumps(r.get("items"))[:200]
            rows.append((str(r.get("id")), gold, out, x, y, ea, es))
    differ = [row for row in rows if abs(row[3] - row[4]) > 0.005]
    differ.sort(key=lambda row: -abs(row[3] - row[4]))
    return len(differ), differ[:limit]


def _short(text: str, n: int = 110) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n - 1] + "…"


def _fmt(x) -> str:
    return "–" if x is None else f"{x:.1f}"


def find_predictions(run_dir: Path) -> list[tuple[str, str, Path]]:
    """(task, setting, path) of every RUN_DIR/eval/{task}.{setting}.jsonl; other files are skipped (listed)."""
    found = []
    for path in sorted((run_dir / "eval").glob("*.jsonl")):
        parts = path.name[:-len(".jsonl")].split(".")
        if len(parts) == 2 and parts[0] in HELD_OUT_TASKS and (parts[1] in SETTINGS or parts[0] == "canonical"):
            found.append((parts[0], parts[1], path))
        else:
            print(f"report: skipping {path} (expected eval/TASK.SETTING.jsonl with TASK in {HELD_OUT_TASKS} and SETTING in "
                  f"{SETTINGS})", file=sys.stderr)
    return found


def run_name(run_dir: Path) -> str:
    config = run_dir / "config.json"
    if config.exists():
        try:
            name = json.loads(config.read_text()).get("name")
            if name:
                return str(name)
        except (json.JSONDecodeError, AttributeError):
            pass
    return run_dir.name or str(run_dir)


def evaluate_run(run_dir: Path, embed, limit: int) -> dict:
    """Score every predictions file of a run with both scorers: {(task, setting): {...}}."""
    results = {}
    for task, setting, path in find_predictions(run_dir):
        records = read_jsonl(path)
        outputs = check_predictions(records, path)
        entry = {"path": str(path), "n": len(records)}
        strict = score_predictions(task, records, outputs, "strict", path, embed)
        entry["strict"] = summarise(task, strict)
        if task != "canonical":
            adelie = score_predictions(task, records, outputs, "adelie", path, embed)
            entry["adelie"] = summarise(task, adelie)
            entry["n_disagree"], entry["disagree"] = disagreements(task, records, outputs, adelie, strict, limit)
        results[(task, setting)] = entry
    return results


def _metric(entry: dict | None, scorer: str, key: str = "f1"):
    if not entry or scorer not in entry:
        return None
    return entry[scorer].get(key)


def _table(title: str, columns: tuple, labels: dict, paper: dict, runs: dict, keys: dict) -> tuple[str, list]:
    """One paper-shaped table: the paper's rows, then each run's row as "adelie / strict" per column."""
    lines = [f"### {title}", "", "| setting | model | " + " | ".join(labels[c] for c in columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    rows_for_png = [["setting", "model", *[labels[c] for c in columns]]]  # first row: the column labels
    for setting in paper:
        for model, values in paper[setting].items():
            lines.append(f"| {setting} | {model} (paper) | " + " | ".join(_fmt(v) for v in values) + " |")
            rows_for_png.append([setting, f"{model} (paper)", *[_fmt(v) for v in values]])
        for name, results in runs.items():
            cells = []
            per_scorer = {"adelie": [], "strict": []}
            for c in columns[:-1]:
                task, key = keys[c]
                entry = results.get((task, setting))
                a, s = _metric(entry, "adelie", key), _metric(entry, "strict", key)
                per_scorer["adelie"].append(a)
                per_scorer["strict"].append(s)
                cells.append("–" if a is None and s is None else f"{_fmt(a)} / {_fmt(s)}")
            if all(x is None for x in per_scorer["adelie"] + per_scorer["strict"]):
                continue
            avg = [sum(v) / len(v) if None not in v else None for v in per_scorer.values()]
            cells.append("–" if avg == [None, None] else f"{_fmt(avg[0])} / {_fmt(avg[1])}")
            lines.append(f"| {setting} | {name} (ours: adelie / strict) | " + " | ".join(cells) + " |")
            rows_for_png.append([setting, f"{name} (adelie / strict)", *cells])
    return "\n".join(lines) + "\n", rows_for_png


def training_summary(rows: list[dict]) -> dict:
    """A run's metrics.jsonl in a few numbers: its optimizer steps and, as (start, end) pairs, the loss and (DPO)
    the reward accuracy and margin averaged over the first and the last tenth of the steps (at least one step)."""
    k = max(1, len(rows) // 10)
    summary = {"steps": len(rows)}
    for key in ("loss", "reward_accuracy", "reward_margin"):
        if rows and all(key in r for r in rows):
            summary[key] = tuple(sum(r[key] for r in part) / k for part in (rows[:k], rows[-k:]))
    return summary


def _training_table(run_dirs: list[Path]) -> list[str]:
    rows = []
    for d in run_dirs:
        path = d / "metrics.jsonl"
        if not path.exists():
            continue
        t = training_summary([json.loads(line) for line in path.read_text().splitlines() if line.strip()])
        if not t["steps"]:
            continue
        span = lambda key, scale=1.0: (f"{t[key][0] * scale:.3g} -> {t[key][1] * scale:.3g}" if key in t else "–")
        rows.append(f"| {run_name(d)} | {t['steps']} | {span('loss')} | {span('reward_accuracy', 100)} | "
                    f"{span('reward_margin')} |")
    if not rows:
        return []
    return ["### Training (metrics.jsonl: mean over the first tenth of the steps -> over the last tenth)", "",
            "| run | optimizer steps | loss | reward accuracy (%) | reward margin |", "|---|---|---|---|---|",
            *rows, ""]


# ----------------------------------------------------------------------------------------------------------------
# What a stage changed: a paired bootstrap of two runs' difference on the same questions, the IEFeedback summary,
# and the answers of every run to a few fixed questions side by side

def micro_f1(counts):
    """Micro F1 in percent of (..., n, 3) arrays of per-question (gold, predicted, correct) counts, over axis -2."""
    import numpy as np
    g, p, c = np.moveaxis(np.asarray(counts, dtype=float).sum(axis=-2), -1, 0)
    denominator = g + p
    return np.divide(200.0 * c, denominator, out=np.zeros_like(c), where=denominator > 0)


def paired_bootstrap(a, b, statistic, n_boot: int = 1000, seed: int = 0, level: float = 0.95
                     ) -> tuple[float, float, float]:
    """statistic(b) - statistic(a) on the same questions, with a paired percentile bootstrap interval.

    a, b: per-question rows (axis 0 = questions, in the same order in both). Each of n_boot resamples draws n
    question indices with replacement (numpy's default_rng(seed)) and takes the SAME indices from a and from b, so
    the interval reflects how the difference varies over questions, not how each run's score does. statistic maps
    an (n_boot, n, ...) array to n_boot values (and an (n, ...) array to one). Returns (difference on all
    questions, lower, upper) at the given level (percentiles (1-level)/2 and (1+level)/2 of the resampled
    differences)."""
    import numpy as np
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or not len(a):
        raise ValueError(f"paired_bootstrap: need two non-empty arrays of the same shape, got {a.shape} and {b.shape}")
    idx = np.random.default_rng(seed).integers(0, len(a), size=(n_boot, len(a)))
    diffs = statistic(b[idx]) - statistic(a[idx])
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(diffs, [tail, 100 - tail])
    return float(statistic(b) - statistic(a)), float(lo), float(hi)


def share(followed):
    """Percentage of 1s over axis -1 of an (..., n) array (the format-followed share)."""
    import numpy as np
    return 100.0 * np.asarray(followed, dtype=float).mean(axis=-1)


def per_question(records: list[dict], outputs: list[str]) -> dict[str, tuple[list, list]]:
    """{task type and "all": (per-question (gold, predicted, correct) counts, per-question format followed)} with
    the strict canonical scorer; within a task type the questions keep their file order."""
    scores = S.strict_canonical(records, outputs)
    return {t: (list(sc.per_example), [int(f) for f in sc.followed]) for t, sc in scores.items()}


def compare_runs(before: Path, after: Path, n_boot: int = 1000, seed: int = 0) -> dict:
    """after - before on the same canonical predictions file(s): per task type and overall, the F1 difference and
    the format-followed share difference, each with its paired bootstrap 95% interval. {setting: {task: {...}}}."""
    out = {}
    for task, setting, path in find_predictions(before):
        other = after / "eval" / path.name
        if task != "canonical" or not other.exists():
            continue
        ra, rb = read_jsonl(path), read_jsonl(other)
        if [r.get("id") for r in ra] != [r.get("id") for r in rb]:
            raise BadInput(f"{path} and {other}: not the same questions in the same order; a paired comparison "
                           f"needs both runs' answers to one test file")
        qa, qb = per_question(ra, check_predictions(ra, path)), per_question(rb, check_predictions(rb, other))
        out[setting] = {t: {"n": len(qa[t][0]),
                            "f1": paired_bootstrap(qa[t][0], qb[t][0], micro_f1, n_boot, seed),
                            "format": paired_bootstrap(qa[t][1], qb[t][1], share, n_boot, seed)}
                        for t in qa}
    return out


def _interval(d: tuple[float, float, float]) -> str:
    return f"{d[0]:+.1f} [{d[1]:+.1f}, {d[2]:+.1f}]"


def comparison_section(name_before: str, name_after: str, cmp: dict, n_boot: int, seed: int) -> list[str]:
    if not cmp:
        return []
    md = [f"### {name_after} - {name_before}, paired bootstrap (synthetic held-out split, strict scorer)", "",
          f"The difference on all questions, and in brackets its 95% interval: {n_boot} resamples of the questions "
          f"with replacement (seed {seed}), the same questions for both runs each time (report.paired_bootstrap). "
          f"An interval that holds 0 is a difference these questions cannot tell from none.", "",
          "| split | task | questions | F1 difference [95% interval] | format followed difference (points) |",
          "|---|---|---|---|---|"]
    for setting, tasks in cmp.items():
        for t in [*sorted(k for k in tasks if k != "all"), "all"]:
            e = tasks[t]
            md.append(f"| {setting} | {t} | {e['n']} | {_interval(e['f1'])} | {_interval(e['format'])} |")
    return md + [""]


def feedback_section(fb_dir: Path, n_examples: int = 3) -> list[str]:
    """IEFeedback as feedback.py wrote it (summary.json, ie_feedback.json, pairs.jsonl): Table 8's columns (pairs
    per data set, online / offline, the mean BLEU gap Delta) and a few example pairs with their scores."""
    summary_path, pairs_path, fb_path = fb_dir / "summary.json", fb_dir / "pairs.jsonl", fb_dir / "ie_feedback.json"
    missing = [p for p in (summary_path, pairs_path, fb_path) if not p.exists()]
    if missing:
        return ["## IEFeedback", "", f"not shown: {', '.join(map(str, missing))} missing (feedback.py writes them)", ""]
    summary = json.loads(summary_path.read_text())
    pairs = json.loads(fb_path.read_text(encoding="utf-8"))
    made = [json.loads(line) for line in pairs_path.read_text().splitlines() if line.strip()]
    if len(made) != len(pairs):
        raise BadInput(f"{pairs_path}: {len(made)} lines, but {fb_path} holds {len(pairs)} pairs (one line each)")
    md = ["## IEFeedback (paper section 4, Table 8)", "",
          f"{fb_path}: {len(pairs)} preference pairs. Delta = mean of chosen score - rejected score (character "
          f"BLEU against the gold answer, the gold scoring 1), as in Table 8.", "",
          "| task | data set | pairs | online | offline | Delta |", "|---|---|---|---|---|---|"]
    rows = [(d.get("task", ""), name, d) for name, d in summary["datasets"].items()
            if d.get("online_used", 0) + d.get("offline_used", 0)]
    for task, name, d in sorted(rows, key=lambda r: (r[0], r[1])) + [("all", "total", summary["total"])]:
        delta = "–" if d.get("delta") is None else f"{d['delta']:.2f}"
        md.append(f"| {task} | {name} | {d['online_used'] + d['offline_used']} | {d['online_used']} | "
                  f"{d['offline_used']} | {delta} |")
    md += ["", f"Mix: {summary.get('mix', '–')}", ""]
    # Example pairs: the first online pair, the first offline pair, then the next pairs in file order
    order = [next((i for i, m in enumerate(made) if m["kind"] == k), None) for k in ("online", "offline")]
    order = [i for i in order if i is not None]
    order += [i for i in range(len(made)) if i not in order]
    for i in sorted(order[:n_examples]):
        p, m = pairs[i], made[i]
        prompt = next((t["content"] for t in reversed(p["chosen"][:-1]) if t["role"] == "user"), "")
        md += [f"Pair {i} ({m['kind']}, {m['dataset']}, `{m['id']}`):", "",
               f"- prompt: `{_short(prompt, 300)}`",
               f"- chosen (BLEU {m['chosen_score']:.2f}{', the gold answer' if m['chosen_sample'] is None else ''}): "
               f"`{_short(p['chosen'][-1]['content'], 200)}`",
               f"- rejected (BLEU {m['rejected_score']:.2f}): `{_short(p['rejected'][-1]['content'], 200)}`", ""]
    return md


def side_by_side_section(run_dirs: list[Path], per_task: int = 1, file: str = "canonical.zeroshot.jsonl"
                         ) -> list[str]:
    """Every run's answer to the same few held-out questions beside the gold: the first `per_task` questions of
    each task type in the first run's `file` (fixed by the test file, so every report shows the same ids)."""
    runs = [(run_name(d), d / "eval" / file) for d in run_dirs if (d / "eval" / file).exists()]
    if not runs:
        return []
    answers = {name: {r["id"]: r.get("output", "") for r in read_jsonl(path)} for name, path in runs}
    first = read_jsonl(runs[0][1])
    chosen, taken = [], {}
    for r in first:
        if taken.get(r["task"], 0) < per_task:
            taken[r["task"]] = taken.get(r["task"], 0) + 1
            chosen.append(r)
    md = [f"## What each stage changed: answers to the same held-out questions ({file})", ""]
    for r in sorted(chosen, key=lambda r: r["task"]):
        prompt = next((t["content"] for t in reversed(r["messages"][:-1]) if t["role"] == "user"), r.get("text", ""))
        md += [f"**{r['task']}** `{r['id']}`: `{_short(r.get('text') or prompt, 300)}`", "",
               f"- gold: `{_short(r['messages'][-1]['content'], 200)}`"]
        md += [f"- {name}: `{_short(answers[name].get(r['id'], '(no answer)'), 200)}`" for name, _ in runs]
        md.append("")
    return md


TABLE_LABELS = {"fewnerd": "FewNERD", "semeval": "SemEval", "richere-ed": "RichERE-ED", "richere-eae": "RichERE-EAE",
                "matres": "MATRES", "carb": "CaRB", "robust": "ROBUST", "header_f1": "Table header",
                "content_rougeL": "Table content", "AVG": "AVG"}


def make_report(run_dirs: list[Path], embed, embed_note: str, limit: int = 3, feedback_dir: Path | None = None,
                n_boot: int = 1000, boot_seed: int = 0, side_by_side: int = 1) -> tuple[str, dict, list]:
    """The markdown report of some runs, their results, and the table rows (for the PNG). With two runs or more,
    the last run minus the one before it (e.g. DPO - SFT) with paired bootstrap intervals; with feedback_dir, the
    IEFeedback summary; and every run's answers to the same few held-out questions (side_by_side per task type)."""
    runs = {run_name(d): evaluate_run(d, embed, limit) for d in run_dirs}
    md = ["# ADELIE held-out evaluation", "",
          "Our numbers are given as `adelie / strict`: the released ADELIE scorers (quirks included, comparable "
          "with the paper) and the strict scorers (docs/fidelity.md §5). Paper rows: Qi et al., Tables 1-3. A dash: "
          "not evaluated.", ""]
    t1, rows1 = _table("Table 1: held-out closed IE, F1 (%)", PAPER_TABLE1_COLUMNS, TABLE_LABELS, PAPER_TABLE1, runs,
                       {c: (c, "f1") for c in PAPER_TABLE1_COLUMNS})
    t2, rows2 = _table("Table 2: held-out open IE, F1 (%)", PAPER_TABLE2_COLUMNS, TABLE_LABELS, PAPER_TABLE2, runs,
                       {c: (c, "f1") for c in PAPER_TABLE2_COLUMNS})
    t3, rows3 = _table("Table 3: on-demand IE (%)", PAPER_TABLE3_COLUMNS, TABLE_LABELS, PAPER_TABLE3, runs,
                       {c: ("odie", c) for c in PAPER_TABLE3_COLUMNS})
    md += [t1, t2, t3]
    if embed is None and any(t == "odie" for r in runs.values() for t, _ in r):
        md.append(f"ODIE table header: {embed_note}\n")
    canonical = [(name, s, e) for name, r in runs.items() for (t, s), e in r.items() if t == "canonical"]
    rows_c = [["run", "split", "task", "P", "R", "F1", "format followed (%)"]]
    if canonical:
        md += ["### Canonical formats (synthetic held-out split), strict scorer", "",
               "| run | split | task | P | R | F1 | format followed (%) |", "|---|---|---|---|---|---|---|"]
        for name, split, e in canonical:
            for task, s in {**e["strict"]["per_task"], "all": e["strict"]}.items():
                row = [name, split, task, _fmt(s['precision']), _fmt(s['recall']), _fmt(s['f1']),
                       _fmt(s.get('format_followed'))]
                md.append("| " + " | ".join(row) + " |")
                rows_c.append(row)
        md.append("")
    if len(run_dirs) >= 2:
        before, after = run_dirs[-2], run_dirs[-1]
        md += comparison_section(run_name(before), run_name(after), compare_runs(before, after, n_boot, boot_seed),
                                 n_boot, boot_seed)
    md += _training_table(run_dirs)
    if feedback_dir is not None:
        md += feedback_section(Path(feedback_dir))
    if side_by_side > 0:
        md += side_by_side_section(run_dirs, side_by_side)
    md += ["## Where the two scorers disagree", ""]
    for name, results in runs.items():
        for (task, setting), e in sorted(results.items()):
            if "disagree" not in e:
                continue
            key = "f1" if task != "odie" else "content_rougeL"
            md.append(f"- **{name}, {task} {setting}**: {e['n_disagree']} of {e['n']} examples scored differently "
                      f"({'F1' if task != 'odie' else 'content'} adelie {_fmt(_metric(e, 'adelie', key))}, strict "
                      f"{_fmt(_metric(e, 'strict', key))}; outputs following the required format: "
                      f"{_fmt(_metric(e, 'strict', 'format_followed'))}%)")
            for row in e["disagree"]:
                rid, gold, out, a, s = row[:5]
                detail = ""
                if len(row) > 5 and isinstance(row[5], tuple) and len(row[5]) == 3 and task not in ("carb",):
                    detail = (f"; adelie gold/pred/correct {tuple(round(x, 2) for x in row[5])}, strict "
                              f"{tuple(round(x, 2) for x in row[6])}")
                md.append(f"  - `{rid}`: example score adelie {100 * a:.1f}, strict {100 * s:.1f}{detail}; gold "
                          f"`{_short(gold)}`; output `{_short(out)}`")
    md.append("")
    return "\n".join(md), runs, [("Table 1", rows1), ("Table 2", rows2), ("Table 3", rows3),
                                  ("Synthetic held-out split (strict scorer)", rows_c)]


def plot_eval_table(tables: list, path: Path) -> None:
    """The report's tables as one PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    tables = [(title, rows) for title, rows in tables if len(rows) > 1]
    heights = [0.6 + 0.28 * (len(rows) + 1) for _, rows in tables]
    fig, axes = plt.subplots(len(tables), 1, figsize=(13, sum(heights) + 0.2), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, (title, rows) in zip(axes[:, 0], tables):
        ax.axis("off")
        ax.set_title(title, loc="left", fontsize=10)
        tab = ax.table(cellText=rows[1:], colLabels=rows[0], loc="upper left", cellLoc="left")
        tab.auto_set_font_size(False)
        tab.set_fontsize(7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


CURVES = (("loss", "loss"), ("lr", "learning rate"), ("grad_norm", "gradient norm"), ("tokens_per_s", "tokens/s"),
          ("reward_margin", "reward margin (DPO)"), ("reward_accuracy", "reward accuracy (DPO)"),
          ("rewards_chosen", "reward chosen (DPO)"), ("rewards_rejected", "reward rejected (DPO)"))


def plot_curves(metrics_path: Path, path: Path) -> bool:
    """Training curves from metrics.jsonl (one panel per logged quantity) as a PNG; False if nothing to plot."""
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    panels = [(k, label) for k, label in CURVES if any(k in r for r in rows)]
    if not rows or not panels:
        return False
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cols = 2
    fig, axes = plt.subplots((len(panels) + 1) // cols, cols, figsize=(10, 2.6 * ((len(panels) + 1) // cols)),
                             squeeze=False)
    for ax, (key, label) in zip(axes.flat, panels):
        pts = [(r["step"], r[key]) for r in rows if key in r and r[key] is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("optimizer step", fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"{metrics_path.parent.name}: training curves", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


@dataclasses.dataclass
class ReportConfig:
    """Markdown tables shaped like the paper's Tables 1-3 (our numbers beside the paper's, adelie and strict side by
    side), the examples where the two scorers disagree, and PNG plots of the tables and training curves."""
    run_dirs: list = flag(None, "run directories (layout at the top of report.py)", positional=True, nargs="+")
    out: str = flag("", "also write the markdown here (default: report.md in the first run directory)")
    disagreements: int = flag(3, "examples listed per predictions file where the two scorers disagree")
    plots: bool = flag(True, "write eval_table.png and curves.png (needs matplotlib: pip install -e \".[plot]\")")
    header: bool = flag(True, "score the ODIE table header (loads all-MiniLM-L6-v2 from the eval extra)")
    feedback: str = flag("", "feedback.py's output directory (summary.json, ie_feedback.json, pairs.jsonl): adds the "
                             "IEFeedback summary (Table 8's columns) and example pairs")
    bootstrap: int = flag(1000, "resamples of the paired bootstrap of the last run minus the one before it")
    bootstrap_seed: int = flag(0, "seed of the paired bootstrap (a fixed seed: the same report every time)")
    side_by_side: int = flag(1, "held-out questions per task type whose answers every run shows beside the gold")


def report_command(cfg: ReportConfig) -> str:
    run_dirs = [Path(d) for d in cfg.run_dirs]
    for d in run_dirs:
        if not d.is_dir():
            raise BadInput(f"{d}: not a run directory")
    embed, note = None, "not requested (--no-header)"
    if cfg.header and any(t == "odie" for d in run_dirs for t, _, _ in find_predictions(d)):
        embed, note = S.load_minilm()
    markdown, _, tables = make_report(run_dirs, embed, note, cfg.disagreements, Path(cfg.feedback) if cfg.feedback
                                      else None, cfg.bootstrap, cfg.bootstrap_seed, cfg.side_by_side)
    out = Path(cfg.out) if cfg.out else run_dirs[0] / "report.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown)
    written = [str(out)]
    if cfg.plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("plots skipped: matplotlib is not installed (pip install -e \".[plot]\" installs it)")
        else:
            if any(len(rows) > 1 for _, rows in tables):
                plot_eval_table(tables, out.parent / "eval_table.png")
                written.append(str(out.parent / "eval_table.png"))
            for d in run_dirs:
                if (d / "metrics.jsonl").exists() and plot_curves(d / "metrics.jsonl", d / "curves.png"):
                    written.append(str(d / "curves.png"))
    print(markdown)
    print("wrote " + ", ".join(written))
    return markdown

# ----------------------------------------------------------------------------------------------------------------
# 5. What was made: summary.json and a table like the paper's Table 8

SUMMARY_KEYS = ("prompts", "prompts_too_long_for_model", "sampled", "samples", "samples_without_answer",
                "samples_cut_at_max_new_tokens", "online_eligible", "online_skipped_no_answer",
                "online_skipped_gap_too_small", "offline_eligible", "offline_skipped_gap_too_small",
                "offline_skipped_identical", "online_used", "offline_used")


def summarize(pool: list[dict], sampled: list[dict], scores: list[list[float]], online: list[dict],
              online_skipped: list[dict], offline: list[dict], offline_skipped: list[dict],
              mixed: list[dict], too_long: Counter | None = None) -> dict:
    """Per data set: prompts in the pool, too long (prompt + max_new_tokens over the model's context), sampled; samples without `[Answer]: `
    or cut at max_new_tokens; eligible pairs of each kind and skipped prompts by reason; pairs used in IEFeedback
    and their average score gap (Table 8's Delta: chosen score - rejected score, the gold answer scoring 1)."""
    rows = defaultdict(lambda: Counter(dict.fromkeys(SUMMARY_KEYS, 0)))
    tasks = {}
    for p in pool:
        rows[p["dataset"]]["prompts"] += 1
        tasks[p["dataset"]] = p["task"]
    for name, n in (too_long or {}).items():
        rows[name]["prompts_too_long_for_model"] += n
    for record, sc in zip(sampled, scores):
        row = rows[record["dataset"]]
        row["sampled"] += 1
        row["samples"] += len(sc)
        row["samples_without_answer"] += sum(s == -1.0 for s in sc)
        row["samples_cut_at_max_new_tokens"] += sum(not f for f in record["finished"])
    for kind, pairs, skipped in (("online", online, online_skipped), ("offline", offline, offline_skipped)):
        for p in pairs:
            rows[p["dataset"]][f"{kind}_eligible"] += 1
        for s in skipped:
            rows[s["dataset"]][f"{kind}_skipped_{s['reason']}"] += 1
    gaps = defaultdict(list)
    for p in mixed:
        rows[p["dataset"]][f"{p['kind']}_used"] += 1
        gaps[p["dataset"]].append(p["chosen_score"] - p["rejected_score"])
    datasets = {}
    for name in sorted(rows):
        datasets[name] = {"task": tasks.get(name, ""), **{k: rows[name][k] for k in SUMMARY_KEYS},
                          "delta": sum(gaps[name]) / len(gaps[name]) if gaps[name] else None}
    all_gaps = [g for name in gaps for g in gaps[name]]
    total = {k: sum(rows[name][k] for name in rows) for k in SUMMARY_KEYS}
    return {"datasets": datasets, "total": {**total, "delta": sum(all_gaps) / len(all_gaps) if all_gaps else None}}


TABLE_COLUMNS = [  # (header, summary key)
    ("prompts", "prompts"), ("too long", "prompts_too_long_for_model"), ("sampled", "sampled"),
    ("no [Answer]", "samples_without_answer"), ("cut", "samples_cut_at_max_new_tokens"),
    ("online ok", "online_eligible"), ("skip: no ans", "online_skipped_no_answer"),
    ("skip: gap", "online_skipped_gap_too_small"), ("offline ok", "offline_eligible"),
    ("skip: gap", "offline_skipped_gap_too_small"), ("skip: same", "offline_skipped_identical"),
    ("online", "online_used"), ("offline", "offline_used")]


def format_table(summary: dict) -> str:
    """The summary as text: per data set, prompts in the pool and sampled (the others do not fit the model's
    context); samples without `[Answer]: ` / cut at max_new_tokens;
    eligible online pairs and skipped prompts (no answer at all / gap <= min_gap); eligible offline pairs and
    skipped prompts (gap / rejected == gold); the pairs used (online, offline) and their mean gap Delta (Table 8)."""
    header = ["data set", "task"] + [h for h, _ in TABLE_COLUMNS] + ["Δ"]
    lines = []
    for name, row in [*summary["datasets"].items(), ("total", {"task": "", **summary["total"]})]:
        delta = "-" if row.get("delta") is None else f"{row['delta']:.2f}"
        lines.append([name, row["task"]] + [str(row[key]) for _, key in TABLE_COLUMNS] + [delta])
    widths = [max(len(r[c]) for r in [header] + lines) for c in range(len(header))]
    fmt = lambda r: "  ".join(v.ljust(w) if c < 2 else v.rjust(w) for c, (v, w) in enumerate(zip(r, widths)))
    rule = "-" * len(fmt(header))
    return "\n".join([fmt(header), rule, *map(fmt, lines[:-1]), rule, fmt(lines[-1])])


# ----------------------------------------------------------------------------------------------------------------
# 6. Auditing an IEFeedback file (`python feedback.py stats FILE [FILE ...]`): Table 8's pairs per data set, the
#    online/offline split, each pair's BLEU gap recomputed with `bleu`, identical pairs; measured from the file
#    (ours or the authors' release), one column per file.
#
#    The gold answer decides online vs offline (an offline pair's chosen IS the gold, section 4) and is what BLEU
#    compares with. It is known, for each pair, from (1) --gold FILE: conversations whose last turn is the gold
#    answer (an IEInstruct-format file, or our run's prompts.jsonl), matched to the pair by its prompt turns
#    (prompt_sha), so ids need not agree; else (2) the pair's own "messages" when they are its prompt turns plus a
#    final assistant turn (write_ie_feedback stores the gold there); else the pair has no known gold and its split
#    and gap are reported as not inferable.

def _final(messages: list[dict]) -> str:
    return messages[-1]["content"] if messages and messages[-1]["role"] == "assistant" else ""


def gold_index(paths) -> dict[str, str]:
    """prompt_sha -> gold answer, from files of conversations whose last turn is the gold answer."""
    import data
    from feedback import prompt_sha
    out = {}
    for path in paths:
        for c in data.load_conversations(path):
            msgs = c.get("messages")
            if msgs and msgs[-1]["role"] == "assistant":
                out[prompt_sha(msgs)] = msgs[-1]["content"]
    return out


def pair_stats(pairs: list[dict], gold: dict[str, str] | None = None, min_gap: float = 0.1) -> dict:
    """Per data set (task as its prompts' format requests name it, audit.corpus_stats) and in total: pairs; gold
    known (from --gold, from the pair's messages, or not); online / offline pairs (chosen == gold after stripping,
    as the chat format renders it); the mean BLEU gap (chosen score - rejected score, each `score_sample` against
    the gold, the gold scoring 1: Table 8's Delta) and pairs whose gap is not above min_gap; pairs whose chosen and
    rejected answers are identical; chosen / rejected answers without `[Answer]: `."""
    import audit
    from feedback import prompt_sha, score_sample, scored_answer
    gold = gold or {}
    tasks = {n: d["task"] for n, d in audit.corpus_stats([{"dataset": p["dataset"], "messages": p["chosen"]}
                                                         for p in pairs])["datasets"].items()}
    rows = defaultdict(Counter)
    gaps = defaultdict(list)
    for p in pairs:
        row = rows[p["dataset"]]
        row["pairs"] += 1
        chosen, rejected = _final(p["chosen"]), _final(p["rejected"])
        row["identical"] += chosen.strip() == rejected.strip()
        row["chosen_without_answer"] += scored_answer(chosen) is None
        row["rejected_without_answer"] += scored_answer(rejected) is None
        key, own = prompt_sha(p["chosen"]), p.get("messages")
        if key in gold:
            g = gold[key]
            row["gold_from_file"] += 1
        elif own and own[-1]["role"] == "assistant" and own[:-1] == p["chosen"][:-1]:
            g = own[-1]["content"]
            row["gold_from_messages"] += 1
        else:
            row["gold_unknown"] += 1
            continue
        if scored_answer(g) is None:  # a gold answer BLEU cannot read
            row["gold_without_answer"] += 1
            continue
        offline = chosen.strip() == g.strip()
        row["offline" if offline else "online"] += 1
        gap = (1.0 if offline else score_sample(chosen, g)) - score_sample(rejected, g)
        gaps[p["dataset"]].append((gap, offline))
        row["gap_at_most_min"] += gap <= min_gap

    def rates(row, gs):
        known = row["online"] + row["offline"]
        na = f"n/a: not inferable (no gold answer for {row['pairs'] - known} of {row['pairs']} pairs: give --gold)"

        def mean(xs):
            return round(sum(xs) / len(xs), 4) if xs else "-"
        return {**{k: row[k] for k in ("pairs", "gold_from_file", "gold_from_messages", "gold_unknown",
                                       "gold_without_answer", "online", "offline", "gap_at_most_min", "identical",
                                       "chosen_without_answer", "rejected_without_answer")},
                "online %": round(100 * row["online"] / known, 1) if known == row["pairs"] and known else na,
                "gap mean": mean([g for g, _ in gs]) if known else na,
                "gap mean online": mean([g for g, off in gs if not off]) if known else na,
                "gap mean offline": mean([g for g, off in gs if off]) if known else na,
                "identical %": round(100 * row["identical"] / row["pairs"], 1) if row["pairs"] else "-"}

    datasets = {name: {"task": tasks.get(name, "?"), **rates(rows[name], gaps[name])} for name in sorted(rows)}
    total = Counter()
    for r in rows.values():
        total.update(r)
    return {"datasets": datasets, "total": rates(total, [g for gs in gaps.values() for g in gs]),
            "min_gap": min_gap}


PAIR_FIGURES = ("pairs", "online", "offline", "online %", "gap mean", "gap mean online", "gap mean offline",
                "gap_at_most_min", "identical", "identical %", "gold_from_file", "gold_from_messages", "gold_unknown",
                "chosen_without_answer", "rejected_without_answer")


def _cell(v) -> str:
    return "n/a" if isinstance(v, str) and v.startswith("n/a") else str(v)


def pair_stats_tables(named: list[tuple[str, dict]]) -> str:
    """The files side by side (Table 8's pairs per data set, then the totals), and each file's per-data-set table."""
    heads = ["figure", *(n for n, _ in named)]
    rows = []
    names = sorted({(s["datasets"][n]["task"], n) for _, s in named for n in s["datasets"]},
                   key=lambda tn: (ie_formats.TASKS.index(tn[0]) if tn[0] in ie_formats.TASKS else 99, tn[1]))
    for task, name in names:
        rows.append([f"{task} / {name} pairs", *(str(s["datasets"].get(name, {}).get("pairs", 0)) for _, s in named)])
    rows += [[k, *(_cell(s["total"][k]) for _, s in named)] for k in PAIR_FIGURES]
    out = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads), *("| " + " | ".join(r) + " |" for r in rows)]
    for file, s in named:
        cols = ["task", "data set", "pairs", "online", "offline", "gap mean", "identical"]
        out += ["", f"## {file}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for name, d in s["datasets"].items():
            out.append("| " + " | ".join([d["task"], name, *(_cell(d[k]) for k in cols[2:])]) + " |")
        notes = sorted({v for d in [*s["datasets"].values(), s["total"]] for v in d.values()
                        if isinstance(v, str) and v.startswith("n/a")})
        out += [f"gap = chosen score - rejected score, character BLEU against the gold answer (the gold scores 1); "
                f"gap_at_most_min = pairs whose gap is not above {s['min_gap']}."] + notes
    return "\n".join(out)


@dataclasses.dataclass
class PairStatsConfig:
    files: list = flag((), "IEFeedback files (a JSON list, or JSONL, of {dataset, id, messages, chosen, rejected}: "
                           "ours, or the authors' released IEFeedback); one column per file", positional=True,
                       nargs="+")
    gold: str = flag("", "gold answers, comma-separated files of conversations whose last turn is the gold answer "
                         "(an IEInstruct-format file, or our run's OUT_DIR/prompts.jsonl), matched to pairs by "
                         "their prompt turns; default: each pair's own messages, when they end in an answer")
    min_gap: float = flag(0.1, "count pairs whose gap is not above this (section 4: 10%)")
    json: bool = flag(False, "print the statistics as JSON instead of tables")


def stats_main(argv=None) -> dict:
    """`python feedback.py stats FILE [FILE ...]`: Table 8 and the make-up of IEFeedback files."""
    import data
    cfg, _ = parse_config(PairStatsConfig, argv, prog="python feedback.py stats",
                          description=stats_main.__doc__.split("\n")[0])
    gold = gold_index([p for p in cfg.gold.split(",") if p]) if cfg.gold else {}
    named = []
    for f in cfg.files:
        pairs = [p for p in data.load_conversations(f)]
        bad = [p["id"] for p in pairs if "chosen" not in p]
        if bad:
            sys.exit(f"error: {f}: {len(bad)} entries without chosen/rejected (first id {bad[0]}): not IEFeedback")
        named.append((str(f), pair_stats(pairs, gold, cfg.min_gap)))
    print(json.dumps(dict(named), indent=1) if cfg.json else pair_stats_tables(named))
    return dict(named)
