"""ADELIE's data (Qi et al.): 1. the chat format, tokenisation and collators that sft.py, dpo.py and evaluate.py
import (docs/fidelity.md §2); 2. reading conversation files; 3. IEInstruct (paper section 3, appendix A, B.1;
docs/fidelity.md §1): unified IE records -> prompt pools -> answers -> one augmented instance -> the corpus, mixed
with general chat (section 4); 4. the command line (show and stats: audit.py, a corpus audited from its text).

    python data.py build --out runs/data/ie_instruct.jsonl              # embedded default: synthetic.py's corpus
    python data.py build --out x.jsonl --preset demo                   # config.PRESETS' settings (default: paper)
    python data.py build --out ie_instruct.jsonl --data_dir ../shared/data \\
        --general ../shared/data/general_self_instruct \\
        --tokenizer ../shared/models/llama2-tokenizer/tokenizer.model    # every real data set present
    python data.py build --out x.jsonl --records my_records.jsonl --skip-bad
    python data.py show runs/data/ie_instruct.jsonl --n 3             # what the model is trained on, masks marked
    python data.py stats runs/data/ie_instruct.jsonl IEInstruct.jsonl  # Table 7 and every rate, side by side

IEInstruct is built from unified IE records (docs/design.md; ie_formats.validate_record checks them), refined here:
an EAE record's `labels` are the roles offered for its trigger; an id may end in a suffix (several records from one
source unit); OpenIE items may carry "extra" arguments (no answer format states them); ERE gives meta.subtask.
"""
from __future__ import annotations

import functools
import json
import random
import re
import sys
import time
from bisect import bisect_right
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch

from config import PRESETS, apply_preset, flag, parse_config, settings_line
from robust import atomic_file
from scorers import ANSWER_MARK

REPO = Path(__file__).resolve().parent
PROMPTS_DIR = REPO / "prompts"
DEFAULT_TOKENIZER = REPO / "assets" / "tokenizer.model"


# ----------------------------------------------------------------------------------------------------------------
# 1. Chat format and tokenisation (docs/fidelity.md §2; open-instruct's Tulu format, which ADELIE trained with).
#    Ids are [BOS] + the rendered string, each "</s>" the EOS id and each stretch between such markers one
#    SentencePiece encode call (so a "▁" follows every EOS): exactly transformers' slow LlamaTokenizer (legacy=True).
#    Ids and loss mask are made in one pass (nanochat's render_conversation): a token is trained when the character
#    it starts at lies in an assistant turn's content, its EOS or (non-final turns) the newline after; else -100.

EOS_TEXT, BOS_TEXT = "</s>", "<s>"
SPECIAL_RE = re.compile(r"</s>|<s>")  # the special-token strings the slow Llama tokenizer maps to ids


def _check_messages(messages, where: str, field: str) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"{where}: '{field}' must be a non-empty list of messages, got {type(messages).__name__}")
    for k, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") \
                or not isinstance(m.get("content"), str):
            raise ValueError(f"{where}: {field}[{k}] must be {{\"role\": system|user|assistant, \"content\": str}}, "
                             f"got {str(m)[:200]}")
    return messages


def _render_chat(messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """(rendered text, trained character intervals [start, end)), both after the final strip."""
    parts, trained, n = [], [], 0
    for m in _check_messages(messages, "conversation", "messages"):
        role, content = m["role"], m["content"].strip()  # docs/fidelity.md §2: content stripped
        tag = f"<|{role}|>\n"
        if role == "assistant":
            body = content + EOS_TEXT + "\n"
            trained.append((n + len(tag), n + len(tag) + len(body)))
        else:
            body = content + "\n"
        parts += [tag, body]
        n += len(tag) + len(body)
    text = "".join(parts).strip()  # docs/fidelity.md §2: the whole rendered text is stripped (drops the final newline)
    return text, [(a, min(b, len(text))) for a, b in trained]


def render_chat(messages: list[dict], add_generation_prompt: bool = False) -> str:
    """The Tulu rendering: <|system|>\\n{c}\\n, <|user|>\\n{c}\\n, <|assistant|>\\n{c}</s>\\n per message,
    the whole stripped; with add_generation_prompt the inference prompt, ending in "<|assistant|>\\n"."""
    text = _render_chat(messages)[0]
    return text + "\n<|assistant|>\n" if add_generation_prompt else text


def _encode(tokenizer, text: str, trained: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    specials = {EOS_TEXT: tokenizer.eos_id, BOS_TEXT: tokenizer.bos_id}
    starts = [a for a, _ in trained]

    def is_trained(c: int) -> bool:
        k = bisect_right(starts, c) - 1
        return k >= 0 and c < trained[k][1]

    ids, labels, pos = [tokenizer.bos_id], [-100], 0
    for m in [*SPECIAL_RE.finditer(text), None]:
        end = len(text) if m is None else m.start()
        stretch = text[pos:end]
        if stretch:  # one SentencePiece call per stretch between special tokens (dummy "▁" prefix included)
            piece_ids, offsets = tokenizer.encode_with_offsets(stretch)
            for i, (b, _) in zip(piece_ids, offsets):
                ids.append(i)
                labels.append(i if is_trained(pos + min(b, len(stretch) - 1)) else -100)
        if m is not None:
            ids.append(specials[m.group()])
            labels.append(ids[-1] if is_trained(m.start()) else -100)
            pos = m.end()
    return ids, labels


def tokenize_chat(tokenizer, messages: list[dict], max_len: int | None = None,
                  final_answer_only: bool = False) -> tuple[list[int], list[int]]:
    """(input ids, labels) of one conversation, truncated to max_len; labels = the id where the loss is taken, -100
    elsewhere. final_answer_only: only the last assistant turn is labelled (DPO's response; the rest are demos)."""
    text, trained = _render_chat(messages)
    ids, labels = _encode(tokenizer, text, trained[-1:] if final_answer_only else trained)
    return (ids[:max_len], labels[:max_len]) if max_len else (ids, labels)


class TokenCounter:
    """Token counts of conversations as tokenize_chat gives them, fast: no SentencePiece piece holds a newline, so a
    stretch's count is its lines' counts plus one per newline, and lines repeat (instructions, schema lines,
    demonstrations), so they are cached. Measured: the length filter at 300 tokens on 5,600 synthetic instances,
    2.7 s (8.5 s with tokenize_chat); the statistics of `data.py build`'s 99,300 conversations, 5.5 s (9.2 s)."""

    def __init__(self, tokenizer):
        self.tokenizer, self.nl = tokenizer, len(tokenizer.encode("\n"))
        self.line = functools.lru_cache(maxsize=1_000_000)(self.line)

    def line(self, line: str, first: bool) -> int:
        """Tokens of one line: the first of a stretch carries SentencePiece's dummy "▁" prefix, a later one
        follows a newline (counted as encode("\n" + line) minus the "▁" and newline pieces)."""
        if first:
            return len(self.tokenizer.encode(line)) if line else self.nl - 1  # a lone dummy "▁"
        return len(self.tokenizer.encode("\n" + line)) - self.nl if line else 0

    def __call__(self, messages: list[dict]) -> tuple[int, list[int]]:
        """(total tokens, tokens per stretch between special tokens)."""
        counts = []
        for stretch in SPECIAL_RE.split(render_chat(messages)):
            lines = stretch.split("\n")
            counts.append(0 if not stretch else
                          self.line(lines[0], True) + sum(self.line(l, False) for l in lines[1:]) + len(lines) - 1)
        return 1 + sum(counts) + len(counts) - 1, counts


def encode_prompt(tokenizer, messages: list[dict]) -> list[int]:
    """Ids of the inference prompt (SFT rendering): the conversation so far, then "<|assistant|>\\n"; no truncation."""
    return _encode(tokenizer, render_chat(messages, add_generation_prompt=True), [])[0]


def render_eval_prompt(messages: list[dict]) -> str:
    """The evaluation prompt of ADELIE's release (open-instruct's create_prompt_with_tulu_chat_format, add_bos=False;
    docs/fidelity.md): system and user turns EXACTLY as given, assistant turns stripped + "</s>\n", no final strip,
    ending in "<|assistant|>\n". Unlike render_chat, a user turn's trailing whitespace stays (the released
    zero-shot prompts have one: one newline token more)."""
    parts = [f"<|{m['role']}|>\n" + (m["content"].strip() + EOS_TEXT if m["role"] == "assistant" else m["content"])
             + "\n" for m in _check_messages(messages, "conversation", "messages")]
    return "".join(parts) + "<|assistant|>\n"


def encode_eval_prompt(tokenizer, messages: list[dict]) -> list[int]:
    """Ids of the release's evaluation prompt: [BOS] + render_eval_prompt, each "</s>" the EOS id."""
    return _encode(tokenizer, render_eval_prompt(messages), [])[0]


def tokenize_sft(tokenizer, conversations: list[dict], max_len: int) -> tuple[list[tuple], dict]:
    """[(ids, labels)] for SFT, and counts. A conversation left with no trainable token after truncation to
    max_len is dropped and counted (it would give a NaN loss)."""
    examples, stats = [], Counter(conversations=len(conversations))
    for c in conversations:
        ids, labels = tokenize_chat(tokenizer, c["messages"])
        if len(ids) > max_len:
            stats["truncated"] += 1
            ids, labels = ids[:max_len], labels[:max_len]
        if all(x == -100 for x in labels):
            stats["dropped_no_trainable_token"] += 1
            continue
        examples.append((ids, labels))
    stats["examples"] = len(examples)
    return examples, dict(stats)


def tokenize_preference(tokenizer, records: list[dict], max_len: int) -> tuple[list[tuple], dict]:
    """[((chosen ids, chosen labels), (rejected ids, rejected labels))] for DPO, and counts. Each side (prompt turns
    + final answer) is tokenised and truncated separately (release). Only the final answer is labelled: the
    demonstrations' answers are the same tokens on both sides (their log-probs cancel in the DPO loss). A pair with
    no trainable token left on a side (its answer truncated away), or whose sides are the same tokens (a zero
    gradient), is dropped and counted."""
    pairs, stats = [], Counter(pairs=len(records))
    for r in records:
        sides = []
        for side in ("chosen", "rejected"):
            ids, labels = tokenize_chat(tokenizer, r[side], final_answer_only=True)
            if len(ids) > max_len:
                stats[f"truncated_{side}"] += 1
                ids, labels = ids[:max_len], labels[:max_len]
            sides.append((ids, labels))
        if any(all(x == -100 for x in labels) for _, labels in sides):
            stats["dropped_no_trainable_token"] += 1
            continue
        if sides[0] == sides[1]:  # as trained, after truncation
            stats["dropped_identical_chosen_rejected"] += 1
            continue
        pairs.append(tuple(sides))
    stats["kept"] = len(pairs)
    return pairs, dict(stats)


def collate_sft(examples: list[tuple], pad_id: int = 0) -> dict[str, torch.Tensor]:
    """Right-padded batch {"input_ids": (B, T), "labels": (B, T)}, T = the longest example; labels -100 on pads.
    Padding positions sit after every real token of their row, so a causal model never attends to them."""
    if pad_id < 0:
        raise ValueError(f"pad_id must be a valid token id (>= 0), got {pad_id}; LLaMA has no pad token, any id "
                         f"works because padded positions are masked (docs/fidelity.md §2)")
    T = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), T), pad_id, dtype=torch.long)  # (B, T)
    labels = torch.full((len(examples), T), -100, dtype=torch.long)       # (B, T)
    for b, (ids, lab) in enumerate(examples):
        input_ids[b, :len(ids)] = torch.tensor(ids, dtype=torch.long)
        labels[b, :len(lab)] = torch.tensor(lab, dtype=torch.long)
    return {"input_ids": input_ids, "labels": labels}


