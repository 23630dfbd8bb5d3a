"""What a demanding user does to a run: a diverging update, a crash during the export, two runs in one directory,
absurd flags and broken input files. Each must end with a clear line and a non-zero exit, and never leave an
output that a later stage or a resume would trust but that is broken.

Runs use the tiny random model and data of conftest.py (seconds each on a CPU); the
diverging runs use the 'demo' preset, whose gradient turns NaN at step 2 with --lr 1e6 (a measured fact, asserted
below rather than assumed).
"""
import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import checkpoints
import data
import model as llama
from conftest import REPO, conversation, dpo_args, pair, run_script, run_torchrun, sft_args


def error_lines(proc) -> list[str]:
    return [l for l in (proc.stdout + proc.stderr).replace("\r", "\n").splitlines() if l.startswith("error")]


@pytest.fixture
def demo_model(tmp_path):
    """The issue's model: the 'demo' preset as it was then (4 heads of 32, 2 KV heads; whose lr-1e6 run first gives a
    NaN gradient norm at step 2) with random weights and the project's tokenizer, plus SFT conversations and DPO
    pairs."""
    model_dir = tmp_path / "demo"
    net = llama.Transformer(replace(llama.ModelArgs.from_name("demo"), n_heads=4, n_kv_heads=2))
    net.init_weights(seed=0)
    net.save_pretrained(model_dir, tokenizer_path=data.DEFAULT_TOKENIZER)
    sft_data, dpo_data = tmp_path / "sft.jsonl", tmp_path / "pairs.json"
    sft_data.write_text("".join(json.dumps(conversation(i)) + "\n" for i in range(32)))
    dpo_data.write_text(json.dumps([pair(i) for i in range(16)]))
    return model_dir, sft_data, dpo_data


# ------------------------------------------------------------------------------------------------------------
# 1. A non-finite gradient never reaches the weights, a checkpoint or an export


def checkpoint_tensors(ckpt: Path) -> dict:
    """Every tensor of a torch.distributed.checkpoint directory (model + optimizer), read without a process group."""
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save
    dcp_to_torch_save(ckpt, ckpt.parent / (ckpt.name + ".pt"))
    state = torch.load(ckpt.parent / (ckpt.name + ".pt"), weights_only=False)
    (ckpt.parent / (ckpt.name + ".pt")).unlink()
    flat = {}

    def walk(prefix, x):
        if isinstance(x, torch.Tensor):
            flat[prefix] = x
        elif isinstance(x, dict):
            for k, v in x.items():
                walk(f"{prefix}.{k}", v)
        elif isinstance(x, (list, tuple)):
            for i, v in enumerate(x):
                walk(f"{prefix}.{i}", v)
    walk("", state)
    return flat


