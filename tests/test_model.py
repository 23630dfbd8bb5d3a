"""model.py and checkpoints.py as a specification: LLaMA-2 checked against transformers' LlamaForCausalLM, Meta's
checkpoint layout, the KV cache against a full forward, generation against transformers' generate, the tokenizer
against transformers' slow LlamaTokenizer (what ADELIE tokenised with; conftest.SlowLlamaTokenizer) and the export's
tokenizer.json against SentencePiece. Tiny configs only: the file runs in seconds."""
import json
import pickle
import random
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from checkpoints import (hf_config, model_args_from_hf, read_checkpoint, read_model_args,  # noqa: E402
                         sentencepiece_model_spec, write_hf_checkpoint, write_tokenizer_json)
from model import (PRESETS, KVCache, ModelArgs, Tokenizer, Transformer, check_tokenizer_matches,  # noqa: E402
                   decode_step, decode_weights, flat_decoding_ok, generate, prompt_seed, sample_next)
from conftest import SHARED, SlowLlamaTokenizer, shared_path  # noqa: E402
from data import DEFAULT_TOKENIZER  # noqa: E402

transformers = pytest.importorskip("transformers")

MHA = ModelArgs(dim=64, n_layers=2, n_heads=4, n_kv_heads=4, vocab_size=512, multiple_of=32, norm_eps=1e-5,
                max_seq_len=256)
GQA = replace(MHA, n_kv_heads=2, multiple_of=100)   # intermediate size 100: not a multiple_of-256 width


def tiny_model(args=MHA, seed=0) -> Transformer:
    model = Transformer(args)
    model.init_weights(seed=seed)
    with torch.no_grad():   # norms away from 1, so that a norm loaded into the wrong place shows
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(seed))
    return model


def hf_model(args: ModelArgs, seed=0):
    """transformers' own LLaMA with its own random weights."""
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        hidden_size=args.dim, intermediate_size=args.ffn_dim, num_hidden_layers=args.n_layers,
        num_attention_heads=args.n_heads, num_key_value_heads=args.n_kv_heads, vocab_size=args.vocab_size,
        rms_norm_eps=args.norm_eps, max_position_embeddings=args.max_seq_len, tie_word_embeddings=False)
    model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    return model


def tokens(B=2, T=24, vocab=512, seed=1):
    return torch.randint(0, vocab, (B, T), generator=torch.Generator().manual_seed(seed))


# --- config ----------------------------------------------------------------------------------------------------------

def test_presets_use_metas_hidden_size_rule():
    # The SwiGLU widths of Meta's released LLaMA-2 checkpoints.
    assert [PRESETS[n].ffn_dim for n in ("7B", "13B", "70B")] == [11008, 13824, 28672]
    assert (PRESETS["70B"].n_kv_heads, PRESETS["7B"].n_kv_heads) == (8, 32)
    assert PRESETS["demo"].vocab_size == 2048 and PRESETS["tiny"].vocab_size == 2048  # assets/tokenizer.model


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_model_args_round_trip_through_hf_config(name):
    args = ModelArgs.from_name(name)
    assert model_args_from_hf(hf_config(args)) == args
    hf = transformers.LlamaConfig(**hf_config(args))
    assert (hf.intermediate_size, hf.num_key_value_heads, hf.head_dim) == (args.ffn_dim, args.n_kv_heads, args.head_dim)


def test_hf_config_with_any_ffn_width_round_trips():
    cfg = hf_config(GQA)
    cfg["intermediate_size"] = 777
    assert model_args_from_hf(cfg).ffn_dim == 777


def test_unsupported_hf_config_is_refused():
    with pytest.raises(ValueError, match="rope_scaling"):
        model_args_from_hf({**hf_config(MHA), "rope_scaling": {"type": "linear", "factor": 2.0}})


# --- the forward pass against transformers ---------------------------------------------------------------------------

@pytest.mark.parametrize("args", [MHA, GQA], ids=["MHA", "GQA"])
def test_logits_match_transformers_after_loading_its_checkpoint(args, tmp_path):
    hf = hf_model(args)
    hf.save_pretrained(tmp_path)          # HF layout: q/k rows permuted for rotate-half RoPE
    ours = Transformer.from_pretrained(tmp_path)
    assert ours.args.ffn_dim == args.ffn_dim and ours.args.n_kv_heads == args.n_kv_heads
    x = tokens()
    with torch.no_grad():
        diff = (ours(x) - hf(x).logits).abs().max().item()
    assert diff <= 1e-4


