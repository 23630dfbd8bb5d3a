"""--backend openai (llm.py's sample_served) against a real OpenAI-compatible server: `transformers serve`, started
here on loopback, serving one of our exports unchanged (config.json, safetensors, tokenizer.json). The two sampling
stages, feedback.py and evaluate.py run, must write the files the builtin backend writes, send the same prompts (at
temperature 0 the server's answers are our own greedy tokens), resume after being killed, and stop with the
server's address and its error when it fails.

Needs the server library: pip install "transformers[serving]" (part of the `test` extra); without it the tests skip.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import requests

import data
import model as llama
import synthetic
from conftest import REPO, kill_when_held, start_held


def _serve_missing() -> str | None:
    try:
        from transformers.utils.import_utils import is_serve_available
    except ImportError:
        return "transformers is not installed (pip install -e '.[test]')"
    if not is_serve_available():
        return "`transformers serve` needs its server libraries: pip install 'transformers[serving]'"
    return None


if _serve_missing():
    pytest.skip(_serve_missing(), allow_module_level=True)

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1",
       "PYTHONUNBUFFERED": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(export directory, base URL): a random tiny LLaMA with the embedded tokenizer, served by `transformers serve`
    on a free loopback port; the server is stopped (by its process id) after the module's tests."""
    export = tmp_path_factory.mktemp("export")
    args = replace(llama.ModelArgs.from_name("tiny"), vocab_size=2048, max_seq_len=2048)
    net = llama.Transformer(args)
    net.init_weights(seed=0)
    net.save_pretrained(export, tokenizer_path=data.DEFAULT_TOKENIZER)
    port = free_port()
    log = open(export.parent / "serve.log", "w")
    cli = Path(sys.executable).parent / "transformers"
    server = subprocess.Popen([str(cli), "serve", str(export), "--host", "127.0.0.1", "--port", str(port)],
                              stdout=log, stderr=subprocess.STDOUT, env=ENV)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 240
        while True:
            if server.poll() is not None:
                pytest.fail(f"transformers serve exited with {server.returncode}: "
                            f"{(export.parent / 'serve.log').read_text()[-3000:]}")
            try:
                if requests.get(f"{url}/models", timeout=5).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"transformers serve did not answer on {url} within 240 s")
            time.sleep(0.5)
        yield export, url
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.fixture(scope="module")
def test_file(tmp_path_factory):
    """10 evaluation records (ADELIE's released format {"datasets", "id", "messages"}) from the embedded default's
    IEInstruct: few-shot ones among them, whose prompts hold "</s>" (the EOS id) inside the text."""
    records = synthetic.generate_corpus(3, 20, 0)["train"]
    conversations, _ = data.ie_instruct(records, data.IEInstructConfig(max_tokens=0), progress=False)
    multi = [c for c in conversations if len(c["messages"]) > 2][:4]
    single = [c for c in conversations if len(c["messages"]) == 2][:6]
    assert len(multi) == 4 and len(single) == 6
    path = tmp_path_factory.mktemp("test") / "test.jsonl"
    path.write_text("".join(json.dumps({"datasets": c["dataset"], "id": c["id"], "messages": c["messages"]}) + "\n"
                            for c in multi + single))
    return path


def run(script: str, *args, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, script, *map(str, args)], cwd=REPO, env=ENV, capture_output=True,
                          text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} {args} exited with {proc.returncode}\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-3000:]}")
    return proc


def kill_after_first_line(path: Path, script: str, *args, requests_per_line: int = 1) -> int:
    """Run `script args` until `path` holds a complete line, SIGKILL it, return the lines it left. The run holds
    (conftest.start_held) when it sends the request after the first line's: it can never have answered everything
    before the kill, however fast the server."""
    marker = path.parent.parent / f"{path.name}.held"
    proc = start_held(script, args, "llm", "ChatClient.complete_prompt", requests_per_line, marker, env=ENV)
    kill_when_held(proc, marker, timeout=300, ready=lambda: path.exists() and b"\n" in path.read_bytes())
    proc.stderr.close()
    return path.read_bytes().count(b"\n")


# ----------------------------------------------------------------------------------------------------------------
# evaluate.py run

def evaluate_args(export, test, out, *extra):
    return ["run", "--model", export, "--test", test, "--out", out, "--max_new_tokens", 8, "--temperature", 0,
            *extra]


@pytest.fixture(scope="module")
def predictions(served, test_file, tmp_path_factory):
    """The predictions files of the test file at temperature 0: (builtin, served through the server)."""
    export, url = served
    tmp = tmp_path_factory.mktemp("predictions")
    builtin, server = tmp / "builtin.jsonl", tmp / "served.jsonl"
    run("evaluate.py", *evaluate_args(export, test_file, builtin))
    out = run("evaluate.py", *evaluate_args(export, test_file, server, "--backend", "openai", "--base_url", url))
    assert "10 prompts, 0 already answered" in out.stdout
    assert not Path(f"{server}.partial").exists()
    return builtin, server


def test_evaluate_served_writes_the_builtin_file_with_our_greedy_tokens(served, test_file, predictions):
    """At temperature 0 both backends decode greedily: the server's answers are the tokens model.py's generate
    picks from the same prompt ids (checked by the ids, then the text as each backend detokenises them), in a
    predictions file with the same records and fields."""
    import transformers
    export, _ = served
    ours, theirs = ([json.loads(x) for x in p.read_text().splitlines()] for p in predictions)
    assert [{k: v for k, v in r.items() if k != "output"} for r in theirs] == \
        [{k: v for k, v in r.items() if k != "output"} for r in ours] == \
        [json.loads(x) for x in test_file.read_text().splitlines()]
    # The reference: our greedy tokens per prompt, and the two detokenisations of them.
    tok, hf = llama.Tokenizer(export / "tokenizer.model"), transformers.AutoTokenizer.from_pretrained(export)
    net = llama.Transformer.from_pretrained(export).eval()
    for a, b in zip(ours, theirs):
        ids = data.encode_prompt(tok, a["messages"][:-1])
        new = llama.generate(net, [ids], 8, temperature=0.0, eos_id=tok.eos_id)[0]
        new = new[:-1] if new and new[-1] == tok.eos_id else new
        assert a["output"] == tok.decode(new)
        assert b["output"] == hf.decode(new, skip_special_tokens=True)


