"""Held-out evaluation of ADELIE (paper section 5 and appendix C; docs/fidelity.md §5): test sets, generation, scoring
with the released ADELIE scorers ("adelie") and with scorers that are right ("strict"), and reports.

    python evaluate.py build  --task semeval --source ../shared/data/semeval2010_task8 --shots 4 \
                              --out eval/semeval.fewshot.jsonl
    python evaluate.py run    --model runs/sft/final --test eval/semeval.fewshot.jsonl \
                              --out runs/sft/eval/semeval.fewshot.jsonl
    torchrun --standalone --nproc_per_node 8 evaluate.py run ...   (prompts split across ranks, results in order)
    python evaluate.py score  --task semeval --predictions runs/sft/eval/semeval.fewshot.jsonl --scorer adelie --json
    python evaluate.py report runs/sft runs/dpo                    (markdown Tables 1-3 + PNG plots; dpo - sft
                                                                    with paired bootstrap intervals;
                                                                    --feedback DIR: the IEFeedback summary)
    python evaluate.py COMMAND --help                              (every flag)

The paper's steps, where they are:
  test sets (section 5.1, appendix C.1: held-out sets, zero-shot and 4/5-shot, Table 9 format requests, NA <= 20%,
  1000 per set, seed 24) .......................................... `build_test_set`
  inference (appendix C.1: temperature 0.01, stop at EOS; the release's
  prompt template, user turns unstripped: data.render_eval_prompt) .. `run_generation`, `prompt_ids`
  metrics (appendix C.1; the released scorers' rules in scorers.py) . `score_predictions`
  Tables 1-3; what DPO changed (paired bootstrap over questions) .... report.py (`evaluate.py report`)

Files:
  test file         JSON lines, one record per question: the unified IE record (docs/design.md) when built from raw
                    data, or ADELIE's released record {"datasets","id","messages"}; `messages` ends with the gold
                    assistant answer; the prompt is every message before it.
  predictions file  the test file with an "output" string added to each record (any model: ours or e.g. vLLM's);
                    `report` reads them as RUN_DIR/eval/{TASK}.{SETTING}.jsonl (report.py).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

import llm
import scorers as S
from config import apply_preset, flag, parse_config, preset_flag, settings_line
from robust import atomic_file, read_appendable_jsonl, run_main

# The held-out tasks (paper section 5.1), plus "canonical": any task type in the canonical formats (the synthetic
# held-out split of the embedded default), scored per task type from each record's "task" and "items".
CLOSED_TASKS = ("fewnerd", "semeval", "richere-ed", "richere-eae", "matres")
OPEN_TASKS = ("carb", "robust")
HELD_OUT_TASKS = CLOSED_TASKS + OPEN_TASKS + ("odie", "canonical")


class BadInput(ValueError):
    """A test or predictions file that cannot be scored as it is; the message says where and why."""


# ----------------------------------------------------------------------------------------------------------------
# Files: JSON lines in, JSON lines out

def read_jsonl(path) -> list[dict]:
    """Records of a JSON-lines file; a line that is not a JSON object raises naming the file and the line."""
    path = Path(path)
    if not path.exists():
        raise BadInput(f"{path}: no such file")
    records = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise BadInput(f"{path}:{lineno}: not valid JSON ({e.msg}, column {e.colno})") from None
            if not isinstance(obj, dict):
                raise BadInput(f"{path}:{lineno}: expected a JSON object (one record per line), got "
                               f"{type(obj).__name__}")
            obj["_line"] = lineno
            records.append(obj)
    return records


def write_jsonl(records, path) -> None:
    """Write records (without our "_line" bookkeeping) atomically: a temporary file, then a rename."""
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps({k: v for k, v in r.items() if k != "_line"}, ensure_ascii=False) + "\n")


def _where(path, record) -> str:
    return f"{path}:{record.get('_line', '?')}"


# ----------------------------------------------------------------------------------------------------------------
# Test sets (paper section 5.1, appendix C.1)

# ADELIE's released test prompts (../shared/data/adelie_test_format, MANIFEST.md): file per task; few-shot = 4 demos.
RELEASED_FILES = {"fewnerd": "few-nerd-supervised.jsonl", "semeval": "semeval.jsonl", "matres": "MATRES.jsonl",
                  "odie": "ondemand.jsonl"}
RELEASED_SHOTS = 4

# Building from raw data: the ie_formats data set of each task (ODIE: instructie), read from --source (the data set's
# folder, laid out as ie_formats.DATASETS' "splits" say). Demonstrations come from the training split (CaRB: dev);
# ODIE is evaluated zero-shot only (paper section 5.1); ROBUST has no training split: --demo_source (CaRB's dev set).
DEMO_NA_MAX = 0.1  # NA share of the demonstration pool (the release's EXAM_NA_RATE for its held-out sets)


@dataclasses.dataclass
class BuildConfig:
    """Write a held-out test file: ADELIE's released prompts as they are, or built from raw data with our prompts and
    the paper's Table 9 format requests."""
    task: str = flag("", "held-out task (canonical: unified IE records of any task, e.g. synthetic.py's test split)",
                     choices=HELD_OUT_TASKS)
    source: str = flag("", "../shared/data/adelie_test_format (ADELIE's released prompts: fewnerd, semeval, matres, "
                       "odie), the raw data set's folder (e.g. ../shared/data/semeval2010_task8) or file, or for "
                       "canonical a JSONL file of unified IE records")
    out: str = flag("", "test file to write (JSON lines)")
    shots: int = flag(0, "demonstrations per question, from the training split (section 5.1: 4 closed IE, 5 open IE; "
                      "the released few-shot files have 4)")
    seed: int = flag(24, "seed of the NA cap, the subsample and the demonstrations (docs/fidelity.md §5: 24)")
    max_records: int = flag(1000, "subsample to this many questions (ROBUST: cliques) (docs/fidelity.md §5: 1000)")
    na_max: float = flag(0.2, "NA questions at most this share of the test set (docs/fidelity.md §5: 20%)")
    demo_source: str = flag("", "where demonstrations come from when not the task's own training split (ROBUST: "
                            "e.g. ../shared/data/carb; canonical: a JSONL file of unified IE training records)")