@pytest.mark.parametrize("shard_size", [10**9, 40_000], ids=["one-file", "sharded"])
def test_save_pretrained_loads_in_transformers_with_same_logits(shard_size, tmp_path):
    ours = tiny_model(GQA)
    ours.save_pretrained(tmp_path, max_shard_size=shard_size)
    files = sorted(p.name for p in tmp_path.glob("*.safetensors"))
    if shard_size < 10**9:
        assert len(files) > 1 and (tmp_path / "model.safetensors.index.json").exists()
    else:
        assert files == ["model.safetensors"]
    hf = transformers.LlamaForCausalLM.from_pretrained(tmp_path).eval()
    x = tokens()
    with torch.no_grad():
        assert (ours(x) - hf(x).logits).abs().max().item() <= 1e-4
    again = Transformer.from_pretrained(tmp_path)   # our own format reads back exactly
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), again.state_dict().values()))


def test_write_hf_checkpoint_needs_no_module(tmp_path):
    state = {k: v.clone() for k, v in tiny_model(MHA).state_dict().items()}   # e.g. rank 0's gathered state dict
    write_hf_checkpoint(state, MHA, tmp_path)
    args, loaded = read_checkpoint(tmp_path)
    assert args == MHA and loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)


# --- tokenizer.json: the export loads in transformers 5, vLLM and `transformers serve` without protobuf -------------

# The three SentencePiece models the project uses: the embedded one (2,048 pieces), LLaMA-2's (32,000) and tok512,
# trained with SentencePiece's remove_extra_whitespaces (runs of spaces squeezed, spaces at the ends dropped).
SP_MODELS = {"embedded": DEFAULT_TOKENIZER,
             "llama2": SHARED / "models" / "llama2-tokenizer" / "tokenizer.model",
             "tok512": SHARED / "models" / "tok512" / "tok512.model"}


def sp_model(name: str) -> Path:
    return SP_MODELS[name] if name == "embedded" else shared_path(*SP_MODELS[name].relative_to(SHARED).parts)


def tokenizer_texts() -> list[str]:
    """GOLDEN, special-token strings inside text, and 300 random strings of letters, runs of spaces, newlines, tabs,
    accents, CJK, emoji (byte fallback), digits and the special-token strings."""
    rng = random.Random(0)
    parts = ["a", "Ab", "the", " ", "  ", "\n", "\t", "é", "日本", "😀", "<s>", "</s>", "<unk>", "<", "s>", "1234",
             "▁"]
    return GOLDEN + ["x</s>\ny<s> z", "</s>", "<unk> hi", " </s>  a "] + \
        ["".join(rng.choice(parts) for _ in range(rng.randint(1, 30))) for _ in range(300)]


@pytest.mark.parametrize("name", list(SP_MODELS))
def test_tokenizer_json_encodes_as_sentencepiece(name, tmp_path):
    """tokenizer.json, loaded by the `tokenizers` library itself, gives the slow tokenizer's ids for every text
    (BOS first, special-token strings as their ids, byte fallback), and decodes them back as SentencePiece does."""
    tokenizers = pytest.importorskip("tokenizers")
    path = sp_model(name)
    write_tokenizer_json(path, tmp_path)
    fast, oracle, sp = tokenizers.Tokenizer.from_file(str(tmp_path / "tokenizer.json")), SlowLlamaTokenizer(path), \
        Tokenizer(path)
    for text in tokenizer_texts():
        assert fast.encode(text).ids == oracle.encode(text), repr(text)
        assert fast.encode(text, add_special_tokens=False).ids == oracle.encode(text, add_special_tokens=False)
        ids = sp.encode(text.replace("<", "("))   # what a model emits: pieces, no special tokens
        assert fast.decode(ids) == sp.decode(ids), repr(text)


