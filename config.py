"""One dataclass config per script, every field a command-line flag with its help text; and PRESETS, the one place
for every setting that is not a dataclass default (the paper's numbers): `paper`, `demo`, `tiny`.

    @dataclass
    class SFTConfig:
        lr: float = flag(2e-5, "peak learning rate (appendix B.2: 2e-5)")

    cfg, explicit = parse_config(SFTConfig)   # python sft.py --lr 1e-4  ->  cfg.lr == 1e-4, explicit == {"lr"}

Booleans become --name / --no-name; `choices=[...]` restricts a value; `positional=True` (with optional `nargs`)
makes a positional argument. Flags accept dashes for underscores (--skip-bad == --skip_bad). No torch import here,
so light scripts (data.py, evaluate.py, llm.py) parse flags without loading it.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def flag(default, help: str, **metadata):
    """A config field: `x: int = flag(3, "what x is (where the number comes from)")`."""
    return dataclasses.field(default=default, metadata={"help": help, **metadata})


def parse_config(cls, argv=None, prog: str | None = None, description: str | None = None):
    """Parse flags generated from dataclass `cls` -> (config, explicit).

    `explicit` is the set of field names given on the command line, so a script can tell a user's choice from a
    default (apply_preset never replaces a flag given)."""
    if description is None:
        description = (sys.modules[cls.__module__].__doc__ or "").strip().split("\n")[0]
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for f in dataclasses.fields(cls):
        meta = dict(f.metadata)
        kwargs = {"help": meta.pop("help", "").replace("%", "%%")}  # argparse %-formats help text
        typ = _TYPES.get(f.type, f.type) if isinstance(f.type, str) else f.type
        if meta.pop("positional", False):
            parser.add_argument(f.name, **kwargs, **meta)
            continue
        names = [f"--{f.name}"] + ([f"--{f.name.replace('_', '-')}"] if "_" in f.name else [])
        if typ is bool:
            parser.add_argument(*names, dest=f.name, action=argparse.BooleanOptionalAction, default=f.default,
                                **kwargs)
        else:
            parser.add_argument(*names, dest=f.name, type=typ, default=f.default, **kwargs, **meta)
    argv = sys.argv[1:] if argv is None else list(argv)
    ns = parser.parse_args(argv)
    given = {a[2:].split("=")[0].removeprefix("no-").replace("-", "_") for a in argv if a.startswith("--")}
    return cls(**vars(ns)), {f.name for f in dataclasses.fields(cls) if f.name in given}


# ----------------------------------------------------------------------------------------------------------------
# Presets: every setting a run uses that is not a dataclass default, in one place.
#
# Resolution, for every field of a script's config: the dataclass default (the paper's number) <- the preset's value
# for the script's stage <- a flag given on the command line (a flag always wins). The preset is --preset; without it,
# `paper` when a real model is given (--model) and `demo` for the embedded default. Scripts print the resolved
# settings at the start and write them, with the preset's name, to OUT_DIR/config.json.
#
# Sections are stages: "sft" (sft.py), "dpo" (dpo.py), "feedback" (feedback.py), "warmup" (sft.py on the copy
# warm-up), "corpus" (synthetic.py), "ie_instruct" (data.py build), "eval" (evaluate.py run); "model" is the
# model.py preset the embedded default starts from.
PRESETS = {
    # The paper: every number is a dataclass default already (each citing its section), so nothing is replaced. Its
    # model is LLaMA-2-7B, given with --model; without one, the embedded default's 'demo' model and a synthetic
    # corpus of synthetic.py's default size are trained with the paper's settings.
    "paper": {"corpus": {}, "ie_instruct": {}, "sft": {}, "dpo": {}, "feedback": {}},
    # The embedded default: a 1.3M-parameter model from random weights and the synthetic corpus, sized so that in
    # 15 minutes on 2 CPU cores the SFT model extracts on the held-out split (README). `torchrun sft.py`, feedback.py
    # and dpo.py with no --model, and `pipeline.py`, all run these. Each departure from the paper: DEMO_DEPARTURES.
    "demo": {
        "model": "demo",
        "corpus": dict(n_train=1000, n_test=20, n_general=100, names="generated", n_warmup=10000),
        "ie_instruct": dict(ie_proportion=1.0, fewshot_rate=0.1, shuffle_items=False),
        "warmup": dict(max_len=512, max_steps=1200, global_batch_size=32, micro_batch_size=16, lr=1e-3,
                       lr_schedule="constant", warmup_ratio=0.03, checkpoint_every=0, group_by_length=False),
        "sft": dict(max_len=1024, max_steps=1500, global_batch_size=16, micro_batch_size=8, lr=3e-3,
                    warmup_ratio=0.03, checkpoint_every=500, group_by_length=True),
        "feedback": dict(max_prompts=400, max_new_tokens=128, target_pairs=400, mix_rule="keep_ratio"),
        "dpo": dict(max_len=1024, epochs=1, global_batch_size=8, micro_batch_size=2, lr=7.5e-5, checkpoint_every=50,
                    group_by_length=True),
        "eval": dict(max_new_tokens=160, limit=0),
        "real_eval_limit": 30,  # records of each released test file (../shared) the pipeline evaluates on
    },
    # Tests and CI: a few steps per stage, only to check that every stage runs and writes what the next one reads.
    "tiny": {
        "model": "demo",  # the demo's shape: the released FewNERD prompts run to ~610 tokens, past model.py tiny's 512
        "corpus": dict(n_train=4, n_test=2, n_general=40, n_warmup=8),
        "ie_instruct": dict(ie_proportion=0.2),
        "warmup": dict(max_len=256, max_steps=2, global_batch_size=4, micro_batch_size=1, lr=1e-3, warmup_ratio=0.0,
                       checkpoint_every=0, group_by_length=False),
        "sft": dict(max_len=256, max_steps=3, global_batch_size=4, micro_batch_size=1, lr=1e-3, warmup_ratio=0.0,
                    checkpoint_every=0),
        "feedback": dict(max_prompts=6, max_new_tokens=12, target_pairs=6, mix_rule="fill"),
        "dpo": dict(max_len=256, max_steps=2, global_batch_size=2, micro_batch_size=1, lr=1e-4, checkpoint_every=0),
        "eval": dict(max_new_tokens=12, limit=8),
        "real_eval_limit": 4,
    },
}

# Where the demo departs from the paper, and why (printed by pipeline.py at the start; README "Presets"). Key: the
# setting ("stage.field" of PRESETS["demo"]); value: (the paper's value, the reason).
DEMO_DEPARTURES = {
    "model": ("LLaMA-2-7B, pretrained", "model.py's 'demo' preset, 1.3M parameters, random weights: it trains "
              "on 2 CPU cores in minutes"),
    "warmup.max_steps": ("(LLaMA-2's pretraining)", "steps of a copy warm-up, each passage twice, half corpus texts "
                         "and half random strings of vocabulary pieces (synthetic.generate_copy_warmup): the stand-in "
                         "for pretraining, which gives LLaMA-2 the in-context copying that extraction needs and a "
                         "model from random weights lacks. Random batch order, lr 1e-3 constant, 32 sequences a step: "
                         "with length-grouped batches or lr 3e-3 copying did not form (README)"),
    "corpus.names": ("~20 published IE data sets (Table 7)", "synthetic records of all nine task types with "
                     "generated pseudo-word names: held-out names are unseen, so only copying the span scores"),
    "corpus.n_train": ("up to 5,000 per data set (section 3.1)", "synthetic records per data set: the SFT steps see "
                       "each conversation about 1.5 times"),
    "ie_instruct.ie_proportion": ("0.2 (section 4, Figure 4)", "general chat (arithmetic and word games here) "
                                  "teaches a 1.3M-parameter model nothing the IE answers need and took 80% of the SFT "
                                  "steps"),
    "ie_instruct.fewshot_rate": ("0.5 (section 3.2)", "demonstrations make prompts 3-4x longer; shorter prompts buy "
                                 "more optimizer steps in the same CPU time"),
    "ie_instruct.shuffle_items": ("items shuffled in each answer (section 3.3)", "items in text order: after "
                                  "copying one entity the model copies the next one along the text; with items in "
                                  "random order the demo model wrote one entity twice instead of two (README)"),
    "sft.lr": ("2e-5 (appendix B.2)", "a small model from random weights needs a large learning rate"),
    "sft.global_batch_size": ("128 (appendix B.2)", "more optimizer steps in the CPU budget"),
    "sft.max_steps": ("2 epochs (appendix B.2)", "what fits in the 15 minutes"),
    "sft.max_len": ("2048 (appendix B.2)", "the demo model's context"),
    "feedback.max_prompts": ("50,000 prompts -> 9,985 pairs (section 4, Table 8)", "sampling 5 answers per prompt "
                             "on a CPU"),
    "dpo.lr": ("5e-7 (appendix B.2)", "the paper's DPO/SFT learning-rate ratio (1/40) applied to the demo's SFT lr"),
    "dpo.global_batch_size": ("32 (appendix B.2)", "more steps from a few hundred pairs"),
    "dpo.epochs": ("3 (appendix B.2)", "one pass over a few hundred pairs fits the CPU budget"),
    "sft.group_by_length": ("random order (the release; docs/fidelity.md §2)", "length-grouped batches (SFT and "
                            "DPO; not the warm-up, where they stop copying from forming): less padding, more steps "
                            "on 2 CPU cores"),
    "feedback.mix_rule": ("release (docs/fidelity.md §3)", "the demo model gives few online pairs; fewer pairs at "
                          "exactly 30% online"),
    "corpus.n_test": ("1000 questions per held-out set (appendix C.1)", "synthetic held-out records per data set"),
}


def preset_value(preset: str, setting: str):
    """PRESETS[preset]'s value of "stage.field" (or of a top-level key such as "model"); None when not set."""
    stage, _, name = setting.partition(".")
    value = PRESETS[preset].get(stage)
    return value.get(name) if name and isinstance(value, dict) else None if name else value