def released_test_set(task: str, source: Path, shots: int) -> list[dict]:
    """ADELIE's own test records, unchanged ({"datasets","id","messages"}), plus "text" (the raw input)."""
    if task not in RELEASED_FILES:
        raise BadInput(f"{source} holds ADELIE's released prompts for {', '.join(RELEASED_FILES)} only, not {task}")
    if shots not in (0, RELEASED_SHOTS):
        raise BadInput(f"the released test prompts are zero-shot or {RELEASED_SHOTS}-shot; got --shots {shots}")
    path = source / ("zeroshot" if shots == 0 else "fewshot_test_history") / RELEASED_FILES[task]
    if not path.exists():
        raise BadInput(f"{path}: not found (MANIFEST.md: the released few-shot MATRES and ROBUST files are missing)")
    records = read_jsonl(path)
    for r in records:  # the raw input: the quoted text of the last user turn (the whole turn if none)
        last = [m for m in r["messages"] if m["role"] == "user"][-1]["content"]
        r["text"] = found.group(1) if (found := re.search(r"Text: '(.*)'", last, re.S)) else last
    return records


def cap_na(records: list[dict], na_max: float, rng) -> tuple[list[dict], int]:
    """Keep every answerable record and NA records (items == []) up to `na_max` of the result (seeded), in source
    order; returns (records, NA records dropped). The release's rule: n_NA = int(n_valid / (1 - r) * r)."""
    valid = [r for r in records if r["items"]]
    na = [r for r in records if not r["items"]]
    keep = min(len(na), int(len(valid) / (1.0 - na_max) * na_max)) if na_max < 1 else len(na)
    kept = set(id(r) for r in rng.sample(na, keep))
    return [r for r in records if r["items"] or id(r) in kept], len(na) - keep


def read_source(task: str, source: Path, split: str) -> list[dict]:
    """Unified IE records of one split of a held-out data set (ie_formats readers)."""
    import ie_formats
    name = "instructie" if task == "odie" else task
    entry = ie_formats.DATASETS[name]
    if source.is_file():
        paths = [source]
    else:
        files = entry["splits"][split]
        paths = [source / f.split("/", 1)[1] for f in (files if isinstance(files, list) else [files])]
        if task == "robust" and not paths[0].exists():
            paths = sorted(source.glob("*.json"))[:1] or paths
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise BadInput(f"{task}: missing {', '.join(missing)} (expected the data set's release layout, "
                       f"see ../shared/data/MANIFEST.md)")
    records = entry["reader"](paths if len(paths) > 1 else paths[0], split, dataset=name, **entry.get("kwargs", {}))
    label2id = (paths[0].parent / "label2id.json")
    if task == "richere-ed" and label2id.exists():  # the full RichERE type list, as ADELIE offers it
        types = [t for t in json.loads(label2id.read_text()) if t != "NA"]
        for r in records:
            r["labels"] = types
    return records


