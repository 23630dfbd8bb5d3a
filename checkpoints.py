"""Checkpoint formats for model.py's LLaMA-2: reading Meta's and Hugging Face's, writing Hugging Face's (with the
tokenizer.json that transformers 5, vLLM and `transformers serve` load). Tooling around the model, not the method.

    read_checkpoint(dir) -> (ModelArgs, state dict in Meta names) = read_model_args(dir) + read_state_dict(dir), for
        Meta (params.json + consolidated.NN.pth, model-parallel shards merged), Hugging Face (config.json +
        safetensors, q/k permutation undone) and our own exports (= the Hugging Face format)
    write_hf_checkpoint(state_dict, args, dir) writes the Hugging Face format from a state dict, without a module
    write_tokenizer_json(tokenizer.model, dir) writes the fast tokenizer's file from a SentencePiece model
    hf_config(args) / model_args_from_hf(config) translate ModelArgs to and from transformers' config.json

Transformer.from_pretrained and save_pretrained call these; model.read_model_args etc. still find them here.
"""
import json
import re
import shutil
import struct
from pathlib import Path

import torch

from model import PRESETS, ModelArgs, Tokenizer, Transformer, check_tokenizer_matches

# Hugging Face name -> Meta name (per-layer names under model.layers.{i}. -> layers.{i}.).
HF_TO_META = {"model.embed_tokens.weight": "tok_embeddings.weight", "model.norm.weight": "norm.weight",
              "lm_head.weight": "output.weight"}
HF_TO_META_LAYER = {
    "self_attn.q_proj.weight": "attention.wq.weight",   # rows permuted, see hf_qk_to_meta
    "self_attn.k_proj.weight": "attention.wk.weight",   # rows permuted, see hf_qk_to_meta
    "self_attn.v_proj.weight": "attention.wv.weight",
    "self_attn.o_proj.weight": "attention.wo.weight",
    "mlp.gate_proj.weight": "feed_forward.w1.weight",
    "mlp.down_proj.weight": "feed_forward.w2.weight",
    "mlp.up_proj.weight": "feed_forward.w3.weight",
    "input_layernorm.weight": "attention_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
}
META_TO_HF = {v: k for k, v in HF_TO_META.items()}
META_TO_HF_LAYER = {v: k for k, v in HF_TO_META_LAYER.items()}
# Meta's model parallelism (fairscale): ColumnParallelLinear (wq wk wv w1 w3 output) splits the weight's rows (dim 0),
# RowParallelLinear (wo w2) its columns (dim 1), ParallelEmbedding the embedding dim (dim 1); norms are replicated.
META_SHARD_DIM = {"tok_embeddings": 1, "wq": 0, "wk": 0, "wv": 0, "wo": 1, "w1": 0, "w3": 0, "w2": 1, "output": 0}
META_IGNORED = {"rope.freqs"}   # LLaMA-2 checkpoints carry Meta's RoPE table; we compute our own