def departures_table() -> str:
    """DEMO_DEPARTURES with the demo's values, one line each: `setting: paper -> demo: why`."""
    return "\n".join(f"  {setting}: {paper} -> {preset_value('demo', setting)}: {why}"
                     for setting, (paper, why) in DEMO_DEPARTURES.items())


def preset_flag():
    """The `preset` field every script's config has."""
    return flag("", f"settings preset, one of {', '.join(PRESETS)} (config.PRESETS); a flag given on the command "
                    f"line wins over it. Default: paper with --model, demo without (the embedded default)",
                choices=list(PRESETS))


def apply_preset(cfg, explicit: set[str], stage: str):
    """(cfg with PRESETS[preset][stage] over the dataclass defaults, never over a flag in `explicit`; the values
    taken from the preset). The preset's name is resolved and stored in cfg.preset."""
    name = cfg.preset or ("paper" if getattr(cfg, "model", "") else "demo")
    values = {k: v for k, v in PRESETS[name].get(stage, {}).items() if k not in explicit}
    return dataclasses.replace(cfg, preset=name, **values), values


def settings_line(cfg, from_preset: dict, explicit: set[str], **shown) -> str:
    """What a run prints at its start: what the preset set, the flags given, then every resolved setting (`shown`
    replaces a value, e.g. a URL without its credentials)."""
    settings = {**dataclasses.asdict(cfg), **shown}
    return (f"preset {cfg.preset} sets {from_preset or 'nothing'}; flags given: {sorted(explicit) or 'none'}\n"
            f"settings: {' '.join(f'{k}={v}' for k, v in settings.items())}")


def as_flags(settings: dict) -> list[str]:
    """{"lr": 3e-3, "group_by_length": True} -> ["--lr=0.003", "--group_by_length"]: a preset section as the flags
    a script takes (booleans as --name / --no-name)."""
    return [(f"--{k}" if v else f"--no-{k}") if isinstance(v, bool) else f"--{k}={v}" for k, v in settings.items()]
