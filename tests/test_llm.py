"""llm.py: the OpenAI-compatible client, task-description expansion (paper 3.2) and explanations (paper 3.3, Table 6).

Every test that talks HTTP talks to a real server on 127.0.0.1 (an ephemeral port, started by the test) that
imitates POST /v1/chat/completions and counts what it receives; retry delays are shrunk to milliseconds.
"""
import hashlib
import json
import logging
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import llm
import scorers
from llm import AuthError, ChatClient, LLMError

KEY = "sk-test-DO-NOT-LEAK-4f9a2b7c1d"


# ----------------------------------------------------------------------------------------------------------------
# A fake chat-completions server

class FakeChatServer:
    """Answers POST /v1/chat/completions. `script` holds canned responses served first, in order: an int status,
    (status, headers), (status, headers, raw body) or a reply string. Then `fail_after` successful replies, if
    set, turn into HTTP 500 forever (a dying endpoint); otherwise `reply(body)` gives the content (a string, or
    (content, finish_reason)). `requests` records (time, headers, body) of everything received."""

    def __init__(self, reply=None):
        self.requests, self.script, self.fail_after, self.ok = [], [], None, 0
        self.reply = reply or (lambda body: "reply to " + body["messages"][-1]["content"][:40])
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output quiet
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with server.lock:
                    server.requests.append((time.monotonic(), dict(self.headers), json.loads(raw)))
                    status, headers, body = server.respond(self.path, json.loads(raw))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True)
        self.thread.start()

    def respond(self, path, body):
        if path != "/v1/chat/completions":
            return 404, {}, b'{"error": "not found"}'
        if self.script:
            item = self.script.pop(0)
            if isinstance(item, int):
                return item, {}, b'{"error": "scripted"}'
            if isinstance(item, tuple):
                status, headers, *raw = item
                return status, headers, (raw[0] if raw else b'{"error": "scripted"}')
            return 200, {"Content-Type": "application/json"}, self.completion(item, "stop")
        if self.fail_after is not None and self.ok >= self.fail_after:
            return 500, {}, b'{"error": "the server is down"}'
        self.ok += 1
        out = self.reply(body)
        content, finish = out if isinstance(out, tuple) else (out, "stop")
        return 200, {"Content-Type": "application/json"}, self.completion(content, finish)

    @staticmethod
    def completion(content, finish_reason):
        return json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}]}
        ).encode()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    # A proxy configured in the environment must not intercept requests to 127.0.0.1.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    srv = FakeChatServer()
    yield srv
    srv.close()


def client_for(server, tmp_path, cache="cache.jsonl", **kw):
    kw = {"max_retries": 2, "backoff_base": 0.001, "backoff_max": 0.01, "timeout": 5, **kw}
    return ChatClient(server.url, "fake-model", KEY, cache_path=tmp_path / cache if cache else None, **kw)


USER = [{"role": "user", "content": "Say hi."}]


# ----------------------------------------------------------------------------------------------------------------
# The client

def test_request_is_an_openai_chat_completion_and_the_cache_answers_repeats(server, tmp_path):
    client = client_for(server, tmp_path)
    out = client.complete(USER, temperature=0.7, max_tokens=16)
    assert out == ("reply to Say hi.", "stop", False)
    (_, headers, body), = server.requests
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert body == {"model": "fake-model", "messages": USER, "temperature": 0.7, "max_tokens": 16}
    # The same request again is served from disk; a different temperature or tag is a different request.
    assert client.complete(USER, temperature=0.7, max_tokens=16).cached
    assert len(server.requests) == 1
    client.complete(USER, temperature=0.0, max_tokens=16)
    client.complete(USER, temperature=0.7, max_tokens=16, tag="second sample")
    assert len(server.requests) == 3
    # A new client on the same cache file (a rerun) pays for nothing already answered.
    again = client_for(server, tmp_path)
    assert again.complete(USER, temperature=0.7, max_tokens=16, tag="second sample").cached
    assert len(server.requests) == 3 and again.stats["cache_hits"] == 1
    # A key read from a file with its newline still works.
    ChatClient(server.url, "fake-model", KEY + "\n").complete(USER, temperature=0.7, max_tokens=16)
    assert server.requests[-1][1]["Authorization"] == f"Bearer {KEY}"