# transformers' convert_llama_weights_to_hf.py permutes each head's q/k rows from interleaved pairs
# (r0, r1), (r2, r3), ... to halves [r0, r2, ... | r1, r3, ...], so that its rotate-half RoPE equals Meta's pairwise
# RoPE. Loading undoes it; saving redoes it. w: (n_heads * hd, dim); n_heads = n_kv_heads for wk.
def hf_qk_to_meta(w, n_heads: int):
    rows, cols = w.shape
    return w.view(n_heads, 2, rows // n_heads // 2, cols).transpose(1, 2).reshape(rows, cols)


def meta_qk_to_hf(w, n_heads: int):
    rows, cols = w.shape
    return w.view(n_heads, rows // n_heads // 2, 2, cols).transpose(1, 2).reshape(rows, cols)


def check_state_dict(args: ModelArgs, state_dict: dict, sources: dict, config_name: str) -> list[str]:
    """Every tensor present, none extra, each with the shape the config implies (a model built on the meta device,
    no memory); errors name the tensor and its file. Returns the names in model order."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in Transformer(args).state_dict().items()}
    missing = [k for k in expected if k not in state_dict]
    if missing:
        raise ValueError(f"checkpoint lacks {len(missing)} tensors that {config_name} implies, e.g. {missing[:3]}")
    for name in state_dict:
        if name not in expected:
            hint = " (a torch.compile'd module: save model._orig_mod)" if name.startswith("_orig_mod.") else ""
            raise ValueError(f"unexpected tensor {name} in {sources.get(name, 'the state dict')}{hint}")
    for name, shape in expected.items():   # in model order, so the first mismatch reported is the first in the model
        if tuple(state_dict[name].shape) != shape:
            raise ValueError(f"shape mismatch for {name} in {sources.get(name, 'the state dict')}: the checkpoint has "
                             f"{tuple(state_dict[name].shape)} but {config_name} implies {shape}")
    return list(expected)


# ----------------------------------------------------------------------------------------------------------------------
# Hugging Face's config.json <-> ModelArgs


def hf_rope_theta(cfg: dict, where: str = "config.json") -> float:
    """RoPE's base from a transformers config.json, in either layout: transformers 4 writes top-level `rope_theta`
    and `rope_scaling` (None for plain RoPE); transformers 5 writes both inside `rope_parameters`
    ({"rope_type": "default", "rope_theta": ...}). Only plain RoPE is LLaMA-2's (paper Section 4.1 trains
    LLaMA-2-7B): any other rope_type (linear, dynamic, yarn, llama3, ...) or scaling key is refused, never ignored."""
    theta = cfg.get("rope_theta")
    for key in ("rope_scaling", "rope_parameters"):
        rope = cfg.get(key)
        if rope is None:
            continue
        if not isinstance(rope, dict):
            raise ValueError(f"{where}: {key}={rope!r} is not a dict of RoPE parameters")
        kind = rope.get("rope_type", rope.get("type", "default"))
        extra = set(rope) - {"rope_type", "type", "rope_theta"}
        if kind != "default" or extra:
            raise ValueError(f"{where}: {key}={rope!r} is not supported (LLaMA-2 has plain RoPE: rope_type "
                             f"'default' with only rope_theta; this model implements no RoPE scaling)")
        if "rope_theta" in rope:
            if theta is not None and float(rope["rope_theta"]) != float(theta):
                raise ValueError(f"{where}: rope_theta={theta} and {key}.rope_theta={rope['rope_theta']} disagree")
            theta = rope["rope_theta"]
    return float(theta) if theta is not None else 10000.0


def hf_config(args: ModelArgs, torch_dtype: str = "float32", bos_id: int = 1, eos_id: int = 2) -> dict:
    """transformers' LlamaConfig of `args`, as config.json holds it."""
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": args.dim, "intermediate_size": args.ffn_dim, "num_hidden_layers": args.n_layers,
        "num_attention_heads": args.n_heads, "num_key_value_heads": args.n_kv_heads, "head_dim": args.head_dim,
        "vocab_size": args.vocab_size, "max_position_embeddings": args.max_seq_len, "rms_norm_eps": args.norm_eps,
        "rope_theta": args.rope_theta, "rope_scaling": None, "hidden_act": "silu", "attention_bias": False,
        "attention_dropout": 0.0, "mlp_bias": False, "tie_word_embeddings": False, "initializer_range": 0.02,
        "pretraining_tp": 1, "use_cache": True, "bos_token_id": bos_id, "eos_token_id": eos_id,
        "torch_dtype": torch_dtype,
    }


