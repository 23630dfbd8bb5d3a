"""Shared test helpers.

`shared` (fixture): the read-only ../shared folder beside the checkout (real tokenizers and IE data sets), or the
folder named by $ADELIE_SHARED. On a user's fresh clone it is absent and the tests that need it skip with a reason;
with ADELIE_REQUIRE_SHARED=1 (set by .ci/run) a missing folder is an error, so in CI those tests always run.

`run_torchrun(script, args, nproc)`: runs a script under `torchrun --standalone` with a timeout, so a hung rank
fails the test instead of hanging CI; `run_script(script, args)` runs it in one plain process.

The method's runs (test_sft.py, test_dpo.py, test_feedback.py, test_robustness.py) need nothing beside the checkout:
`save_tiny_model` writes model.py's "tiny" preset with random weights and the shipped tokenizer
(assets/tokenizer.model); the `tiny` fixture adds SFT conversations (`conversation`) and DPO pairs (`pair`);
`sft_args` / `dpo_args` are small, fast runs on them as command-line flags; `metrics` reads a run's metrics.jsonl.

`start_held(script, args, module, function, calls, marker)`: starts a script in one plain process that stops for
good when `module.function` (or `module.Class.method`) is called for the (calls + 1)-th time, after touching `marker`. A test that kills a run
at a point waits for the marker: the run is then certainly still alive and can never have gone past that point,
however fast or loaded the machine (a run that polls for a file and then kills races the run it kills).

`SlowLlamaTokenizer(path)`: the test oracle for tokenisation, transformers' slow LlamaTokenizer (legacy=True, what
ADELIE tokenised with; transformers 5 no longer ships it) written from its definition on SentencePiece alone. When
written, it gave transformers 4.57's LlamaTokenizer's ids on 515 texts (GOLDEN and random strings of spaces, newlines,
accents, CJK and the special-token strings) for the embedded, LLaMA-2 and tok512 tokenizers.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import config
import sft

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ADELIE_SHARED", REPO.parent / "shared")).resolve()


def shared_path(*parts: str) -> Path:
    """Path inside ../shared; skip the test (or fail it, under ADELIE_REQUIRE_SHARED=1) when it is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        reason = (f"{path} is missing: this test reads the shared tokenizers/data sets that sit beside the "
                  f"checkout as ../shared (or set ADELIE_SHARED=/path/to/shared)")
        if os.environ.get("ADELIE_REQUIRE_SHARED") == "1":
            pytest.fail(reason + " [ADELIE_REQUIRE_SHARED=1 turns this skip into a failure]")
        pytest.skip(reason)
    return path


@pytest.fixture
def shared():
    return shared_path()


@pytest.fixture
def llama_tokenizer_path():
    return shared_path("models", "llama2-tokenizer", "tokenizer.model")


@pytest.fixture
def tok512_path():
    return shared_path("models", "tok512", "tok512.model")


def save_tiny_model(path: Path, seed: int = 0) -> Path:
    """model.py's "tiny" preset with random weights from `seed`, saved with the shipped tokenizer beside it."""
    return sft.save_embedded_default_model(path, seed, preset="tiny")


def conversation(i: int) -> dict:
    """A small IEInstruct-style conversation; lengths vary with i so micro-batches need padding."""
    words = " ".join(["alpha", "beta", "gamma", "delta"][: 1 + i % 4] * (1 + i % 3))
    msgs = [{"role": "user", "content": f"Extract the entities. Text: '{words} number {i}'"},
            {"role": "assistant", "content": f"[Answer]: {words.split()[0]}: thing; number {i}: number; "}]
    if i % 5 == 0:  # a few-shot style conversation: an earlier answered turn is trained too
        msgs = [{"role": "user", "content": "Extract the entities. Text: 'omega'"},
                {"role": "assistant", "content": "[Answer]: omega: thing; "}] + msgs
    return {"dataset": "toy", "id": f"toy/{i}", "messages": msgs}


def pair(i: int) -> dict:
    """A small IEFeedback pair: the chosen answer right, the rejected one NA or wrong."""
    prompt = [{"role": "user", "content": f"Extract the entities. Text: 'alpha beta number {i}'"}]
    good = f"[Answer]: alpha: thing; number {i}: number; "
    bad = "[Answer]: NA" if i % 2 else f"[Answer]: beta: place; {'x' * (i % 7)}"
    return {"dataset": "toy", "id": f"toy/{i}", "messages": prompt + [{"role": "assistant", "content": good}],
            "chosen": prompt + [{"role": "assistant", "content": good}],
            "rejected": prompt + [{"role": "assistant", "content": bad}]}


@pytest.fixture
def tiny(tmp_path):
    """(model_dir, sft_data, dpo_data): the tiny model, 32 SFT conversations (JSONL) and 16 DPO pairs (a JSON
    list, the released IEFeedback layout)."""
    model_dir = save_tiny_model(tmp_path / "base")
    sft_data, dpo_data = tmp_path / "sft.jsonl", tmp_path / "pairs.json"
    sft_data.write_text("".join(json.dumps(conversation(i)) + "\n" for i in range(32)))
    dpo_data.write_text(json.dumps([pair(i) for i in range(16)]))
    return model_dir, sft_data, dpo_data


def sft_args(model_dir, data_path, out_dir, **overrides) -> list[str]:
    """sft.py flags for a 4-step run of the tiny model (every token weighs the same: token_mean)."""
    return config.as_flags({"model": model_dir, "data": data_path, "out_dir": out_dir, "max_len": 256,
                            "global_batch_size": 4, "micro_batch_size": 4, "lr": 1e-2, "max_steps": 4,
                            "warmup_ratio": 0.0, "lr_schedule": "constant", "loss_normalization": "token_mean",
                            "checkpoint_every": 0, "seed": 1, **overrides})