def demo_pool(task: str, cfg: BuildConfig, rng) -> list[dict]:
    """Candidate demonstrations: the training split (dev for CaRB), NA at most DEMO_NA_MAX of the pool."""
    if task == "odie":
        raise BadInput("odie has no demonstrations: the paper evaluates ODIE zero-shot")
    if task == "robust" and not cfg.demo_source:
        raise BadInput("robust has no training split for demonstrations; give --demo_source (e.g. "
                       "../shared/data/carb: CaRB's dev sentences)")
    source_task = "carb" if task == "robust" else task
    pool = read_source(source_task, Path(cfg.demo_source or cfg.source), "dev" if source_task == "carb" else "train")
    return cap_na(pool, DEMO_NA_MAX, rng)[0]


def subsample(records: list[dict], cfg: BuildConfig, rng, counts: Counter) -> list[dict]:
    """NA at most cfg.na_max, then at most cfg.max_records questions, seeded, in source order (docs/fidelity.md §5)."""
    records, dropped = cap_na(records, cfg.na_max, rng)
    counts["NA records dropped by the NA cap"] += dropped
    if len(records) > cfg.max_records:
        keep = set(id(r) for r in rng.sample(records, cfg.max_records))
        counts["records dropped by the subsample"] += len(records) - cfg.max_records
        records = [r for r in records if id(r) in keep]
    return records


def build_test_set(cfg: BuildConfig) -> tuple[list[dict], dict]:
    """The test records of one held-out task, each with its evaluation conversation in "messages" (prompt turns,
    then the gold canonical answer), and counts of what was dropped and why."""
    import random
    source = Path(cfg.source)
    if (source / "zeroshot").is_dir():
        return released_test_set(cfg.task, source, cfg.shots), {"released": 1}
    import data
    rng = random.Random(cfg.seed)
    if cfg.task == "canonical":  # any tasks: each data set capped and subsampled on its own
        source_records = data.read_records([source])
        counts = Counter({"source records": len(source_records)})
        records = [r for name in sorted({r["dataset"] for r in source_records}) for r in
                   subsample([x for x in source_records if x["dataset"] == name], cfg, rng, counts)]
        if cfg.shots > 0 and not cfg.demo_source:
            raise BadInput("canonical few-shot needs --demo_source: a JSONL file of unified IE training records")
        pool = cap_na(data.read_records([cfg.demo_source]), DEMO_NA_MAX, rng)[0] if cfg.shots > 0 else []
    else:
        records = read_source(cfg.task, source, "test")
        counts = Counter({"source records": len(records)})
        if cfg.task == "robust":  # cliques stay whole: they are the unit the ROBUST metric scores
            cliques = sorted({r["meta"]["clique"] for r in records})
            keep = set(rng.sample(cliques, min(cfg.max_records, len(cliques))))
            counts["cliques dropped by the subsample"] = len(cliques) - len(keep)
            records = [r for r in records if r["meta"]["clique"] in keep]
        else:
            records = subsample(records, cfg, rng, counts)
        pool = demo_pool(cfg.task, cfg, rng) if cfg.shots > 0 else []

    def schema(record):  # demonstrations share the question's data set and schema (EAE: its event type)
        return (record["dataset"] if cfg.task == "canonical" else "",
                record["query"]["event_type"] if record["task"] == "EAE" else tuple(record["labels"]))
    by_schema: dict = {}
    for d in pool:
        by_schema.setdefault(schema(d), []).append(d)
    prompts = data.load_prompts()
    for r in records:
        demos = []
        if cfg.shots > 0 and r["task"] != "ODIE":  # ODIE is zero-shot (section 5.1); else the same schema if any
            candidates = by_schema.get(schema(r)) or [d for d in pool if d["task"] == r["task"]]
            demos = random.Random(f"{cfg.seed}/{r['id']}").sample(candidates, min(cfg.shots, len(candidates)))
        r["messages"] = data.evaluation_conversation(r, demos, prompts, seed=cfg.seed)
        r["meta"] = {**r.get("meta", {}), "demos": [d["id"] for d in demos]}
    counts["test records"] = len(records)
    counts["NA test records"] = sum(not r["items"] for r in records)
    return records, counts


def build_command(cfg: BuildConfig) -> None:
    if not (cfg.task and cfg.source and cfg.out):
        raise BadInput("build needs --task, --source and --out")
    paper_shots = 5 if cfg.task in OPEN_TASKS else 4
    if cfg.task in OPEN_TASKS + CLOSED_TASKS and cfg.shots not in (0, paper_shots):
        print(f"note: the paper uses {paper_shots} demonstrations for {cfg.task} (section 5.1); building with "
              f"{cfg.shots}")
    records, counts = build_test_set(cfg)
    write_jsonl(records, cfg.out)
    print(f"wrote {len(records)} {cfg.task} test records ({cfg.shots}-shot) to {cfg.out}; " +
          ", ".join(f"{k}: {v}" for k, v in counts.items()))