def test_cache_key_ignores_url_credentials_and_the_api_key(tmp_path):
    a = ChatClient("https://user:pw@example.org/v1/", "m", "key-a")
    b = ChatClient("https://example.org/v1", "m", "key-b")
    assert a.public_url == "https://example.org/v1"
    assert a.cache_key(USER, 0.7, 8) == b.cache_key(USER, 0.7, 8)
    assert a.cache_key(USER, 0.7, 8) != a.cache_key(USER, 0.7, 9) != a.cache_key(USER, 0.0, 8)
    assert "key-a" not in repr(a) and "pw" not in repr(a)
    with pytest.raises(ValueError, match="whitespace or control characters") as e:
        ChatClient("http://h/v1", "m", "key a")  # requests would quote the header, key and all, in its error
    assert "key a" not in str(e.value)
    with pytest.raises(ValueError, match="must start with http"):
        ChatClient("localhost:8000/v1", "m")


def test_429_is_retried_after_the_servers_retry_after(server, tmp_path):
    server.script = [(429, {"Retry-After": "0.3"})]
    client = client_for(server, tmp_path)  # own backoff: milliseconds, so the wait below is Retry-After's
    assert client.complete(USER, temperature=0.7, max_tokens=16).content == "reply to Say hi."
    (t0, _, _), (t1, _, _) = server.requests
    assert t1 - t0 >= 0.3
    assert client.stats["retries"] == 1 and client.stats["http_requests"] == 2


def test_a_very_long_retry_after_stops_the_job_instead_of_sleeping(server, tmp_path):
    server.script = [(429, {"Retry-After": "86400"}, b'{"error": "daily quota exceeded"}')]
    with pytest.raises(LLMError, match=r"asks to wait 86400 s.*daily quota exceeded|daily quota.*86400"):
        client_for(server, tmp_path).complete(USER, temperature=0.7, max_tokens=16)
    assert len(server.requests) == 1


def test_backoff_grows_exponentially_with_jitter_and_respects_the_cap():
    rng = llm.random.Random(0)
    for attempt in range(6):
        d = llm.backoff_delay(attempt, base=1.0, cap=10.0, retry_after=None, rng=rng)
        full = min(10.0, 2.0 ** attempt)
        assert full / 2 <= d <= full
    assert llm.backoff_delay(0, 1.0, 10.0, retry_after=30.0, rng=rng) == 30.0  # the server knows best
    assert llm.parse_retry_after("2") == 2.0 and llm.parse_retry_after("0.25") == 0.25
    assert llm.parse_retry_after(None) is None and llm.parse_retry_after("soon") is None
    date = llm.email.utils.formatdate(time.time() + 100, usegmt=True)
    assert 95 < llm.parse_retry_after(date) <= 101


def test_5xx_beyond_the_retry_budget_is_a_clear_error(server, tmp_path):
    server.fail_after = 0
    client = client_for(server, tmp_path, max_retries=2)
    with pytest.raises(LLMError, match=r"gave up after 3 attempts; last problem: HTTP 500.*run the same command"):
        client.complete(USER, temperature=0.7, max_tokens=16)
    assert len(server.requests) == 3  # 1 try + 2 retries, then stop


def test_connection_errors_are_retried_then_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    srv = FakeChatServer()
    url = srv.url
    srv.close()  # nothing listens on that port any more
    client = ChatClient(url, "fake-model", KEY, max_retries=2, backoff_base=0.001, backoff_max=0.01, timeout=2)
    with pytest.raises(LLMError, match="gave up after 3 attempts; last problem: ConnectionError") as e:
        client.complete(USER, temperature=0.7, max_tokens=16)
    assert KEY not in str(e.value)
    assert client.stats["retries"] == 2