def dpo_args(model_dir, data_path, out_dir, **overrides) -> list[str]:
    """dpo.py flags for a 3-step run of the tiny model."""
    return config.as_flags({"model": model_dir, "data": data_path, "out_dir": out_dir, "max_len": 256,
                            "global_batch_size": 4, "micro_batch_size": 2, "lr": 1e-3, "max_steps": 3,
                            "warmup_ratio": 0.0, "lr_schedule": "constant", "checkpoint_every": 0, "seed": 1,
                            **overrides})


def metrics(out_dir: Path) -> list[dict]:
    """A run's metrics.jsonl, one dict per optimizer step."""
    return [json.loads(line) for line in (Path(out_dir) / "metrics.jsonl").read_text().splitlines()]


def run_script(script, args=(), env=None, check=False):
    """`python script args` in one plain process (no torchrun) from the repo root; the finished process. With
    check, a non-zero exit status fails the test with the run's output."""
    proc = subprocess.run([sys.executable, str(script), *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})
    assert not check or proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def run_torchrun(script, args=(), nproc=2, timeout=240, env=None, extra_torchrun_args=(), check=True):
    """Run `torchrun --standalone --nproc_per_node nproc script args` from the repo root; return the process."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           *extra_torchrun_args, str(script), *map(str, args)]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited with {proc.returncode}\n--- stdout ---\n{proc.stdout[-4000:]}"
                             f"\n--- stderr ---\n{proc.stderr[-6000:]}")
    return proc


def straight_and_resumed(script: str, make_args, tmp_path: Path, **common) -> tuple[Path, Path]:
    """`script` run straight, and the same run killed with SIGKILL and resumed: it checkpoints at step 3, holds
    after step 4 (checkpoint_if_due runs after every step: it can never finish first, however fast the machine),
    is killed there and continues with --resume. make_args(out_dir, **flags) -> the flags; returns both OUT_DIRs."""
    import training
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    run_script(script, make_args(straight, **common), check=True)
    marker = tmp_path / "held"
    proc = start_held(script, make_args(broken, checkpoint_every=3, **common), "training", "checkpoint_if_due", 3,
                      marker)
    kill_when_held(proc, marker)
    assert training.latest_checkpoint(broken).name == "step_00000003" and not (broken / "final").exists()
    run_script(script, make_args(broken, checkpoint_every=3, resume=True, clear_stale_lock=True, **common),
               check=True)  # the killed run left its lock
    return straight, broken


# The wrapper run by start_held: patch module.function, then run the script as __main__ with its own argv.
_HELD = """
import importlib, pathlib, runpy, sys, threading
module, function, calls, marker = sys.argv[1], sys.argv[2], int(sys.argv[3]), pathlib.Path(sys.argv[4])
sys.argv = sys.argv[5:]
sys.path.insert(0, str(pathlib.Path(sys.argv[0]).resolve().parent))
owner = importlib.import_module(module)
*path, name = function.split(".")   # a function, or Class.method
for attr in path:
    owner = getattr(owner, attr)
original, seen = getattr(owner, name), [0]
def held(*args, **kwargs):
    seen[0] += 1
    if seen[0] > calls:
        marker.touch()
        threading.Event().wait()  # until the test kills this process
    return original(*args, **kwargs)
setattr(owner, name, held)
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def start_held(script, args, module: str, function: str, calls: int, marker: Path, env=None) -> subprocess.Popen:
    """Start `python script args` (cwd = repo root) that holds at the (calls + 1)-th call of module.function."""
    cmd = [sys.executable, "-c", _HELD, module, function, str(calls), str(marker), str(script), *map(str, args)]
    return subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def kill_when_held(proc: subprocess.Popen, marker: Path, timeout: float = 180, ready=None) -> None:
    """Wait until the held run touches `marker` (and `ready()` is true, for work other threads of the run finish
    while it holds), then SIGKILL it. A run that exits first fails the test."""
    deadline = time.time() + timeout
    while not (marker.exists() and (ready is None or ready())):
        if proc.poll() is not None:
            raise AssertionError(f"the run exited ({proc.returncode}) before reaching the kill point:\n"
                                 f"{proc.stderr.read()[-3000:]}")
        assert time.time() < deadline, "the run did not reach the kill point in time"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


class SlowLlamaTokenizer:
    """transformers 4's LlamaTokenizer(path) with its defaults (legacy=True), from its definition: the text is cut at
    every occurrence of a special token's string (<unk>, <s>, </s>), which becomes that token's id; each non-empty
    stretch between them is one SentencePiece encode call (so each gets the dummy "\u2581" prefix); BOS goes in front
    when add_special_tokens. Called as `tok(text)["input_ids"]`, like the original."""

    def __init__(self, path):
        from sentencepiece import SentencePieceProcessor
        self.sp = SentencePieceProcessor(model_file=str(path))
        self.bos_token_id, self.eos_token_id = self.sp.bos_id(), self.sp.eos_id()
        self.specials = {self.sp.id_to_piece(i): i for i in (self.sp.unk_id(), self.bos_token_id, self.eos_token_id)}

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids = [self.bos_token_id] if add_special_tokens else []
        while text:
            found = [(text.find(s), -len(s), s) for s in self.specials if s in text]
            if not found:   # no special token left: the rest is one stretch
                return ids + self.sp.encode(text)
            start, _, special = min(found)   # the first occurrence (the longest string if two start together)
            ids += self.sp.encode(text[:start]) if start else []
            ids.append(self.specials[special])
            text = text[start + len(special):]
        return ids

    def __call__(self, text: str) -> dict:
        return {"input_ids": self.encode(text)}