# ----------------------------------------------------------------------------------------------------------------
# Generation (appendix C.1): every test prompt answered by the model, across torchrun ranks, resumable

@dataclasses.dataclass
class RunConfig(llm.ServeConfig):   # --backend openai --base_url URL: a serving engine answers (llm.py)
    """Answer every record of a test file with a model: the predictions file = the test records + "output"."""
    model: str = flag("", "checkpoint directory: Meta, Hugging Face or this project's (sft.py and dpo.py write "
                      "RUN_DIR/final)")
    tokenizer: str = flag("", "SentencePiece tokenizer.model (default: MODEL/tokenizer.model)")
    test: str = flag("", "test file (from `evaluate.py build`, or ADELIE's released test format); several "
                     "comma-separated files are answered in turn with one model load")
    out: str = flag("", "predictions file to write, one per --test file (comma-separated); put it at "
                    "RUN_DIR/eval/TASK.SETTING.jsonl for `report`")
    max_new_tokens: int = flag(2048, "new tokens per answer at most (docs/fidelity.md §5: 2048)")
    temperature: float = flag(0.01, "sampling temperature (appendix C.1: 0.01, effectively greedy); 0 = greedy")
    top_p: float = flag(1.0, "nucleus sampling threshold (1.0: off)")
    seed: int = flag(0, "sampling seed; prompt i draws from a stream seeded by (seed, i), whatever the ranks")
    batch_size: int = flag(16, "prompts decoded together on each rank (KV-cache batch)")
    save_every: int = flag(64, "prompts per chunk: each finished chunk is appended to OUT.partial/ (the resume point)")
    dtype: str = flag("auto", "weights dtype (auto: bfloat16 on CUDA, float32 on CPU)",
                      choices=("auto", "float32", "bfloat16", "float16"))
    limit: int = flag(0, "answer only the first N records (0: all)")
    prompt_template: str = flag("release", "how a prompt becomes ids: release (ADELIE's evaluation template: user "
                                           "turns as given, unstripped; data.render_eval_prompt) or training (the "
                                           "SFT rendering, every turn stripped; data.render_chat)",
                                choices=("release", "training"))
    preset: str = preset_flag()  # its "eval" section (config.PRESETS); paper (nothing replaced) with --model


def prompt_ids(tokenizer, messages: list[dict], template: str = "release") -> list[int]:
    """The ids the model is fed for a prompt (the conversation without its gold answer), by --prompt_template."""
    import data
    return (data.encode_eval_prompt if template == "release" else data.encode_prompt)(tokenizer, messages)


def prompt_text(messages: list[dict], template: str = "release") -> str:
    """The same prompt as text, for a server whose tokenizer adds the BOS (--backend openai): prompt_ids without it."""
    import data
    return data.render_eval_prompt(messages) if template == "release" else \
        data.render_chat(messages, add_generation_prompt=True)


def prompt_messages(record: dict, where: str) -> list[dict]:
    """The prompt of a test record: its messages without the final gold assistant turn."""
    msgs = record.get("messages")
    if not msgs or not isinstance(msgs, list):
        raise BadInput(f"{where}: no \"messages\" (the evaluation conversation)")
    msgs = msgs[:-1] if msgs[-1].get("role") == "assistant" else msgs
    if not msgs or msgs[-1].get("role") != "user":
        raise BadInput(f"{where}: the prompt must end with a user turn")
    return msgs


def _read_partial(partial: Path) -> dict[int, str]:
    """Outputs already written by any rank of an earlier (interrupted) run: {record index: output}. A line cut off
    by the interruption (the last one of a file) is cut off the file; it is generated again. Rank 0 only."""
    done = {}
    for path in sorted(partial.glob("rank*.jsonl")):
        for _, row in read_appendable_jsonl(path)[0]:
            done.setdefault(row["index"], row["output"])
    return done