def test_evaluate_served_resumes_after_being_killed(served, test_file, predictions, tmp_path):
    export, url = served
    out = tmp_path / "served.jsonl"
    args = evaluate_args(export, test_file, out, "--backend", "openai", "--base_url", url, "--concurrency", 1)
    left = kill_after_first_line(Path(f"{out}.partial") / "rank0.jsonl", "evaluate.py", *args)
    assert 1 <= left < 10
    resumed = run("evaluate.py", *args)
    assert f"10 prompts, {left} already answered (resumed), {10 - left} to go" in resumed.stdout
    assert out.read_text() == predictions[1].read_text()   # greedy: the resumed file is the uninterrupted one


def test_evaluate_names_the_server_and_its_error(served, test_file, tmp_path):
    export, url = served
    refused = f"http://127.0.0.1:{free_port()}/v1"   # nothing listens there
    proc = run("evaluate.py", *evaluate_args(export, test_file, tmp_path / "a.jsonl", "--backend", "openai",
                                             "--base_url", refused, "--max_retries", 0), check=False)
    assert proc.returncode == 2
    assert f"{refused}/models" in proc.stderr and "Connection refused" in proc.stderr, proc.stderr
    proc = run("evaluate.py", *evaluate_args(export, test_file, tmp_path / "b.jsonl", "--backend", "openai",
                                             "--base_url", url, "--served_model", "no-such-model"), check=False)
    assert proc.returncode == 2
    assert f"{url}/completions (model no-such-model): HTTP 400" in proc.stderr, proc.stderr
    assert "no-such-model" in proc.stderr.split("Response:")[1]   # the server's own words


# ----------------------------------------------------------------------------------------------------------------
# feedback.py

@pytest.fixture(scope="module")
def train_records(tmp_path_factory):
    """Synthetic training records (unified IE records) the IEFeedback prompt pool is drawn from."""
    path = tmp_path_factory.mktemp("records") / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in synthetic.generate_corpus(3, 20, 0)["train"]))
    return path


def feedback_args(export, records, out_dir, *extra):
    return ["--model", export, "--records", records, "--out_dir", out_dir, "--max_prompts", 6, "--num_samples", 2, "--max_new_tokens", 8,
            "--max_per_dataset", 12, "--target_pairs", 10, "--mix_rule", "fill", *extra]


def sample_rows(out_dir: Path) -> dict[int, dict]:
    return {r["index"]: r for r in map(json.loads, (out_dir / "samples.rank0.jsonl").read_text().splitlines())}


def test_feedback_served_writes_the_builtin_files_and_resumes(served, train_records, tmp_path):
    """Samples lines {index, id, prompt_sha, samples, finished} for the same prompts as the builtin backend, then
    the same downstream files; killed after its first prompt, the same command samples only the rest."""
    export, url = served
    run("feedback.py", *feedback_args(export, train_records, tmp_path / "builtin"))
    served_args = feedback_args(export, train_records, tmp_path / "served", "--backend", "openai", "--base_url", url,
                                "--concurrency", 1)
    left = kill_after_first_line(tmp_path / "served" / "samples.rank0.jsonl", "feedback.py", *served_args,
                                  requests_per_line=2)   # 2 samples: a server that sends one choice is asked twice
    assert 1 <= left < 6
    before = sample_rows(tmp_path / "served")
    resumed = run("feedback.py", *served_args, "--clear_stale_lock")   # the killed run left OUT_DIR/LOCK
    assert f"samples on disk for {left} prompts" in resumed.stdout and f"{6 - left} prompts to sample" in resumed.stdout
    ours, theirs = sample_rows(tmp_path / "builtin"), sample_rows(tmp_path / "served")
    assert all(theirs[i] == row for i, row in before.items())   # what was sampled before the kill is kept
    assert sorted(theirs) == sorted(ours) == list(range(6))
    for i in ours:
        assert theirs[i].keys() == ours[i].keys()
        assert (theirs[i]["id"], theirs[i]["prompt_sha"]) == (ours[i]["id"], ours[i]["prompt_sha"])
        assert len(theirs[i]["samples"]) == len(theirs[i]["finished"]) == 2
        assert all(isinstance(s, str) for s in theirs[i]["samples"])
        assert all(isinstance(f, bool) for f in theirs[i]["finished"])
    for name in ("ie_feedback.json", "summary.json", "scores.jsonl", "prompts.jsonl"):
        assert (tmp_path / "served" / name).exists()
    assert json.loads((tmp_path / "served" / "sampling.json").read_text())["backend"] == "openai"


def test_feedback_names_the_server_and_its_error(served, train_records, tmp_path):
    export, url = served
    proc = run("feedback.py", *feedback_args(export, train_records, tmp_path / "fb", "--backend", "openai", "--base_url", url,
                                             "--served_model", "no-such-model"), check=False)
    assert proc.returncode != 0
    assert f"{url}/completions (model no-such-model): HTTP 400" in proc.stderr, proc.stderr
    assert "run the same command to resume" in proc.stderr