@pytest.mark.parametrize("status", [401, 403])
def test_a_rejected_key_fails_at_once_without_showing_the_key(server, tmp_path, status):
    # Real endpoints may echo (part of) the key: the error must not carry it on.
    server.script = [(status, {}, json.dumps({"error": f"Incorrect API key provided: {KEY}"}).encode())]
    client = client_for(server, tmp_path)
    with pytest.raises(AuthError, match="rejected the API key") as e:
        client.complete(USER, temperature=0.7, max_tokens=16)
    assert KEY not in str(e.value) and "Incorrect API key provided: ***" in str(e.value)
    assert len(server.requests) == 1  # no retries: a bad key stays bad


def test_other_4xx_are_not_retried(server, tmp_path):
    server.script = [(400, {}, b'{"error": "max_tokens is too large"}')]
    with pytest.raises(LLMError, match=r"HTTP 400, not retried.*max_tokens is too large"):
        client_for(server, tmp_path).complete(USER, temperature=0.7, max_tokens=16)
    assert len(server.requests) == 1


@pytest.mark.parametrize("body, message", [
    (b"<html>bad gateway</html>", "not JSON"),
    (b'{"choices": []}', "malformed response, expected"),
    (b'{"data": "something else"}', "malformed response, expected"),
    (b'{"choices": [{"message": {"role": "assistant", "content": null}}]}', "content is NoneType"),
])
def test_malformed_responses_are_clear_errors(server, tmp_path, body, message):
    server.script = [(200, {"Content-Type": "application/json"}, body)]
    with pytest.raises(LLMError, match=message):
        client_for(server, tmp_path).complete(USER, temperature=0.7, max_tokens=16)


def test_a_torn_last_cache_line_is_ignored_counted_and_cut_off(tmp_path):
    path = tmp_path / "cache.jsonl"
    good = [json.dumps({"key": k, "content": f"reply {k}"}) for k in ("a", "b")]
    path.write_text("\n".join(good) + '\n{"key": "c", "cont')  # killed mid-write
    cache = llm.ResponseCache(path)
    assert cache.torn_lines == 1 and set(cache.entries) == {"a", "b"}
    cache.put({"key": "c", "content": "reply c"})  # the rerun answers "c" again and appends it
    again = llm.ResponseCache(path)
    assert again.torn_lines == 0 and again.get("c")["content"] == "reply c" and len(again.entries) == 3


def test_a_complete_last_line_without_newline_is_kept(tmp_path):
    path = tmp_path / "cache.jsonl"
    path.write_text(json.dumps({"key": "a", "content": "x"}))
    cache = llm.ResponseCache(path)
    cache.put({"key": "b", "content": "y"})
    assert set(llm.ResponseCache(path).entries) == {"a", "b"}


def test_a_corrupt_line_inside_the_cache_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "cache.jsonl"
    path.write_text('{"key": "a", "content": "x"}\nnot json\n{"key": "b", "content": "y"}\n')
    with pytest.raises(LLMError, match=r"corrupt cache entry, .*cache.jsonl:2: "):
        llm.ResponseCache(path)


# ----------------------------------------------------------------------------------------------------------------
# Paper section 3.2: task descriptions

HUMAN = {
    "NER": ["Find every named entity in the text and give its type.",
            "Please identify all entities mentioned in the passage along with their categories.",
            "Which named entities appear in the following text, and what type is each?",
            "Locate the mentions of entities in the sentence and label each one with a type."],
    "RC": ["What is the relation between {head} and {tail} in the text?",
           "Classify the relationship that holds between the entities {head} and {tail}.",
           "Given the sentence, decide how {head} is related to {tail}.",
           "Determine the relation type linking {head} to {tail}, if any, in the {domain} text.",
           "Relation classification: decide which relation links the two entities named below the text."],
}