def test_sentencepiece_model_spec_reads_the_model_file_without_protobuf(tmp_path):
    """The fields read off the model file by hand equal SentencePiece's own view of the pieces and the options the
    models were trained with; write_tokenizer_json refuses a model it cannot represent (a unigram model)."""
    from sentencepiece import SentencePieceProcessor, SentencePieceTrainer
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"record {i}: Anna Berg visited Oslo in {1990 + i % 30}." for i in range(300)))
    SentencePieceTrainer.train(input=str(corpus), model_prefix=str(tmp_path / "uni"), vocab_size=60,
                               model_type="unigram", minloglevel=2)
    SentencePieceTrainer.train(input=str(corpus), model_prefix=str(tmp_path / "bpe"), vocab_size=300,
                               model_type="bpe", byte_fallback=True, normalization_rule_name="identity",
                               remove_extra_whitespaces=False, minloglevel=2)
    uni, bpe = sentencepiece_model_spec(tmp_path / "uni.model"), sentencepiece_model_spec(tmp_path / "bpe.model")
    assert [uni[k] for k in ("model_type", "byte_fallback", "normalizer", "remove_extra_whitespaces")] == \
        [1, False, "nmt_nfkc", True]
    assert [bpe[k] for k in ("model_type", "byte_fallback", "normalizer", "remove_extra_whitespaces")] == \
        [2, True, "identity", False]
    for path, spec in [(tmp_path / "bpe.model", bpe),
                       (DEFAULT_TOKENIZER, sentencepiece_model_spec(DEFAULT_TOKENIZER))]:
        sp = SentencePieceProcessor(model_file=str(path))
        kinds = [2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 6 if sp.is_byte(i) else 1
                 for i in range(sp.vocab_size())]
        assert spec["pieces"] == [(sp.id_to_piece(i), sp.get_score(i), kinds[i]) for i in range(sp.vocab_size())]
    with pytest.raises(ValueError, match=r"uni.model: cannot write tokenizer.json: .*\(a BPE model, byte_fallback"):
        write_tokenizer_json(tmp_path / "uni.model", tmp_path)
    write_tokenizer_json(tmp_path / "bpe.model", tmp_path)
    tokenizers = pytest.importorskip("tokenizers")
    fast = tokenizers.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    oracle = SlowLlamaTokenizer(tmp_path / "bpe.model")
    for text in tokenizer_texts():
        assert fast.encode(text).ids == oracle.encode(text), repr(text)


# Run in a fresh interpreter in which `import google.protobuf` fails, as in an environment without protobuf.
NO_PROTOBUF_LOAD = """
import importlib.abc, importlib.util, json, sys
class NoProtobuf(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "google.protobuf" or name.startswith("google.protobuf."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
sys.meta_path.insert(0, NoProtobuf())
try:
    import google.protobuf
    sys.exit("protobuf was not blocked")
except ModuleNotFoundError:
    pass
import transformers
tok = transformers.AutoTokenizer.from_pretrained(sys.argv[1])
print(json.dumps({"class": type(tok).__name__, "bos": tok.bos_token_id, "eos": tok.eos_token_id,
                  "ids": [tok.encode(t) for t in json.loads(sys.stdin.read())]}))
"""