def assert_no_nonfinite_output(out: Path):
    """No complete checkpoint and no export holds a NaN/inf tensor; metrics.jsonl is strict JSON."""
    ckpts = [c for c in sorted((out / "checkpoints").glob("step_*")) if (c / "COMPLETED").exists()]
    for c in ckpts:
        tensors = checkpoint_tensors(c)
        assert tensors and all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point()), c
    if (out / "final").exists():
        assert all(torch.isfinite(t).all() for t in checkpoints.read_state_dict(out / "final").values())
    for line in (out / "metrics.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"bare {c} in metrics.jsonl"))
    return ckpts


@pytest.mark.parametrize("script", ["sft.py", "dpo.py"])
def test_lr_1e6_stops_before_the_nan_update_under_two_processes(script, demo_model, tmp_path):
    """The issue's reproduction: 2 processes, --lr 1e6 --warmup_ratio 0, a checkpoint after every step. Step 1 is
    finite, step 2's full gradient norm is NaN: the run stops with exit 1 and one error line before applying it;
    step 1's checkpoint (finite) is the last one, nothing is exported."""
    model_dir, sft_data, dpo_data = demo_model
    out = tmp_path / "diverge"
    make_args = sft_args if script == "sft.py" else dpo_args
    args = make_args(model_dir, sft_data if script == "sft.py" else dpo_data, out, lr=1e6, warmup_ratio=0.0,
                     max_steps=8, checkpoint_every=1, micro_batch_size=1, lr_schedule="cosine")
    proc = run_torchrun(script, args, nproc=2, check=False)
    assert proc.returncode != 0
    errors = [l for l in error_lines(proc) if "gradient norm" in l]
    assert len(errors) == 1 and "step 2: " in errors[0] and "gradient norm nan" in errors[0], proc.stderr[-3000:]
    ckpts = assert_no_nonfinite_output(out)
    assert [c.name for c in ckpts] == ["step_00000001"] and "step_00000001" in errors[0]
    assert not (out / "final").exists()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1  # the NaN step is not logged


@pytest.mark.parametrize("script", ["sft.py", "dpo.py"])
def test_finite_loss_with_infinite_gradient_exports_nothing(script, tiny, tmp_path):
    """An injected fault: the output layer scaled by 1e20 gives a finite loss (~4e19 for SFT, ln 2 for DPO at step 0)
    but a gradient norm that overflows fp32. The loss-only check of before let this through to final/; now the
    run exits 1 at step 1 with no export, even with no checkpoint at all (--checkpoint_every 0)."""
    model_dir, sft_data, dpo_data = tiny
    sd = checkpoints.read_state_dict(model_dir)
    sd["output.weight"] = sd["output.weight"] * 1e20
    bad = tmp_path / "bad_model"
    checkpoints.write_hf_checkpoint(sd, checkpoints.read_model_args(model_dir), bad, tokenizer_path=model_dir / "tokenizer.model")
    out = tmp_path / "inf"
    make_args = sft_args if script == "sft.py" else dpo_args
    proc = run_script(script, make_args(bad, sft_data if script == "sft.py" else dpo_data, out, max_steps=2))
    assert proc.returncode == 1
    (line,) = error_lines(proc)
    loss = float(line.split("loss ")[1].split(",")[0])
    assert math.isfinite(loss) and "step 1: " in line and "gradient norm inf" in line
    assert not (out / "final").exists() and not (out / "checkpoints").exists()


# ------------------------------------------------------------------------------------------------------------
# 2. Outputs are written atomically


def export_files(path: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())} if path.exists() else None


def crash_at(k: int, fn):
    """Run fn() in a forked child that dies (os._exit, as a SIGKILL would) at the k-th file-system step of the
    export: in the middle of writing a weight file, a JSON file or the tokenizer (half the bytes on disk), or at
    any step of putting the new directory in place. Returns True when the child got that far and died."""
    import robust
    import safetensors.torch as st
    pid = os.fork()
    if pid == 0:  # the child
        count = [0]

        def step(real, half_written_arg=None):
            def wrapped(*a, **kw):
                count[0] += 1
                if count[0] == k:
                    if half_written_arg is not None:  # the argument that names the file being written
                        real(*a, **kw)
                        target = Path(a[half_written_arg])
                        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
                    os._exit(9)
                return real(*a, **kw)
            return wrapped
        st.save_file = step(st.save_file, 1)  # (tensors, path)
        checkpoints._write_json = step(checkpoints._write_json, 0)  # (path, obj)
        shutil.copyfile = step(shutil.copyfile, 1)  # (src, dst)
        robust.fsync_path = step(robust.fsync_path)
        robust._exchange = step(robust._exchange)
        robust.os.replace = step(os.replace)
        try:
            fn()
        except BaseException:
            os._exit(3)
        os._exit(0)
    return os.waitpid(pid, 0)[1] >> 8 == 9