def test_placeholder_rules_come_from_the_hand_written_pool():
    rules = llm.pool_rules("RC", HUMAN["RC"])
    # {head} and {tail} are optional (one description names no entity) but always come together.
    assert rules.allowed == {"head", "tail", "domain"} and rules.required == set()
    assert rules.companions == {"head": {"head", "tail"}, "tail": {"head", "tail"},
                                "domain": {"head", "tail", "domain"}}
    ok = "Tell me which relation connects {head} with {tail} in this sentence."
    assert llm.validate_description(ok, rules) is None
    assert llm.validate_description("Tell me which relation connects the two entities in this sentence.",
                                    rules) is None
    assert llm.validate_description("Tell me which relation connects {head} and {tail} in {domain} news.",
                                    rules) is None
    assert llm.validate_description("Tell me which relation connects {head} with {object} here.",
                                    rules) == "unknown placeholder"
    assert llm.validate_description("Tell me which relation connects {head} with the other entity.",
                                    rules) == "missing placeholder"
    assert llm.validate_description("Tell me which relation connects {head} with {tail} in <text>.",
                                    rules) == "malformed placeholder"  # the release's literal <text>
    assert llm.validate_description("Tell me which relation connects {head} with { tail } and {tail}.",
                                    rules) == "malformed placeholder"
    ere = llm.pool_rules("ERE", ["Find the {kind} relations between the events.", "Which {kind} links hold?"])
    assert ere.required == {"kind"}
    assert llm.validate_description("Extract every relation between the events.", ere) == "missing placeholder"
    ner = llm.pool_rules("NER", HUMAN["NER"])
    assert ner.allowed == ner.required == frozenset()
    assert llm.validate_description("Find each named entity in {text} and its type.", ner) == "unknown placeholder"
    # The prompt states the same rules to the model.
    assert "use {head} and {tail} together or not at all" in llm.expansion_prompt("RC", HUMAN["RC"][:3], rules)
    assert "It must contain {kind}" in llm.expansion_prompt("ERE", ["a"], ere)
    assert "Do not use placeholders" in llm.expansion_prompt("NER", HUMAN["NER"][:3], ner)


def test_off_task_and_badly_sized_descriptions_are_rejected():
    ner = llm.pool_rules("NER", HUMAN["NER"])
    assert llm.validate_description("Please paraphrase the given sentence in simpler words.", ner) == "off-task"
    assert llm.validate_description("Read the sentence below and tell me what happens in it.", ner) == "off-task"
    assert llm.validate_description("Paraphrase the sentence, keeping every named entity.", ner) == "off-task"
    assert llm.validate_description("Entities?", ner) == "too short"
    assert llm.validate_description("Find the named entities " + "and so on " * 20, ner) == "too long"
    assert llm.validate_description("", ner) == "empty"
    for task, pool in HUMAN.items():
        rules = llm.pool_rules(task, pool)
        assert all(llm.validate_description(d, rules) is None for d in pool)


def test_hand_written_pools_of_the_repository_pass_the_checks():
    """The on-task stems and placeholder rules must accept every description we wrote ourselves."""
    path = llm.Path(__file__).resolve().parents[1] / "prompts" / "task_descriptions.json"
    if not path.exists():
        pytest.skip("prompts/task_descriptions.json is not there yet (data.py's pools)")
    pools = llm.read_pools(path)
    assert set(pools) >= set(llm.TASKS) - {"ODIE"}  # ODIE's instruction comes with each instance
    for task, pool in pools.items():
        rules = llm.pool_rules(task, pool)
        bad = {d: llm.validate_description(d, rules) for d in pool}
        assert not {d: r for d, r in bad.items() if r}, task


def test_rouge_l_matches_rouge_score():
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    pairs = [("Find every named entity in the text.", "Find all the named entities in this text, please."),
             ("What is the relation between {head} and {tail}?", "Classify how {head} relates to {tail}."),
             ("a b c d", "d c b a"), ("same words here", "Same, words here!"), ("x", "y")]
    for a, b in pairs:
        assert llm.rouge_l(a, b) == pytest.approx(scorer.score(a, b)["rougeL"].fmeasure)


def test_duplicates_exact_and_near_are_found():
    pool = HUMAN["NER"]
    assert llm.duplicate_reason("find every NAMED entity in the text, and give its type!", pool, 0.7) == "duplicate"
    assert llm.duplicate_reason("Find every named entity in this text and give its type.", pool, 0.7) \
        == "near-duplicate"
    assert llm.duplicate_reason("List the people, places and organisations the passage names.", pool, 0.7) is None


