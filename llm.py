"""LLM-written parts of IEInstruct, through any OpenAI-compatible chat-completions endpoint (paper sections 3.2, 3.3,
appendix A, Tables 5 and 6).

    export OPENAI_API_KEY=...            # optional: OPENAI_BASE_URL (default https://api.openai.com/v1), OPENAI_MODEL
    python llm.py expand --pools prompts/task_descriptions.json --out runs/llm/task_descriptions_generated.json
    python llm.py explain --records train.jsonl --out runs/llm/explanations.jsonl
    python data.py build --out ie_instruct.jsonl --records train.jsonl \
        --extra_descriptions runs/llm/task_descriptions_generated.json --explanations runs/llm/explanations.jsonl

The paper's two uses of an LLM, each a plain function (and, at the end, `sample_served`: feedback.py's and
evaluate.py's `--backend openai`, the same client on a serving engine's completions endpoint):

- `expand_task_descriptions` (section 3.2, "Task Description"): for each task, about 20 new task descriptions are
  generated from the 10 hand-written ones in a Self-Instruct loop; each request shows 3 hand-written and 2 generated
  descriptions and asks for one more. New descriptions are validated (placeholders, on-task, length) and
  deduplicated (ROUGE-L, as Self-Instruct does). The paper then verified them by hand: the CLI prints them for review.
- `write_explanations` (section 3.3, appendix A.2, Table 6): explanations of gold answers for sampled training
  instances, up to 1000 per dataset (plain explanations) and 500 per dataset (step-by-step CoT, Table 6), with a
  word limit drawn at random from 70..200 and written into the prompt (the release sent the `{words_number}`
  placeholder unformatted: docs/fidelity.md §1). Unusable outputs are dropped and counted.

Both go through `ChatClient`: POST {base_url}/chat/completions with `requests`, retries with exponential backoff and
jitter on 429/5xx/connection errors (honouring Retry-After), an immediate error on 401/403, and a JSONL disk cache
keyed by a hash of the request, appended as responses arrive, so an interrupted job is resumed by running the same
command again without paying twice. The API key only ever goes into the Authorization header: it is never printed,
logged, cached or written to any output file.

Temperature: appendix A says 0.7 for both GPT-3.5 and GPT-4; the released code used 0 for explanations
(docs/fidelity.md §1). The default here is the paper's 0.7.
"""
from __future__ import annotations

import email.utils
import functools
import hashlib
import json
import logging
import os
import random
import re
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple
from urllib.parse import urlsplit, urlunsplit

import requests
from tqdm import tqdm

from config import flag, parse_config
from ie_formats import TASKS
from robust import atomic_file, read_appendable_jsonl
from scorers import answer_part, rouge_l, rouge_tokens  # Self-Instruct's ROUGE-L filter (section 3.2)

log = logging.getLogger("llm")

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Appendix A: "we utilized gpt-3.5-turbo-1106 for GPT-3.5 and gpt-4-0125-preview for GPT-4. The temperature
# parameter was set at 0.7, with all other parameters at their default settings."
PAPER_EXPAND_MODEL = "gpt-3.5-turbo-1106"   # section 3.2: GPT-3.5 writes the new task descriptions
PAPER_EXPLAIN_MODEL = "gpt-4-0125-preview"  # section 3.3: GPT-4 writes the explanations
PAPER_TEMPERATURE = 0.7



class LLMError(RuntimeError):
    """The endpoint failed, or answered something we cannot use."""


class AuthError(LLMError):
    """The endpoint rejected the API key (HTTP 401/403): retrying cannot help."""


# ----------------------------------------------------------------------------------------------------------------
# The client: one POST per request, retries with backoff, a disk cache

# A Retry-After longer than this (seconds) usually means a spent daily quota: stop instead of sleeping for hours.
MAX_RETRY_AFTER = 600.0


class Completion(NamedTuple):
    content: str
    finish_reason: str  # "stop", or "length" when max_tokens cut the reply short
    cached: bool


def public_url(url: str) -> str:
    """`url` without user:password@ and without a query string: what cache keys and messages may contain."""
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def backoff_delay(attempt: int, base: float, cap: float, retry_after: float | None, rng: random.Random) -> float:
    """Exponential backoff with jitter: about base * 2^attempt, at most `cap`, never shorter than Retry-After."""
    delay = min(cap, base * 2 ** attempt)
    delay = rng.uniform(delay / 2, delay)  # jitter, so clients throttled together do not come back together
    return max(delay, retry_after or 0.0)