def collate_preference(pairs: list[tuple], pad_id: int = 0) -> dict[str, torch.Tensor]:
    """One batch for a single forward pass over [chosen; rejected] (trl's DataCollatorForPreference): rows 0..B-1
    are the chosen answers, rows B..2B-1 the rejected ones, all right-padded to one length; split the logits with
    .chunk(2).

    >>> pairs = [(([1, 5, 6], [-100, 5, 6]), ([1, 5, 7, 8], [-100, 5, 7, 8]))]
    >>> batch = collate_preference(pairs, pad_id=0)
    >>> batch["input_ids"].tolist()
    [[1, 5, 6, 0], [1, 5, 7, 8]]
    >>> batch["labels"].tolist()
    [[-100, 5, 6, -100], [-100, 5, 7, 8]]
    """
    return collate_sft([c for c, _ in pairs] + [r for _, r in pairs], pad_id)  # (2B, T)


# ----------------------------------------------------------------------------------------------------------------
# 2. Reading conversation files: IEInstruct JSONL, IEFeedback (JSON list or JSONL), TULU-v2-style JSONL, general chat

def _json_line(line: str, where: str):
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: malformed JSON ({e.msg} at column {e.colno})") from None


def load_conversations(path) -> list[dict]:
    """Conversations {dataset, id, messages} (+ chosen, rejected for preference data) from an IEInstruct JSONL,
    an IEFeedback file (JSON list or JSONL; chosen/rejected = message lists) or a TULU-v2-style JSONL. A missing
    dataset or id is filled in (file name, position); anything else wrong raises ValueError naming file and line."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text (byte {e.start}: {e.reason}); expected UTF-8 JSON or "
                         f"JSONL") from None
    if text.lstrip().startswith("["):  # one JSON list: its items are named by position
        try:
            items = [(obj, f"{path} (list item {k})") for k, obj in enumerate(json.loads(text), 1)]
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{e.lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
    else:
        items = [(_json_line(line, f"{path}:{n}"), f"{path}:{n}") for n, line in enumerate(text.split("\n"), 1)
                 if line.strip()]
    out = []
    for k, (obj, where) in enumerate(items):
        if not isinstance(obj, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        conv = {"dataset": str(obj.get("dataset", obj.get("datasets", path.stem))),
                "id": str(obj.get("id", f"{path.stem}/{k}"))}
        # preference data has both sides; its messages (prompt + gold answer) are optional
        sides = ["chosen", "rejected"] * ("chosen" in obj or "rejected" in obj) + ["messages"] * ("messages" in obj)
        if not sides:
            raise ValueError(f"{where}: missing field 'messages' (or 'chosen' and 'rejected'); keys: {sorted(obj)}")
        out.append(conv | {side: _check_messages(obj.get(side), where, side) for side in sides})
    return out


def load_general(path) -> list[dict]:
    """General chat for mixing (section 4): TULU-v2-style JSONL {dataset, id, messages} (what ADELIE mixed), or
    self-instruct JSONL {instruction, instances: [{input, output}]} (one conversation per instance: user =
    instruction [+ blank line + input], assistant = output), or a directory of such files (in name order)."""
    path = Path(path)
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    if not files:
        raise ValueError(f"{path}: no .jsonl files with general chat data")
    out = []
    for f in files:
        lines = [(n, line) for n, line in enumerate(f.read_text(encoding="utf-8").split("\n"), 1) if line.strip()]
        try:
            self_instruct = bool(lines) and "instances" in json.loads(lines[0][1])
        except json.JSONDecodeError:
            self_instruct = False  # load_conversations reports the bad line
        if not self_instruct:
            out += [{"dataset": c["dataset"] or f.stem, "id": c["id"], "messages": c["messages"]}
                    for c in load_conversations(f)]
            continue
        for lineno, line in lines:
            try:
                task = json.loads(line)
                instruction, instances = task["instruction"].strip(), task["instances"]
            except (json.JSONDecodeError, KeyError, AttributeError) as e:
                raise ValueError(f"{f}:{lineno}: not a self-instruct task {{instruction, instances}} ({e})")
            for k, inst in enumerate(instances):
                user = instruction + ("\n\n" + inst["input"].strip() if inst.get("input", "").strip() else "")
                out.append({"dataset": f.stem, "id": f"{f.stem}/{task.get('id', lineno)}/{k}",
                            "messages": [{"role": "user", "content": user},
                                         {"role": "assistant", "content": inst["output"].strip()}]})
    return out


# ================================================================================================================
# 3. IEInstruct (paper section 3): unified IE records -> augmented chat conversations. Each augmentation is a named
#    option of IEInstructConfig whose default is the paper's rate (or, where the paper is silent, the release's).

CLOSED_TASKS = ("NER", "RC", "RE", "ED", "EAE", "EE", "ERE")  # tasks with a schema (paper section 3.2)
ANSWER = ANSWER_MARK + " "  # what every answer states its items after (docs/fidelity.md §1)
EXPLANATION = "[Explanation]: "

# The ODIE system prompt, verbatim from the release (docs/fidelity.md §1).
ODIE_SYSTEM = ("You are a helpful assistant. Follow the user instruction to extract information from the given text "
               "into a concise markdown table.")

# Paper Table 9, verbatim: the one output-format request per held-out task used at evaluation (appendix C.1).
FORMAT_REQUESTS = {
    "NER": 'Please give the answer in the form "[Answer]: {entity}: {type}; ".',
    "RC": 'Please give the answer in the tuple form "[Answer]: ({subject}; {relation}; {object}); ".',
    "ED": 'Please give the answer in the form "[Answer]: {event}: {class}; ".',
    "EAE": 'Please give the answer in the form "[Answer]: {word}: {role}; ".',
    "ERE": 'Please give the answer in the tuple form "[Answer]: ({first event}; {relation}; {second event}); ".',
    "OpenIE": 'Please give the answer in the tuple form "[Answer]: ({predicate}; {subject}; {object}; {time}; '
              '{location})". If one or more of the last three elements does not exist, it can be omitted.',
}

SUCH_AS = " (such as "  # how a schema line shows example mentions of an option (audit.py recognises it)

# The release's RANDOM_SYMBOLS (docs/fidelity.md §1): what an option is replaced by under "label symbols".
SYMBOLS = ["A", "B", "C", "D", "E", "F", "G", "LABEL_1", "LABEL_2", "LABEL_3", "LABEL_4", "LABEL_5", "LABEL_6"]

# The placeholders a task description may hold, per task, and what fills them (from the record of the FIRST user
# turn: the query in zero-shot, the first demonstration in few-shot, since the description opens that turn).
DESCRIPTION_PLACEHOLDERS = {
    "NER": {}, "RE": {}, "ED": {}, "EE": {}, "OpenIE": {},
    "RC": {"head": lambda r: r["query"]["head"]["text"], "tail": lambda r: r["query"]["tail"]["text"]},
    "EAE": {"trigger": lambda r: r["query"]["trigger"]["text"], "event_type": lambda r: r["query"]["event_type"]},
    "ERE": {"relation_kind": lambda r: r["meta"]["subtask"]},
}

# The string fields of one item of each task, as an answer states them (the "plain" view of the gold).
ITEM_FIELDS = {"NER": ("entity", "type"), "RC": ("head", "relation", "tail"), "RE": ("head", "relation", "tail"),
               "ED": ("trigger", "type"), "EAE": ("argument", "role"), "EE": ("trigger", "type", "arguments"),
               "ERE": ("event1", "relation", "event2"),
               "OpenIE": ("predicate", "subject", "object", "time", "location"), "ODIE": ("header", "rows")}
LABEL_FIELD = {"NER": "type", "RC": "relation", "RE": "relation", "ED": "type", "EAE": "role", "EE": "type",
               "ERE": "relation"}


# ----------------------------------------------------------------------------------------------------------------
# 3.1 Unified IE records: reading them (validated by ie_formats.validate_record), and their plain-string gold

def read_records(paths: list, skipped: list | None = None) -> list[dict]:
    """Unified IE records from JSONL files, each validated; a bad line raises ValueError naming the file, the line
    and the problem, or, given a list `skipped`, is skipped and its error message appended there."""
    from ie_formats import validate_record
    records = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = _json_line(line, f"{path}:{lineno}")
                    validate_record(record, f"{path}:{lineno}")
                except ValueError as e:
                    if skipped is None:
                        raise
                    skipped.append(str(e))
                    continue
                records.append(record)
    return records


def read_ie_records(cfg: IEInstructConfig, skipped: list | None = None) -> tuple[list[dict], str, Counter]:
    """The unified IE records a build starts from (data.py build, feedback.py): --records, every data set under
    --data_dir (ie_formats.convert_all) or, given neither, the embedded default (synthetic.py's train split); records
    of the held-out evaluation sets (section 5.1) and of other splits than --splits are left out. Returns (records,
    where they came from, counts of what was left out or repaired: shown by the caller, never silent)."""
    import ie_formats
    import synthetic
    counts = Counter()
    splits = [s.strip() for s in cfg.splits.split(",") if s.strip()]
    if cfg.records:
        records = read_records([p for p in cfg.records.split(",") if p], skipped)
        source = f"records {cfg.records}"
    elif cfg.data_dir:
        report = {}
        records = [r for recs in ie_formats.convert_all(cfg.data_dir, splits=tuple(splits), report=report).values()
                   for r in recs]
        source = f"real data sets under {cfg.data_dir}"
        # what each reader repaired or skipped (e.g. a span relocated, MATRES pairs with no event)
        counts.update({f"{part}: {what}": n for part, c in report["counts"].items() for what, n in c.items()})
        counts["data set splits absent (skipped)"] += len(report["absent"])
    else:
        records = synthetic.generate_corpus(cfg.synthetic_seed, cfg.synthetic_n_train, 0)["train"]
        source = f"synthetic corpus (seed {cfg.synthetic_seed}, {cfg.synthetic_n_train} per data set)"
    kept = [r for r in records if cfg.include_held_out or r["dataset"] not in ie_formats.HELD_OUT]
    counts["records of held-out evaluation sets (section 5.1), not used"] += len(records) - len(kept)
    records = [r for r in kept if r["split"] in splits]
    counts[f"records of other splits than {splits}, not used"] += len(kept) - len(records)
    if not records:
        raise ValueError(f"no records of split(s) {splits} to build from ({source})")
    return records, source, +counts  # a zero count is left out


def _text(x) -> str:
    return x["text"] if isinstance(x, dict) else x


def plain_items(task: str, items: list[dict]) -> list[dict]:
    """Gold items with every mention replaced by its string: what an answer can state, and what scoring compares.
    Idempotent (plain items pass through unchanged); OpenIE "extra" arguments are left out (no format has them)."""
    out = []
    for it in items:
        if task == "EE":
            out.append({"trigger": _text(it["trigger"]), "type": it["type"],
                        "arguments": [{"argument": _text(a["argument"]), "role": a["role"]} for a in it["arguments"]]})
        elif task == "ODIE":
            out.append({"header": list(it["header"]), "rows": [list(r) for r in it["rows"]]})
        else:
            out.append({k: _text(it[k]) for k in ITEM_FIELDS[task]})
    return out


# ----------------------------------------------------------------------------------------------------------------
# 3.2 Prompt pools (paper section 3.2, appendix A.1). Hand-written by this project; a second task-description file
#    of the same shape (llm.py's GPT-generated descriptions, paper 3.2's self-instruct loop) is appended on request.

PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")


@dataclass
class Prompts:
    descriptions: dict   # task -> [task description]                 prompts/task_descriptions.json (+ extra)
    formats: dict        # task -> {"canonical", "json", "templates"}  prompts/output_formats.json
    explanations: dict   # task -> template explanation parts          prompts/explanations.json
    schema: dict         # task -> schema intros                        prompts/schema.json
    guidelines: dict     # data set -> {label: definition}             prompts/label_descriptions.json


def _load_json(path: Path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None


def load_descriptions(path: Path) -> dict[str, list[str]]:
    """A task-description pool {TASK: [description]}, each placeholder checked against DESCRIPTION_PLACEHOLDERS."""
    pool = _load_json(path)
    if not isinstance(pool, dict):
        raise ValueError(f"{path}: expected an object {{TASK: [description, ...]}}")
    for task, descs in pool.items():
        if task not in DESCRIPTION_PLACEHOLDERS:
            raise ValueError(f"{path}: unknown task {task!r}; expected one of {', '.join(DESCRIPTION_PLACEHOLDERS)}")
        if not isinstance(descs, list) or not all(isinstance(d, str) and d.strip() for d in descs):
            raise ValueError(f"{path}: {task} must be a list of non-empty strings")
        allowed = DESCRIPTION_PLACEHOLDERS[task]
        for i, d in enumerate(descs):
            if bad := [p for p in PLACEHOLDER_RE.findall(d) if p not in allowed]:
                raise ValueError(f"{path}: {task} description {i}: placeholder(s) "
                                 f"{', '.join('{' + b + '}' for b in bad)} not allowed here; "
                                 f"allowed: {', '.join('{' + a + '}' for a in allowed) or 'none'}")
    return pool


def load_prompts(extra_descriptions=(), prompts_dir: Path = PROMPTS_DIR) -> Prompts:
    """Read and check prompts/; `extra_descriptions` = more task-description files (same shape) to append."""
    descriptions = {t: list(d) for t, d in load_descriptions(prompts_dir / "task_descriptions.json").items()}
    for path in extra_descriptions:
        for task, descs in load_descriptions(Path(path)).items():
            descriptions.setdefault(task, []).extend(descs)
    # (the output formats' templates, shipped with the code, are checked by tests/test_data.py)
    formats, explanations, schema, guidelines = [_load_json(prompts_dir / f"{name}.json") for name in
                                                 ("output_formats", "explanations", "schema", "label_descriptions")]
    for task in DESCRIPTION_PLACEHOLDERS:
        if len(descriptions.get(task, [])) == 0 or task not in formats or task not in explanations:
            raise ValueError(f"{prompts_dir}: no task descriptions, output formats or explanations for {task}")
    return Prompts(descriptions, formats, explanations, schema, guidelines)


# ----------------------------------------------------------------------------------------------------------------
# 3.3 Answers (paper section 3.3, appendix A.2): "[Answer]: " + the items, or the format's NA answer. Items arrive
#    plain and shuffled once by the builder (docs/fidelity.md §1: no order bias), so explanation and answer agree.

# The canonical item formats (docs/fidelity.md §1) and separators: NER/ED/EAE/ERE items follow each other on one
# line, the tuple tasks put one item per line.
CANONICAL_ITEM = {"NER": "{entity}: {type};", "ED": "{trigger}: {type};", "EAE": "{argument}: {role};",
                  "RC": "({head}; {relation}; {tail})", "RE": "({head}; {relation}; {tail})",
                  "ERE": "({event1}; {relation}; {event2});"}
CANONICAL_SEP = {"NER": " ", "ED": " ", "EAE": " ", "ERE": " ", "RC": "\n", "RE": "\n", "EE": "\n", "OpenIE": "\n"}


def _canonical_item(task: str, it: dict) -> str:
    if task == "EE":  # ({trigger}; {type}; {argument}: {role}; ...)
        return "(" + "; ".join([it["trigger"], it["type"]] + [f"{a['argument']}: {a['role']}"
                                                              for a in it["arguments"]]) + ")"
    if task == "OpenIE":  # ({predicate}; {subject}; {object}; {time}; {location})
        parts = [it["predicate"], it["subject"], it["object"], it["time"], it["location"]]
        while len(parts) > 2 and not parts[-1]:  # Table 9: missing trailing elements are omitted
            parts.pop()
        return "(" + "; ".join(parts) + ")"
    return CANONICAL_ITEM[task].format(**it)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """An ODIE answer table: header line, separator line, one line per row."""
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def canonical_answer(task: str, items: list[dict]) -> str:
    """The canonical target (docs/fidelity.md §1): "[Answer]: " + the items in CANONICAL_ITEM's formats, or
    "[Answer]: NA"; ODIE a markdown table."""
    items = plain_items(task, items)
    if task == "ODIE":
        return ANSWER + markdown_table(items[0]["header"], items[0]["rows"])
    if not items:
        return ANSWER + "NA"
    return ANSWER + CANONICAL_SEP[task].join(_canonical_item(task, it) for it in items)


def json_answer(task: str, items: list[dict]) -> str:
    """Real JSON (docs/fidelity.md §1; the release wrote a Python dict repr): a list of item objects, [] for NA.
    OpenIE objects leave out the empty optional fields."""
    items = plain_items(task, items)
    if task == "OpenIE":
        items = [{k: v for k, v in it.items() if v or k in ("predicate", "subject")} for it in items]
    return ANSWER + json.dumps(items, ensure_ascii=False)


def _template_item(task: str, it: dict, t: dict, item: str) -> str:
    """One item through a template's `item` sentence (t: an output format's or an explanation's parts)."""
    values = dict(it)
    if task == "EE":
        args = [t["argument"].format(**a) for a in it["arguments"]]
        values["arguments"] = t["argument_sep"].join(args) if args else t["no_arguments"]
    if task == "OpenIE":
        values["rest"] = "".join(t["parts"][k].format(**{k: it[k]}) for k in ("object", "time", "location") if it[k])
    return item.format(**values)


def template_answer(task: str, items: list[dict], template: dict) -> str:
    """A keyed-tuple or natural-language answer from one prompts/output_formats.json template (paper 3.3)."""
    items = plain_items(task, items)
    if not items:
        return ANSWER + template["none"]
    return ANSWER + template["sep"].join(_template_item(task, it, template, template["item"]) for it in items)


def template_explanation(task: str, items: list[dict], parts: dict, rng: random.Random) -> str:
    """A template explanation (docs/fidelity.md §1; the release's OUTPUT_EXPLAN): intro + one sentence per item +
    a lead-in to the answer, or a sentence saying there is nothing to extract."""
    items = plain_items(task, items)
    if task == "ODIE":
        table = items[0]
        rows = [parts["cell_sep"].join(parts["cell"].format(header=h, value=v) for h, v in zip(table["header"], r))
                for r in table["rows"]]
        if not rows:
            return rng.choice(parts["none"])
        item = rng.choice(parts["item"])
        return (rng.choice(parts["intro"]).format(columns=", ".join(table["header"]))
                + " ".join(item.format(cells=c) for c in rows) + " " + rng.choice(parts["outro"]))
    if not items:
        return rng.choice(parts["none"])
    item = rng.choice(parts["item"])
    sentences = " ".join(_template_item(task, it, parts, item) for it in items)
    return rng.choice(parts["intro"]) + sentences + " " + rng.choice(parts["outro"])


def with_explanation(answer: str, explanation: str | None) -> str:
    """`[Explanation]: ... [Answer]: ...` (docs/fidelity.md §1), or the answer alone."""
    if not explanation:
        return answer
    return EXPLANATION + explanation + ("" if explanation.endswith(" ") else " ") + answer


# ----------------------------------------------------------------------------------------------------------------
# 3.4 One IEInstruct instance (paper sections 3.2-3.3; docs/fidelity.md §1)

# Paper Table 7: IEInstruct's instances per training data set (ie_formats.DATASETS names). The release applied the
# 5,000 limit (section 3.1) to groups of small sets (BC5CDR + GENIA + MIT-Restaurant share 5,000; SciERC + NYT11 +
# ADE 10,000; PHEE + CASIE 5,000), so these counts are the defaults (--dataset_caps table7). GENIA is ie_formats'
# nested genia (not jnlpba). They sum to 82,669 (the paper's text says 83,585 in all).
TABLE7_INSTANCES = {
    "conll2003": 5000, "ace2005-ner": 5000, "ontonotes5": 5000, "bc5cdr": 1666, "genia": 1667, "mit-restaurant": 1667,
    "tacred": 5000, "fewrel": 5000,
    "scierc": 3332, "nyt11": 3334, "ade": 3334,
    "ace2005-ed": 4067, "maven": 5000,
    "phee": 2500, "casie": 2500,
    "ace2005-eae": 4420, "rams": 5000, "maven-arg": 5000,
    "maven-ere": 4278,
    "openie6": 5000,
    "instructie": 4904,
}


def dataset_cap(name: str, cfg: "IEInstructConfig") -> int:
    """Instances data set `name` may give (paper section 3.1 and Table 7): Table 7's count (at most
    cfg.max_per_dataset) for a Table 7 set under dataset_caps="table7", else cfg.max_per_dataset."""
    if cfg.dataset_caps == "table7" and name in TABLE7_INSTANCES:
        return min(TABLE7_INSTANCES[name], cfg.max_per_dataset)
    return cfg.max_per_dataset


@dataclass
class IEInstructConfig:
    # ---- inputs and output (`python data.py build`)
    out: str = flag("", "output IEInstruct JSONL {dataset, id, messages}; statistics beside it (OUT.stats.md/.json)")
    seed: int = flag(0, "every random choice of the build derives from this seed (same seed -> same file)")
    preset: str = flag("paper", "config.PRESETS[preset]['ie_instruct'] over the defaults; a flag given wins",
                       choices=list(PRESETS))
    data_dir: str = flag("", "every real data set present here (ie_formats.convert_all), e.g. ../shared/data")
    records: str = flag("", "unified IE records, JSONL (comma-separated for several files), validated line by line")
    skip_bad: bool = flag(False, "with --records: skip (and count) bad lines instead of stopping at the first")
    include_held_out: bool = flag(False, "also build from the held-out evaluation sets (ie_formats.HELD_OUT: "
                                          "FewNERD, SemEval, RichERE, MATRES, CaRB, ROBUST), kept out by section 5.1")
    splits: str = flag("train", "record splits to build from (comma-separated); IEInstruct uses training data")
    synthetic_n_train: int = flag(1000, "neither --records nor --data_dir: synthetic.py's train records per set")
    synthetic_seed: int = flag(0, "embedded default: seed of synthetic.py's corpus (apart from --seed, so that the "
                                  "held-out split evaluate.py uses does not change with the build seed)")
    general: str = flag("", "general chat to mix in (section 4): TULU-v2-style or self-instruct JSONL, or a directory "
                            "of them (e.g. ../shared/data/general_self_instruct); '': synthetic.py's; 'none': none")
    ie_proportion: float = flag(0.2, "share of IE conversations in the mix (section 4: 83,585 IE + 320,000 "
                                     "general = 20%); 1 = IE only")
    explanations: str = flag("", "LLM-written explanations, JSONL {id, explanation} keyed by record id "
                                 "(llm.py, paper 3.3 / Table 6); without it every explanation is a template")
    extra_descriptions: str = flag("", "more task descriptions, JSON {TASK: [description]} (llm.py's GPT-written "
                                       "ones, paper 3.2), appended to prompts/task_descriptions.json")
    tokenizer: str = flag(str(DEFAULT_TOKENIZER), "SentencePiece model of the length filter (training's)")
    max_tokens: int = flag(2048, "length filter (appendix B.1: instances over 2,048 tokens are dropped, after "
                                 "losing their demonstrations one by one from the end); 0 = off")
    max_words: int = flag(0, "the release's length filter instead: whitespace words over all turns "
                             "(docs/fidelity.md §1: 1500); 0 = off")
    # ---- data collection (section 3.1)
    max_per_dataset: int = flag(5000, "examples-proportional mixture cap: instances per data set (section 3.1: 5,000); "
                                      "with --dataset_caps table7, Table 7's count where it is smaller")
    dataset_caps: str = flag("table7", "table7: each Table 7 data set capped at its Table 7 count (TABLE7_INSTANCES, "
                                       "at most max_per_dataset), any other set at max_per_dataset; uniform: "
                                       "max_per_dataset for every set (BC5CDR then gives ~4,500, not 1,666)",
                             choices=["table7", "uniform"])
    na_cap: float = flag(0.2, "NA instances at most this share of each data set (section 3.1: 'filter out 80% of "
                              "NA data'; docs/fidelity.md §1: capped at 20%)")
    # ---- schema description (section 3.2; docs/fidelity.md §1)
    class_dropout: float = flag(0.1, "each option dropped with this probability; a dropped gold label takes its "
                                     "items out of the answer (docs/fidelity.md §1: 0.1)")
    guideline_rate: float = flag(0.2, "share of closed-IE instances whose options get guidelines (section 3.2: 20%)")
    guideline_max_options: int = flag(10, "with guidelines the option list is cut to this many, gold kept (release)")
    example_rate: float = flag(0.2, "share of closed-IE instances whose options get 'such as' example mentions "
                                    "from the training data (docs/fidelity.md §1: 0.2)")
    example_max_options: int = flag(15, "with examples the option list is cut to this many, gold kept (release)")
    examples_per_option: int = flag(3, "example mentions per option at most (docs/fidelity.md §1: up to 3)")
    example_min_mentions: int = flag(10, "an option gets examples only with this many training mentions (release)")
    symbol_rate: float = flag(0.05, "each option replaced by a symbol (A..G, LABEL_1..LABEL_6) with this "
                                    "probability, in schema and answer (section 3.2; docs/fidelity.md §1: 0.05)")
    label_variation_rate: float = flag(7 / 11, "share of instances whose label strings are rewritten (lower case, "
                                               "separators); the paper only says 'label-string variation'; the "
                                               "release draws randint(0, 10) and varies on 7 of the 11 values")
    # ---- output format (sections 3.2-3.3; docs/fidelity.md §1)
    canonical_rate: float = flag(0.8, "share with the canonical output format (docs/fidelity.md §1: 0.8)")
    json_rate: float = flag(0.05, "share with real JSON answers (release: 5%); the rest use the keyed-tuple and "
                                  "natural-language templates of prompts/output_formats.json")
    shuffle_items: bool = flag(True, "an answer's items in random order (section 3.3: shuffled 'to mitigate potential "
                                     "order bias'); --no-shuffle_items: in the record's order (the synthetic corpus "
                                     "lists them in text order)")
    # ---- explanations (section 3.3; docs/fidelity.md §1)
    explanation_rate: float = flag(0.1, "share of closed/open IE instances with [Explanation]: ... before the answer "
                                        "(section 3.3: 10%)")
    odie_cot_rate: float = flag(0.2, "share of ODIE instances with an explanation (release: ~20% use the CoT version)")
    # ---- few-shot demonstrations (section 3.2; docs/fidelity.md §1)
    fewshot_rate: float = flag(0.5, "share of closed/open IE instances with demonstrations (section 3.2: 50%)")
    fewshot_max: int = flag(8, "demonstrations: uniform 1..this (section 3.2: 1 to 8)")
    fewshot_na_keep: float = flag(0.1, "an NA demonstration is kept with this probability (docs/fidelity.md §1: 0.1)")


@dataclass
class DatasetContext:
    """What building one data set's instances needs beyond the record itself."""
    pools: dict      # tuple(labels) -> train records: demonstration candidates with the same schema
    mentions: dict   # label -> (number of training mentions, sorted distinct example strings) for 'such as'
    explanations: dict  # record id -> LLM-written explanation


def _label_examples(task: str, record: dict):
    """(label, example string) for each gold item: the strings a 'such as' list shows (a pair for relations)."""
    for it in record["items"] if task in CLOSED_TASKS else []:
        if task in ("RC", "RE", "ERE"):
            a, b = ("event1", "event2") if task == "ERE" else ("head", "tail")
            yield it["relation"], f'("{it[a]["text"]}", "{it[b]["text"]}")'
        else:
            yield it[LABEL_FIELD[task]], f'"{it[{"NER": "entity", "EAE": "argument"}.get(task, "trigger")]["text"]}"'


def dataset_context(records: list[dict], explanations: dict | None = None) -> DatasetContext:
    """Demonstration pools (records with the same schema) and 'such as' mentions of one data set's train records."""
    if not records:
        raise ValueError("dataset_context needs at least one record")
    name, task = records[0]["dataset"], records[0]["task"]
    pools, counts = defaultdict(list), defaultdict(Counter)
    for r in records:
        if r["task"] != task:
            raise ValueError(f"{r['id']}: data set {name} mixes tasks {task} and {r['task']}")
        if task in CLOSED_TASKS and not r["labels"]:
            raise ValueError(f"{r['id']}: a {task} record needs a non-empty label inventory (its schema)")
        pools[tuple(r["labels"])].append(r)
        for label, ex in _label_examples(task, r):
            counts[label][ex] += 1
    mentions = {label: (sum(c.values()), sorted(c)) for label, c in counts.items()}
    return DatasetContext(dict(pools), mentions, explanations or {})


# Label-string variations (docs/fidelity.md §1: "separators `:`/`_`/`-` rewritten"; the release also lower-cases).
LABEL_VARIATIONS = {
    "lowercase": lambda s: s.lower(),
    "separators_to_spaces": lambda s: re.sub(r"\s*[-_.:/]+\s*", " ", s),
    "separators_to_underscores": lambda s: re.sub(r"[-.:/\s]+", "_", s),
    "lowercase_spaces": lambda s: re.sub(r"\s*[-_.:/]+\s*", " ", s).lower(),
    "lowercase_underscores": lambda s: re.sub(r"[-.:/\s]+", "_", s).lower(),
    "uppercase": lambda s: s.upper(),
}


def _applicable_variations(names: list[str]) -> list[str]:
    """Variations that change at least one name and keep the names distinct and non-empty."""
    out = []
    for v in LABEL_VARIATIONS:
        new = [LABEL_VARIATIONS[v](n) for n in names]
        if new != names and len(set(new)) == len(new) and all(x.strip() for x in new):
            out.append(v)
    return out


def _cut(options: list[str], k: int, gold: set[str]) -> list[str]:
    """At most k options in their current order, never removing a gold label (as the release)."""
    kept = set([o for o in options if o not in gold][:max(0, k - sum(o in gold for o in options))])
    return [o for o in options if o in gold or o in kept]


@dataclass
class Plan:
    """Every random choice of one instance, so it can be rendered again (with fewer demonstrations)."""
    description: str            # task-description template (placeholders filled at render time)
    shown: dict                 # the schema, in its order: label -> string shown (itself, a symbol, a variation)
    schema_text: str            # the schema description, rendered
    output_format: str          # "canonical" | "json" | "template"
    template: dict | None       # the prompts/output_formats.json template when output_format == "template"
    request: str                # the output-format request sentence
    explain: bool
    explanation_request: str
    llm_explanation: str | None  # the query's LLM-written explanation, when one is used
    demos: list
    shuffle_items: bool         # the answer's items in random order (section 3.3), else in the record's order


def _gold(record: dict, plan: Plan) -> list[dict]:
    """The record's plain gold under the plan: items of options left in the schema, labels as shown."""
    task = record["task"]
    items = plain_items(task, record["items"])
    if task not in CLOSED_TASKS:
        return items
    key = LABEL_FIELD[task]
    return [{**it, key: plan.shown[it[key]]} for it in items if it[key] in plan.shown]


def text_block(record: dict) -> str:
    """The input of one user turn: `Text: '...'`, then a line per mention the input names (RC's entity pair, EAE's
    trigger, ERE's events), in EVERY turn: the release's few-shot turns did not say which (docs/fidelity.md §1)."""
    out = f"Text: '{record['text']}'"
    q, task = record["query"], record["task"]
    if task == "RC":
        out += f'\nHead entity: "{q["head"]["text"]}"\nTail entity: "{q["tail"]["text"]}"'
    elif task == "EAE":
        out += f'\nTrigger: "{q["trigger"]["text"]}" (event type: {q["event_type"]})'
    elif task == "ERE" and "events" in q:
        out += "\nEvents: " + ", ".join(f'"{m["text"]}"' for m in q["events"])
    elif task == "ERE":
        out += f'\nEvent 1: "{q["event1"]["text"]}"\nEvent 2: "{q["event2"]["text"]}"'
    return out


def _schema(record, ctx, prompts, cfg, rng, augment: bool, protect_gold: bool):
    """{label: string shown}, in the order shown, and the schema description (section 3.2: shuffling and sampling,
    guidelines, examples, symbols; docs/fidelity.md §1: class dropout, label-string variation)."""
    task, labels = record["task"], list(record["labels"])
    gold = {it[LABEL_FIELD[task]] for it in record["items"]}
    options = labels
    if augment:  # class dropout (docs/fidelity.md §1: 0.1); a schema is never left empty
        options = [o for o in labels if (protect_gold and o in gold) or rng.random() >= cfg.class_dropout]
        if not options:
            options = [rng.choice(labels)]
    rng.shuffle(options)  # schema shuffling (section 3.2)
    guidelines = augment and rng.random() < cfg.guideline_rate
    examples = augment and rng.random() < cfg.example_rate
    if guidelines:
        options = _cut(options, cfg.guideline_max_options, gold)
    if examples:
        options = _cut(options, cfg.example_max_options, gold)
    shown = {o: o for o in options}
    if augment:
        free = list(SYMBOLS)
        for o in options:  # label symbols (section 3.2; docs/fidelity.md §1: each option with probability 0.05)
            if rng.random() < cfg.symbol_rate and not (protect_gold and o in gold):
                shown[o] = free.pop(rng.randrange(len(free))) if free else o
        if rng.random() < cfg.label_variation_rate and not protect_gold:  # label-string variation
            plain = [o for o in options if shown[o] == o]
            names = _applicable_variations(plain) if plain else []
            if names:
                variation = rng.choice(names)
                shown.update({o: LABEL_VARIATIONS[variation](o) for o in plain})

    intros = prompts.schema[task]
    if guidelines or examples:
        own = {ex for _, ex in _label_examples(task, record)}  # never show the query's own gold as an example
        lines = []
        for o in options:
            line = "- " + shown[o]
            if guidelines:  # the label's definition (prompts/label_descriptions.json), else the task's default
                default = prompts.guidelines["_default"][task].format(label=re.sub(r"[-_.:/]+", " ", o).strip())
                line += ": " + prompts.guidelines.get(record["dataset"], {}).get(o, default).rstrip(".")
            n, distinct = ctx.mentions.get(o, (0, []))
            if examples and n >= cfg.example_min_mentions:
                picks = rng.sample(distinct, min(len(distinct), cfg.examples_per_option + len(own)))
                picks = [p for p in picks if p not in own][:cfg.examples_per_option]
                if picks:
                    line += SUCH_AS + ", ".join(picks) + ")"
            lines.append(line + ("." if guidelines else ""))
        text = rng.choice(intros["guidelines" if guidelines else "examples"]) + "\n" + "\n".join(lines)
    else:
        text = rng.choice(intros["list"]) + " [" + ", ".join(shown[o] for o in options) + "]."
    roles = record["meta"].get("roles") if task == "EE" else None
    if roles:  # EE: which roles each event type takes
        per_type = [f"{shown[t]}: {', '.join(roles[t])}" for t in options if roles.get(t)]
        if per_type:
            text += "\n" + rng.choice(intros["roles"]) + " " + "; ".join(per_type) + "."
    return shown, text


def _sample_demos(record, ctx, cfg, rng, shown: dict) -> list[dict]:
    """Few-shot demonstrations (section 3.2: 50% of instances get 1..8, sampled at random; release: same schema,
    NA demonstrations kept with probability 0.1)."""
    if rng.random() >= cfg.fewshot_rate:
        return []
    k = rng.randint(1, cfg.fewshot_max)
    pool = ctx.pools.get(tuple(record["labels"]), [])
    task, key = record["task"], LABEL_FIELD.get(record["task"])
    chosen, seen, tries = [], set(), 0
    while len(chosen) < k and len(seen) < len(pool) and tries < 50 * k + 200:
        tries += 1
        i = rng.randrange(len(pool))
        if i in seen:
            continue
        seen.add(i)
        d = pool[i]
        if d["id"] == record["id"]:
            continue
        na = not any(it[key] in shown for it in d["items"]) if task in CLOSED_TASKS else not d["items"]
        if na and rng.random() >= cfg.fewshot_na_keep:
            continue
        chosen.append(d)
    return chosen


def _plan(record, ctx, prompts, cfg, rng, *, output_format=None, demos=None, explanation=None,
          augment_schema=True, format_request=None) -> Plan:
    task = record["task"]
    if explanation is None:
        explanation = rng.random() < cfg.explanation_rate
    llm = ctx.explanations.get(record["id"]) if explanation else None
    if task in CLOSED_TASKS:
        shown, schema_text = _schema(record, ctx, prompts, cfg, rng, augment_schema, llm is not None)
    else:
        shown, schema_text = {}, ""
    formats = prompts.formats[task]
    if output_format is None:
        u = rng.random()
        output_format = ("canonical" if u < cfg.canonical_rate else
                         "json" if u < cfg.canonical_rate + cfg.json_rate else "template")
    template = None
    if output_format == "canonical":
        request = formats["canonical"]
    elif output_format == "json":
        request = rng.choice(formats["json"])
    elif output_format == "template":
        template = rng.choice(formats["templates"])
        request = template["request"]
    else:
        raise ValueError(f"output_format must be canonical, json or template, not {output_format!r}")
    if format_request is not None:
        request = format_request
    if demos is None:
        demos = _sample_demos(record, ctx, cfg, rng, shown)
    return Plan(rng.choice(prompts.descriptions[task]), shown, schema_text, output_format, template, request,
                explanation, rng.choice(prompts.explanations["_requests"]) if explanation else "", llm, list(demos),
                cfg.shuffle_items)


def _assistant_turn(record: dict, plan: Plan, prompts: Prompts, rng: random.Random, is_query: bool) -> str:
    task = record["task"]
    items = _gold(record, plan)
    if plan.shuffle_items:
        rng.shuffle(items)  # docs/fidelity.md §1: items shuffled in the target
    if plan.output_format == "canonical":
        answer = canonical_answer(task, items)
    elif plan.output_format == "json":
        answer = json_answer(task, items)
    else:
        answer = template_answer(task, items, plan.template)
    explanation = None
    if plan.explain:
        explanation = plan.llm_explanation if (is_query and plan.llm_explanation) else \
            template_explanation(task, items, prompts.explanations[task], rng)
    return with_explanation(answer, explanation)


def _render_plan(record: dict, plan: Plan, prompts: Prompts, rng: random.Random) -> list[dict]:
    """The conversation of a plan: demonstrations as earlier user/assistant turns, then the query (as the release).
    First user turn = instruction + blank line + text block; later user turns = the text block alone."""
    turns = plan.demos + [record]
    fill = DESCRIPTION_PLACEHOLDERS[record["task"]]  # load_prompts checked that the description uses only these
    description = PLACEHOLDER_RE.sub(lambda m: fill[m.group(1)](turns[0]), plan.description)
    request = (plan.explanation_request + " " if plan.explain else "") + plan.request
    instruction = "\n".join(p for p in (description, plan.schema_text, request) if p)
    messages = []
    for i, r in enumerate(turns):
        user = (instruction + "\n\n" if i == 0 else "") + text_block(r)
        messages += [{"role": "user", "content": user},
                     {"role": "assistant", "content": _assistant_turn(r, plan, prompts, rng, r is record)}]
    return messages


def _odie_instance(record, ctx, prompts, cfg, rng, explanation=None) -> list[dict]:
    """ODIE: system prompt, user = instruction + "\\nText: " + text, answer [CoT explanation] "[Answer]: " + table."""
    if explanation is None:
        explanation = rng.random() < cfg.odie_cot_rate
    instruction = record["query"]["instruction"].strip()
    expl = None
    if explanation:
        instruction += " " + rng.choice(prompts.explanations["_requests"])
        expl = ctx.explanations.get(record["id"]) or template_explanation("ODIE", record["items"],
                                                                          prompts.explanations["ODIE"], rng)
    return [{"role": "system", "content": ODIE_SYSTEM},
            {"role": "user", "content": instruction + "\nText: " + record["text"]},
            {"role": "assistant", "content": with_explanation(canonical_answer("ODIE", record["items"]), expl)}]


def ie_instruct_instance(record: dict, ctx: DatasetContext, prompts: Prompts, cfg: IEInstructConfig,
                         rng: random.Random, *, output_format: str | None = None, demos: list | None = None,
                         explanation: bool | None = None, augment_schema: bool = True,
                         format_request: str | None = None) -> list[dict]:
    """One IEInstruct conversation for `record` (paper sections 3.2-3.3). Every augmentation is drawn from `rng` at
    the rates of `cfg`, unless forced:
      output_format  "canonical" | "json" | "template"  (evaluation forces "canonical")
      demos          the demonstration records ([] = zero-shot; evaluate.py passes k train records)
      explanation    True / False
      augment_schema False = all labels, no dropout, guidelines, examples, symbols or label variation (evaluation)
      format_request the output-format sentence to use (evaluate.py: the paper's Table 9, FORMAT_REQUESTS)"""
    if record["task"] == "ODIE":
        return _odie_instance(record, ctx, prompts, cfg, rng, explanation)
    plan = _plan(record, ctx, prompts, cfg, rng, output_format=output_format, demos=demos, explanation=explanation,
                 augment_schema=augment_schema, format_request=format_request)
    return _render_plan(record, plan, prompts, rng)


def evaluation_conversation(record: dict, demos: list[dict], prompts: Prompts | None = None, seed: int = 0) -> list:
    """A held-out evaluation conversation (paper section 5.1, appendix C.1): the full schema, no augmentation or
    explanation, the given demonstrations (k train records) and Table 9's format request. The last turn is the gold
    canonical answer (the prompt is messages[:-1]). Deterministic in (seed, record id)."""
    prompts = prompts or load_prompts()
    request = FORMAT_REQUESTS.get(record["task"]) or prompts.formats.get(record["task"], {}).get("canonical")
    rng = random.Random(f"evaluation/{seed}/{record['id']}")
    return ie_instruct_instance(record, DatasetContext({}, {}, {}), prompts, IEInstructConfig(), rng,
                                output_format="canonical", demos=list(demos), explanation=False, augment_schema=False,
                                format_request=request)


# ----------------------------------------------------------------------------------------------------------------
# 3.5 The whole corpus (sections 3.1, 4, appendix B.1): per data set, records in a seeded order become instances up
#    to the cap, NA ones within 20%, over-long ones shed demonstrations or go; then general chat is mixed in.

def _too_long(messages: list[dict], cfg: IEInstructConfig, tokenizer: TokenCounter | None) -> bool:
    """The length filter: the paper's 2048 tokens (appendix B.1) and/or the release's 1500 words."""
    if cfg.max_words and sum(len(m["content"].split(" ")) for m in messages) > cfg.max_words:
        return True
    if cfg.max_tokens and tokenizer is not None:
        # Cheap bound first: BOS + one dummy prefix per stretch + special ids + at most one piece per byte
        if len(render_chat(messages).encode("utf-8")) + 2 * len(messages) + 2 <= cfg.max_tokens:
            return False
        return tokenizer(messages)[0] > cfg.max_tokens
    return False


def _demos_that_fit(messages: list[dict], cfg: IEInstructConfig, tokenizer) -> int:
    """How many of the demonstrations (earlier turn pairs) can stay under the length limits: the lengths add up
    per turn pair (one stretch between special tokens each), so one measurement finds the number."""
    k = len(messages) // 2 - 1
    best = k
    for words, limit in ((True, cfg.max_words), (False, cfg.max_tokens if tokenizer is not None else 0)):
        if not limit:
            continue
        counts = ([sum(len(m["content"].split(" ")) for m in messages[i:i + 2]) for i in range(0, len(messages), 2)]
                  if words else tokenizer(messages)[1])  # per user/assistant pair; per stretch = per turn pair
        first, query, per_special = counts[0], counts[k], 0 if words else 1
        m = 0
        for m_try in range(1, k + 1):  # keep demos 0..m_try-1; demo 0 carries the instruction
            if (not words) + first + sum(counts[1:m_try]) + query + per_special * (m_try + 1) > limit:
                break
            m = m_try
        best = min(best, m)
    return best


def _fit_length(record, plan, messages, cfg, tokenizer, prompts, rng) -> list[dict] | None:
    """The length filter (appendix B.1): demonstrations are removed from the end of plan.demos until the
    conversation fits; None when even the query alone is too long."""
    if not _too_long(messages, cfg, tokenizer):
        return messages
    if plan.demos:
        plan.demos = plan.demos[:_demos_that_fit(messages, cfg, tokenizer)]
        messages = _render_plan(record, plan, prompts, rng)
        while plan.demos and _too_long(messages, cfg, tokenizer):  # answers were re-shuffled: check again
            plan.demos = plan.demos[:-1]
            messages = _render_plan(record, plan, prompts, rng)
    return None if _too_long(messages, cfg, tokenizer) else messages


def ie_instruct(records: list[dict], cfg: IEInstructConfig, prompts: Prompts | None = None, tokenizer=None,
                explanations: dict | None = None, progress: bool = True) -> tuple[list[dict], dict]:
    """IEInstruct from unified IE records (paper section 3): conversations {dataset, id, messages} and, per data
    set, what was read, built and dropped (never silently). Deterministic in cfg.seed; data sets are built in name
    order, each from its own random stream, so adding a data set leaves the others unchanged."""
    from tqdm import tqdm
    prompts = prompts or load_prompts()
    tokenizer = TokenCounter(tokenizer) if tokenizer is not None else None
    by_dataset = defaultdict(list)
    for r in records:
        by_dataset[r["dataset"]].append(r)
    conversations, stats = [], {}
    bar = tqdm(total=sum(min(len(v), dataset_cap(k, cfg)) for k, v in by_dataset.items()), desc="IEInstruct",
               unit="inst", disable=not progress, mininterval=1.0)
    for name in sorted(by_dataset):
        recs = by_dataset[name]
        ctx = dataset_context(recs, explanations)
        rng = random.Random(f"ie_instruct/{cfg.seed}/{name}")
        order = list(range(len(recs)))
        rng.shuffle(order)
        task, cap, built = recs[0]["task"], dataset_cap(name, cfg), []
        st = Counter(records=len(recs), na_records=sum(not r["items"] for r in recs), cap=cap)
        for j, idx in enumerate(order):
            if len(built) >= cap:  # examples-proportional mixture (section 3.1: limit 5,000; Table 7's counts)
                st["not used: data set cap"] += len(order) - j
                break
            r = recs[idx]
            plan = None if task == "ODIE" else _plan(r, ctx, prompts, cfg, rng)
            na = plan is not None and not _gold(r, plan)  # NA after class dropout
            if na and st["na_instances"] + 1 > cfg.na_cap * (len(built) + 1):  # NA cap (section 3.1)
                st["dropped: NA over the cap"] += 1
                continue
            if plan is None:
                messages = _odie_instance(r, ctx, prompts, cfg, rng)
                messages = None if _too_long(messages, cfg, tokenizer) else messages
            else:
                n_demos = len(plan.demos)
                messages = _fit_length(r, plan, _render_plan(r, plan, prompts, rng), cfg, tokenizer, prompts, rng)
                st["demonstrations removed for length"] += n_demos - len(plan.demos)
            if messages is None:
                st["dropped: too long"] += 1
                continue
            st["na_instances"] += na
            built.append({"dataset": name, "id": r["id"], "messages": messages})
            bar.update(1)
        # What the text cannot show: labels with the task's default guideline, LLM-written explanations used
        inventory = {l for r in recs for l in r["labels"]}
        st["labels without a guideline"] = len(inventory - set(prompts.guidelines.get(name, {})))
        expl = ctx.explanations
        st["LLM explanations used"] = sum(c["messages"][-1]["content"].startswith(EXPLANATION + expl[c["id"]])
                                          for c in built if c["id"] in expl)
        stats[name] = Counter({"task": task, "instances": len(built), **st})
        conversations += built
    bar.close()
    return conversations, stats


def read_explanations(path) -> dict[str, str]:
    """LLM-written explanations, JSONL {"id", "explanation"} keyed by record id (llm.py writes them)."""
    out = {}
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        obj = _json_line(line, f"{path}:{lineno}")
        text = obj.get("explanation") if isinstance(obj, dict) else None
        if not isinstance(text, str) or not text.strip() or "id" not in obj:
            raise ValueError(f'{path}:{lineno}: expected JSON {{"id", "explanation"}} with a non-empty explanation')
        out[str(obj["id"])] = text.strip()
    return out


def build(cfg: IEInstructConfig, progress: bool = True) -> dict:
    """`python data.py build`: records -> IEInstruct (+ general chat) -> cfg.out, with the statistics table
    printed and written beside it. Returns the summary."""
    import audit
    import synthetic
    t0 = time.perf_counter()
    skipped = []  # bad lines skipped with --skip_bad: counted and shown
    records, source, counts = read_ie_records(cfg, skipped if cfg.skip_bad else None)
    prompts = load_prompts([cfg.extra_descriptions] if cfg.extra_descriptions else ())
    tokenizer = None
    if cfg.max_tokens:
        import model
        tokenizer = model.Tokenizer(cfg.tokenizer)
    explanations = read_explanations(cfg.explanations) if cfg.explanations else None
    ie, stats = ie_instruct(records, cfg, prompts, tokenizer, explanations, progress)

    rng = random.Random(f"mix/{cfg.seed}")
    if cfg.general == "none" or cfg.ie_proportion >= 1:
        general, general_source = [], "none"
    else:  # section 4: IE makes up ie_proportion (20%) of the mix; with fewer general conversations, all of them
        if cfg.ie_proportion <= 0:  # (the realised proportion is then higher, and reported)
            raise ValueError(f"ie_proportion must be in (0, 1], got {cfg.ie_proportion}")
        need = round(len(ie) * (1 - cfg.ie_proportion) / cfg.ie_proportion)
        pool = load_general(cfg.general) if cfg.general else synthetic.generate_general(need, cfg.seed)
        general = pool if len(pool) <= need else rng.sample(pool, need)
        general_source = cfg.general or "synthetic general chat"
    mixed = ie + general
    rng.shuffle(mixed)
    # The statistics (audit.py) first: each file appears complete or not at all (robust.atomic_file), the output
    # last, so a present output (what pipeline.py tests) always has its statistics beside it.
    summary = audit.write_build_report(cfg, source, general_source, mixed, len(ie), stats, counts, skipped, tokenizer,
                                       time.perf_counter() - t0)
    with atomic_file(cfg.out) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for c in mixed:
            f.write(json.dumps({"dataset": c["dataset"], "id": c["id"], "messages": c["messages"]},
                               ensure_ascii=False) + "\n")
    print(f"wrote {len(mixed)} conversations ({len(ie)} IE + {len(general)} general) to {cfg.out}")
    return summary


# ----------------------------------------------------------------------------------------------------------------
# 4. Command line: build here; show and stats in audit.py (one dataclass config each; every field is a flag)

def main(argv: list[str] | None = None):
    import audit
    argv = sys.argv[1:] if argv is None else list(argv)
    commands = {"build": (IEInstructConfig, build), "show": (audit.ShowConfig, audit.show),
                "stats": (audit.StatsConfig, audit.stats)}
    if not argv or argv[0] not in commands:
        examples = next(p for p in __doc__.split("\n\n") if "python data.py build" in p)
        sys.exit(f"usage: python data.py {{{','.join(commands)}}} [flags]  (-h after a command lists its flags)\n\n"
                 + examples)
    cls, fn = commands[argv[0]]
    cfg, explicit = parse_config(cls, argv[1:], prog=f"python data.py {argv[0]}",
                                 description=(fn.__doc__ or "").split("\n")[0])
    if cls is IEInstructConfig:  # defaults <- the preset's "ie_instruct" section <- the flags given
        cfg, from_preset = apply_preset(cfg, explicit, "ie_instruct")
        if not cfg.out:
            sys.exit("error: build needs --out FILE")
        print(settings_line(cfg, from_preset, explicit))
    return fn(cfg)


if __name__ == "__main__":
    main()