@pytest.mark.parametrize("shard_size", [10**9, 40_000], ids=["one-file", "sharded"])
def test_a_crash_at_any_point_of_the_export_leaves_the_old_or_the_new_export(shard_size, tmp_path):
    """write_hf_checkpoint over an existing export, killed at each of its file-system steps in turn: final/ is then
    byte for byte the old complete export or the new one, never a mix or a half-written file."""
    old_net, new_net = (llama.Transformer(llama.ModelArgs.from_name("tiny")) for _ in range(2))
    old_net.init_weights(seed=1)
    new_net.init_weights(seed=2)
    reference = {}
    for name, net in (("old", old_net), ("new", new_net)):
        net.save_pretrained(tmp_path / name, tokenizer_path=data.DEFAULT_TOKENIZER, max_shard_size=shard_size)
        reference[name] = export_files(tmp_path / name)
    final = tmp_path / "final"
    crashes = 0
    for k in range(1, 100):
        if final.exists():
            shutil.rmtree(final)
        old_net.save_pretrained(final, tokenizer_path=data.DEFAULT_TOKENIZER, max_shard_size=shard_size)
        crashed = crash_at(k, lambda: new_net.save_pretrained(final, tokenizer_path=data.DEFAULT_TOKENIZER,
                                                              max_shard_size=shard_size))
        seen = export_files(final)
        assert seen in (reference["old"], reference["new"]), f"crash at step {k}: {sorted(seen or {})}"
        if not crashed:
            assert seen == reference["new"]
            break
        crashes += 1
    print(f"{crashes} crash points, each leaving the old or the new export")
    assert crashes >= 6  # weights, config, generation config, tokenizer and its files, the swap: every step was hit
    # A fresh export crashed half-way leaves no final/ at all (only final.tmp/, which the next writer removes).
    shutil.rmtree(final)
    save_new = lambda: new_net.save_pretrained(final, tokenizer_path=data.DEFAULT_TOKENIZER, max_shard_size=shard_size)
    assert crash_at(1, save_new)
    assert not final.exists()
    save_new()
    assert export_files(final) == reference["new"] and not (tmp_path / "final.tmp").exists()


def test_atomic_file_keeps_the_old_file_when_the_writer_fails(tmp_path):
    """The one helper every stage output goes through (data.py build, feedback.py's ie_feedback.json, dpo.py's
    reference cache, evaluate.py's predictions, data_stats.json): a writer that fails half-way leaves the old
    file and no temporary file behind; one that finishes replaces it."""
    from robust import atomic_file
    path = tmp_path / "ie_feedback.json"
    path.write_text("old complete")
    with pytest.raises(RuntimeError):
        with atomic_file(path) as tmp:
            tmp.write_text("new, half")
            raise RuntimeError("killed")
    assert path.read_text() == "old complete" and os.listdir(tmp_path) == ["ie_feedback.json"]
    with atomic_file(path) as tmp:
        tmp.write_text("new complete")
    assert path.read_text() == "new complete" and os.listdir(tmp_path) == ["ie_feedback.json"]


# ------------------------------------------------------------------------------------------------------------
# 3. One run per output directory; a finished run is never silently replaced


@pytest.mark.parametrize("script", ["sft.py", "dpo.py"])
def test_a_second_run_into_a_finished_directory_is_refused(script, tiny, tmp_path):
    model_dir, sft_data, dpo_data = tiny
    make_args = sft_args if script == "sft.py" else dpo_args
    data_path = sft_data if script == "sft.py" else dpo_data
    out = tmp_path / "finished"
    first = run_script(script, make_args(model_dir, data_path, out, max_steps=2))  # no checkpoint is left
    assert first.returncode == 0 and not (out / "checkpoints").exists() and not (out / "LOCK").exists()
    export, metrics = export_files(out / "final"), (out / "metrics.jsonl").read_bytes()
    second = run_script(script, make_args(model_dir, data_path, out, max_steps=2, lr=3e-2))
    assert second.returncode == 1
    assert error_lines(second) == [f"error: {out} holds a finished run (final/ is its export); pass --overwrite to "
                                   f"train again and replace it, --resume to continue it, or choose another --out_dir"]
    assert export_files(out / "final") == export and (out / "metrics.jsonl").read_bytes() == metrics
    assert not (out / "LOCK").exists()
    # --overwrite trains again and replaces the export (another lr: other weights)
    third = run_script(script, make_args(model_dir, data_path, out, max_steps=2, lr=3e-2, overwrite=True))
    assert third.returncode == 0 and export_files(out / "final") != export


