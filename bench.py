"""Benchmarks, one subcommand per part of the project; each prints its ratios as its last lines.

    python bench.py model            # model.py against transformers (issue 2, "Performance"), on the "tiny" preset
    python bench.py model --help     # every flag

`model` measures, in one run on the same config and the same weights (ours saved, then loaded by transformers):
  1. training step (forward + backward of a next-token loss) tokens/s, ours / transformers' LlamaForCausalLM;
     target >= 1.0;
  2. batched greedy decoding new tokens/s at batch 8, 64-token prompts, 128 new tokens, ours `generate` /
     transformers' `generate`; target >= 3.0 (on small models transformers spends most of its time in per-step
     overhead).
Runs of ours and theirs alternate and each figure is the median of --repeats runs, so load from other processes
hits both alike. transformers is a test oracle, imported here only.
"""
import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import MISSING, dataclass, field, fields

import torch
import torch.nn.functional as F


def flag(default, help: str):
    return field(default=default, metadata={"help": help})


def add_dataclass_flags(parser: argparse.ArgumentParser, cls) -> None:
    """One --flag per dataclass field, typed by its default, with the field's help."""
    for f in fields(cls):
        default = f.default if f.default is not MISSING else f.default_factory()
        if isinstance(default, bool):
            parser.add_argument(f"--{f.name}", action=argparse.BooleanOptionalAction, default=default,
                                help=f.metadata["help"])
        else:
            parser.add_argument(f"--{f.name}", type=type(default), default=default,
                                help=f"{f.metadata['help']} (default: {default})")


# ----------------------------------------------------------------------------------------------------------------------
# bench.py model


@dataclass
class ModelBenchConfig:
    preset: str = flag("tiny", "model.py preset (issue 2: 'the same tiny config')")
    device: str = flag("cpu", "cpu or cuda")
    train_batch: int = flag(8, "training step: sequences per batch")
    train_len: int = flag(256, "training step: tokens per sequence")
    train_steps: int = flag(5, "training step: steps per timed run")
    decode_batch: int = flag(8, "decoding: prompts per batch (issue 2: 8)")
    prompt_len: int = flag(64, "decoding: prompt tokens (issue 2: 64)")
    new_tokens: int = flag(128, "decoding: new tokens, greedy (issue 2: 128)")
    repeats: int = flag(5, "timed runs of each, alternating ours and theirs; the median counts")
    threads: int = flag(0, "torch CPU threads (0: torch's default)")
    seed: int = flag(0, "weights and token ids")


def _timed(fn, device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _median_pair(fn_ours, fn_theirs, repeats: int, device: str) -> tuple[float, float]:
    fn_ours(), fn_theirs()   # warm-up (allocations, lazy inits)
    ours, theirs = [], []
    for _ in range(repeats):
        ours.append(_timed(fn_ours, device))
        theirs.append(_timed(fn_theirs, device))
    return statistics.median(ours), statistics.median(theirs)


def bench_model(cfg: ModelBenchConfig) -> None:
    import transformers

    import model as llama

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    args = llama.ModelArgs.from_name(cfg.preset)
    ours = llama.Transformer(args)
    ours.init_weights(seed=cfg.seed)
    with tempfile.TemporaryDirectory() as tmp:   # the same weights in both: ours saved, transformers loads them
        ours.save_pretrained(tmp)
        theirs = transformers.LlamaForCausalLM.from_pretrained(tmp, torch_dtype=torch.float32)
    ours, theirs = ours.to(cfg.device), theirs.to(cfg.device)
    theirs.generation_config.eos_token_id = None   # both decode exactly new_tokens tokens
    gen = torch.Generator().manual_seed(cfg.seed)
    print(f"preset {cfg.preset}: {sum(p.numel() for p in ours.parameters()):,} parameters, device {cfg.device}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, transformers {transformers.__version__}")

    # 1. Training step: forward + backward of the same next-token loss on both.
    x = torch.randint(0, args.vocab_size, (cfg.train_batch, cfg.train_len), generator=gen).to(cfg.device)

    def train(net, logits_of):
        def run():
            for _ in range(cfg.train_steps):
                logits = logits_of(net, x)
                F.cross_entropy(logits[:, :-1].flatten(0, 1), x[:, 1:].flatten()).backward()
                net.zero_grad(set_to_none=True)
        return run

    with torch.no_grad():
        diff = (ours(x) - theirs(x).logits).abs().max().item()
    print(f"same weights: max |logits ours - transformers| = {diff:.2e}")
    t_ours, t_theirs = _median_pair(train(ours, lambda n, t: n(t)), train(theirs, lambda n, t: n(t).logits),
                                    cfg.repeats, cfg.device)
    n_tok = cfg.train_steps * cfg.train_batch * cfg.train_len
    train_ratio = t_theirs / t_ours
    print(f"training step ({cfg.train_batch} x {cfg.train_len} tokens): ours {n_tok / t_ours:,.0f} tokens/s, "
          f"transformers {n_tok / t_theirs:,.0f} tokens/s")

    # 2. Batched greedy decoding.
    prompts = torch.randint(0, args.vocab_size, (cfg.decode_batch, cfg.prompt_len), generator=gen).to(cfg.device)
    out = {}

    def decode_ours():
        out["ours"] = llama.generate(ours, prompts.tolist(), cfg.new_tokens, batch_size=cfg.decode_batch)

    def decode_theirs():
        with torch.no_grad():
            out["theirs"] = theirs.generate(prompts, attention_mask=torch.ones_like(prompts), do_sample=False,
                                            max_new_tokens=cfg.new_tokens, pad_token_id=0)[:, cfg.prompt_len:].tolist()

    t_ours, t_theirs = _median_pair(decode_ours, decode_theirs, cfg.repeats, cfg.device)
    n_new = cfg.decode_batch * cfg.new_tokens
    decode_ratio = t_theirs / t_ours
    print(f"greedy decoding (batch {cfg.decode_batch}, {cfg.prompt_len}-token prompts, {cfg.new_tokens} new): "
          f"ours {n_new / t_ours:,.0f} new tokens/s, transformers {n_new / t_theirs:,.0f} new tokens/s, "
          f"same tokens: {out['ours'] == out['theirs']}")
    print(f"train_step_ratio {train_ratio:.2f}  (ours / transformers tokens/s; target >= 1.0)")
    print(f"decode_ratio {decode_ratio:.2f}  (ours / transformers new tokens/s; target >= 3.0)")


# ----------------------------------------------------------------------------------------------------------------------


COMMANDS = {"model": (ModelBenchConfig, bench_model, "model.py against transformers: training step and decoding")}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (cls, _, help) in COMMANDS.items():
        add_dataclass_flags(sub.add_parser(name, help=help, description=help), cls)
    ns = vars(parser.parse_args(argv))
    cls, run, _ = COMMANDS[ns.pop("command")]
    run(cls(**ns))


if __name__ == "__main__":
    main(sys.argv[1:])
