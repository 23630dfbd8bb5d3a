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
  Tables 1-3 ........................................................ `make_report`
  what DPO changed: paired bootstrap over questions .................. `paired_bootstrap`, `compare_runs`

Files:
  test file         JSON lines, one record per question: the unified IE record (docs/design.md) when built from raw
                    data, or ADELIE's released record {"datasets","id","messages"}; `messages` ends with the gold
                    assistant answer; the prompt is every message before it.
  predictions file  the test file with an "output" string added to each record (any model: ours or e.g. vLLM's).
  run directory     what `report` reads (sft.py and dpo.py write the first two; `run --out` the third):
                      RUN_DIR/config.json                  the training config (optional; "name" labels the run)
                      RUN_DIR/metrics.jsonl                per optimizer step {"step","loss","lr","grad_norm",
                                                           "tokens_per_s"} (+ DPO "rewards_chosen",
                                                           "rewards_rejected","reward_margin","reward_accuracy")
                      RUN_DIR/eval/{TASK}.{SETTING}.jsonl  predictions; TASK one of HELD_OUT_TASKS, SETTING zeroshot|fewshot
                    `report` writes RUN_DIR/report.md, RUN_DIR/eval_table.png and RUN_DIR/curves.png.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import time
from pathlib import Path

import llm
import scorers as S
from config import flag, parse_config
from robust import atomic_file, read_appendable_jsonl, run_main

REPO = Path(__file__).resolve().parent

# The held-out tasks (paper section 5.1), plus "canonical": any task type in the canonical formats (the synthetic
# held-out split of the embedded default), scored per task type from each record's "task" and "items".
CLOSED_TASKS = ("fewnerd", "semeval", "richere-ed", "richere-eae", "matres")
OPEN_TASKS = ("carb", "robust")
HELD_OUT_TASKS = CLOSED_TASKS + OPEN_TASKS + ("odie", "canonical")
SETTINGS = ("zeroshot", "fewshot")

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

# Building from raw data: (ie_formats data set, test file, demonstration file) inside --source, as each data set's
# release lays them out (ie_formats.DATASETS). ODIE is evaluated zero-shot only (paper section 5.1); ROBUST has no
# training split, so its demonstrations come from --demo_source (e.g. CaRB's dev set).
RAW_SOURCES = {
    "fewnerd": ("fewnerd", "supervised/test.txt", "supervised/train.txt"),
    "semeval": ("semeval", "TEST_FILE_FULL.TXT", "TRAIN_FILE.TXT"),
    "matres": ("matres", "platinum.txt", ["timebank.txt", "aquaint.txt"]),
    "richere-ed": ("richere-ed", "test.unified.jsonl", "train.unified.jsonl"),
    "richere-eae": ("richere-eae", "test.unified.jsonl", "train.unified.jsonl"),
    "carb": ("carb", "test.txt", "dev.txt"),
    "robust": ("robust", "ROBUST.json", None),
    "odie": ("instructie", "test_data.json", None),
}
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


def _prompt_text(messages: list[dict]) -> str:
    """The raw input of a released record: the quoted text of its last user turn (the whole turn if none)."""
    last = [m for m in messages if m["role"] == "user"][-1]["content"]
    found = re.search(r"Text: '(.*)'", last, re.S)
    return found.group(1) if found else last


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
    for r in records:
        r["text"] = _prompt_text(r["messages"])
    return records


def cap_na(records: list[dict], na_max: float, rng) -> tuple[list[dict], int]:
    """Keep every answerable record and NA records (items == []) up to `na_max` of the result (seeded), in source
    order; returns (records, NA records dropped). The release's rule: n_NA = int(n_valid / (1 - r) * r)."""
    valid = [r for r in records if r["items"]]
    na = [r for r in records if not r["items"]]
    keep = min(len(na), int(len(valid) / (1.0 - na_max) * na_max)) if na_max < 1 else len(na)
    kept = set(id(r) for r in rng.sample(na, keep))
    return [r for r in records if r["items"] or id(r) in kept], len(na) - keep


def read_source(task: str, source: Path, split_file) -> list[dict]:
    """Unified IE records of one split of a held-out data set (ie_formats readers)."""
    import ie_formats
    name = RAW_SOURCES[task][0]
    files = split_file if isinstance(split_file, list) else [split_file]
    if source.is_file():
        paths = [source]
    else:
        paths = [source / f for f in files]
        if task == "robust" and not paths[0].exists():
            paths = sorted(source.glob("*.json"))[:1] or paths
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise BadInput(f"{task}: missing {', '.join(missing)} (expected the data set's release layout, "
                       f"see ../shared/data/MANIFEST.md)")
    entry = ie_formats.DATASETS[name]
    split = "test" if split_file == RAW_SOURCES[task][1] else "dev" if task == "carb" else "train"
    records = entry["reader"](paths if len(paths) > 1 else paths[0], split, dataset=name, **entry.get("kwargs", {}))
    label2id = (paths[0].parent / "label2id.json")
    if task == "richere-ed" and label2id.exists():  # the full RichERE type list, as ADELIE offers it
        types = [t for t in json.loads(label2id.read_text()) if t != "NA"]
        for r in records:
            r["labels"] = types
    return records


def demo_pool(task: str, cfg: BuildConfig, rng) -> list[dict]:
    """Candidate demonstrations: the training split (dev for CaRB), NA at most DEMO_NA_MAX of the pool."""
    source_task, demo_file = task, RAW_SOURCES[task][2]
    source = Path(cfg.demo_source) if cfg.demo_source else Path(cfg.source)
    if cfg.demo_source and demo_file is None:  # ROBUST: demonstrations from another open IE set (CaRB dev)
        source_task, demo_file = "carb", RAW_SOURCES["carb"][2]
    if demo_file is None:
        raise BadInput(f"{task} has no training split for demonstrations" +
                       (" (the paper evaluates ODIE zero-shot)" if task == "odie" else
                        "; give --demo_source (e.g. ../shared/data/carb: CaRB's dev sentences)"))
    pool = read_source(source_task, source, demo_file)
    pool, _ = cap_na(pool, DEMO_NA_MAX, rng)
    return pool


def subsample(records: list[dict], cfg: BuildConfig, rng, counts: dict) -> list[dict]:
    """NA at most cfg.na_max, then at most cfg.max_records questions, seeded, in source order (docs/fidelity.md §5)."""
    records, dropped = cap_na(records, cfg.na_max, rng)
    counts["NA records dropped by the NA cap"] = counts.get("NA records dropped by the NA cap", 0) + dropped
    if len(records) > cfg.max_records:
        keep = set(id(r) for r in rng.sample(records, cfg.max_records))
        counts["records dropped by the subsample"] = counts.get("records dropped by the subsample", 0) + \
            len(records) - cfg.max_records
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
        records = data.read_records([source])
        counts = {"source records": len(records)}
        by_dataset: dict = {}
        for r in records:
            by_dataset.setdefault(r["dataset"], []).append(r)
        records = [r for name in sorted(by_dataset) for r in subsample(by_dataset[name], cfg, rng, counts)]
        if cfg.shots > 0 and not cfg.demo_source:
            raise BadInput("canonical few-shot needs --demo_source: a JSONL file of unified IE training records")
        pool = cap_na(data.read_records([cfg.demo_source]), DEMO_NA_MAX, rng)[0] if cfg.shots > 0 else []
    else:
        records = read_source(cfg.task, source, RAW_SOURCES[cfg.task][1])
        counts = {"source records": len(records)}
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
    if cfg.task in OPEN_TASKS and cfg.shots not in (0, 5):
        print(f"note: the paper uses 5 demonstrations for open IE (section 5.1); building with {cfg.shots}")
    if cfg.task in CLOSED_TASKS and cfg.shots not in (0, 4):
        print(f"note: the paper uses 4 demonstrations for closed IE (section 5.1); building with {cfg.shots}")
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


def prompt_ids(tokenizer, messages: list[dict], template: str = "release") -> list[int]:
    """The ids the model is fed for a prompt (the conversation without its gold answer), by --prompt_template."""
    import data
    if template == "release":
        return data.encode_eval_prompt(tokenizer, messages)
    if template == "training":
        return data.encode_prompt(tokenizer, messages)
    raise ValueError(f"prompt_template must be 'release' or 'training', got {template!r}")


def prompt_text(messages: list[dict], template: str = "release") -> str:
    """The same prompt as text, for a server whose tokenizer adds the BOS (--backend openai): prompt_ids without it."""
    import data
    if template == "release":
        return data.render_eval_prompt(messages)
    if template == "training":
        return data.render_chat(messages, add_generation_prompt=True)
    raise ValueError(f"prompt_template must be 'release' or 'training', got {template!r}")


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
        dtype = {"auto": torch.bfloat16 if d.device.type == "cuda" else torch.float32, "float32": torch.float32,
                 "bfloat16": torch.bfloat16, "float16": torch.float16}[cfg.dtype]
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

    import model as llama
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
    max_seq_len = net.args.max_seq_len if net is not None else llama.read_model_args(cfg.model).max_seq_len
    too_long = [i for i in mine if len(ids[i]) >= max_seq_len]
    if too_long:
        raise BadInput(f"{len(too_long)} prompts do not fit the model's context of {max_seq_len} tokens, "
                       f"e.g. {_where(test, records[too_long[0]])} ({len(ids[too_long[0]])} tokens)")
    mine_path = partial / f"rank{d.rank}.jsonl"
    with mine_path.open("a", encoding="utf-8") as f:
        if cfg.backend == "openai":   # the same prompts' rendered text to the server, one line per answer
            answer_served(cfg, [(i, prompt_text(prompts[i], cfg.prompt_template), len(ids[i]))
                                for i in mine], max_seq_len, f, d.is_main)
        else:
            from tqdm import tqdm
            bar = tqdm(total=len(mine), desc=f"generate (rank {d.rank})", disable=not d.is_main, dynamic_ncols=True)
            for start in range(0, len(mine), cfg.save_every):
                chunk = mine[start:start + cfg.save_every]
                new = llama.generate(net, [ids[i] for i in chunk], cfg.max_new_tokens, temperature=cfg.temperature,
                                     top_p=cfg.top_p, eos_id=tokenizer.eos_id, batch_size=cfg.batch_size,
                                     seeds=[llama.prompt_seed(cfg.seed, i) for i in chunk])
                for i, toks in zip(chunk, new):
                    toks = toks[:-1] if toks and toks[-1] == tokenizer.eos_id else toks  # the stop token is no text
                    f.write(json.dumps({"index": i, "output": tokenizer.decode(toks)}, ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
                bar.update(len(chunk))
            bar.close()
    dist.barrier()
    if d.is_main:  # gather: every rank's answers, back in test order
        done = _read_partial(partial)
        missing = [i for i in range(len(records)) if i not in done]
        if missing:
            raise RuntimeError(f"{len(missing)} prompts have no output after generation (first: index "
                               f"{missing[0]}); rerun to resume")
        write_jsonl([dict(r, output=done[i]) for i, r in enumerate(records)], out)
        for path in partial.iterdir():
            path.unlink()
        partial.rmdir()
        print(f"wrote {len(records)} predictions to {out}")
    dist.barrier()


def answer_served(cfg: RunConfig, jobs: list[tuple[int, str, int]], context: int, f, progress: bool) -> None:
    """answer_test_file's generation through an OpenAI-compatible server (llm.sample_served): one sample per
    prompt at --temperature/--top_p, each appended to `f` as it arrives. Stops the run with the server's error."""
    def write(i: int, texts: list[str], finished: list[bool]) -> None:
        f.write(json.dumps({"index": i, "output": texts[0]}, ensure_ascii=False) + "\n")
        f.flush()
    try:
        client = llm.serving_client(cfg)
        llm.sample_served(client, jobs, write, num_samples=1, temperature=cfg.temperature, top_p=cfg.top_p,
                          max_tokens=cfg.max_new_tokens, seed=cfg.seed, concurrency=cfg.concurrency,
                          context=context, progress=progress, desc=f"generate ({client.model})")
    except llm.LLMError as e:
        raise BadInput(f"{e} (answers received so far are in {f.name}: run the same command to resume)") from None
    finally:
        os.fsync(f.fileno())


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
DATASET_TASKS = {"few-nerd-supervised": "fewnerd", "fewnerd": "fewnerd", "semeval": "semeval", "matres": "matres",
                 "richere-ed": "richere-ed", "richere-eae": "richere-eae", "carb": "carb", "robust": "robust",
                 "ondemand": "odie", "odie": "odie"}
_KINDS = {"fewnerd": "NER", "semeval": "RC", "richere-ed": "ED", "richere-eae": "EAE"}


def check_task_matches(task: str, records: list[dict], golds: list[str] | None, path) -> None:
    """Refuse predictions of another task: a record whose data set belongs to another held-out task, or (closed
    IE) gold answers none of which parses in the task's answer format."""
    for r in records:
        name = str(r.get("dataset", r.get("datasets", ""))).lower()
        other = DATASET_TASKS.get(name)
        if other is not None and other != task:
            raise BadInput(f"{_where(path, r)}: a record of data set {name!r} scored as --task {task}; expected "
                           f"--task {other}")
    if golds and task in _KINDS:
        unparsed, with_items = [], 0
        for g in golds:
            try:
                with_items += bool(S.gold_items_from_answer(g, _KINDS[task]))
            except ValueError:
                unparsed.append(g)
        if unparsed and not with_items:  # (empty / NA gold answers parse in every format)
            raise BadInput(f"{path}: no gold answer parses in the {_KINDS[task]} answer format of --task {task} "
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
    if task != "canonical":
        golds = ([gold_answer(r, w) for r, w in zip(records, where)] if task in _KINDS and
                 not all("items" in r for r in records) else None)
        check_task_matches(task, records, golds, path)
    if task == "canonical":
        if scorer == "adelie":
            raise BadInput("the adelie scorers exist only for the paper's held-out tasks; use --scorer strict")
        for r, w in zip(records, where):
            if "task" not in r:
                raise BadInput(f"{w}: canonical records need \"task\" and \"items\" (unified IE records)")
            _require_items(r, w, "canonical")
        return S.strict_canonical(records, outputs)
    if task in ("fewnerd", "semeval", "richere-ed", "richere-eae"):
        golds = [gold_answer(r, w) for r, w in zip(records, where)]
        if scorer == "adelie":
            fn = {"fewnerd": S.adelie_fewnerd, "semeval": S.adelie_semeval, "richere-ed": S.adelie_richere_ed,
                  "richere-eae": S.adelie_richere_eae}[task]
            try:
                return fn([released_reference(g) for g in golds], outputs)
            except ValueError as e:  # a gold answer the released scorer cannot read
                raise BadInput(f"{path}: {e}") from None
        kind = {"fewnerd": "NER", "semeval": "RC", "richere-ed": "ED", "richere-eae": "EAE"}[task]
        gold_items = []
        for r, g, w in zip(records, golds, where):
            if "items" in r and "task" in r:
                gold_items.append(S.record_gold_items(r))
            else:
                try:
                    gold_items.append(S.gold_items_from_answer(g, kind))
                except ValueError as e:
                    raise BadInput(f"{w}: {e}") from None
        return S.strict_micro(gold_items, outputs, kind)
    if task == "matres":
        labels, gold_items = zip(*(matres_gold(r, w) for r, w in zip(records, where))) if records else ((), ())
        if scorer == "adelie":
            try:
                return S.adelie_matres(list(labels), outputs)
            except ValueError as e:
                raise BadInput(f"{path}: {e}") from None
        return S.strict_matres(list(gold_items), outputs)
    if task == "carb":
        gold = [open_ie_gold(r, w, task) for r, w in zip(records, where)]
        return S.adelie_carb(gold, outputs) if scorer == "adelie" else S.strict_carb(gold, outputs)
    if task == "robust":
        gold = [open_ie_gold(r, w, task) for r, w in zip(records, where)]
        cliques = []
        for r, w in zip(records, where):
            if "clique" not in r.get("meta", {}):
                raise BadInput(f"{w}: ROBUST records need meta.clique (build the test file with "
                               f"`evaluate.py build --task robust`)")
            cliques.append(r["meta"]["clique"])
        if scorer == "adelie":
            return S.adelie_robust([r["text"] for r in records], cliques, gold, outputs)
        return S.strict_robust(cliques, gold, outputs)
    # odie
    golds = [gold_answer(r, w) if r.get("messages") else r.get("meta", {}).get("table", "")
             for r, w in zip(records, where)]
    return S.adelie_odie(golds, outputs, embed) if scorer == "adelie" else S.strict_odie(golds, outputs, embed)


def summarise(task: str, score) -> dict:
    """The JSON summary of a score: precision/recall/f1 in percent (odie: header_f1 and content_rougeL)."""
    if task == "canonical":
        out = score["all"].summary()
        out["per_task"] = {t: s.summary() for t, s in score.items() if t != "all"}
        return out
    return {k: (float(v) if hasattr(v, "__float__") and not isinstance(v, (bool, int)) else v)
            for k, v in score.summary().items()}


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

def micro_f1(counts) -> "np.ndarray":
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


def share(followed) -> "np.ndarray":
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
          f"with replacement (seed {seed}), the same questions for both runs each time (evaluate.paired_bootstrap). "
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
    run_dirs: list = flag(None, "run directories (layout at the top of evaluate.py)", positional=True, nargs="+")
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

COMMANDS = {"build": (BuildConfig, build_command), "run": (RunConfig, run_generation),
            "score": (ScoreConfig, score_command),
            "report": (ReportConfig, report_command)}


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in COMMANDS:
        print(__doc__)
        print(f"usage: python evaluate.py {{{','.join(COMMANDS)}}} ... (--help on each)")
        sys.exit(0 if argv and argv[0] in ("-h", "--help") else 2)
    cls, fn = COMMANDS[argv[0]]
    cfg, _ = parse_config(cls, argv[1:], prog=f"evaluate.py {argv[0]}", description=cls.__doc__)
    try:
        fn(cfg)
    except BadInput as e:
        if os.environ.get("RANK", "0") == "0":  # under torchrun (evaluate.py run), once
            print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    run_main(main)  # any other exception -> one line "error: ..." (ADELIE_DEBUG=1: the traceback)