@pytest.mark.parametrize("name", ["embedded", "llama2"])
def test_export_loads_in_transformers_without_protobuf(name, tmp_path):
    """AutoTokenizer.from_pretrained(export) in transformers 5 with protobuf unavailable: it reads tokenizer.json
    (before it, transformers 5 tried to convert tokenizer.model, needed protobuf, fell back to tiktoken and failed)
    and encodes every text as SentencePiece does."""
    path = sp_model(name)
    vocab = Tokenizer(path).vocab_size
    tiny_model(replace(MHA, vocab_size=vocab, n_layers=1)).save_pretrained(tmp_path, tokenizer_path=path)
    texts = tokenizer_texts()
    proc = subprocess.run([sys.executable, "-c", NO_PROTOBUF_LOAD, str(tmp_path)], input=json.dumps(texts),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    oracle = SlowLlamaTokenizer(path)
    assert (got["bos"], got["eos"]) == (1, 2)
    assert got["class"] in ("TokenizersBackend", "PreTrainedTokenizerFast")   # the file as written, not rebuilt
    for text, ids in zip(texts, got["ids"]):
        assert ids == oracle.encode(text), repr(text)
    assert transformers.GenerationConfig.from_pretrained(tmp_path).eos_token_id == 2


# --- Meta's layout ---------------------------------------------------------------------------------------------------

# Meta's tensor parallelism (fairscale), written out here independently of model.py:
COLUMN_PARALLEL = {"wq", "wk", "wv", "w1", "w3", "output"}   # ColumnParallelLinear: output rows split (dim 0)
ROW_PARALLEL = {"wo", "w2"}                                  # RowParallelLinear: input columns split (dim 1)
PARALLEL_EMBEDDING = {"tok_embeddings"}                      # ParallelEmbedding: the embedding dim split (dim 1)


def write_meta_checkpoint(model: Transformer, path: Path, n_shards: int):
    """A Meta-format directory: params.json (vocab_size -1, as Meta ships it) + consolidated.NN.pth per shard."""
    path.mkdir(parents=True, exist_ok=True)
    a = model.args
    params = {"dim": a.dim, "multiple_of": a.multiple_of, "n_heads": a.n_heads, "n_layers": a.n_layers,
              "norm_eps": a.norm_eps, "vocab_size": -1}
    if a.n_kv_heads != a.n_heads:
        params["n_kv_heads"] = a.n_kv_heads
    (path / "params.json").write_text(json.dumps(params))
    for rank in range(n_shards):
        shard = {"rope.freqs": torch.randn(a.head_dim // 2)}   # real checkpoints carry Meta's RoPE table
        for name, t in model.state_dict().items():
            kind = name.split(".")[-2]
            dim = 0 if kind in COLUMN_PARALLEL else 1 if kind in ROW_PARALLEL | PARALLEL_EMBEDDING else None
            shard[name] = t.clone() if dim is None else t.chunk(n_shards, dim)[rank].clone()
        torch.save(shard, path / f"consolidated.{rank:02d}.pth")


@pytest.mark.parametrize("n_shards", [1, 2])
@pytest.mark.parametrize("args", [MHA, GQA], ids=["MHA", "GQA"])
def test_meta_checkpoint_with_model_parallel_shards_loads_to_the_same_model(args, n_shards, tmp_path):
    args = replace(args, multiple_of=32)
    model = tiny_model(args)
    write_meta_checkpoint(model, tmp_path, n_shards)
    loaded = Transformer.from_pretrained(tmp_path)
    # params.json does not give the context length: LLaMA-2's 4096
    assert loaded.args == read_model_args(tmp_path) == replace(args, max_seq_len=4096)
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    x = tokens()
    with torch.no_grad():
        assert torch.allclose(model(x), loaded(x), atol=1e-6)


def test_checkpoints_are_unpickled_with_weights_only(tmp_path):
    class RunsCode:   # what a malicious .pth could hold: unpickling it would create the marker file
        def __reduce__(self):
            return Path.touch, (tmp_path / "pwned",)

    write_meta_checkpoint(tiny_model(), tmp_path, 1)
    torch.save({"tok_embeddings.weight": RunsCode()}, tmp_path / "consolidated.00.pth")
    with pytest.raises(pickle.UnpicklingError):
        read_checkpoint(tmp_path)
    assert not (tmp_path / "pwned").exists()


# --- bad inputs get clear errors -------------------------------------------------------------------------------------

def test_directory_of_neither_format(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="neither a Meta checkpoint.*nor a Hugging Face"):
        Transformer.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError):
        Transformer.from_pretrained(tmp_path / "absent")


def test_missing_meta_shard(tmp_path):
    write_meta_checkpoint(tiny_model(), tmp_path, 2)
    (tmp_path / "consolidated.01.pth").unlink()
    with pytest.raises(ValueError, match="2 model-parallel shards.*1 consolidated.*missing"):
        Transformer.from_pretrained(tmp_path)


def test_missing_hf_shard(tmp_path):
    tiny_model().save_pretrained(tmp_path, max_shard_size=40_000)
    second = sorted(tmp_path.glob("model-*.safetensors"))[1]
    second.unlink()
    with pytest.raises(ValueError, match=f"{second.name} listed in model.safetensors.index.json is missing"):
        Transformer.from_pretrained(tmp_path)


def test_shape_mismatch_names_tensor_and_both_shapes(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["intermediate_size"] = 256   # the weights have 192
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"layers\.0\.feed_forward\.w1\.weight.*\(192, 64\).*\(256, 64\)"):
        Transformer.from_pretrained(tmp_path)


def test_tokenizer_vocab_mismatch(tmp_path, tok512_path):
    model = tiny_model(replace(MHA, vocab_size=600))
    with pytest.raises(ValueError, match="512 pieces but the model's vocab_size is 600"):
        check_tokenizer_matches(model.args, Tokenizer(tok512_path))
    model.save_pretrained(tmp_path)
    shutil.copyfile(tok512_path, tmp_path / "tokenizer.model")   # a tokenizer beside the weights is checked on load
    with pytest.raises(ValueError, match="512 pieces but the model's vocab_size is 600"):
        Transformer.from_pretrained(tmp_path)


def test_added_tokens_widen_the_vocabulary(tmp_path, tok512_path):
    """ADELIE's released checkpoints: tokenizer.model (32000 pieces) + added_tokens.json {"<pad>": 32000} and an
    embedding of 32001 rows. The same layout at tiny size loads; one row more or less does not."""
    shutil.copyfile(tok512_path, tmp_path / "tokenizer.model")
    (tmp_path / "added_tokens.json").write_text(json.dumps({"<pad>": 512}))
    tok = Tokenizer(tmp_path / "tokenizer.model")
    assert tok.added_tokens == {"<pad>": 512}
    check_tokenizer_matches(replace(MHA, vocab_size=513), tok)
    with pytest.raises(ValueError, match=r"512 pieces \+ 1 added tokens but the model's vocab_size is 514"):
        check_tokenizer_matches(replace(MHA, vocab_size=514), tok)


# --- FSDP2-style construction ----------------------------------------------------------------------------------------

def test_meta_device_build_then_init_is_deterministic():
    cpu = Transformer(GQA)
    cpu.init_weights(seed=3)
    with torch.device("meta"):
        model = Transformer(GQA)
    model.to_empty(device="cpu")   # uninitialised storage, RoPE tables included
    model.init_weights(seed=3)
    assert all(torch.equal(a, b) for a, b in zip(cpu.state_dict().values(), model.state_dict().values()))
    assert "freqs_cis" not in model.state_dict()   # non-persistent: never saved, always recomputed
    x = tokens()
    with torch.no_grad():
        assert torch.equal(cpu(x), model(x))
    other = Transformer(GQA)
    other.init_weights(seed=4)
    assert not torch.equal(other.output.weight, cpu.output.weight)


def test_activation_checkpointing_saves_less_and_gives_the_same_gradients():
    model, x = tiny_model(GQA), tokens()
    grads, saved = [], []
    for enabled in (False, True):
        model.zero_grad()
        model.activation_checkpointing = enabled   # sets every block's `checkpoint` switch
        assert all(layer.checkpoint == enabled for layer in model.layers)
        count = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: count.append(t) or t, lambda t: t):
            loss = model(x).logsumexp(-1).mean()
        loss.backward()
        saved.append(len(count))
        grads.append([p.grad.clone() for p in model.parameters()])
    assert saved[1] < saved[0] / 2   # a checkpointed block keeps only its inputs for backward
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*grads))


