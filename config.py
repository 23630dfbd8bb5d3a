"""One dataclass config per script, every field a command-line flag with its help text.

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
    default (sft.py and dpo.py apply their embedded-default demo settings only to fields not given)."""
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