def run_generation(cfg: RunConfig) -> None:
    """Answer each --test file with the model (loaded once), writing its --out predictions file."""
    import torch

    import model as llama
    import training
    tests, outs = [t for t in cfg.test.split(",") if t], [o for o in cfg.out.split(",") if o]
    if not (cfg.model and tests and outs):
        raise BadInput("run needs --model, --test and --out")
    if len(tests) != len(outs):
        raise BadInput(f"run got {len(tests)} --test files but {len(outs)} --out files; give one --out per --test")
    d = training.init_distributed()
    try:
        tokenizer = llama.Tokenizer(cfg.tokenizer or Path(cfg.model) / "tokenizer.model")
        dtype = getattr(torch, cfg.dtype) if cfg.dtype != "auto" else \
            torch.bfloat16 if d.device.type == "cuda" else torch.float32
        net = None if cfg.backend == "openai" else \
            llama.Transformer.from_pretrained(cfg.model, device=d.device, dtype=dtype).eval()
        for test, out in zip(tests, outs):
            answer_test_file(cfg, test, out, net, tokenizer, d)
    finally:
        training.cleanup_distributed()


def answer_test_file(cfg: RunConfig, test: str, out: str, net, tokenizer, d) -> None:
    """Split the prompts not yet answered across the ranks, decode them with model.py's batched KV-cache
    `generate`, append each finished chunk to OUT.partial/rank{r}.jsonl, then (rank 0) write OUT in test order."""
    import torch.distributed as dist

    import checkpoints
    import training
    records = read_jsonl(test)
    records = records[:cfg.limit] if cfg.limit > 0 else records
    prompts = [prompt_messages(r, _where(test, r)) for r in records]
    out, partial = Path(out), Path(out + ".partial")
    # The settings an interrupted run must share with its continuation.
    settings = {"test": str(Path(test).resolve()), "n": len(records), "model": str(Path(cfg.model).resolve()),
                "max_new_tokens": cfg.max_new_tokens, "temperature": cfg.temperature, "top_p": cfg.top_p,
                "seed": cfg.seed, "prompt_template": cfg.prompt_template}
    if cfg.backend == "openai":   # another sampler: its outputs are not mixed with model.py's
        settings |= {"backend": cfg.backend, "base_url": llm.public_url(cfg.base_url),
                     "served_model": cfg.served_model}
    if d.is_main:
        partial.mkdir(parents=True, exist_ok=True)
        stamp = partial / "settings.json"
        if stamp.exists() and json.loads(stamp.read_text()) != settings:
            raise BadInput(f"{partial} holds outputs of a run with other settings ({stamp.read_text().strip()}); "
                           f"delete it or rerun with those settings")
        stamp.write_text(json.dumps(settings))
    # Rank 0 reads what is done and tells the others, so every rank splits the same list of prompts left.
    shared = [sorted(_read_partial(partial)) if d.is_main else None]
    dist.broadcast_object_list(shared, src=0)
    done = set(shared[0])
    todo = [i for i in range(len(records)) if i not in done]
    mine = todo[d.rank::d.world_size]  # prompt i goes to rank i mod world among those left
    training.print0(d, f"run {test}: {len(records)} prompts, {len(done)} already answered (resumed), "
                       f"{len(todo)} to go on {d.world_size} rank(s)")
    ids = {i: prompt_ids(tokenizer, prompts[i], cfg.prompt_template) for i in mine}
    max_seq_len = net.args.max_seq_len if net is not None else checkpoints.read_model_args(cfg.model).max_seq_len
    too_long = [i for i in mine if len(ids[i]) >= max_seq_len]
    if too_long:
        raise BadInput(f"{len(too_long)} prompts do not fit the model's context of {max_seq_len} tokens, "
                       f"e.g. {_where(test, records[too_long[0]])} ({len(ids[too_long[0]])} tokens)")
    try:
        llm.sample_to_file(partial / f"rank{d.rank}.jsonl",
                           [(i, ids[i], prompt_text(prompts[i], cfg.prompt_template)) for i in mine],
                           lambda i, texts, finished: {"index": i, "output": texts[0]}, num_samples=1,
                           temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_new_tokens,
                           seed=cfg.seed, net=net, tokenizer=tokenizer, batch_size=cfg.batch_size,
                           chunk=cfg.save_every, concurrency=cfg.concurrency, context=max_seq_len,
                           client=llm.serving_client(cfg) if cfg.backend == "openai" else None,
                           progress=d.is_main, desc=f"generate (rank {d.rank})")
    except llm.LLMError as e:
        raise BadInput(str(e)) from None
    dist.barrier()
    if d.is_main:  # gather: every rank's answers, back in test order
        done = _read_partial(partial)
        missing = [i for i in range(len(records)) if i not in done]
        if missing:
            raise RuntimeError(f"{len(missing)} prompts have no output after generation (first: index "
                               f"{missing[0]}); rerun to resume")
        write_jsonl([dict(r, output=done[i]) for i, r in enumerate(records)], out)
        shutil.rmtree(partial)
        print(f"wrote {len(records)} predictions to {out}")
    dist.barrier()