def test_parse_description_strips_labels_quotes_and_extra_descriptions():
    assert llm.parse_description('Description 6: "Spot the entities in the text."') == "Spot the entities in the text."
    assert llm.parse_description("Spot the\nentities.\n\nDescription 7: another") == "Spot the entities."
    assert llm.parse_description("  New description: Name them.  ") == "Name them."


def test_expansion_shows_three_human_and_up_to_two_generated_and_counts_rejects(server, tmp_path):
    valid = ["Spot each entity the sentence names and state what kind of thing it is.",
             "Could you list the people, places and organisations in this passage, with their categories?",
             "Tag every proper name in the following sentence with the entity class it belongs to."]
    server.script = [
        "Description 5: " + valid[0],
        "Find each named entity in the {text} and its category.",                # unknown placeholder
        "Description 5: " + valid[0].upper(),                                      # duplicate
        "Rewrite this sentence so that it is easier to read for a child.",       # off-task
        valid[1],
        "Spot each entity the sentence names and state what type of thing it is.",  # near-duplicate of valid[0]
        valid[2],
    ]
    client = client_for(server, tmp_path)
    generated, report = llm.expand_task_descriptions(
        {"NER": HUMAN["NER"]}, client, n_per_task=3, max_attempts_per_task=10, seed=1, progress=False)
    assert generated == {"NER": valid}
    r = report["NER"]
    assert r["requests"] == 7 and r["accepted"] == 3
    assert r["rejects"] == {"unknown placeholder": 1, "duplicate": 1, "off-task": 1, "near-duplicate": 1}
    assert [x["reason"] for x in r["rejected"]] == ["unknown placeholder", "duplicate", "off-task", "near-duplicate"]
    # Section 3.2: 3 hand-written + 2 generated examples per prompt (fewer generated ones at the start).
    for i, (_, _, body) in enumerate(server.requests):
        prompt = body["messages"][0]["content"]
        shown = re.findall(r"^Description \d+: (.*)$", prompt, flags=re.M)
        n_gen = min(2, [0, 1, 1, 1, 1, 2, 2][i])  # accepted so far before request i
        assert sum(s in HUMAN["NER"] for s in shown) == 3 and sum(s in valid for s in shown) == n_gen
        assert body["temperature"] == 0.7  # appendix A


BANK = {  # what the fake "GPT-3.5" says, chosen by a hash of the prompt (so a rerun gets the same answers)
    "NER": ["Spot each entity the sentence names and state what kind of thing it is.",
            "Could you list the people, places and organisations in this passage, with their categories?",
            "Tag every proper name in the following sentence with the entity class it belongs to.",
            "Which spans of the input refer to named things? Give each span with its entity type.",
            "Go through the text and pull out all entity mentions, labelling their kinds.",
            "Please rewrite the sentence in plain words.",
            "Your job: recognise the names of entities here and say which category fits each."],
    "RC": ["Looking at the text, how would you label the link from {head} to {tail}?",
           "Identify the semantic relation that ties {head} and {tail} together in this sentence.",
           "Between {head} and {tail}, which relationship does the passage express?",
           "State the relation of {head} to {other}.",
           "Pick the relation type that best describes the connection of {head} with {tail}.",
           "Say which relation, if any, the sentence asserts from {head} towards {tail}."],
}


def bank_reply(body):
    prompt = body["messages"][0]["content"]
    task = "RC" if "(RC)" in prompt else "NER"
    h = int(hashlib.sha256(prompt.encode()).hexdigest(), 16)
    return f"Description 6: {BANK[task][h % len(BANK[task])]}"