def test_rope_tables_stay_fp32_when_the_model_is_cast():
    model = tiny_model().to(torch.bfloat16)
    assert model(tokens()).dtype == torch.bfloat16
    assert model.freqs_cis.dtype == torch.float32


# --- KV cache and generation -----------------------------------------------------------------------------------------

def test_kv_cache_decoding_gives_the_logits_of_a_full_forward():
    model = tiny_model(GQA)
    x = tokens(B=2, T=20)
    lengths = [8, 12]   # row 0 is left-padded by 4 slots, row 1 not
    pad = torch.tensor([12 - n for n in lengths])
    prompt = torch.zeros((2, 12), dtype=torch.long)
    for b, n in enumerate(lengths):
        prompt[b, 12 - n:] = x[b, :n]
    with torch.no_grad():
        full = [model(x[b:b + 1, :n + 8])[0] for b, n in enumerate(lengths)]   # (n + 8, vocab) each, no cache
        cache = KVCache(GQA.n_layers, pad, max_len=20)
        step_logits = [model(prompt, cache=cache)[:, -1]]
        for t in range(7):   # feed each row's own continuation one token at a time
            nxt = torch.stack([x[b, n + t] for b, n in enumerate(lengths)])[:, None]
            step_logits.append(model(nxt, cache=cache, last_only=True)[:, -1])
    for b, n in enumerate(lengths):
        for t, logits in enumerate(step_logits):
            assert torch.allclose(logits[b], full[b][n - 1 + t], atol=1e-5), (b, t)