# ----------------------------------------------------------------------------------------------------------------
# Scoring (appendix C.1; docs/fidelity.md §5): a predictions file -> the adelie or the strict scorer of scorers.py

def check_predictions(predictions: list[dict], path, test: list[dict] | None = None, test_path=None) -> list[str]:
    """The outputs of a predictions file, after checking that it is a test file with an "output" per record.

    With `test`, the predictions must be that test file's records, in order: same length, same id, same prompt.
    """
    if not predictions:
        raise BadInput(f"{path}: no records")
    for r in predictions:
        if "output" not in r:
            raise BadInput(f"{_where(path, r)}: record {r.get('id')!r} has no \"output\" (a predictions file is the "
                           f"test file with the model's answer added to each record as an \"output\" string)")
        if not isinstance(r["output"], str):
            raise BadInput(f"{_where(path, r)}: \"output\" must be a string, got {type(r['output']).__name__}")
    ids = [r.get("id") for r in predictions]
    if None not in ids:
        seen = {}
        for r, i in zip(predictions, ids):
            key = json.dumps([r.get("dataset", r.get("datasets")), i])
            if key in seen:
                raise BadInput(f"{_where(path, r)}: id {i!r} repeats line {seen[key]}: each test record must be "
                               f"answered once")
            seen[key] = r.get("_line", "?")
    if test is not None:
        if len(test) != len(predictions):
            raise BadInput(f"{path} has {len(predictions)} records but the test file {test_path} has {len(test)}: "
                           f"a predictions file must answer every test record, in order")
        for p, t in zip(predictions, test):
            for key in ("id", "messages", "text"):
                if p.get(key) != t.get(key):
                    raise BadInput(f"{_where(path, p)}: record does not match {_where(test_path, t)}: different "
                                   f"{key!r} (prediction id {p.get('id')!r}, test id {t.get('id')!r})")
    return [r["output"] for r in predictions]


def gold_answer(record: dict, where: str) -> str:
    """The gold answer of a test record: the content of its final assistant message."""
    msgs = record.get("messages")
    if not msgs or not isinstance(msgs, list) or msgs[-1].get("role") != "assistant":
        raise BadInput(f"{where}: no gold answer: \"messages\" must end with the assistant's gold answer")
    return msgs[-1]["content"]


def released_reference(answer: str) -> str:
    """A gold answer as ADELIE's released test files write it (what the adelie scorers expect): no `[Answer]:`
    marker and "" for NA (e.g. "Paris: location_GPE; ", "(dolphin; Whole and Component; tail)\\n")."""
    text = S.answer_part(answer, upto_next=False)
    return "" if S.normalise(text).rstrip(".; ") in S.NA_ANSWERS else text.lstrip()


def _require_items(record: dict, where: str, task: str) -> list:
    if "items" not in record:
        raise BadInput(f"{where}: {task} records need the gold \"items\" of the unified IE record (build the test "
                       f"file with `evaluate.py build --task {task}`)")
    return record["items"]


def open_ie_gold(record: dict, where: str, task: str) -> list:
    """CaRB extractions (predicate, [subject, object, *extra, time, location]) of an OpenIE record's gold."""
    out = []
    for item in _require_items(record, where, task):
        args = [item.get("subject", ""), item.get("object", ""), *item.get("extra", []),
                item.get("time", ""), item.get("location", "")]
        while args and not args[-1]:
            args.pop()
        out.append((item.get("predicate", ""), args))
    return out


_MATRES_EVENTS = re.compile(r"The first event: (.*)\nThe second event: (.*)\n")


def matres_gold(record: dict, where: str) -> tuple[str, list]:
    """(bare label for the adelie scorer, strict gold items) of a MATRES question."""
    if "items" in record:  # built by us: a unified ERE record
        items = record["items"]
        label = items[0]["relation"] if items else ""
        return label, S.record_gold_items({**record, "task": "ERE"})
    label = gold_answer(record, where).strip()  # ADELIE's released file: the bare label, events in the prompt
    found = _MATRES_EVENTS.search(record["messages"][0]["content"])
    if not found:
        raise BadInput(f"{where}: cannot find \"The first event: ...\\nThe second event: ...\" in the prompt")
    return label, S.matres_gold_items(label, *found.groups())


# The held-out task of a record's data set name (released files: "datasets"; files we build: "dataset"), so that
# predictions scored with the wrong --task are refused instead of scoring 0.00.
DATASET_TASKS = {**{t: t for t in CLOSED_TASKS + OPEN_TASKS + ("odie",)}, "few-nerd-supervised": "fewnerd",
                 "ondemand": "odie"}