def test_an_interrupted_expansion_resumes_from_the_cache(server, tmp_path):
    kw = dict(n_per_task=4, max_attempts_per_task=30, seed=3, progress=False)
    server.reply = bank_reply
    # Uninterrupted reference run, on its own cache.
    reference, _ = llm.expand_task_descriptions(HUMAN, client_for(server, tmp_path, "ref.jsonl"), **kw)
    n_total = len(server.requests)
    assert all(len(v) == 4 for v in reference.values())
    # The endpoint dies after 5 answers: the job fails with a clear error...
    server.requests.clear()
    server.ok, server.fail_after = 0, 5
    with pytest.raises(LLMError, match="gave up"):
        llm.expand_task_descriptions(HUMAN, client_for(server, tmp_path, "run.jsonl"), **kw)
    # ...and the rerun sends only what was not answered, and ends where the uninterrupted run ended.
    server.requests.clear()
    server.fail_after = None
    resumed_client = client_for(server, tmp_path, "run.jsonl")
    resumed, _ = llm.expand_task_descriptions(HUMAN, resumed_client, **kw)
    assert len(server.requests) == n_total - 5
    assert resumed_client.stats["cache_hits"] == 5
    assert resumed == reference


# ----------------------------------------------------------------------------------------------------------------
# Paper section 3.3, appendix A.2, Table 6: explanations

def make_records(n_per_dataset=6):
    records = []
    for dataset, task in (("conll2003", "NER"), ("semeval", "RC"), ("ondemand", "ODIE")):
        for i in range(n_per_dataset):
            records.append({"dataset": dataset, "split": "train", "id": f"{dataset}/train/{i}", "task": task,
                            "text": f"Sentence {i} of {dataset} about Paris .", "labels": [], "query": None,
                            "items": [{"entity": {"text": "Paris", "start": 0, "end": 5}, "type": "LOC"}],
                            "meta": {}})
    records.append({**records[0], "split": "test", "id": "conll2003/test/0"})
    return records


def render(record):
    """Stand-in for data.py's question and canonical answer."""
    return f"Extract things. Text: '{record['text']}'", "Paris: LOC; "


def explanation_reply(body):
    prompt = body["messages"][0]["content"]
    limit = int(re.search(r"No more than (\d+) words\.", prompt).group(1))
    label = "[Step-by-Step Explanation]: " if "[Step-by-Step Explanation]:" in prompt else ""
    return label + " ".join(["Paris"] + ["is a city so it is a location"] * 2 + ["word"] * (limit - 17))


def test_sampling_is_per_dataset_seeded_disjoint_and_skips_on_demand_ie():
    records = make_records(6)
    chosen = llm.sample_for_explanation(records, n_explanation=3, n_cot=2, seed=7)
    styles = [(r["dataset"], s) for r, s in chosen]
    assert styles == [("conll2003", "explanation")] * 3 + [("conll2003", "cot")] * 2 \
        + [("semeval", "explanation")] * 3 + [("semeval", "cot")] * 2  # no ODIE, no test split
    ids = [r["id"] for r, _ in chosen]
    assert len(set(ids)) == len(ids)  # one explanation per id
    assert ids == [r["id"] for r, _ in llm.sample_for_explanation(records, n_explanation=3, n_cot=2, seed=7)]
    assert ids != [r["id"] for r, _ in llm.sample_for_explanation(records, n_explanation=3, n_cot=2, seed=8)]
    # A dataset's sample does not depend on the other datasets.
    semeval = [r for r in records if r["dataset"] == "semeval"]
    assert [r["id"] for r, _ in llm.sample_for_explanation(semeval, n_explanation=3, n_cot=2, seed=7)] == ids[5:]
    # Fewer records than asked for: take them all.
    assert len(llm.sample_for_explanation(records, n_explanation=1000, n_cot=500, seed=7)) == 12
    with pytest.raises(ValueError, match="appears twice"):
        llm.sample_for_explanation(records + records[:1])


def test_word_limits_are_random_in_70_to_200_and_reproducible():
    limits = [llm.word_limit(42, f"d/train/{i}") for i in range(500)]
    assert min(limits) >= 70 and max(limits) <= 200
    assert min(limits) < 80 and max(limits) > 190  # the whole range is used
    assert limits == [llm.word_limit(42, f"d/train/{i}") for i in range(500)]
    assert limits != [llm.word_limit(43, f"d/train/{i}") for i in range(500)]


