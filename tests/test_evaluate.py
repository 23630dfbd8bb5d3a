"""evaluate.py: the score / report / build / run commands (paper section 5, appendix C).

What a user sees: `score --json` ends with one JSON line of percentages; bad predictions files fail with a message
naming the file, the line and what was expected; `report` gives the paper's tables with our numbers beside them and
the examples where the adelie and strict scorers disagree.
"""
import json
import re
import subprocess
import sys

import pytest

import evaluate as E
from conftest import REPO, shared_path


def released_records(name, n=None):
    lines = shared_path("data", "adelie_test_format", name).read_text().splitlines()
    return [json.loads(line) for line in lines[:n]]


def write_jsonl(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def matres_before_everywhere(n=None):
    records = released_records("zeroshot/MATRES.jsonl", n)
    for r in records:
        e1, e2 = re.search(r"The first event: (.*)\nThe second event: (.*)\n", r["messages"][0]["content"]).groups()
        r["output"] = f"[Answer]: ({e1}; before; {e2}); "
    return records


# ----------------------------------------------------------------------------------------------------------------
# score

def test_score_json_is_the_last_stdout_line(tmp_path):
    """The command-line contract: with --json the LAST stdout line is one JSON object, F1 etc. in percent. On the
    released MATRES zero-shot file, "before" everywhere scores 45.4 with the adelie scorer (spec section 6)."""
    path = write_jsonl(tmp_path / "matres.jsonl", matres_before_everywhere())
    proc = subprocess.run([sys.executable, "evaluate.py", "score", "--task", "matres", "--predictions", str(path),
                           "--json"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert round(result["f1"], 1) == 45.4
    assert (result["precision"], result["n"]) == (40.9, 1000)
    assert result["predictions_per_s"] > 0


def test_score_strict_and_adelie_on_released_fewnerd(capsys):
    """Gold as output (with the [Answer]: marker the format asks for): 100 with both scorers; the strict scorer
    counts every gold entity, the adelie one drops location_GPE (spec section 6)."""
    records = released_records("zeroshot/few-nerd-supervised.jsonl", 200)
    for r in records:
        r["output"] = "[Answer]: " + r["messages"][-1]["content"]
    outputs = E.check_predictions(records, "p.jsonl")
    strict = E.score_predictions("fewnerd", records, outputs, "strict")
    adelie = E.score_predictions("fewnerd", records, outputs, "adelie")
    assert strict.f1 == 100 and adelie.f1 == 100
    assert strict.summary()["format_followed"] == 100
    assert adelie.n_gold < strict.n_gold


def test_score_canonical_reports_each_task_type(tmp_path, capsys):
    from test_scorers import CANONICAL_GOLD_OUTPUTS, canonical_records
    records = [dict(r, output=o) for r, o in zip(canonical_records(), CANONICAL_GOLD_OUTPUTS)]
    path = write_jsonl(tmp_path / "canonical.jsonl", records)
    out = E.score_command(E.ScoreConfig(task="canonical", predictions=str(path), scorer="strict", json=True))
    assert out["f1"] == 100 and out["format_followed"] == 100
    assert set(out["per_task"]) == {"NER", "RC", "RE", "ED", "EAE", "ERE", "OpenIE", "ODIE"}
    with pytest.raises(E.BadInput, match="adelie scorers exist only for the paper's held-out tasks"):
        E.score_command(E.ScoreConfig(task="canonical", predictions=str(path), scorer="adelie"))


@pytest.mark.parametrize("damage,message", [
    (lambda rs: [{k: v for k, v in r.items() if k != "output"} if i == 2 else r for i, r in enumerate(rs)],
     r"p\.jsonl:3: record 2 has no \"output\""),
    (lambda rs: [dict(r, output=None) if i == 1 else r for i, r in enumerate(rs)],
     r"p\.jsonl:2: \"output\" must be a string, got NoneType"),
    (lambda rs: rs[:4], r"has 4 records but the test file .* has 5"),
    (lambda rs: [dict(r, id=99) if i == 3 else r for i, r in enumerate(rs)],
     r"p\.jsonl:4: record does not match .*t\.jsonl:4: different 'id'"),
    (lambda rs: [rs[1]] + rs[1:], r"p\.jsonl:2: id 1 repeats line 1"),
])
def test_bad_predictions_files_give_clear_errors(tmp_path, damage, message):
    test = released_records("zeroshot/MATRES.jsonl", 5)
    test_path = write_jsonl(tmp_path / "t.jsonl", test)
    preds = write_jsonl(tmp_path / "p.jsonl", damage([dict(r, output="[Answer]: (a; before; b)") for r in test]))
    with pytest.raises(E.BadInput, match=message):
        E.score_command(E.ScoreConfig(task="matres", predictions=str(preds), test=str(test_path)))


def test_bad_files_exit_with_the_message_not_a_traceback(tmp_path):
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"id": 0, "output": "x"}\nnot json\n')
    proc = subprocess.run([sys.executable, "evaluate.py", "score", "--task", "semeval", "--predictions", str(bad)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "p.jsonl:2: not valid JSON" in proc.stderr and "Traceback" not in proc.stderr


def test_records_without_the_gold_the_task_needs_are_refused(tmp_path):
    records = [{"id": 0, "text": "Jobs founded Apple .", "output": "[Answer]: (founded; Jobs; Apple)"}]
    with pytest.raises(E.BadInput, match=r"p:1: carb records need the gold \"items\""):
        E.score_predictions("carb", [dict(records[0], _line=1)], ["x"], "strict", "p")
    with pytest.raises(E.BadInput, match="no gold answer"):
        E.score_predictions("semeval", [dict(records[0], _line=1)], ["x"], "strict", "p")


# ----------------------------------------------------------------------------------------------------------------
# report

def test_report_tables_beside_the_paper_and_disagreements(tmp_path, capsys):
    """A run directory with FewNERD and MATRES predictions and a training log: the report shows the paper's rows and
    ours as "adelie / strict", lists examples the two scorers judge differently, and renders the PNGs."""
    run = tmp_path / "sft-demo"
    fewnerd = released_records("zeroshot/few-nerd-supervised.jsonl", 100)
    for r in fewnerd:  # location_GPE answered as location_other: strict misses them all; adelie never counted
        # the location_GPE gold, so it sees only wrong extra predictions (precision < 100, recall 100)
        r["output"] = "[Answer]: " + r["messages"][-1]["content"].replace("location_GPE", "location_other")
    write_jsonl(run / "eval" / "fewnerd.zeroshot.jsonl", fewnerd)
    write_jsonl(run / "eval" / "matres.zeroshot.jsonl", matres_before_everywhere(100))
    write_jsonl(run / "metrics.jsonl", [{"step": s, "loss": 2.0 / s, "lr": 1e-5, "grad_norm": 1.0,
                                         "tokens_per_s": 100.0} for s in range(1, 6)])
    markdown = E.report_command(E.ReportConfig(run_dirs=[str(run)], header=False))
    assert "| zeroshot | ADELIE-SFT (paper) | 32.7 | 21.8 | 24.5 | 45.8 | 47.8 | 34.5 |" in markdown
    row = next(line for line in markdown.splitlines() if line.startswith("| zeroshot | sft-demo"))
    fewnerd_cell = row.split("|")[3]
    adelie, strict = (float(x) for x in fewnerd_cell.split("/"))
    assert strict < adelie < 100
    assert "**sft-demo, fewnerd zeroshot**" in markdown and "location_other" in markdown
    assert (run / "report.md").read_text() == markdown
    assert (run / "eval_table.png").stat().st_size > 0 and (run / "curves.png").stat().st_size > 0


def test_report_says_how_to_get_plots_without_matplotlib(tmp_path, capsys, monkeypatch):
    run = tmp_path / "r"
    write_jsonl(run / "eval" / "matres.zeroshot.jsonl", matres_before_everywhere(10))
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    E.report_command(E.ReportConfig(run_dirs=[str(run)], header=False))
    assert 'pip install -e ".[plot]"' in capsys.readouterr().out
    assert not (run / "eval_table.png").exists()