def test_logits_at_chosen_positions_are_those_of_the_full_forward():
    """logits_mask= (what SFT uses: logits only where the next token is trained) gives the full forward's rows at
    those positions, in row-major order."""
    model = tiny_model(GQA)
    x = tokens(B=3, T=16)
    positions = torch.rand(3, 16, generator=torch.Generator().manual_seed(1)) < 0.4
    with torch.no_grad():
        full = model(x)                                                     # (3, 16, vocab)
        chosen = model(x, logits_mask=positions)                              # (N, vocab)
    assert chosen.shape == (int(positions.sum()), GQA.vocab_size)
    assert torch.allclose(chosen, full[positions], atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("args", [MHA, GQA], ids=["MHA", "GQA"])
def test_flat_decode_step_gives_the_logits_of_the_module_forward(args, dtype):
    # generate's decoding step is the layers written flat for speed: bit for bit the logits and cache of model(...)
    model = tiny_model(args).to(dtype)
    pad = torch.tensor([0, 4, 7])   # rows left-padded by 0, 4 and 7 slots
    flat, modules = KVCache(args.n_layers, pad, max_len=20), KVCache(args.n_layers, pad, max_len=20)
    new = tokens(B=3, T=8, seed=2)
    with torch.inference_mode():
        model(tokens(B=3, T=12), cache=flat)
        model(tokens(B=3, T=12), cache=modules)
        weights = decode_weights(model)
        for t in range(8):
            freqs_cis = torch.view_as_complex(model.freqs_cis[flat.positions(1)])   # (3, 1, hd/2)
            ours = decode_step(args, weights, new[:, t], flat, freqs_cis)
            reference = model(new[:, t:t + 1], cache=modules, last_only=True)[:, -1]
            assert ours.shape == reference.shape == (3, args.vocab_size) and ours.dtype == dtype
            assert torch.equal(ours, reference), t
    assert flat.pos == modules.pos == 20
    assert all(torch.equal(a, b) for a, b in zip(flat.k + flat.v, modules.k + modules.v))


@pytest.mark.parametrize("dtype, atol", [(torch.float32, 1e-5), (torch.bfloat16, 0.02)])
@pytest.mark.parametrize("args", [MHA, GQA], ids=["MHA", "GQA"])
def test_shared_prefix_decoding_gives_the_logits_of_a_repeated_cache(args, dtype, atol):
    # Sampling S answers per prompt: the rows read their prompt's keys and values from one copy (share_prefix) instead
    # of S copies (select): the same attention, summed in another order, so equal logits up to fp32 rounding; and
    # dropping whole prompts keeps the two in step.
    model, S = tiny_model(args).to(dtype), 3
    pad = torch.tensor([0, 4, 7])   # 3 prompts, left-padded by 0, 4 and 7 slots
    shared, repeated = KVCache(args.n_layers, pad, max_len=22), KVCache(args.n_layers, pad, max_len=22)
    rows = torch.arange(3).repeat_interleave(S)
    new = tokens(B=9, T=10, seed=2)
    with torch.inference_mode():
        model(tokens(B=3, T=12), cache=shared)
        model(tokens(B=3, T=12), cache=repeated)
        shared.share_prefix(S)
        repeated.select(rows)
        assert shared.prefix_k[0].shape == (3, args.n_kv_heads, 12, args.head_dim)
        weights, drop_at, kept = decode_weights(model), 5, torch.arange(9)
        for t in range(10):
            if t == drop_at:   # prompt 1's rows leave
                kept = torch.tensor([0, 1, 2, 6, 7, 8])
                shared.select(kept)
                repeated.select(kept)
            freqs_cis = torch.view_as_complex(model.freqs_cis[shared.positions(1)])
            assert torch.equal(shared.positions(1), repeated.positions(1))
            ours = decode_step(args, weights, new[kept, t], shared, freqs_cis)
            reference = decode_step(args, weights, new[kept, t], repeated, freqs_cis)
            assert ours.shape == reference.shape == (len(kept), args.vocab_size)
            torch.testing.assert_close(ours, reference, rtol=0, atol=atol)
    assert shared.k[0].shape == (6, args.n_kv_heads, 10, args.head_dim)   # the new tokens only


def test_generate_goes_through_the_modules_when_they_are_not_plain():
    # decode_step reads the weights directly; with a hook (FSDP2 all-gathers weights in one), a replaced layer or a
    # sharded weight, generate must call the modules, and it gives the same tokens (row drops and samples included).
    model = tiny_model(replace(GQA, vocab_size=32))   # few tokens: EOS comes early
    prompts = [[t % 32 for t in range(1, n + 1)] for n in (3, 17, 9)]
    kw = dict(max_new_tokens=12, temperature=1.0, top_p=0.9, num_samples=2, eos_id=12)
    assert flat_decoding_ok(model)
    flat = generate(model, prompts, **kw)
    assert sorted(map(len, flat)) == [1, 3, 6, 9, 12, 12]   # half the rows finish by step 6: they are dropped
    calls = []
    hook = model.layers[1].register_forward_hook(lambda *_: calls.append(1))
    assert not flat_decoding_ok(model)
    assert generate(model, prompts, **kw) == flat
    assert len(calls) == max(map(len, flat))   # the prefill and every decoding step went through the layer
    hook.remove()
    model.layers[0].feed_forward = torch.nn.Sequential()   # a replaced layer (what LoRA or a quantizer does)
    assert not flat_decoding_ok(model)


def test_generate_sees_weight_updates_between_calls():
    # decode_weights is looked up again in every generate call: an optimizer step (in place) or a load with
    # assign=True (new tensors) between calls is decoded with.
    model, prompts = tiny_model(GQA), [[1, 5, 9], [1, 7]]
    before = generate(model, prompts, max_new_tokens=10)
    other = tiny_model(GQA, seed=1)
    with torch.no_grad():
        for p, q in zip(model.parameters(), other.parameters()):
            p.copy_(q)
    after = generate(model, prompts, max_new_tokens=10)
    assert after == generate(other, prompts, max_new_tokens=10) and after != before
    third = tiny_model(GQA, seed=2)
    model.load_state_dict(third.state_dict(), assign=True)
    assert generate(model, prompts, max_new_tokens=10) == generate(third, prompts, max_new_tokens=10)


def test_greedy_generation_equals_transformers_generate(tmp_path):
    ours = tiny_model(GQA)
    ours.save_pretrained(tmp_path)
    hf = transformers.LlamaForCausalLM.from_pretrained(tmp_path).eval()
    hf.generation_config.eos_token_id = None   # run the full 32 tokens in both
    prompts = tokens(B=2, T=10, seed=5)
    with torch.no_grad():
        theirs = hf.generate(prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=32, do_sample=False,
                             pad_token_id=0)[:, 10:]
    assert generate(ours, prompts.tolist(), max_new_tokens=32) == theirs.tolist()


def test_batch_of_different_lengths_equals_each_prompt_alone():
    model = tiny_model(GQA)
    prompts = [list(range(1, n + 1)) for n in (3, 17, 9, 30, 1)]
    for kw in (dict(), dict(temperature=1.0, top_p=0.9, num_samples=2)):   # greedy and sampled
        together = generate(model, prompts, max_new_tokens=12, **kw)
        n = kw.get("num_samples", 1)
        for i, p in enumerate(prompts):
            alone = generate(model, [p], max_new_tokens=12, seeds=[prompt_seed(0, i)], **kw)
            assert together[i * n:(i + 1) * n] == alone


def test_samples_differ_and_repeat_with_the_same_seed():
    model = tiny_model(GQA)
    prompts = [[1, 5, 9], [1, 7]]
    draws = generate(model, prompts, max_new_tokens=10, temperature=1.0, num_samples=5, seed=7)
    assert len(draws) == 10 and all(len(d) == 10 for d in draws)
    assert len({tuple(d) for d in draws[:5]}) == 5   # 5 independent samples of prompt 0 (IEFeedback draws 5)
    assert generate(model, prompts, max_new_tokens=10, temperature=1.0, num_samples=5, seed=7) == draws
    assert generate(model, prompts, max_new_tokens=10, temperature=1.0, num_samples=5, seed=8) != draws


def test_samples_do_not_depend_on_batching():
    model = tiny_model(GQA)
    a, b, c = [1, 4, 4, 2], [1, 9], [1, 3, 3, 3, 3, 3]
    kw = dict(max_new_tokens=8, temperature=1.0, num_samples=3, seed=11)
    together = generate(model, [a, b, c], **kw)
    assert generate(model, [b], seeds=[prompt_seed(11, 1)], **{k: v for k, v in kw.items() if k != "seed"}) \
        == together[3:6]
    assert generate(model, [a, b, c], batch_size=3, **kw) == together   # one prompt per batch


def test_generation_stops_at_eos_per_row():
    model = tiny_model(GQA)
    prompts = [[1, 2], [1, 3, 4], [1, 5], [1, 6, 7, 8]]
    free = generate(model, prompts, max_new_tokens=16)
    eos = free[0][3]   # a token the greedy continuation of prompt 0 reaches at step 3
    expected = [f[:f.index(eos) + 1] if eos in f else f for f in free]
    assert generate(model, prompts, max_new_tokens=16, eos_id=eos) == expected
    assert len(expected[0]) == 4


def test_generation_stops_at_max_seq_len_with_a_warning():
    model = tiny_model(replace(GQA, max_seq_len=16))
    with pytest.warns(UserWarning, match="1 prompts get fewer"):
        out = generate(model, [[1] * 10, [1] * 2], max_new_tokens=8)
    assert [len(o) for o in out] == [6, 8]
    # The long prompt's row decodes on past its budget (and past the RoPE table) while the others finish
    with pytest.warns(UserWarning, match="1 prompts get fewer"):
        out = generate(model, [[1] * 10, [1] * 2, [1] * 3], max_new_tokens=8)
    assert [len(o) for o in out] == [6, 8, 8]
    assert out[0] == generate(model, [[1] * 10], max_new_tokens=6)[0]
    model.register_forward_pre_hook(lambda *_: None)   # the same through the modules (see below)
    with pytest.warns(UserWarning, match="1 prompts get fewer"):
        assert generate(model, [[1] * 10, [1] * 2, [1] * 3], max_new_tokens=8) == out


def test_top_p_keeps_the_same_nucleus_as_transformers():
    logits = torch.randn(1, 40, generator=torch.Generator().manual_seed(0)) * 2
    temperature, top_p = 0.7, 0.8
    warped = transformers.TopPLogitsWarper(top_p)(None, logits / temperature)
    nucleus = torch.softmax(warped, -1)[0]
    # Evenly spaced uniforms through the inverse CDF hit each token in proportion to its probability.
    n = 20000
    u = (torch.arange(n) + 0.5) / n
    draws = sample_next(logits.expand(n, -1), temperature, top_p, u)
    freq = torch.bincount(draws, minlength=40) / n
    assert torch.allclose(freq, nucleus, atol=2 / n)


def test_tiny_temperature_is_greedy_and_finite():
    logits = torch.tensor([[60000.0, 59000.0, -60000.0]], dtype=torch.float16)   # / 0.01 overflows fp16
    for t in (0.01, 1e-4):
        assert sample_next(logits, t, 1.0, torch.tensor([0.999])).item() == 0
    assert sample_next(logits, 0.0, 1.0).item() == 0


# --- tokenizer -------------------------------------------------------------------------------------------------------

GOLDEN = [
    "<|user|>\nExtract the named entities.\n\nText: 'EU rejects German call to boycott British lamb .'\n"
    "<|assistant|>\n",
    "[Answer]: EU: organization; German: miscellaneous;",
    "  two leading spaces and two trailing  ",
    "\n\nnewlines first\n",
    "Ünïcödé: Zürich, São Paulo, Łódź, 北京, 東京, 😀 ✓ — “quotes”",
    "<|system|>\nYou are a helpful assistant.\n<|user|>\nhi\n<|assistant|>\n(a; b; c)\n",
    " ",
    "",
]


def test_tokenizer_matches_transformers_slow_llama_tokenizer(llama_tokenizer_path):
    ours = Tokenizer(llama_tokenizer_path)
    theirs = SlowLlamaTokenizer(llama_tokenizer_path)   # transformers' LlamaTokenizer, legacy=True: what ADELIE used
    assert (ours.vocab_size, ours.bos_id, ours.eos_id, ours.pad_id) == (32000, 1, 2, -1)
    for text in GOLDEN:
        assert ours.encode(text) == theirs.encode(text, add_special_tokens=False), text
        assert ours.encode(text, bos=True) == theirs.encode(text), text
        assert ours.encode(text, bos=True, eos=True) == [1] + ours.encode(text) + [2]
        assert ours.decode(ours.encode(text)) == text


def test_encode_with_offsets_gives_each_pieces_characters(llama_tokenizer_path):
    tok = Tokenizer(llama_tokenizer_path)
    for text in GOLDEN:
        ids, spans = tok.encode_with_offsets(text)
        assert ids == tok.encode(text)
        assert "".join(text[b:e] for b, e in spans) == text   # the spans tile the text
        for i, (piece_id, (b, e)) in enumerate(zip(ids, spans)):
            piece = tok.id_to_piece(piece_id)
            if not piece.startswith("<0x"):   # byte-fallback pieces are parts of one character
                surface = piece.replace("\u2581", " ")
                assert text[b:e] == (surface[1:] if i == 0 else surface)   # the first "▁" is SentencePiece's