def test_explanations_fill_table_6_and_store_id_text_limit_style(server, tmp_path):
    server.reply = explanation_reply
    records = make_records(4)
    rows, report = llm.write_explanations(records, client_for(server, tmp_path), render=render, n_explanation=2,
                                          n_cot=1, seed=5, workers=1, progress=False)
    assert report["sampled"] == {"explanation": 4, "cot": 2} == report["written"]
    assert not report["dropped"]
    assert len(server.requests) == 6
    for row, (_, _, body) in zip(rows, server.requests):
        prompt = body["messages"][0]["content"]
        assert set(row) == {"id", "explanation", "words_number", "style"}
        assert row["words_number"] == llm.word_limit(5, row["id"])
        assert f"No more than {row['words_number']} words." in prompt  # the release left {words_number} here
        assert "{" not in prompt and "}" not in prompt
        record = next(r for r in records if r["id"] == row["id"])
        assert f"[Question]: Extract things. Text: '{record['text']}'" in prompt
        assert "[Answer]: Paris: LOC; " in prompt
        assert ("step-by-step" in prompt) == (row["style"] == "cot")
        assert row["explanation"].startswith("Paris is a city")  # an echoed label is removed
        assert body["temperature"] == 0.7  # appendix A (the release used 0)
    assert [r["style"] for r in rows] == ["explanation", "explanation", "cot"] * 2


def test_unusable_explanations_are_dropped_and_counted(server, tmp_path):
    replies = {0: "", 1: "It is Paris. [Answer]: Paris: PER; ", 2: ("Paris is a city and", "length"),
               3: "word " * 400}

    def reply(body):
        i = int(re.search(r"Sentence (\d+) of", body["messages"][0]["content"]).group(1))
        return replies.get(i, "Paris is a city, so it is a location.")

    server.reply = reply
    records = [r for r in make_records(6) if r["dataset"] == "conll2003" and r["split"] == "train"]
    rows, report = llm.write_explanations(records, client_for(server, tmp_path), render=render, n_explanation=6,
                                          n_cot=0, workers=3, progress=False)
    assert report["dropped"] == {"empty": 1, "has its own answer": 1, "truncated": 1, "over-long": 1}
    assert sorted(r["id"] for r in rows) == ["conll2003/train/4", "conll2003/train/5"]
    assert sorted(r["reason"] for r in report["rejected"]) == sorted(report["dropped"])  # kept for review
    assert report["per_dataset"]["conll2003"]["written explanation"] == 2


def test_an_interrupted_explanation_job_resumes_without_resending(server, tmp_path):
    server.reply = explanation_reply
    records = make_records(6)
    kw = dict(render=render, n_explanation=4, n_cot=2, seed=11, workers=1, progress=False)
    reference, _ = llm.write_explanations(records, client_for(server, tmp_path, "ref.jsonl"), **kw)
    assert len(server.requests) == 12
    server.requests.clear()
    server.ok, server.fail_after = 0, 5
    with pytest.raises(LLMError, match="gave up"):
        llm.write_explanations(records, client_for(server, tmp_path, "run.jsonl"), **kw)
    server.requests.clear()
    server.fail_after = None
    rows, _ = llm.write_explanations(records, client_for(server, tmp_path, "run.jsonl"), **{**kw, "workers": 4})
    assert len(server.requests) == 12 - 5
    assert rows == reference


# ----------------------------------------------------------------------------------------------------------------
# The command line, and the key