def model_args_from_hf(cfg: dict, where: str = "config.json") -> ModelArgs:
    """ModelArgs of a transformers config.json. Missing keys take LlamaConfig's defaults; anything LLaMA-2 does not
    have is an error."""
    unsupported = {"model_type": "llama", "hidden_act": "silu", "attention_bias": False,
                   "mlp_bias": False, "tie_word_embeddings": False}
    for key, expected in unsupported.items():
        if cfg.get(key, expected) != expected:
            raise ValueError(f"{where}: {key}={cfg[key]!r} is not supported (LLaMA-2 has {expected!r})")
    dim, n_heads = cfg["hidden_size"], cfg["num_attention_heads"]
    if cfg.get("head_dim") not in (None, dim // n_heads):
        raise ValueError(f"{where}: head_dim={cfg['head_dim']} != hidden_size/num_attention_heads={dim // n_heads}")
    common = dict(dim=dim, n_layers=cfg["num_hidden_layers"], n_heads=n_heads,
                  n_kv_heads=cfg.get("num_key_value_heads") or n_heads, vocab_size=cfg["vocab_size"],
                  norm_eps=cfg.get("rms_norm_eps", 1e-6), rope_theta=hf_rope_theta(cfg, where),
                  max_seq_len=cfg.get("max_position_embeddings", 2048))
    # HF stores the FFN width, Meta the rule that makes it: try LLaMA-2's and our presets' rules first, else an
    # exact equivalent (multiple_of = width: any value in (0, width] rounds up to width).
    width = cfg["intermediate_size"]
    rules = [(p.multiple_of, p.ffn_dim_multiplier) for p in PRESETS.values()]
    rules.append((width, width / int(2 * (4 * dim) / 3)))
    for multiple_of, mult in rules:
        args = ModelArgs(**common, multiple_of=multiple_of, ffn_dim_multiplier=mult)
        if args.ffn_dim == width:
            return args
    raise ValueError(f"{where}: cannot express intermediate_size={width} with Meta's hidden-size rule")


# ----------------------------------------------------------------------------------------------------------------------
# Reading


def read_checkpoint(path) -> tuple[ModelArgs, dict]:
    """Read a checkpoint directory into (ModelArgs, state dict in Meta names), memory-lightly: tensors are mmap-ed
    from the files (Meta's model-parallel shards are concatenated, one copy). The format is picked by looking at
    the directory: params.json = Meta, config.json = Hugging Face (and ours)."""
    args = read_model_args(path)
    return args, (_read_meta if _checkpoint_format(Path(path)) == "meta" else _read_hf)(Path(path), args)


def read_state_dict(path) -> dict:
    """The weights of a checkpoint directory in Meta names (see read_checkpoint)."""
    return read_checkpoint(path)[1]


def read_model_args(path) -> ModelArgs:
    """The architecture of a checkpoint directory, without reading its weights (every FSDP rank calls this).
    A tokenizer.model beside the weights must match the model's vocabulary."""
    path = Path(path)
    if _checkpoint_format(path) == "meta":
        params = _read_json(path / "params.json")
        unknown = set(params) - set(ModelArgs.__dataclass_fields__) - {"max_seq_len"}
        if unknown:
            raise ValueError(f"{path}/params.json: unsupported keys {sorted(unknown)} (this is a LLaMA-2 "
                             f"implementation)")
        if params.get("vocab_size", -1) <= 0:   # Meta writes -1: the vocabulary comes from the tokenizer
            first = torch.load(_meta_shards(path)[0], map_location="cpu", mmap=True, weights_only=True)
            params["vocab_size"] = first["tok_embeddings.weight"].shape[0]
        args = ModelArgs(**params, max_seq_len=4096)   # params.json has no context length: LLaMA-2's
    else:
        args = model_args_from_hf(_read_json(path / "config.json"), where=str(path / "config.json"))
    if (path / "tokenizer.model").exists():
        check_tokenizer_matches(args, Tokenizer(path / "tokenizer.model"))
    return args


def _checkpoint_format(path: Path) -> str:
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint directory {path} does not exist")
    if (path / "params.json").exists():
        return "meta"
    if (path / "config.json").exists():
        return "hf"
    raise ValueError(f"{path} is neither a Meta checkpoint (params.json + consolidated.00.pth) nor a Hugging Face "
                     f"one (config.json + model.safetensors); it holds {sorted(p.name for p in path.iterdir())[:20]}")


def _meta_shards(path: Path) -> list[Path]:
    files = sorted(path.glob("consolidated.*.pth"))
    if not files:
        raise ValueError(f"{path}/params.json found but no consolidated.00.pth beside it")
    for i, f in enumerate(files):
        if f.name != f"consolidated.{i:02d}.pth":
            raise ValueError(f"{path}: model-parallel shard consolidated.{i:02d}.pth is missing (found {f.name})")
    return files


def _read_meta(path: Path, args: ModelArgs) -> dict:
    files = _meta_shards(path)
    # weights_only: unpickling may only build tensors, never run code from the file. mmap: no copy in memory.
    shards = [torch.load(f, map_location="cpu", mmap=True, weights_only=True) for f in files]
    n_shards = args.dim // shards[0]["tok_embeddings.weight"].shape[1]
    if n_shards != len(files):
        raise ValueError(f"{path}: tok_embeddings.weight in consolidated.00.pth holds {args.dim // n_shards} of "
                         f"dim={args.dim} columns, so the checkpoint has {n_shards} model-parallel shards, but "
                         f"{len(files)} consolidated.*.pth files are present: a shard is missing")
    source = files[0].name if len(files) == 1 else f"consolidated.*.pth ({len(files)} shards)"
    state_dict = {}
    for name in shards[0]:
        if name in META_IGNORED:
            continue
        parts = [s[name] for s in shards]
        dim = META_SHARD_DIM.get(name.split(".")[-2])
        try:
            state_dict[name] = parts[0] if dim is None or len(parts) == 1 else torch.cat(parts, dim=dim)
        except RuntimeError as e:
            shapes = [tuple(p.shape) for p in parts]
            raise ValueError(f"{path}: cannot merge {name} from shards of shapes {shapes}: {e}") from e
    check_state_dict(args, state_dict, dict.fromkeys(state_dict, source), "params.json")
    return state_dict


def _read_hf(path: Path, args: ModelArgs) -> dict:
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (path / index_name).exists():
            files = sorted(set(_read_json(path / index_name)["weight_map"].values()))
            for f in files:
                if not (path / f).exists():
                    raise ValueError(f"{path}: shard {f} listed in {index_name} is missing")
            break
    else:
        files = [f for f in ("model.safetensors", "pytorch_model.bin") if (path / f).exists()][:1]
        if not files:
            raise ValueError(f"{path}/config.json found but no weights: expected model.safetensors, "
                             f"model.safetensors.index.json or pytorch_model.bin")
    state_dict, sources = {}, {}
    for f in files:
        if f.endswith(".safetensors"):
            from safetensors import safe_open   # get_tensor returns views of the mmap-ed file, no copy
            try:
                with safe_open(path / f, framework="pt") as sf:
                    tensors = {k: sf.get_tensor(k) for k in sf.keys()}
            except Exception as e:  # SafetensorError names neither the file nor what a good one looks like
                raise ValueError(f"{path / f}: not a readable safetensors file ({' '.join(str(e).split())}); "
                                 f"expected a complete file (a truncated copy or download?)") from None
        else:
            tensors = torch.load(path / f, map_location="cpu", mmap=True, weights_only=True)
        for hf_name, t in tensors.items():
            layer = re.fullmatch(r"model\.layers\.(\d+)\.(.+)", hf_name)
            if layer and layer.group(2) in HF_TO_META_LAYER:
                name = f"layers.{layer.group(1)}.{HF_TO_META_LAYER[layer.group(2)]}"
            elif hf_name in HF_TO_META:
                name = HF_TO_META[hf_name]
            elif hf_name.endswith("rotary_emb.inv_freq"):   # old transformers saved its RoPE table
                continue
            else:
                raise ValueError(f"unexpected tensor {hf_name} in {path / f} (not a LLaMA-2 weight)")
            state_dict[name], sources[name] = t, f"{f} (as {hf_name})"
    check_state_dict(args, state_dict, sources, "config.json")   # before un-permuting, which needs the right shapes
    for i in range(args.n_layers):
        for w, heads in (("wq", args.n_heads), ("wk", args.n_kv_heads)):
            name = f"layers.{i}.attention.{w}.weight"
            state_dict[name] = hf_qk_to_meta(state_dict[name], heads)
    return state_dict


def _read_json(path: Path):
    """A checkpoint's JSON file; an unparsable one is a ValueError naming the file, line and column."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: not valid JSON ({e.msg} at column {e.colno}); expected the "
                         f"checkpoint's JSON object") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (byte {e.start}); expected the checkpoint's JSON object") from None


# ----------------------------------------------------------------------------------------------------------------------
# Writing


def write_hf_checkpoint(state_dict: dict, args: ModelArgs, out_dir, max_shard_size: int = 5 * 10**9,
                        tokenizer_path=None) -> None:
    """Write a Hugging Face LLaMA directory from a full state dict in Meta names (CPU tensors; under FSDP, rank 0
    calls this with the gathered state dict): config.json, generation_config.json, model.safetensors or
    model-0000i-of-0000n.safetensors + model.safetensors.index.json when larger than max_shard_size bytes, and, given
    tokenizer_path, tokenizer.model with the small files AutoTokenizer reads and tokenizer.json.

    Atomic (robust.atomic_dir): everything is written to out_dir.tmp/, fsynced, and then put in place of out_dir as a
    whole, so a crash at any point leaves the old complete out_dir (or none), never a mix; whatever else out_dir
    held goes with the old version."""
    if any(hasattr(t, "full_tensor") for t in state_dict.values()):
        raise TypeError("write_hf_checkpoint needs full tensors: gather the sharded (DTensor) state dict first")
    names = check_state_dict(args, state_dict, {}, "ModelArgs")
    bos_id, eos_id = 1, 2
    if tokenizer_path is not None:
        tokenizer = Tokenizer(tokenizer_path)
        check_tokenizer_matches(args, tokenizer)
        bos_id, eos_id = tokenizer.bos_id, tokenizer.eos_id
    shards, size = [{}], 0   # greedy packing in model order (embedding, layers, norm, output), as transformers does
    for name in names:
        t = state_dict[name].detach().cpu()
        layer = re.fullmatch(r"layers\.(\d+)\.(.+)", name)
        if layer:
            hf_name = f"model.layers.{layer.group(1)}.{META_TO_HF_LAYER[layer.group(2)]}"
            if layer.group(2) in ("attention.wq.weight", "attention.wk.weight"):
                t = meta_qk_to_hf(t, args.n_heads if "wq" in name else args.n_kv_heads)
        else:
            hf_name = META_TO_HF[name]
        if shards[-1] and size + t.nbytes > max_shard_size:
            shards, size = shards + [{}], 0
        shards[-1][hf_name], size = t.contiguous(), size + t.nbytes
    from safetensors.torch import save_file
    from robust import atomic_dir
    with atomic_dir(out_dir) as out:
        if len(shards) == 1:
            save_file(shards[0], out / "model.safetensors", metadata={"format": "pt"})
        else:
            weight_map = {}
            for i, shard in enumerate(shards):
                fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
                save_file(shard, out / fname, metadata={"format": "pt"})
                weight_map.update(dict.fromkeys(shard, fname))
            total = sum(t.nbytes for shard in shards for t in shard.values())
            _write_json(out / "model.safetensors.index.json",
                        {"metadata": {"total_size": total}, "weight_map": weight_map})
        dtype = str(shards[0]["model.embed_tokens.weight"].dtype).removeprefix("torch.")
        _write_json(out / "config.json", hf_config(args, dtype, bos_id, eos_id))
        # do_sample: a server (transformers serve) then samples at the temperature a request asks for (section 4: 1.0).
        _write_json(out / "generation_config.json", {"bos_token_id": bos_id, "eos_token_id": eos_id, "do_sample": True})
        if tokenizer_path is not None:
            shutil.copyfile(tokenizer_path, out / "tokenizer.model")  # out is new: never the source itself
            if tokenizer.added_tokens:  # the rows beyond the SentencePiece pieces (e.g. ADELIE's <pad>)
                _write_json(out / "added_tokens.json", tokenizer.added_tokens)
            special = {"bos_token": tokenizer.id_to_piece(bos_id), "eos_token": tokenizer.id_to_piece(eos_id),
                       "unk_token": tokenizer.id_to_piece(tokenizer.sp.unk_id())}
            _write_json(out / "special_tokens_map.json", special)
            # legacy=True: plain SentencePiece encoding, what ADELIE trained with and what Tokenizer does.
            # PreTrainedTokenizerFast reads tokenizer.json as written; transformers 5's LlamaTokenizer would rebuild
            # its pre-tokenizer and encode a text that starts with a space differently from SentencePiece.
            _write_json(out / "tokenizer_config.json", {
                "tokenizer_class": "PreTrainedTokenizerFast", **special, "pad_token": None, "add_bos_token": True,
                "add_eos_token": False, "legacy": True, "clean_up_tokenization_spaces": False,
                "model_max_length": args.max_seq_len, "sp_model_kwargs": {}})
            write_tokenizer_json(out / "tokenizer.model", out)   # loads in transformers 5 and vLLM without protobuf


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")


# ----------------------------------------------------------------------------------------------------------------------
# tokenizer.json: the `tokenizers` library's file (what transformers' fast tokenizer, vLLM and `transformers serve`
# load), written from the SentencePiece model by hand, so that an export loads without protobuf (which transformers
# needs to convert tokenizer.model itself) and without the `tokenizers` library at export time. The same file Meta's
# Hugging Face repositories ship: a BPE model with byte fallback, the sentencepiece pieces as its vocabulary and
# merges read off the piece scores (SentencePiece BPE merges the adjacent pair whose union scores highest;
# transformers' LlamaConverter derives the ranked merge list the same way).


def _proto_fields(buf: bytes):
    """(field number, value) of each field of one serialized protobuf message: a varint as int, a length-delimited
    field as bytes, a 32-bit field as float (the only fixed-size type SentencePiece's ModelProto uses)."""
    i = 0

    def varint():
        nonlocal i
        value = shift = 0
        while buf[i] & 0x80:
            value, shift, i = value | (buf[i] & 0x7F) << shift, shift + 7, i + 1
        value, i = value | buf[i] << shift, i + 1
        return value
    while i < len(buf):
        key = varint()
        field, wire = key >> 3, key & 7
        if wire == 0:
            yield field, varint()
        elif wire == 2:
            n = varint()
            yield field, buf[i:i + n]
            i += n
        elif wire == 5:
            yield field, struct.unpack("<f", buf[i:i + 4])[0]
            i += 4
        elif wire == 1:
            i += 8
        else:
            raise ValueError(f"protobuf wire type {wire} at byte {i}: not a SentencePiece model")


def sentencepiece_model_spec(path) -> dict:
    """What tokenizer.json needs from a SentencePiece model file (sentencepiece_model.proto, read without protobuf):
    its pieces (piece, score, type), model_type (1 unigram, 2 BPE), byte_fallback and the normalizer settings."""
    spec = {"pieces": [], "model_type": 1, "byte_fallback": False, "normalizer": "nmt_nfkc",
            "add_dummy_prefix": True, "remove_extra_whitespaces": True, "treat_whitespace_as_suffix": False}
    for field, value in _proto_fields(Path(path).read_bytes()):
        if field == 1:      # SentencePiece {piece = 1, score = 2, type = 3 (1 normal ... 4 user defined, 6 byte)}
            piece = dict(_proto_fields(value))
            spec["pieces"].append((piece.get(1, b"").decode("utf-8"), piece.get(2, 0.0), piece.get(3, 1)))
        elif field == 2:    # TrainerSpec
            trainer = dict(_proto_fields(value))
            spec.update(model_type=trainer.get(3, 1), byte_fallback=bool(trainer.get(35, 0)),
                        treat_whitespace_as_suffix=bool(trainer.get(24, 0)))
        elif field == 3:    # NormalizerSpec
            norm = dict(_proto_fields(value))
            spec.update(normalizer=norm.get(1, b"nmt_nfkc").decode(), add_dummy_prefix=bool(norm.get(3, 1)),
                        remove_extra_whitespaces=bool(norm.get(4, 1)))
    return spec


def write_tokenizer_json(tokenizer_path, out_dir) -> None:
    """out_dir/tokenizer.json, encoding token for token as tokenizer_path does (what transformers' LlamaTokenizer
    with legacy=True writes for LLaMA-2): the text is split at the special tokens, each stretch gets SentencePiece's
    dummy "▁" prefix and "▁" for every space, then BPE with byte fallback. Only LLaMA-style SentencePiece models
    (BPE, byte fallback, identity normalisation, no user-defined pieces) can be written this way."""
    spec = sentencepiece_model_spec(tokenizer_path)
    pieces = spec["pieces"]
    unsupported = [what for what, bad in [
        ("a BPE model", spec["model_type"] != 2), ("byte_fallback", not spec["byte_fallback"]),
        ("the identity normalisation", spec["normalizer"] != "identity"),
        ("whitespace as a prefix", spec["treat_whitespace_as_suffix"]),
        ("no user-defined pieces", any(t == 4 for _, _, t in pieces)),
        ("no spaces inside pieces", any(" " in p for p, _, _ in pieces))] if bad]
    if unsupported:
        raise ValueError(f"{tokenizer_path}: cannot write tokenizer.json: expected a LLaMA-style SentencePiece model "
                         f"({', '.join(unsupported)})")
    vocab = {p: i for i, (p, _, _) in enumerate(pieces)}
    # Merges: every way a normal piece splits into two pieces, ranked by the piece's score (highest first; ties
    # keep vocabulary order) -- a pair that SentencePiece would merge earlier gets the lower rank.
    merges = []
    for i, (piece, score, kind) in enumerate(pieces):
        if kind == 1:
            splits = [(vocab[piece[:k]], vocab[piece[k:]]) for k in range(1, len(piece))
                      if piece[:k] in vocab and piece[k:] in vocab]
            merges += [(-score, i, l, r) for l, r in sorted(splits)]
    merges = [f"{pieces[l][0]} {pieces[r][0]}" for _, _, l, r in sorted(merges)]
    specials = [i for i, (_, _, kind) in enumerate(pieces) if kind in (2, 3)]   # unknown, control (<s>, </s>)
    normalizers = []
    if spec["remove_extra_whitespaces"]:   # SentencePiece drops leading spaces, squeezes runs of spaces and drops
        # trailing spaces and "\u2581" (it trims after escaping). \A, \z: `tokenizers` reads ^ and $ at line breaks.
        normalizers += [{"type": "Replace", "pattern": {"Regex": "\\A +|[ \u2581]+\\z"}, "content": ""},
                        {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]
    if spec["add_dummy_prefix"]:
        normalizers.append({"type": "Prepend", "prepend": "\u2581"})
    normalizers.append({"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"})
    unk = next((p for p, _, kind in pieces if kind == 2), None)
    bos = next((p for p, _, kind in pieces if p == "<s>" and kind == 3), None)
    post = None
    if bos is not None:   # add_bos_token=True, add_eos_token=False, as tokenizer_config.json says
        a, b = {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}
        post = {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, a],
                "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, a,
                         {"SpecialToken": {"id": bos, "type_id": 1}}, b],
                "special_tokens": {bos: {"id": bos, "ids": [vocab[bos]], "tokens": [bos]}}}
    decoders = [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"},
                {"type": "Fuse"}]
    if spec["remove_extra_whitespaces"]:   # SentencePiece's decoder then drops every leading space, else the first
        decoders.append({"type": "Replace", "pattern": {"Regex": "\\A +"}, "content": ""})
    elif spec["add_dummy_prefix"]:
        decoders.append({"type": "Strip", "content": " ", "start": 1, "stop": 0})
    _write_json(Path(out_dir) / "tokenizer.json", {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": pieces[i][0], "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for i in specials],
        "normalizer": {"type": "Sequence", "normalizers": normalizers},
        "pre_tokenizer": None, "post_processor": post,
        "decoder": {"type": "Sequence", "decoders": decoders},
        "model": {"type": "BPE", "dropout": None, "unk_token": unk,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None, "fuse_unk": True,
                  "byte_fallback": True, "ignore_merges": False, "vocab": vocab, "merges": merges}})