# The micro-F1 held-out tasks: the task type their answers are written in, and their released scorer.
MICRO_TASKS = {"fewnerd": ("NER", S.adelie_fewnerd), "semeval": ("RC", S.adelie_semeval),
               "richere-ed": ("ED", S.adelie_richere_ed), "richere-eae": ("EAE", S.adelie_richere_eae)}


def check_task_matches(task: str, records: list[dict], golds: list[str], path) -> None:
    """Refuse predictions of another task: a record whose data set belongs to another held-out task, or (micro
    tasks, gold answers as text) gold answers none of which parses in the task's answer format."""
    for r in records:
        name = str(r.get("dataset", r.get("datasets", ""))).lower()
        other = DATASET_TASKS.get(name)
        if other is not None and other != task:
            raise BadInput(f"{_where(path, r)}: a record of data set {name!r} scored as --task {task}; expected "
                           f"--task {other}")
    if task in MICRO_TASKS and not all("items" in r for r in records):
        kind = MICRO_TASKS[task][0]
        parsed = [S.parse_answer(g, kind) for g in golds]
        unparsed = [g for g, p in zip(golds, parsed) if p.bad]
        if unparsed and not any(p.items and not p.bad for p in parsed):  # (NA gold answers parse in every format)
            raise BadInput(f"{path}: no gold answer parses in the {kind} answer format of --task {task} "
                           f"({len(unparsed)} of {len(golds)} do not, e.g. {unparsed[0][:80]!r}); expected "
                           f"predictions of {task}: are these of another task?")


def score_predictions(task: str, records: list[dict], outputs: list[str], scorer: str, path="predictions",
                      embed=None):
    """Score one predictions file: a `scorers.Score` (an `OdieScore` for odie; {task type: Score} for canonical)."""
    if task not in HELD_OUT_TASKS:
        raise BadInput(f"unknown task {task!r}; expected one of {', '.join(HELD_OUT_TASKS)}")
    if scorer not in ("adelie", "strict"):
        raise BadInput(f"unknown scorer {scorer!r}; expected adelie or strict")
    where = [_where(path, r) for r in records]
    if task == "canonical":
        if scorer == "adelie":
            raise BadInput("the adelie scorers exist only for the paper's held-out tasks; use --scorer strict")
        for r, w in zip(records, where):
            if "task" not in r:
                raise BadInput(f"{w}: canonical records need \"task\" and \"items\" (unified IE records)")
            _require_items(r, w, "canonical")
        return S.strict_canonical(records, outputs)
    golds = [gold_answer(r, w) for r, w in zip(records, where)] if task in MICRO_TASKS else []
    check_task_matches(task, records, golds, path)
    try:  # a gold answer the released scorers cannot read
        if task in MICRO_TASKS and scorer == "adelie":
            return MICRO_TASKS[task][1]([released_reference(g) for g in golds], outputs)
        if task == "matres" and scorer == "adelie":
            return S.adelie_matres([matres_gold(r, w)[0] for r, w in zip(records, where)], outputs)
    except BadInput:
        raise
    except ValueError as e:
        raise BadInput(f"{path}: {e}") from None
    if task in MICRO_TASKS:
        gold_items = []
        for r, g, w in zip(records, golds, where):
            try:
                gold_items.append(S.record_gold_items(r) if "items" in r and "task" in r else
                                  S.gold_items_from_answer(g, MICRO_TASKS[task][0]))
            except ValueError as e:
                raise BadInput(f"{w}: {e}") from None
        return S.strict_micro(gold_items, outputs, MICRO_TASKS[task][0])
    if task == "matres":
        return S.strict_micro([matres_gold(r, w)[1] for r, w in zip(records, where)], outputs, "ERE")
    if task in ("carb", "robust"):
        gold = [open_ie_gold(r, w, task) for r, w in zip(records, where)]
        if task == "carb":
            return S.adelie_carb(gold, outputs) if scorer == "adelie" else S.strict_carb(gold, outputs)
        for r, w in zip(records, where):
            if "clique" not in r.get("meta", {}):
                raise BadInput(f"{w}: ROBUST records need meta.clique (build the test file with "
                               f"`evaluate.py build --task robust`)")
        cliques = [r["meta"]["clique"] for r in records]
        if scorer == "adelie":
            return S.adelie_robust([r["text"] for r in records], cliques, gold, outputs)
        return S.strict_robust(cliques, gold, outputs)
    golds = [gold_answer(r, w) if r.get("messages") else r.get("meta", {}).get("table", "")
             for r, w in zip(records, where)]  # odie
    return S.adelie_odie(golds, outputs, embed) if scorer == "adelie" else S.strict_odie(golds, outputs, embed)