def test_two_runs_on_one_directory_the_second_refuses_at_start(tiny, tmp_path):
    """The first run holds OUT_DIR/LOCK (host, pid) while it trains; a second on the same --out_dir exits 1 before
    writing anything. SIGKILL leaves the lock behind: it is reported as stale until --clear_stale_lock."""
    import signal
    import socket
    import time
    model_dir, sft_data, _ = tiny
    out = tmp_path / "shared_out"
    first = subprocess.Popen([sys.executable, "sft.py", *sft_args(model_dir, sft_data, out, max_steps=100_000,
                                                                   micro_batch_size=1)],
                             cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while not ((out / "metrics.jsonl").exists() and (out / "metrics.jsonl").read_text().count("\n") >= 2):
            assert first.poll() is None and time.time() < deadline
            time.sleep(0.05)
        lock = json.loads((out / "LOCK").read_text())
        assert lock["pid"] == first.pid and lock["host"] == socket.gethostname()
        config = (out / "config.json").read_bytes()
        second = run_script("sft.py", sft_args(model_dir, sft_data, out, max_steps=2, resume=True))
        assert second.returncode == 1 and first.poll() is None
        (line,) = error_lines(second)
        assert f"{out} is in use by another run (pid {first.pid} on this host" in line
        assert (out / "config.json").read_bytes() == config  # the second run wrote nothing
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # The killed run's lock is stale: reported, and removed only when asked.
    third = run_script("sft.py", sft_args(model_dir, sft_data, out, max_steps=2, overwrite=True))
    (line,) = error_lines(third)
    assert third.returncode == 1 and f"left by a run that is no longer running (pid {first.pid}" in line
    fourth = run_script("sft.py", sft_args(model_dir, sft_data, out, max_steps=2, overwrite=True,
                                           clear_stale_lock=True))
    assert fourth.returncode == 0 and "removing a stale lock" in fourth.stdout
    assert (out / "final").exists() and not (out / "LOCK").exists()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2  # the overwritten run's rows are gone


# ------------------------------------------------------------------------------------------------------------
# 4. DPO pairs whose chosen and rejected are the same are dropped and counted


def test_identical_pairs_are_dropped_and_counted(tiny, tmp_path):
    """chosen == rejected gives a zero DPO gradient (the log-ratios cancel): such a pair is dropped and counted,
    and a file with nothing else left is an error, not a run that trains on nothing."""
    import data
    model_dir, _, _ = tiny
    tok = llama.Tokenizer(model_dir / "tokenizer.model")
    same = pair(1)
    same["rejected"] = same["chosen"]
    records = [pair(0), same, pair(2)]
    pairs, stats = data.tokenize_preference(tok, records, 256)
    assert len(pairs) == 2 and stats["dropped_identical_chosen_rejected"] == 1 and stats["kept"] == 2
    only_same = tmp_path / "same.json"
    only_same.write_text(json.dumps([same, same]))
    proc = run_script("dpo.py", dpo_args(model_dir, only_same, tmp_path / "out"))
    assert proc.returncode == 1 and '"dropped_identical_chosen_rejected": 2' in proc.stdout
    assert error_lines(proc) == [f"error: no usable pair in {only_same} (see the counts above)"]


# ------------------------------------------------------------------------------------------------------------
# 5. data.py build --data_dir shows what the readers repaired or skipped


def test_build_from_a_data_dir_shows_and_keeps_the_readers_counts(tmp_path):
    """A CoNLL-2003 file with a -DOCSTART- mark and an I- tag that opens no entity: the reader repairs / skips
    both and counts them; data.py build prints those counts and writes them to its statistics (input_counts)."""
    (tmp_path / "conll2003").mkdir()
    (tmp_path / "conll2003" / "train.txt").write_text(
        "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP I-MISC\ncall NN I-NP O\n\n"
        "Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n\n")
    out = tmp_path / "ie.jsonl"
    proc = run_script("data.py", ["build", f"--data_dir={tmp_path}", f"--out={out}", "--general=none"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    stats = json.loads((tmp_path / "ie.stats.json").read_text())["input_counts"]
    repaired = "conll2003/train: I- tag without an open entity of its type (started a new entity, as conlleval does)"
    skipped = "conll2003/train: -DOCSTART- document marks (not sentences)"
    assert stats[repaired] == 1 and stats[skipped] == 1
    shown = next(l for l in proc.stdout.splitlines() if l.startswith("input: "))
    assert json.loads(shown.removeprefix("input: "))[repaired] == 1


# ------------------------------------------------------------------------------------------------------------
# 6. Flags that make no sense are refused at start-up, one line each


@pytest.mark.parametrize("overrides, expected", [
    (dict(max_steps=0), "--max_steps 0: expected a positive number of optimizer steps, or -1 to train for --epochs"),
    (dict(max_steps=-5), "--max_steps -5: expected a positive number"),
    (dict(epochs=-1), "--epochs -1: expected at least 1 pass over the data"),
    (dict(micro_batch_size=0), "--micro_batch_size 0: expected at least 1"),
    (dict(global_batch_size=6, micro_batch_size=4), "--global_batch_size 6: expected a multiple of --micro_batch_size 4"),
    (dict(max_len=8192), "--max_len 8192: expected at most the model's context, 2048 tokens"),
    (dict(warmup_ratio=2.0), "--warmup_ratio 2.0: expected a share of the steps in [0, 1]"),
    (dict(lr=-1e-5), "--lr -1e-05: expected a positive learning rate"),
    (dict(grad_clip=-1.0), "--grad_clip -1.0: expected 0 (off) or a positive norm"),
    (dict(resume=True, overwrite=True), "--resume and --overwrite: expected one of them"),
])
def test_each_senseless_flag_is_one_problem(overrides, expected):
    import dataclasses
    import sft
    import training
    cfg = dataclasses.replace(sft.SFTConfig(), **overrides)
    problems = training.flag_problems(cfg, world_size=1, context=2048)
    assert len(problems) == 1 and problems[0].startswith(expected), problems
    assert training.flag_problems(sft.SFTConfig(), world_size=1, context=2048) == []  # the paper's defaults pass


def test_dpo_beta_must_be_positive():
    import dataclasses
    import dpo
    import training
    assert training.flag_problems(dataclasses.replace(dpo.DPOConfig(), beta=0.0), 1, 4096) == [
        "--beta 0.0: expected a positive DPO temperature"]


def test_bad_flags_stop_the_run_at_start_with_one_line_each(tiny, tmp_path):
    """The tiny model's context is 256 tokens (config.json): --max_len 512 would fail only at the first long
    batch. Three problems, three lines, exit status 2, nothing written."""
    model_dir, sft_data, _ = tiny
    context = checkpoints.read_model_args(model_dir).max_seq_len
    out = tmp_path / "flags"
    proc = run_torchrun("sft.py", sft_args(model_dir, sft_data, out, epochs=-1, max_steps=-1, micro_batch_size=0,
                                           max_len=context * 2), nproc=2, check=False)
    assert proc.returncode != 0
    assert error_lines(proc) == [
        "error: --epochs -1: expected at least 1 pass over the data",
        "error: --micro_batch_size 0: expected at least 1",
        f"error: --max_len {context * 2}: expected at most the model's context, {context} tokens (config.json "
        f"max_position_embeddings); longer batches would fail mid-run"]
    assert not out.exists()


# ------------------------------------------------------------------------------------------------------------
# 7. A bad input is one line, printed once, naming the file and what was expected


def assert_one_error_line(proc, *needles):
    """Exit status non-zero; exactly one line starting with "error" over both streams (torchrun's own summary
    block is not ours); no traceback from our scripts (only torchrun's own frames)."""
    assert proc.returncode != 0
    lines = error_lines(proc)
    assert len(lines) == 1, proc.stdout[-2000:] + proc.stderr[-4000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    ours = [l for l in proc.stderr.splitlines() if l.strip().startswith("File ") and str(REPO) in l
            and "site-packages" not in l]
    assert not ours, ours
    return lines[0]


def test_non_utf8_data_is_one_line_under_torchrun(tiny, tmp_path):
    model_dir, sft_data, _ = tiny
    bad = tmp_path / "latin1.jsonl"
    lines = sft_data.read_text().splitlines()
    bad.write_bytes(("\n".join(lines[:3]) + "\n").encode() + json.dumps(conversation(3)).replace(
        "alpha", "caf\u00e9").encode("latin-1") + b"\n")
    proc = run_torchrun("sft.py", sft_args(model_dir, bad, tmp_path / "o", micro_batch_size=1), nproc=2,
                        check=False)
    assert_one_error_line(proc, f"{bad}:4: not UTF-8 text", "expected UTF-8")
    # ADELIE_DEBUG=1 shows the traceback instead
    debug = run_script("sft.py", sft_args(model_dir, bad, tmp_path / "o2"), env={"ADELIE_DEBUG": "1"})
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_truncated_safetensors_is_one_line_under_torchrun(tiny, tmp_path):
    model_dir, sft_data, _ = tiny
    broken = tmp_path / "broken_model"
    shutil.copytree(model_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    proc = run_torchrun("sft.py", sft_args(broken, sft_data, tmp_path / "o", micro_batch_size=1), nproc=2,
                        check=False)
    assert_one_error_line(proc, f"{weights}: not a readable safetensors file", "expected a complete file")


def test_unparsable_config_and_missing_model_dir_are_one_line(tiny, tmp_path):
    model_dir, sft_data, dpo_data = tiny
    broken = tmp_path / "broken_config"
    shutil.copytree(model_dir, broken)
    (broken / "config.json").write_text('{"hidden_size": 64,,}')
    proc = run_script("sft.py", sft_args(broken, sft_data, tmp_path / "o"))
    assert_one_error_line(proc, f"{broken / 'config.json'}:1: not valid JSON")
    missing = tmp_path / "no_such_model"
    proc = run_script("sft.py", sft_args(missing, sft_data, tmp_path / "o"))
    assert_one_error_line(proc, f"--model {missing}: no such directory")
    proc = run_script("dpo.py", dpo_args(missing, dpo_data, tmp_path / "o"))
    assert_one_error_line(proc, f"{missing} does not exist")


def test_dpo_given_an_sft_file_is_one_line(tiny, tmp_path):
    model_dir, sft_data, _ = tiny
    proc = run_torchrun("dpo.py", dpo_args(model_dir, sft_data, tmp_path / "o", micro_batch_size=1), nproc=2,
                        check=False)
    assert_one_error_line(proc, f"{sft_data}: record 1 (id toy/0) has no chosen/rejected answers",
                          "expected IEFeedback pairs")


def predictions_file(path: Path, golds: list[str], dataset: str | None) -> Path:
    """A predictions file in the released layout: the gold answer as the last message, the model's "output"."""
    rows = []
    for i, g in enumerate(golds):
        row = {"id": i, "messages": [{"role": "user", "content": f"Question {i}"},
                                     {"role": "assistant", "content": g}], "output": g}
        if dataset:
            row["datasets"] = dataset
        rows.append(row)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


NER_GOLDS = ["Robert Louis Stevenson: person_artist/author; ", "Paris: location_GPE; ", ""]
RC_GOLDS = ["(dolphin; Whole and Component; tail)\n", "(wine; Entity and Origin; grapes)\n", ""]


@pytest.mark.parametrize("scorer", ["adelie", "strict"])
def test_predictions_of_another_task_are_refused(tmp_path, scorer):
    """FewNERD predictions scored as --task semeval raised a raw ValueError (adelie scorer); SemEval predictions
    scored as --task fewnerd gave P = R = F1 = 0.00 with exit 0. Both are now one line and exit status 2: by the
    records' data set name when they carry one, else because no gold answer parses in the task's format."""
    fewnerd = predictions_file(tmp_path / "fewnerd.jsonl", NER_GOLDS, "few-nerd-supervised")
    proc = run_script("evaluate.py", ["score", "--task=semeval", f"--scorer={scorer}", f"--predictions={fewnerd}"])
    assert proc.returncode == 2 and error_lines(proc) == [
        f"error: {fewnerd}:1: a record of data set 'few-nerd-supervised' scored as --task semeval; expected --task "
        f"fewnerd"]
    semeval = predictions_file(tmp_path / "semeval.jsonl", RC_GOLDS, None)  # no data set name to go by
    proc = run_script("evaluate.py", ["score", "--task=fewnerd", f"--scorer={scorer}", f"--predictions={semeval}"])
    (line,) = error_lines(proc)
    assert proc.returncode == 2 and line.startswith(f"error: {semeval}: no gold answer parses in the NER answer "
                                                    f"format of --task fewnerd (2 of 3 do not")
    # ... and the right task scores them (100: the outputs are the gold answers)
    proc = run_script("evaluate.py", ["score", "--task=semeval", f"--scorer={scorer}", f"--predictions={semeval}",
                                      "--json"])
    assert proc.returncode == 0 and json.loads(proc.stdout.splitlines()[-1])["f1"] == pytest.approx(100.0)


# ------------------------------------------------------------------------------------------------------------
# 8. A checkpoint's RNG file holds data only


def test_rng_states_round_trip_through_a_weights_only_file(tmp_path):
    """The RNG states saved in every checkpoint load with torch.load(weights_only=True) (no unpickling of code)
    and restore Python's, numpy's and torch's generators exactly."""
    import random
    import numpy as np
    import training
    random.seed(3)
    np.random.seed(4)
    torch.manual_seed(5)
    random.gauss(0, 1)  # a cached Gaussian in Python's state
    np.random.standard_normal()
    torch.save(training.rng_state(), tmp_path / "rng.pt")
    expected = (random.random(), random.gauss(0, 1), np.random.rand(), np.random.standard_normal(), torch.rand(3))
    state = torch.load(tmp_path / "rng.pt", weights_only=True)  # raises if the file needed unpickling
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    training.set_rng_state(state)
    again = (random.random(), random.gauss(0, 1), np.random.rand(), np.random.standard_normal(), torch.rand(3))
    assert again[:4] == expected[:4] and torch.equal(again[4], expected[4])


# ----------------------------------------------------------------------------------------------------------------
# The resumable per-rank JSON-lines files (feedback.py, evaluate.py, llm.py): robust.read_appendable_jsonl

def test_appendable_jsonl_cuts_a_torn_last_line_and_ends_a_complete_one(tmp_path):
    from robust import read_appendable_jsonl
    path = tmp_path / "rank0.jsonl"
    assert read_appendable_jsonl(path) == ([], 0)  # no file yet: nothing done
    path.write_text('{"index": 0}\n{"index": 1}\n{"ind')  # killed while writing the third line
    assert read_appendable_jsonl(path) == ([(1, {"index": 0}), (2, {"index": 1})], 1)
    assert path.read_text() == '{"index": 0}\n{"index": 1}\n'  # the fragment is gone: appends start clean
    path.write_text('{"index": 0}\n{"index": 1}')  # complete, but its newline was never written
    assert read_appendable_jsonl(path) == ([(1, {"index": 0}), (2, {"index": 1})], 0)
    assert path.read_text() == '{"index": 0}\n{"index": 1}\n'


def test_appendable_jsonl_the_callers_check_rejects_lines_as_broken(tmp_path):
    from robust import read_appendable_jsonl

    def valid(obj):
        if "key" not in obj:
            raise ValueError("no key")
    path = tmp_path / "cache.jsonl"
    path.write_text('{"key": 1}\n{"index": 1}')  # a rejected unterminated last line counts as torn
    assert read_appendable_jsonl(path, valid) == ([(1, {"key": 1})], 1)
    path.write_text('{"key": 1}\n{"index": 1}\n{"key": 2}\n')  # one before the last is an error
    with pytest.raises(ValueError, match=r"cache.jsonl:2: not a JSON line \(no key\)"):
        read_appendable_jsonl(path, valid)


def test_appendable_jsonl_a_broken_line_before_the_last_is_an_error(tmp_path):
    from robust import read_appendable_jsonl
    path = tmp_path / "rank0.jsonl"
    path.write_text('{"index": 0}\n{broken\n{"index": 2}\n')
    with pytest.raises(ValueError, match=r"rank0.jsonl:2: not a JSON line"):
        read_appendable_jsonl(path)
    assert path.read_text() == '{"index": 0}\n{broken\n{"index": 2}\n'  # left as it is for the user to look at