def test_cli_expand_never_writes_or_logs_the_key(server, tmp_path, monkeypatch, capsys, caplog):
    server.reply = bank_reply
    server.script = [(429, {"Retry-After": "0"}), (503, {}, f'{{"error": "busy, key {KEY}"}}'.encode())]
    pools = tmp_path / "pools.json"
    pools.write_text(json.dumps(HUMAN))
    out = tmp_path / "out" / "generated.json"
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("OPENAI_MODEL", "fake-model")
    caplog.set_level(logging.INFO)
    argv = ["expand", "--pools", str(pools), "--out", str(out), "--n_per_task", "3", "--backoff_base", "0.001",
            "--backoff_max", "0.01", "--seed", "2"]
    assert llm.main(argv) == 0
    generated = json.loads(out.read_text())
    assert set(generated) == {"NER", "RC"} and all(len(v) == 3 for v in generated.values())
    import data
    assert data.load_descriptions(out) == generated  # what `data.py build --extra_descriptions OUT` reads
    printed = capsys.readouterr()
    assert "checked these by hand" in printed.out and generated["RC"][0] in printed.out
    assert re.search(r"RC\s+\d+\s+3\s+\d+", printed.out)  # the counts table
    assert "retry 1/6" in caplog.text and "retry 2/6" in caplog.text  # the 429 and the 503 were logged
    assert all(h["Authorization"] == f"Bearer {KEY}" for _, h, _ in server.requests)
    # The key went out in the header, and nowhere else: not in any file, not in the logs or the output.
    files = list(tmp_path.rglob("*"))
    assert {f.name for f in files} >= {"generated.json", "generated.json.cache.jsonl", "generated.rejected.jsonl"}
    for f in files:
        if f.is_file():
            assert KEY.encode() not in f.read_bytes(), f
    assert KEY not in caplog.text and KEY not in printed.out and KEY not in printed.err
    # A rerun is answered entirely by the cache.
    n = len(server.requests)
    assert llm.main(argv) == 0 and len(server.requests) == n


def test_cli_reports_a_rejected_key_without_it(server, tmp_path, monkeypatch):
    server.script = [(401, {}, json.dumps({"error": f"invalid key {KEY}"}).encode())]
    pools = tmp_path / "pools.json"
    pools.write_text(json.dumps(HUMAN))
    with pytest.raises(AuthError) as e:
        llm.main(["expand", "--pools", str(pools), "--out", str(tmp_path / "g.json"), "--base_url", server.url,
                  "--model", "m", "--api_key", KEY])
    assert KEY not in str(e.value)
    assert all(KEY.encode() not in f.read_bytes() for f in tmp_path.rglob("*") if f.is_file())


def test_cli_explain_writes_the_file_data_py_reads_and_never_the_key(server, tmp_path, monkeypatch, capsys):
    """End to end on synthetic.py's records, with data.py's question and canonical answer as Table 6's input."""
    import data
    import synthetic
    server.reply = explanation_reply
    corpus = synthetic.generate_corpus(seed=0, n_train=4, n_test=1)
    records = tmp_path / "train.jsonl"
    records.write_text("".join(json.dumps(r) + "\n" for r in corpus["train"] + corpus["test"]))
    out = tmp_path / "expl.jsonl"
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    argv = ["explain", "--records", str(records), "--out", str(out), "--base_url", server.url, "--model", "m",
            "--n_explanation", "2", "--n_cot", "1", "--workers", "2"]
    assert llm.main(argv) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    explained = {r["dataset"] for r in corpus["train"] if r["task"] != "ODIE"}
    assert len(rows) == 3 * len(explained) and {r["style"] for r in rows} == {"explanation", "cot"}
    assert all(70 <= r["words_number"] <= 200 for r in rows)
    assert data.read_explanations(out) == {r["id"]: r["explanation"] for r in rows}  # data.py build --explanations
    # Table 6's {input} is the instance's question as data.py asks it, {output} its canonical answer.
    by_id = {r["id"]: r for r in corpus["train"]}
    prompts = [body["messages"][0]["content"] for _, _, body in server.requests]
    for row in rows:
        messages = data.evaluation_conversation(by_id[row["id"]], [])
        question, answer = messages[-2]["content"], scorers.answer_part(messages[-1]["content"]).strip()
        sent = [p for p in prompts if f"[Question]: {question}\n\n[Answer]: {answer}\n\n" in p]
        assert len(sent) == 1 and f"No more than {row['words_number']} words." in sent[0]
    printed = capsys.readouterr().out
    assert f"wrote {len(rows)} explanations" in printed
    assert f"{len(rows)} answered by the endpoint, 0 from the cache" in printed
    assert all(KEY.encode() not in f.read_bytes() for f in tmp_path.rglob("*") if f.is_file())
    assert KEY not in printed