def summarise(task: str, score) -> dict:
    """The JSON summary of a score: precision/recall/f1 in percent (odie: header_f1 and content_rougeL)."""
    if task != "canonical":
        return score.summary()
    return {**score["all"].summary(), "per_task": {t: s.summary() for t, s in score.items() if t != "all"}}


@dataclasses.dataclass
class ScoreConfig:
    """Score a predictions file (test records + "output") with the adelie or the strict scorer."""
    task: str = flag("", "held-out task", choices=HELD_OUT_TASKS)
    predictions: str = flag("", "predictions file: the test records, each with an added \"output\" string")
    scorer: str = flag("adelie", "adelie: the released ADELIE scorers, quirks included (reproduces the paper); "
                       "strict: the metric without the quirks (docs/fidelity.md §5)", choices=("adelie", "strict"))
    test: str = flag("", "the test file the predictions answer; if given, every record must match it in order")
    json: bool = flag(False, "print one JSON object as the last stdout line")
    header: bool = flag(True, "odie: compute the header soft F1 (loads all-MiniLM-L6-v2 from the eval extra)")


def score_command(cfg: ScoreConfig) -> dict:
    if not cfg.task or not cfg.predictions:
        raise BadInput("score needs --task and --predictions")
    records = read_jsonl(cfg.predictions)
    test = read_jsonl(cfg.test) if cfg.test else None
    outputs = check_predictions(records, cfg.predictions, test, cfg.test)
    embed, note = (None, "header score not requested (--no-header)")
    if cfg.task == "odie" and cfg.header:
        embed, note = S.load_minilm()
    start = time.perf_counter()
    score = score_predictions(cfg.task, records, outputs, cfg.scorer, cfg.predictions, embed)
    seconds = time.perf_counter() - start
    out = {"task": cfg.task, "scorer": cfg.scorer, **summarise(cfg.task, score), "seconds": seconds,
           "predictions_per_s": len(records) / seconds if seconds > 0 else None}
    if cfg.task == "odie" and embed is None:
        out["header_unavailable"] = note
    print(f"{cfg.task} ({cfg.scorer} scorer), {len(records)} predictions from {cfg.predictions}, scored in "
          f"{seconds:.3f} s ({out['predictions_per_s']:.0f} predictions/s)")
    if cfg.task == "odie":
        header = "unavailable: " + note if out["header_f1"] is None else f"{out['header_f1']:.2f}"
        print(f"  table header soft F1 {header}; table content ROUGE-Lsum {out['content_rougeL']:.2f}")
    else:
        print(f"  P {out['precision']:.2f}  R {out['recall']:.2f}  F1 {out['f1']:.2f}")
        if "format_followed" in out:
            print(f"  outputs following the required format: {out['format_followed']:.1f}%")
        for t, s in out.get("per_task", {}).items():
            print(f"    {t:7s} P {s['precision']:.2f}  R {s['recall']:.2f}  F1 {s['f1']:.2f}  "
                  f"format followed {s['format_followed']:.1f}%")
    if cfg.json:
        print(json.dumps(out))
    return out


# ----------------------------------------------------------------------------------------------------------------

COMMANDS = {"build": (BuildConfig, build_command), "run": (RunConfig, run_generation),
            "score": (ScoreConfig, score_command), "report": None}


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in COMMANDS:
        print(__doc__)
        print(f"usage: python evaluate.py {{{','.join(COMMANDS)}}} ... (--help on each)")
        sys.exit(0 if argv and argv[0] in ("-h", "--help") else 2)
    if argv[0] == "report":  # tooling around the method: report.py
        import report
        cls, fn = report.ReportConfig, report.report_command
    else:
        cls, fn = COMMANDS[argv[0]]
    cfg, explicit = parse_config(cls, argv[1:], prog=f"evaluate.py {argv[0]}", description=cls.__doc__)
    if argv[0] == "run":  # the settings: defaults <- config.PRESETS[--preset]["eval"] <- the flags given
        cfg, from_preset = apply_preset(cfg, explicit, "eval")
        if os.environ.get("RANK", "0") == "0":  # no credentials in a log: the URL as llm.public_url shows it
            print(settings_line(cfg, from_preset, explicit, base_url=llm.public_url(cfg.base_url)))
    try:
        fn(cfg)
    except BadInput as e:
        if os.environ.get("RANK", "0") == "0":  # under torchrun (evaluate.py run), once
            print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    import evaluate  # the module report.py imports, so that its BadInput is the one main() catches
    run_main(evaluate.main)  # any other exception -> one line "error: ..." (ADELIE_DEBUG=1: the traceback)