class ResponseCache:
    """Responses on disk as JSONL, one `{"key", "model", "messages", "content", "finish_reason"}` per line, appended
    as they arrive. A job killed mid-write leaves a torn last line: it is ignored, counted in `torn_lines`, and cut
    off the file so later appends start on a fresh line. A broken line anywhere else is corruption: an error."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.entries: dict[str, dict] = {}
        self.torn_lines = 0
        self._lock = threading.Lock()
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        def valid(entry):
            if not (isinstance(entry, dict) and isinstance(entry.get("key"), str)
                    and isinstance(entry.get("content"), str)):
                raise ValueError("expected an object with string fields 'key' and 'content'")
        try:
            rows, self.torn_lines = read_appendable_jsonl(self.path, valid)
        except ValueError as e:
            raise LLMError(f"corrupt cache entry, {e}: delete the file to start over") from None
        if self.torn_lines:
            log.warning("%s: ignored a torn last line (an interrupted write)", self.path)
        self.entries = {entry["key"]: entry for _, entry in rows}

    def get(self, key: str) -> dict | None:
        return self.entries.get(key)

    def put(self, entry: dict) -> None:
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
            self.entries[entry["key"]] = entry


class ChatClient:
    """A minimal client for `POST {base_url}/chat/completions` (the OpenAI API; vLLM, llama.cpp, TGI and most
    gateways speak it). `complete` returns the first choice's message content.

    Transient failures (HTTP 429, 5xx, connection errors, timeouts) are retried up to `max_retries` times with
    `backoff_delay`; then an LLMError says what kept failing. 401/403 raise AuthError at once; any other status
    and any reply without `choices[0].message.content` raise LLMError with the (key-redacted) response excerpt."""

    def __init__(self, base_url: str, model: str, api_key: str = "", *, cache_path: str | Path | None = None,
                 timeout: float = 120.0, max_retries: int = 6, backoff_base: float = 1.0, backoff_max: float = 60.0):
        if not base_url or not model:
            raise ValueError("ChatClient needs a base URL and a model name")
        if urlsplit(base_url.strip()).scheme not in ("http", "https"):
            raise ValueError(f"base URL {public_url(base_url)!r} must start with http:// or https://")
        self.base_url = base_url.strip().rstrip("/")
        self.public_url = public_url(self.base_url)
        self.model = model
        api_key = api_key.strip()  # a key read from a file often ends with a newline
        if any(c.isspace() or not c.isprintable() for c in api_key):
            # requests would reject the header and quote it, key included, in its error message.
            raise ValueError("the API key contains whitespace or control characters (key not shown)")
        self.__api_key = api_key  # only ever used in the Authorization header (name-mangled to keep it out of sight)
        self.timeout, self.max_retries = timeout, max_retries
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self.cache = ResponseCache(cache_path) if cache_path else None
        self.stats: Counter = Counter()  # http_requests, retries, cache_hits, completions
        self._stats_lock = threading.Lock()
        self._jitter = random.Random()  # jitter needs no reproducibility

    def __repr__(self) -> str:
        return f"ChatClient({self.public_url!r}, model={self.model!r}, key={'set' if self.__api_key else 'none'})"

    def _count(self, name: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[name] += n

    def _redact(self, text: str) -> str:
        """Anything that may reach a message or a log, with the key (and URL credentials) blanked out."""
        if self.__api_key:
            text = text.replace(self.__api_key, "***")
        return text.replace(self.base_url, self.public_url)

    def cache_key(self, messages: list[dict], temperature: float, max_tokens: int, tag: str = "") -> str:
        """sha256 of everything that decides the reply. `tag` tells apart requests that are identical on purpose
        (two samples of one prompt at temperature > 0); the URL is the credential-free one."""
        blob = json.dumps({"base_url": self.public_url, "model": self.model, "messages": messages,
                           "temperature": temperature, "max_tokens": max_tokens, "tag": tag},
                          sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def complete(self, messages: list[dict], *, temperature: float, max_tokens: int, tag: str = "") -> Completion:
        """The reply to `messages`, from the cache when this exact request was answered before."""
        key = self.cache_key(messages, temperature, max_tokens, tag)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            self._count("cache_hits")
            return Completion(hit["content"], hit.get("finish_reason", ""), cached=True)
        body = {"model": self.model, "messages": messages, "temperature": temperature, "max_tokens": max_tokens}
        content, finish_reason = self._parse(self._request("chat/completions", body))
        self._count("completions")
        if self.cache is not None:
            self.cache.put({"key": key, "model": self.model, "messages": messages, "tag": tag,
                            "content": content, "finish_reason": finish_reason})
        return Completion(content, finish_reason, cached=False)

    def _request(self, path: str, body: dict | None = None) -> requests.Response:
        """POST `body` (GET without one) to {base_url}/{path}, with the retries described above."""
        url = f"{self.base_url}/{path}"
        where = f"{self.public_url}/{path} (model {self.model})"
        headers = {"Content-Type": "application/json"}
        if self.__api_key:
            headers["Authorization"] = f"Bearer {self.__api_key}"
        problem = ""
        for attempt in range(self.max_retries + 1):
            self._count("http_requests")
            retry_after = None
            try:
                resp = requests.post(url, json=body, headers=headers, timeout=self.timeout) if body is not None \
                    else requests.get(url, headers=headers, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as e:
                problem = f"{type(e).__name__}: {self._redact(str(e))[:300]}"
            except requests.RequestException as e:  # an invalid URL and the like: retrying cannot help
                raise LLMError(f"{where}: {type(e).__name__}: {self._redact(str(e))[:300]}") from None
            else:
                status = resp.status_code
                if 200 <= status < 300:
                    return resp
                excerpt = self._redact(resp.text[:500])
                if status in (401, 403):
                    raise AuthError(f"{where}: HTTP {status}: the endpoint rejected the API key (set a valid key "
                                    f"in $OPENAI_API_KEY or --api_key; the key is not shown). Response: {excerpt}")
                if status != 429 and status < 500:  # 400, 404, 422...: the request itself is wrong
                    raise LLMError(f"{where}: HTTP {status}, not retried (check --base_url, --model and "
                                   f"--max_tokens). Response: {excerpt}")
                problem = f"HTTP {status}: {excerpt[:200]}"
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                if retry_after is not None and retry_after > MAX_RETRY_AFTER:
                    raise LLMError(f"{where}: {problem}; the endpoint asks to wait {retry_after:.0f} s (a spent "
                                   f"quota?): giving up now. Run the same command later to resume from the cache.")
            if attempt == self.max_retries:
                break
            delay = backoff_delay(attempt, self.backoff_base, self.backoff_max, retry_after, self._jitter)
            self._count("retries")
            log.warning("%s: %s; retry %d/%d in %.2f s", where, problem, attempt + 1, self.max_retries, delay)
            time.sleep(delay)
        raise LLMError(f"{where}: gave up after {self.max_retries + 1} attempts; last problem: {problem}. Responses "
                       f"received so far are cached: run the same command again to resume.")

    def complete_prompt(self, prompt: str, *, n: int, temperature: float, top_p: float, max_tokens: int,
                        seed: int) -> tuple[list[tuple[str, str]], dict]:
        """POST {base_url}/completions: the raw prompt (no chat template), `n` samples. Returns ([(text,
        finish_reason)] of the choices the server sent -- some servers send one whatever `n` is -- and the usage it
        reports ({"prompt_tokens", "completion_tokens"}, or {}). Never cached: the caller's output files are the
        resume point."""
        body = {"model": self.model, "prompt": prompt, "n": n, "temperature": temperature, "top_p": top_p,
                "max_tokens": max_tokens, "seed": seed}
        resp = self._request("completions", body)
        where = f"{self.public_url}/completions (model {self.model})"
        try:
            data = resp.json()
            choices = [(c["text"], str(c.get("finish_reason") or "")) for c in data["choices"]]
            usage = data.get("usage") or {}
            if not isinstance(usage, dict) or not choices or not all(isinstance(t, str) for t, _ in choices):
                raise TypeError("no choices")
        except (ValueError, KeyError, IndexError, TypeError):
            raise LLMError(f"{where}: malformed response, expected {{'choices': [{{'text': str, 'finish_reason': "
                           f"str}}, ...]}}, got: {self._redact(resp.text[:300])!r}") from None
        self._count("completions")
        return choices, usage

    def served_models(self) -> list[str]:
        """The model names GET {base_url}/models lists (OpenAI's format: {"data": [{"id": ...}, ...]})."""
        resp = self._request("models")
        try:
            return [m["id"] for m in resp.json()["data"]]
        except (ValueError, KeyError, TypeError):
            raise LLMError(f"{self.public_url}/models: malformed response, expected {{'data': [{{'id': str}}]}}, "
                           f"got: {self._redact(resp.text[:300])!r}") from None

    def _parse(self, resp: requests.Response) -> tuple[str, str]:
        where = f"{self.public_url}/chat/completions (model {self.model})"
        try:
            data = resp.json()
        except ValueError:
            raise LLMError(f"{where}: malformed response, not JSON: {self._redact(resp.text[:300])!r}") from None
        try:
            choice = data["choices"][0]
            content = choice["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise LLMError(f"{where}: malformed response, expected {{'choices': [{{'message': {{'content': "
                           f"str}}}}]}}, got: {self._redact(json.dumps(data)[:300])}") from None
        if not isinstance(content, str):
            raise LLMError(f"{where}: malformed response, choices[0].message.content is "
                           f"{type(content).__name__}, expected a string (a refusal or a tool call?)")
        return content, str(choice.get("finish_reason") or "")


# ----------------------------------------------------------------------------------------------------------------
# Paper section 3.2: task descriptions, expanded Self-Instruct style

TASK_NAMES = {"NER": "named entity recognition", "RC": "relation classification", "RE": "relation extraction",
              "ED": "event detection", "EAE": "event argument extraction", "EE": "event extraction",
              "ERE": "event relation extraction", "OpenIE": "open information extraction",
              "ODIE": "on-demand information extraction"}

# The on-task check, kept simple on purpose: a description must contain a word starting with one of its task's
# stems (what the task is about) and none of OFF_TASK_STEMS. It only catches obviously off-task outputs, such as
# the "paraphrase" templates that ended up in the released ED pool (docs/fidelity.md §1); the manual review the paper
# did (section 3.2) catches the rest. Every hand-written description passes it (tests/test_llm.py checks that).
TASK_KEY_STEMS = {
    "NER": ("entit", "name", "mention", "person", "people", "organi", "place", "location"),
    "RC": ("relat", "connect", "link"),
    "RE": ("relat", "triple"),
    "ED": ("event", "trigger", "occurrence", "happening"),
    "EAE": ("argument", "role", "participant"),
    "EE": ("event",),
    "ERE": ("relat", "temporal", "causal", "coreferen", "subevent", "order"),
    "OpenIE": ("relat", "tuple", "triple", "fact", "predicate"),
    "ODIE": ("table", "extract", "information"),
}
OFF_TASK_STEMS = ("paraphras", "translat", "sentiment", "rewrite", "rephras")

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
MIN_DESCRIPTION_WORDS = 5


@dataclass
class PoolRules:
    """What a generated description of one task may look like, derived from its hand-written pool."""
    task: str
    allowed: frozenset   # placeholders seen in any hand-written description (data.py fills these)
    required: frozenset  # placeholders present in every hand-written description
    companions: dict     # placeholder -> the placeholders every hand-written description using it also uses
    max_words: int       # twice the longest hand-written description


def pool_rules(task: str, human: list[str]) -> PoolRules:
    """E.g. RC: {head} and {tail} are optional (some descriptions say "the head entity" instead) but come together;
    ERE: {relation_kind} is required."""
    sets = [set(PLACEHOLDER.findall(d)) for d in human]
    allowed = set().union(*sets)
    companions = {p: frozenset(set.intersection(*[s for s in sets if p in s])) for p in sorted(allowed)}
    return PoolRules(task, frozenset(allowed), frozenset(set.intersection(*sets)), companions,
                     2 * max(len(d.split()) for d in human))


def parse_description(reply: str) -> str:
    """The description in a reply: a leading "Description 6:" label, quotes and any further descriptions removed,
    whitespace collapsed."""
    text = reply.strip()
    text = re.sub(r"^(?:new\s+)?(?:task\s+)?description(?:\s*\d+)?\s*[:.\-]\s*", "", text, flags=re.I)
    text = re.split(r"\n\s*(?:new\s+)?(?:task\s+)?description\s*\d*\s*:", text, flags=re.I)[0]
    text = " ".join(text.split())
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def validate_description(text: str, rules: PoolRules) -> str | None:
    """Why `text` cannot be a task description of `rules.task`, or None when it can. Duplicates are checked apart
    (`duplicate_reason`), since they depend on the pool built so far."""
    if not text:
        return "empty"
    n_words = len(text.split())
    if n_words < MIN_DESCRIPTION_WORDS:
        return "too short"
    if n_words > rules.max_words:
        return "too long"
    found = set(PLACEHOLDER.findall(text))
    if found - rules.allowed:
        return "unknown placeholder"  # data.py would leave it unfilled in the prompt (the release's defect)
    if rules.required - found or any(rules.companions[p] - found for p in found):
        return "missing placeholder"
    rest = PLACEHOLDER.sub("", text)
    if "{" in rest or "}" in rest or re.search(r"<[A-Za-z_][\w ]*>", rest):
        return "malformed placeholder"  # { tail }, {{text}}, <text>, <entity1>: would stay literal in the prompt
    tokens = rouge_tokens(text)
    if any(t.startswith(OFF_TASK_STEMS) for t in tokens):
        return "off-task"
    if not any(t.startswith(TASK_KEY_STEMS[rules.task]) for t in tokens):
        return "off-task"
    return None


def duplicate_reason(text: str, pool: list[str], threshold: float) -> str | None:
    """"duplicate" (same words), "near-duplicate" (ROUGE-L >= threshold with a pool member), or None."""
    w = rouge_tokens(text)
    if any(rouge_tokens(p) == w for p in pool):
        return "duplicate"
    if any(rouge_l(text, p) >= threshold for p in pool):
        return "near-duplicate"
    return None


def expansion_prompt(task: str, examples: list[str], rules: PoolRules) -> str:
    """Our adaptation of the paper's Table 5 prompt to task descriptions alone: numbered examples, then a request
    for one more with the same meaning and different wording (Table 5 asked for whole templates, with output
    formats; data.py writes output format descriptions itself)."""
    name = TASK_NAMES[task]
    shown = "\n".join(f"Description {i}: {d}" for i, d in enumerate(examples, 1))
    mark = lambda names: " and ".join("{" + p + "}" for p in sorted(names))
    if rules.allowed:
        optional = rules.allowed - rules.required
        rule = ([f"It must contain {mark(rules.required)}"] if rules.required else []) \
            + ([f"it may{' also' if rules.required else ''} contain {mark(optional)}"] if optional else [])
        grouped = set()
        for p, c in rules.companions.items():  # placeholders the hand-written pool only uses together
            need = c - {p} - rules.required
            if need and p not in grouped:
                if all(p in rules.companions[q] for q in need):
                    grouped |= need | {p}
                    rule.append(f"use {mark(need | {p})} together or not at all")
                else:
                    rule.append(f"use {mark([p])} only together with {mark(need)}")
        placeholder_rule = ("; ".join(rule) + ", written exactly like that, in curly braces. Use no other words in "
                            "curly or angle brackets.")
        placeholder_rule = placeholder_rule[0].upper() + placeholder_rule[1:]
    else:
        placeholder_rule = "Do not use placeholders or any words in curly or angle brackets."
    return (f'Below are descriptions of the "{name}" ({task}) task, an information extraction task. Each one '
            f"tells a model what to extract from a text that will be given after it.\n\n{shown}\n\n"
            f"Write one new description of the same task. Requirements:\n"
            f"1. It asks for exactly the same task as the examples, in different words: do not reuse their verbs or "
            f"sentence patterns.\n"
            f"2. Vary the style: a question, a command or a polite request are all fine.\n"
            f"3. {placeholder_rule}\n"
            f"4. Do not include an input text, examples, label names or an output format.\n"
            f"5. Write one paragraph in English.\n\n"
            f"Reply with the new description only, as \"Description {len(examples) + 1}: ...\".")


def expand_task_descriptions(pools: dict[str, list[str]], client: ChatClient, *, tasks: list[str] | None = None,
                             n_per_task: int = 20, n_human: int = 3, n_generated: int = 2,
                             max_attempts_per_task: int = 60, similarity_threshold: float = 0.7,
                             temperature: float = PAPER_TEMPERATURE, max_tokens: int = 256, seed: int = 42,
                             progress: bool = True) -> tuple[dict[str, list[str]], dict]:
    """Paper section 3.2: generate `n_per_task` new descriptions per task with an iterated Self-Instruct loop.
    Each request shows `n_human` hand-written and `n_generated` already generated descriptions (fewer while fewer
    exist) and asks for one more; a reply is kept when it passes `validate_description` and is not a (near-)
    duplicate of the pool. Stops per task after `max_attempts_per_task` requests.

    Returns (generated, report): generated = {task: [new descriptions]} (the shape of
    prompts/task_descriptions.json, hand-written ones not repeated); report = {task: {"requests", "accepted",
    "rejects": Counter(reason), "rejected": [{"text", "reason"}], "human_failing_checks": [...]}}.
    Same seed and same cache -> same requests, so a rerun resumes from the cache."""
    tasks = list(tasks or pools)
    for task in tasks:
        if task not in TASK_KEY_STEMS:
            raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
        if not pools.get(task):
            raise ValueError(f"task {task}: the hand-written pool is empty; it needs descriptions to imitate")
    generated, report = {}, {}
    with tqdm(total=n_per_task * len(tasks), desc="task descriptions", unit="desc", disable=not progress) as bar:
        for task in tasks:
            human = [" ".join(d.split()) for d in pools[task]]
            rules = pool_rules(task, human)
            rng = random.Random(f"expand/{seed}/{task}")
            accepted, rejected = [], []
            while len(accepted) < n_per_task and len(accepted) + len(rejected) < max_attempts_per_task:
                attempt = len(accepted) + len(rejected)
                examples = rng.sample(human, min(n_human, len(human))) \
                    + rng.sample(accepted, min(n_generated, len(accepted)))
                rng.shuffle(examples)  # as Self-Instruct does: no position gives away which ones are generated
                reply = client.complete([{"role": "user", "content": expansion_prompt(task, examples, rules)}],
                                        temperature=temperature, max_tokens=max_tokens,
                                        tag=f"expand/{seed}/{task}/{attempt}")  # a fresh sample per attempt
                text = parse_description(reply.content)
                reason = ("truncated" if reply.finish_reason == "length" else None) \
                    or validate_description(text, rules) \
                    or duplicate_reason(text, human + accepted, similarity_threshold)
                if reason:
                    rejected.append({"text": text, "reason": reason})
                else:
                    accepted.append(text)
                    bar.update(1)
                bar.set_postfix(task=task, rejected=len(rejected))
            rejects = Counter(r["reason"] for r in rejected)
            if len(accepted) < n_per_task:
                log.warning("task %s: only %d of %d descriptions after %d requests (rejects: %s)", task,
                            len(accepted), n_per_task, len(accepted) + len(rejected), dict(rejects))
                bar.update(n_per_task - len(accepted))
            generated[task] = accepted
            # A hand-written description failing our checks means the checks are wrong for this pool: report it.
            report[task] = {"requests": len(accepted) + len(rejected), "accepted": len(accepted), "rejects": rejects,
                            "rejected": rejected,
                            "human_failing_checks": [d for d in human if validate_description(d, rules)]}
    return generated, report


# ----------------------------------------------------------------------------------------------------------------
# Paper section 3.3, appendix A.2, Table 6: explanations of gold answers

# Table 6 of the paper, the step-by-step (CoT) prompt. The release sent it with {words_number} left unformatted
# (docs/fidelity.md §1); here every placeholder is filled.
COT_PROMPT = ("Please generate a step-by-step explanation for [Answer] based on [Question], and give reasons for "
              "each step.\n"
              "The generated explanation should make use of the content in the [Question] as much as possible, and "
              "must be consistent with the [Answer].\n"
              "It will eventually be provided at the front of the answer.\n"
              "No more than {words_number} words.\n\n"
              "[Question]: {input}\n\n[Answer]: {output}\n\n[Step-by-Step Explanation]:")
# The plain-explanation variant (docs/fidelity.md §1: the release also wrote non-step-by-step explanations):
# Table 6 with "step-by-step" taken out.
EXPLANATION_PROMPT = ("Please generate an explanation for [Answer] based on [Question].\n"
                      "The generated explanation should make use of the content in the [Question] as much as "
                      "possible, and must be consistent with the [Answer].\n"
                      "It will eventually be provided at the front of the answer.\n"
                      "No more than {words_number} words.\n\n"
                      "[Question]: {input}\n\n[Answer]: {output}\n\n[Explanation]:")
PROMPTS = {"explanation": EXPLANATION_PROMPT, "cot": COT_PROMPT}
# Section 3.3: explanations are for closed and open IE (on-demand IE data comes with its own CoT version).
EXPLAINED_TASKS = tuple(t for t in TASKS if t != "ODIE")


def word_limit(seed: int, record_id: str, low: int = 70, high: int = 200) -> int:
    """Appendix A.2: "setting limits randomly between 70 and 200 words". Drawn from (seed, id) alone, so an
    instance's limit does not depend on which other instances were sampled."""
    return random.Random(f"words/{seed}/{record_id}").randint(low, high)


def sample_for_explanation(records: list[dict], *, n_explanation: int = 1000, n_cot: int = 500, seed: int = 42,
                           split: str = "train") -> list[tuple[dict, str]]:
    """Which instances get an explanation, and of which style: per dataset (in sorted name order), a seeded random
    permutation of its `split` records of closed/open IE tasks; the first `n_explanation` get a plain explanation,
    the next `n_cot` a step-by-step one (disjoint, since data.py keys explanations by record id)."""
    by_dataset: dict[str, list[dict]] = {}
    seen = set()
    for r in records:
        if r["id"] in seen:
            raise ValueError(f"record id {r['id']!r} appears twice; explanations are keyed by id")
        seen.add(r["id"])
        if r["split"] == split and r["task"] in EXPLAINED_TASKS:
            by_dataset.setdefault(r["dataset"], []).append(r)
    chosen = []
    for dataset in sorted(by_dataset):
        recs = by_dataset[dataset]
        order = random.Random(f"explain/{seed}/{dataset}").sample(range(len(recs)), len(recs))
        chosen += [(recs[i], "explanation") for i in order[:n_explanation]]
        chosen += [(recs[i], "cot") for i in order[n_explanation:n_explanation + n_cot]]
    return chosen


def clean_explanation(text: str) -> str:
    """The reply without an echoed "[Explanation]:" / "[Step-by-Step Explanation]:" label."""
    text = text.strip()
    return re.sub(r"^\[?(?:step-by-step\s+)?explanation\]?\s*:\s*", "", text, flags=re.I).strip()


def explanation_reason(text: str, words_number: int, max_words_slack: float, finish_reason: str) -> str | None:
    """Why an explanation is unusable, or None. Kept simple and documented:
    - "truncated": the reply hit max_tokens (finish_reason "length");
    - "empty";
    - "has its own answer": it contains "[Answer]". Targets are "[Explanation]: ... [Answer]: ...", and the answer
      is read after the first "[Answer]:" (docs/fidelity.md §5), so a second one would make the target contradict or
      hide the gold answer;
    - "over-long": more words than `max_words_slack` x the requested limit (models overshoot a little)."""
    if finish_reason == "length":
        return "truncated"
    if not text:
        return "empty"
    if "[answer]" in text.lower():
        return "has its own answer"
    if len(text.split()) > max_words_slack * words_number:
        return "over-long"
    return None


def write_explanations(records: list[dict], client: ChatClient, *,
                       render: Callable[[dict], tuple[str, str]] | None = None,
                       n_explanation: int = 1000, n_cot: int = 500, seed: int = 42, split: str = "train",
                       min_words: int = 70, max_words: int = 200, temperature: float = PAPER_TEMPERATURE,
                       max_tokens: int = 512, max_words_slack: float = 1.5, workers: int = 4,
                       progress: bool = True) -> tuple[list[dict], dict]:
    """Paper section 3.3 and appendix A.2: an LLM explains each sampled instance's gold answer, given the question
    and the answer (Table 6, {words_number} = `word_limit`). `render(record) -> (question, answer)` gives Table 6's
    {input} and {output} (default: data.py's question and canonical answer).

    Returns (rows, report): rows = [{"id", "explanation", "words_number", "style"}] in sampling order, the file
    data.py reads with --explanations; report = {"sampled": Counter(style), "written": Counter(style),
    "dropped": Counter(reason), "per_dataset": {dataset: Counter}, "rejected": [row + "reason"]}."""
    render = render or default_render
    chosen = sample_for_explanation(records, n_explanation=n_explanation, n_cot=n_cot, seed=seed, split=split)

    def explain(record: dict, style: str) -> tuple[dict, str | None]:
        question, answer = render(record)
        n_words = word_limit(seed, record["id"], min_words, max_words)
        prompt = PROMPTS[style].format(words_number=n_words, input=question, output=answer)
        reply = client.complete([{"role": "user", "content": prompt}], temperature=temperature,
                                max_tokens=max_tokens, tag=f"explain/{style}/{record['id']}")
        text = clean_explanation(reply.content)
        row = {"id": record["id"], "explanation": text, "words_number": n_words, "style": style}
        return row, explanation_reason(text, n_words, max_words_slack, reply.finish_reason)

    results: list = [None] * len(chosen)
    bar = tqdm(total=len(chosen), desc="explanations", unit="req", disable=not progress)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(explain, rec, style): i for i, (rec, style) in enumerate(chosen)}
        try:
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                bar.update(1)
        except BaseException:
            # Stop sending; requests already answered are in the cache for the rerun.
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            bar.close()

    rows = []
    report = {"sampled": Counter(), "written": Counter(), "dropped": Counter(), "per_dataset": {}, "rejected": []}
    for (record, style), (row, reason) in zip(chosen, results):
        per = report["per_dataset"].setdefault(record["dataset"], Counter())
        report["sampled"][style] += 1
        per[f"sampled {style}"] += 1
        if reason:
            report["dropped"][reason] += 1
            report["rejected"].append({**row, "reason": reason})
            per[f"dropped ({reason})"] += 1
        else:
            rows.append(row)
            report["written"][style] += 1
            per[f"written {style}"] += 1
    return rows, report


def default_render(record: dict) -> tuple[str, str]:
    """Table 6's {input} and {output} for a unified IE record, from data.py: the question is the instance's
    user turn as evaluation asks it (task description, the full schema, the canonical format request, the text;
    no augmentation), the answer its canonical gold answer after "[Answer]: " ("NA" when there is nothing).
    data.py is imported here, so that the client and expansion work without it (and without torch)."""
    import data
    messages = data.evaluation_conversation(record, [], prompts=_data_prompts())
    return messages[-2]["content"], answer_part(messages[-1]["content"]).strip()


@functools.lru_cache(maxsize=1)
def _data_prompts():
    import data
    return data.load_prompts()


# ----------------------------------------------------------------------------------------------------------------
# Sampling through a serving engine: feedback.py and evaluate.py run --backend openai
#
# At 7B the expensive stages are the two that sample, not training: IEFeedback draws 5 samples for tens of
# thousands of prompts (section 4) and evaluation decodes thousands of prompts per test set (appendix C.1); the
# authors used vLLM for both. With --backend openai each rendered prompt goes to {base_url}/completions of any
# OpenAI-compatible server (`vllm serve runs/sft/final`, `transformers serve`, ...): the completions endpoint, not
# chat completions, so the server applies no chat template and tokenises exactly the text model.py's path encodes
# (the export's tokenizer.json equals tokenizer.model; the prompt length the server reports is checked against
# ours). The callers keep their own per-prompt output files, so a rerun resumes where an interrupted one stopped.

@dataclass
class ServeConfig:
    backend: str = flag("builtin", "who samples: builtin = model.py's generate (under torchrun); openai = an "
                                   "OpenAI-compatible server at --base_url (vLLM, transformers serve, ...)",
                        choices=["builtin", "openai"])
    base_url: str = flag("", "--backend openai: the server's base URL, e.g. http://localhost:8000/v1 (`vllm serve "
                             "MODEL`); a key, if the server wants one, is read from $OPENAI_API_KEY")
    served_model: str = flag("", "--backend openai: the model name to request (default: the only model the "
                                 "server lists at /models)")
    concurrency: int = flag(64, "--backend openai: requests in flight at once (the server batches them)")
    request_timeout: float = flag(600.0, "--backend openai: seconds to wait for one response (all its samples)")
    max_retries: int = flag(6, "--backend openai: retries of a request after 429/5xx/connection errors, with "
                               "exponential backoff, before the run stops (rerun to resume)")


def serving_client(cfg: ServeConfig) -> ChatClient:
    """The client for --backend openai: --base_url, the key from $OPENAI_API_KEY, and the served model's name
    (--served_model, else the only one the server lists)."""
    if not cfg.base_url:
        raise ValueError("--backend openai needs --base_url, e.g. http://localhost:8000/v1 where `vllm serve "
                         "runs/sft/final` listens")
    client = ChatClient(cfg.base_url, cfg.served_model or "?", os.environ.get("OPENAI_API_KEY", ""),
                        timeout=cfg.request_timeout, max_retries=cfg.max_retries)
    if not cfg.served_model:
        names = client.served_models()
        if len(names) != 1:
            raise LLMError(f"{client.public_url}/models lists {len(names)} models {names[:10]}: choose one with "
                           f"--served_model")
        client.model = names[0]
    return client


def request_seed(seed: int, index: int, request: int) -> int:
    """The `seed` of request `request` for prompt `index`: fixed by the prompt, not by the order of requests."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{index}/{request}".encode()).digest()[:4], "little") >> 1


def sample_served(client: ChatClient, prompts: list[tuple[int, str, int]], on_answer: Callable, *,
                  num_samples: int, temperature: float, top_p: float, max_tokens: int, seed: int,
                  concurrency: int, context: int | None = None, progress: bool = True, desc: str = "sampling") -> int:
    """Answer each (index, rendered prompt, its length in tokens) with `num_samples` samples from the server,
    `concurrency` prompts in flight, and call on_answer(index, texts, finished) in this thread as each prompt's
    samples are in (finished: the sample ended at EOS rather than at max_tokens). Given the model's `context`, a
    request asks for at most context - prompt tokens (model.generate's budget; vLLM refuses more). A server that
    sends fewer choices than `n` asks for (transformers serve sends one) is asked again for the rest. Returns the
    completion tokens the server reports. On the first failure, stops sending and raises: what on_answer has
    written stays."""
    def answer(index: int, text: str, n_ids: int) -> tuple[int, list[str], list[bool], int]:
        texts, finished, tokens = [], [], 0
        while len(texts) < num_samples:
            choices, usage = client.complete_prompt(
                text, n=num_samples - len(texts), temperature=temperature, top_p=top_p,
                max_tokens=max_tokens if context is None else min(max_tokens, context - n_ids),
                seed=request_seed(seed, index, len(texts)))
            if usage.get("prompt_tokens") not in (None, n_ids):
                raise LLMError(f"{client.public_url} (model {client.model}) read prompt {index} as "
                               f"{usage['prompt_tokens']} tokens, ours has {n_ids}: serve the export whose "
                               f"tokenizer this run reads")
            texts += [t for t, _ in choices]
            finished += [reason == "stop" for _, reason in choices]
            tokens += usage.get("completion_tokens") or 0
        return index, texts[:num_samples], finished[:num_samples], tokens

    n_tokens = 0
    bar = tqdm(total=len(prompts), desc=desc, unit="prompt", disable=not progress)
    pool = ThreadPoolExecutor(max_workers=max(1, concurrency))
    try:
        for fut in as_completed([pool.submit(answer, *p) for p in prompts]):
            index, texts, finished, tokens = fut.result()
            on_answer(index, texts, finished)
            n_tokens += tokens
            bar.update(1)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)   # a failure: stop sending, let requests in flight end
        bar.close()
    return n_tokens

def sample_to_file(path: Path, prompts: list[tuple[int, list[int], str]], line: Callable, *, num_samples: int,
                   temperature: float, top_p: float, max_tokens: int, seed: int, net=None, tokenizer=None,
                   client: ChatClient | None = None, batch_size: int = 16, chunk: int = 64, concurrency: int = 64,
                   context: int | None = None, progress: bool = True, desc: str = "sampling") -> int:
    """The resumable per-rank writer of feedback.py's samples and evaluate.py's answers: answer each (index, prompt
    ids, prompt text) `num_samples` times and append `line(index, texts, finished)` (a JSON object; finished: the
    sample ended at EOS) to `path` as each prompt's samples are in. Sampler: model.generate on `net`, `chunk` prompts
    per call, sample s of prompt i from the stream (model.prompt_seed(seed, i), s) whatever the rank or batch; or the
    server of `client` (sample_served, the prompt text). The file is fsynced after each chunk: a killed run loses at
    most one chunk (robust.read_appendable_jsonl cuts its torn last line). Returns the number of new tokens."""
    with open(path, "a", encoding="utf-8") as f:
        def write(i: int, texts: list[str], finished: list[bool]) -> None:
            f.write(json.dumps(line(i, texts, finished), ensure_ascii=False) + "\n")
            f.flush()
        if client is not None:
            try:
                return sample_served(client, [(i, text, len(ids)) for i, ids, text in prompts], write,
                                     num_samples=num_samples, temperature=temperature, top_p=top_p,
                                     max_tokens=max_tokens, seed=seed, concurrency=concurrency, context=context,
                                     progress=progress, desc=desc)
            except LLMError as e:
                raise LLMError(f"{e} (what was received so far is in {path}: run the same command to resume)") \
                    from None
            finally:
                os.fsync(f.fileno())
        import model
        n_tokens, bar = 0, tqdm(total=len(prompts), desc=desc, unit="prompt", disable=not progress)
        for start in range(0, len(prompts), chunk):
            part = prompts[start:start + chunk]
            outs = model.generate(net, [ids for _, ids, _ in part], max_tokens, temperature=temperature, top_p=top_p,
                                  num_samples=num_samples, eos_id=tokenizer.eos_id, batch_size=batch_size,
                                  seeds=[model.prompt_seed(seed, i) for i, _, _ in part])  # prompt-major
            for j, (i, _, _) in enumerate(part):
                rows = outs[j * num_samples:(j + 1) * num_samples]
                n_tokens += sum(map(len, rows))
                finished = [bool(r) and r[-1] == tokenizer.eos_id for r in rows]  # the stop token is no text
                write(i, [tokenizer.decode(r[:-1] if end else r) for r, end in zip(rows, finished)], finished)
            os.fsync(f.fileno())
            bar.update(len(part))
        bar.close()
        return n_tokens


def read_pools(path: str | Path) -> dict[str, list[str]]:
    """A description pool file: {TASK: [description, ...]}."""
    pools = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(pools, dict) or not all(isinstance(v, list) and all(isinstance(d, str) for d in v)
                                              for v in pools.values()):
        raise ValueError(f"{path}: expected {{TASK: [description, ...]}}")
    unknown = set(pools) - set(TASKS)
    if unknown:
        raise ValueError(f"{path}: unknown task(s) {sorted(unknown)}; expected some of {', '.join(TASKS)}")
    return pools


def write_atomic(path: str | Path, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


# ----------------------------------------------------------------------------------------------------------------
# Command line: one dataclass per subcommand, every field a flag

@dataclass
class EndpointConfig:
    base_url: str = flag("", f"chat-completions base URL (default: $OPENAI_BASE_URL, else {DEFAULT_BASE_URL})")
    model: str = flag("", "model name (default: $OPENAI_MODEL, else the paper's model, appendix A)")
    api_key: str = flag("", "API key (default: $OPENAI_API_KEY; prefer the variable, flags show in the process "
                            "list). Never printed, logged or saved. Leave both empty for endpoints without a key")
    cache: str = flag("", "response cache, JSONL (default: OUT.cache.jsonl); rerunning resumes from it")
    timeout: float = flag(120.0, "seconds to wait for one response")
    max_retries: int = flag(6, "retries of a request after 429/5xx/connection errors before giving up")
    backoff_base: float = flag(1.0, "first retry waits about this many seconds, doubling each retry (plus jitter; "
                                    "never less than the server's Retry-After)")
    backoff_max: float = flag(60.0, "longest wait between retries, seconds (unless Retry-After asks for more)")
    seed: int = flag(42, "seed for every random choice made here: examples shown, instances sampled, word limits")


@dataclass
class ExpandConfig(EndpointConfig):
    pools: str = flag("prompts/task_descriptions.json", "hand-written pools {TASK: [description, ...]}")
    out: str = flag("runs/llm/task_descriptions_generated.json", "generated pools, same shape (hand-written ones "
                    "not repeated); rejected outputs go to OUT.rejected.jsonl")
    tasks: str = flag("", "comma-separated tasks to expand (default: every task in --pools)")
    n_per_task: int = flag(20, "new descriptions per task (section 3.2: 'generate 20 more descriptions')")
    n_human: int = flag(3, "hand-written descriptions shown per request (section 3.2: 3)")
    n_generated: int = flag(2, "generated descriptions shown per request (section 3.2: 2; fewer at the start)")
    max_attempts_per_task: int = flag(60, "stop a task after this many requests even if short of --n_per_task")
    similarity_threshold: float = flag(0.7, "reject a description whose ROUGE-L with one in the pool is at least "
                                            "this (Self-Instruct, Wang et al. 2023: 0.7)")
    temperature: float = flag(PAPER_TEMPERATURE, "sampling temperature (appendix A: 0.7)")
    max_tokens: int = flag(256, "longest reply, tokens")


@dataclass
class ExplainConfig(EndpointConfig):
    records: str = flag("", "unified IE records, JSONL (comma-separate several files); see docs/design.md")
    out: str = flag("runs/llm/explanations.jsonl", "JSONL {id, explanation, words_number, style} for data.py "
                                                   "build --explanations")
    split: str = flag("train", "explain records of this split only")
    n_explanation: int = flag(1000, "plain explanations per dataset (docs/fidelity.md §1: up to 1000; section 3.3)")
    n_cot: int = flag(500, "step-by-step CoT explanations per dataset (docs/fidelity.md §1: up to 500; Table 6)")
    min_words: int = flag(70, "lowest word limit put in the prompt (appendix A.2: 70)")
    max_words: int = flag(200, "highest word limit put in the prompt (appendix A.2: 200)")
    max_words_slack: float = flag(1.5, "drop an explanation longer than this x its word limit (our choice)")
    temperature: float = flag(PAPER_TEMPERATURE, "sampling temperature (appendix A: 0.7; the release used 0)")
    max_tokens: int = flag(512, "longest reply, tokens (200 words are about 270 tokens)")
    workers: int = flag(4, "requests in flight at once")


def make_client(cfg: EndpointConfig, paper_model: str, out: str) -> ChatClient:
    """The client a config describes; flags first, then the environment, then the paper's defaults."""
    return ChatClient(cfg.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL,
                      cfg.model or os.environ.get("OPENAI_MODEL") or paper_model,
                      cfg.api_key or os.environ.get("OPENAI_API_KEY", ""),
                      cache_path=cfg.cache or out + ".cache.jsonl", timeout=cfg.timeout, max_retries=cfg.max_retries,
                      backoff_base=cfg.backoff_base, backoff_max=cfg.backoff_max)


def _print_client(client: ChatClient) -> None:
    cache = client.cache
    print(f"endpoint {client.public_url}, model {client.model}; cache {cache.path}: {len(cache.entries)} responses "
          f"loaded, {cache.torn_lines} torn line(s) ignored", flush=True)


def _print_stats(client: ChatClient) -> None:
    s = client.stats
    print(f"requests: {s['completions']} answered by the endpoint, {s['cache_hits']} from the cache; "
          f"{s['http_requests']} HTTP requests, {s['retries']} retries", flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    commands = {"expand": (ExpandConfig, "section 3.2: expand the task-description pools"),
                "explain": (ExplainConfig, "section 3.3: explanations of gold answers")}
    if not argv or argv[0] not in commands:
        print(f"usage: python llm.py {{{','.join(commands)}}} ... (--help on each)\n\n{__doc__}")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    command = argv[0]
    cls, doc = commands[command]
    cfg, _ = parse_config(cls, argv[1:], prog=f"python llm.py {command}", description=doc)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if command == "expand":
        client = make_client(cfg, PAPER_EXPAND_MODEL, cfg.out)
        _print_client(client)
        pools = read_pools(cfg.pools)
        tasks = [t.strip() for t in cfg.tasks.split(",") if t.strip()] or list(pools)
        generated, report = expand_task_descriptions(
            pools, client, tasks=tasks, n_per_task=cfg.n_per_task, n_human=cfg.n_human, n_generated=cfg.n_generated,
            max_attempts_per_task=cfg.max_attempts_per_task, similarity_threshold=cfg.similarity_threshold,
            temperature=cfg.temperature, max_tokens=cfg.max_tokens, seed=cfg.seed)
        write_atomic(cfg.out, json.dumps(generated, indent=2, ensure_ascii=False) + "\n")
        rejected_path = Path(cfg.out).with_suffix(".rejected.jsonl")
        write_atomic(rejected_path, "".join(json.dumps({"task": t, **r}, ensure_ascii=False) + "\n"
                                            for t in tasks for r in report[t]["rejected"]))
        # Section 3.2: "we manually verify the generated descriptions and filter out those with hallucinations".
        print("\nGenerated task descriptions. The paper checked these by hand (section 3.2): read them and delete "
              f"any that are wrong or off-task from {cfg.out} before building IEInstruct.")
        for task in tasks:
            print(f"\n== {task} ==")
            for i, d in enumerate(generated[task], 1):
                print(f"{i:3d}. {d}")
        print("\ntask    requests  accepted  rejected (reasons)")
        for task in tasks:
            r = report[task]
            print(f"{task:7s} {r['requests']:8d}  {r['accepted']:8d}  {sum(r['rejects'].values()):8d} "
                  f"{dict(r['rejects']) or ''}")
            if r["human_failing_checks"]:
                print(f"        warning: {len(r['human_failing_checks'])} hand-written description(s) fail the "
                      f"checks (update TASK_KEY_STEMS?): {r['human_failing_checks']}")
        print(f"wrote {sum(map(len, generated.values()))} descriptions to {cfg.out}; rejected outputs in "
              f"{rejected_path}")
    else:
        if not cfg.records:
            raise SystemExit("llm.py explain: --records FILE.jsonl is required (unified IE records)")
        client = make_client(cfg, PAPER_EXPLAIN_MODEL, cfg.out)
        _print_client(client)
        import data  # its reader validates every record (ie_formats.validate_record) and names file and line
        records = data.read_records([p.strip() for p in cfg.records.split(",") if p.strip()])
        rows, report = write_explanations(
            records, client, n_explanation=cfg.n_explanation, n_cot=cfg.n_cot, seed=cfg.seed, split=cfg.split,
            min_words=cfg.min_words, max_words=cfg.max_words, temperature=cfg.temperature, max_tokens=cfg.max_tokens,
            max_words_slack=cfg.max_words_slack, workers=cfg.workers)
        write_atomic(cfg.out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        rejected_path = Path(cfg.out).with_suffix(".rejected.jsonl")
        write_atomic(rejected_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in report["rejected"]))
        print(f"\n{len(records)} records read; dataset, then counts")
        for dataset, counts in sorted(report["per_dataset"].items()):
            print(f"  {dataset}: {dict(sorted(counts.items()))}")
        print(f"sampled {dict(report['sampled'])}; written {dict(report['written'])}; "
              f"dropped {dict(report['dropped']) or 0}")
        print(f"wrote {len(rows)} explanations to {cfg.out}; dropped ones in {rejected_path}")
    _print_stats(client)
    return 0


if __name__ == "__main__":
    sys.exit(main())
