"""LLaMA-2, the backbone ADELIE fine-tunes (paper section 4), written out by hand.

What is here, top to bottom:
  ModelArgs + presets ("7B", "13B", "70B", and the small CPU configs "demo" and "tiny")
  The architecture: Meta's parameter names, RMSNorm in fp32, RoPE on interleaved pairs with fp32 tables, grouped-query
      attention through F.scaled_dot_product_attention, SwiGLU with Meta's hidden-size rule, untied output layer
  Generation: generate() decodes in batches with a static KV cache, greedy / temperature / top-p, num_samples per
      prompt; its per-token step is decode_step, the layers written flat (the same arithmetic with fewer PyTorch
      calls: it is what makes greedy decoding 3x transformers' on small models, README "Performance")
  Checkpoints and the tokenizer: Transformer.from_pretrained / save_pretrained read Meta's and Hugging Face's
      formats and write Hugging Face's (checkpoints.py); Tokenizer is SentencePiece with explicit BOS/EOS

Building for FSDP2 or for a big checkpoint never materialises random weights:
    with torch.device("meta"): model = Transformer(args)
    model.to_empty(device="cuda")          # uninitialised storage (RoPE buffers included)
    model.init_weights(seed=0)             # or load a state dict; then model.init_rope() recomputes the RoPE tables
Transformer.from_pretrained(dir) does this with mmap-ed weights and load_state_dict(assign=True), so a 7B load never
holds two copies.
"""
import hashlib
import json
import math
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


# ----------------------------------------------------------------------------------------------------------------------
# Config

@dataclass
class ModelArgs:
    """The architecture. Field names and defaults are Meta's (llama/model.py); the default is LLaMA-2-7B."""
    dim: int = 4096
    n_layers: int = 32
    n_heads: int = 32
    n_kv_heads: int | None = None        # None = n_heads (multi-head attention); fewer = grouped-query attention
    vocab_size: int = 32000
    multiple_of: int = 256               # SwiGLU hidden size is rounded up to a multiple of this
    ffn_dim_multiplier: float | None = None
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    max_seq_len: int = 4096              # LLaMA-2 context length; the size of the RoPE tables

    def __post_init__(self):
        self.n_kv_heads = self.n_kv_heads or self.n_heads
        if self.dim % self.n_heads or self.n_heads % self.n_kv_heads or (self.dim // self.n_heads) % 2:
            raise ValueError(f"ModelArgs: dim={self.dim} must split into n_heads={self.n_heads} heads of even size, "
                             f"and n_heads must be a multiple of n_kv_heads={self.n_kv_heads}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def ffn_dim(self) -> int:
        """Meta's SwiGLU hidden size: 2/3 of 4*dim (three matrices instead of two keep the parameter count), times
        ffn_dim_multiplier, rounded up to multiple_of. 7B: 11008, 13B: 13824, 70B: 28672."""
        hidden = int(2 * (4 * self.dim) / 3)
        if self.ffn_dim_multiplier is not None:
            hidden = int(self.ffn_dim_multiplier * hidden)
        return self.multiple_of * ((hidden + self.multiple_of - 1) // self.multiple_of)

    @classmethod
    def from_name(cls, name: str) -> "ModelArgs":
        if name not in PRESETS:
            raise ValueError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}")
        return replace(PRESETS[name])


PRESETS = {
    # LLaMA-2 (Touvron et al. 2023, Table 1 and Meta's params.json files)
    "7B": ModelArgs(dim=4096, n_layers=32, n_heads=32),
    "13B": ModelArgs(dim=5120, n_layers=40, n_heads=40),
    "70B": ModelArgs(dim=8192, n_layers=80, n_heads=64, n_kv_heads=8, multiple_of=4096, ffn_dim_multiplier=1.3),
    # The embedded default: LLaMA-shaped (GQA included) and small enough to train on a 2-core CPU. 1.3M parameters:
    # in a fixed CPU budget a smaller, faster model takes more optimizer steps. 8 heads of 16 rather than 4 of 32:
    # the same training step time, and the SFT model copies more reliably (RC 0.0 -> 21.7; the demo's results: README).
    "demo": ModelArgs(dim=128, n_layers=4, n_heads=8, n_kv_heads=4, vocab_size=2048, multiple_of=32, max_seq_len=1024),
    # Tests and CI: the shipped tokenizer (assets/tokenizer.model, 2,048 pieces), so tests need nothing else.
    "tiny": ModelArgs(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=2048, multiple_of=32, max_seq_len=512),
}


# ----------------------------------------------------------------------------------------------------------------------
# The transformer


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)


def rms_norm(x, weight, eps: float):
    # x / sqrt(mean(x^2) + eps), in fp32 as Meta does (the mean of squares of bf16 activations loses too many bits),
    # then back to x's dtype and scaled. All in fp32, that is one call with the weight (the same products, bit for
    # bit: at decoding sizes every call saved counts)
    if x.dtype == weight.dtype == torch.float32:
        return F.rms_norm(x, (x.shape[-1],), weight, eps)
    return F.rms_norm(x.float(), (x.shape[-1],), eps=eps).type_as(x) * weight


def apply_rope(x, freqs_cis, in_place: bool = False):
    """Rotary embedding as Meta writes it: each interleaved pair (x0, x1), (x2, x3), ... of x (B, T, H, hd) is the
    complex number x0 + i x1, rotated by its position's angle: multiplied by freqs_cis = e^(i theta), complex64
    broadcastable to (B, T, 1, hd/2). In fp32; one complex multiply does the whole rotation. in_place (decoding,
    no autograd): an fp32 x is rotated where it lies, the same multiply without the copies."""
    if in_place and x.dtype == torch.float32:
        torch.view_as_complex(x.unflatten(-1, (-1, 2))).mul_(freqs_cis)   # x's own memory
        return x
    xc = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))   # (B, T, H, hd/2) complex
    return torch.view_as_real(xc * freqs_cis).flatten(-2).type_as(x)


def attend(q, k, v, mask=None):
    """softmax(q k^T / sqrt(hd) + mask) v for q (B, H, T, hd) and k, v (B, KV, S, hd), mask None = causal. GQA: query
    head h reads key/value head h // (H / KV), as Meta's repeat_kv does."""
    B, H, T, hd = q.shape
    KV = k.shape[1]
    if T == 1 and H != KV:   # one query per row (decoding): a key/value head's H/KV query heads are, to SDPA, its
        # H/KV queries (they share the mask); no K/V repeat, and fewer, larger blocks
        y = F.scaled_dot_product_attention(q.view(B, KV, H // KV, hd), k, v, attn_mask=mask)   # (B, KV, H/KV, hd)
        return y.view(B, H, 1, hd)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None and T > 1, enable_gqa=H != KV)


def attend_shared(q, prefix_k, prefix_v, prefix_bias, k, v):
    """attend() for one new token per row when each prompt's S rows share its keys and values (KVCache.share_prefix):
    q (P*S, H, hd), prompt p's prefix_k/v (P, KV, L, hd) and prefix_bias (P, L), each row's own new-token k, v
    (P*S, KV, t, hd). The softmax runs over the L + t scores of each query, as attend's does over the repeated cache;
    a prompt's prefix is read once for its S*H/KV queries per key/value head."""
    R, H, hd = q.shape
    P, KV, L, _ = prefix_k.shape
    S, G, t = R // P, H // KV, k.shape[2]

    def by_prompt(x):   # (R, KV, G, n) -> (P, KV, S*G, n): a prompt's rows as one batch of queries
        return x.view(P, S, KV, G, -1).transpose(1, 2).reshape(P, KV, S * G, -1)

    def by_row(x):      # (P, KV, S*G, n) -> (R, KV, G, n)
        return x.view(P, KV, S, G, -1).transpose(1, 2).reshape(R, KV, G, -1)

    q = (q * hd ** -0.5).view(R, KV, G, hd)
    # The scores over the prefix, the large tensor, stay in the prompts' layout; the few new-token scores join them
    scores_p = by_prompt(q) @ prefix_k.transpose(-1, -2) + prefix_bias[:, None, None, :]   # (P, KV, S*G, L)
    scores_new = by_prompt(q @ k.transpose(-1, -2))                                        # (P, KV, S*G, t)
    probs = torch.softmax(torch.cat([scores_p, scores_new], dim=-1).float(), dim=-1).type_as(q)   # fp32 as in SDPA
    probs_p, probs_new = probs.split([L, t], dim=-1)                           # (P, KV, S*G, L), (P, KV, S*G, t)
    y = by_row(probs_p @ prefix_v) + by_row(probs_new) @ v                     # (R, KV, G, hd)
    return y.reshape(R, H * hd)


class Attention(nn.Module):
    def __init__(self, args: ModelArgs, layer_id: int):
        super().__init__()
        self.layer_id = layer_id
        self.n_heads, self.n_kv_heads, self.head_dim = args.n_heads, args.n_kv_heads, args.head_dim
        self.wq = nn.Linear(args.dim, args.n_heads * args.head_dim, bias=False)
        self.wk = nn.Linear(args.dim, args.n_kv_heads * args.head_dim, bias=False)
        self.wv = nn.Linear(args.dim, args.n_kv_heads * args.head_dim, bias=False)
        self.wo = nn.Linear(args.n_heads * args.head_dim, args.dim, bias=False)

    def forward(self, x, freqs_cis, mask=None, cache=None):
        B, T, _ = x.shape
        q = self.wq(x).view(B, T, self.n_heads, self.head_dim)      # (B, T, n_heads, hd)
        k = self.wk(x).view(B, T, self.n_kv_heads, self.head_dim)   # (B, T, n_kv_heads, hd)
        v = self.wv(x).view(B, T, self.n_kv_heads, self.head_dim)
        q, k = apply_rope(q, freqs_cis), apply_rope(k, freqs_cis)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)   # (B, heads, T, hd)
        if cache is not None:
            k, v = cache.update(self.layer_id, k, v)                # (B, n_kv_heads, pos + T, hd)
        y = attend(q, k, v, mask)                                   # (B, n_heads, T, hd)
        return self.wo(y.transpose(1, 2).reshape(B, T, -1))        # (B, T, dim)



class FeedForward(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.w1 = nn.Linear(args.dim, args.ffn_dim, bias=False)   # gate
        self.w2 = nn.Linear(args.ffn_dim, args.dim, bias=False)   # down
        self.w3 = nn.Linear(args.dim, args.ffn_dim, bias=False)   # up

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))           # SwiGLU


class TransformerBlock(nn.Module):
    def __init__(self, args: ModelArgs, layer_id: int):
        super().__init__()
        self.attention = Attention(args, layer_id)
        self.feed_forward = FeedForward(args)
        self.attention_norm = RMSNorm(args.dim, args.norm_eps)
        self.ffn_norm = RMSNorm(args.dim, args.norm_eps)
        self.checkpoint = False   # activation checkpointing: recompute this block in backward instead of storing it

    def forward(self, x, freqs_cis, mask=None, cache=None):
        if self.checkpoint and torch.is_grad_enabled():
            return checkpoint(self._forward, x, freqs_cis, mask, cache, use_reentrant=False)
        return self._forward(x, freqs_cis, mask, cache)

    def _forward(self, x, freqs_cis, mask, cache):
        h = x + self.attention(self.attention_norm(x), freqs_cis, mask, cache)   # pre-norm residual blocks
        return h + self.feed_forward(self.ffn_norm(h))


class Transformer(nn.Module):
    """LLaMA-2. `model(tokens)` maps (B, T) token ids to (B, T, vocab_size) logits in the weights' dtype."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.tok_embeddings = nn.Embedding(args.vocab_size, args.dim)
        self.layers = nn.ModuleList(TransformerBlock(args, i) for i in range(args.n_layers))
        self.norm = RMSNorm(args.dim, args.norm_eps)
        self.output = nn.Linear(args.dim, args.vocab_size, bias=False)   # untied from tok_embeddings, as in LLaMA-2
        self.init_rope()
        if not self.output.weight.is_meta:   # on the meta device there is nothing to initialise yet
            self.init_weights(seed=0)

    def init_rope(self) -> None:
        """(Re)compute the RoPE table, fp32, on the weights' device. It is a non-persistent buffer (never in a state
        dict), so call this after `to_empty()`; init_weights() and from_pretrained() do."""
        a = self.args
        device = self.tok_embeddings.weight.device
        # Same fp32 arithmetic as Meta's precompute_freqs_cis: theta_i = rope_theta^(-2i/hd), angle = position * theta_i
        freqs = 1.0 / (a.rope_theta ** (torch.arange(0, a.head_dim, 2, device=device).float() / a.head_dim))
        with torch.inference_mode(False):   # a normal tensor even when first built inside generate()
            angles = torch.outer(torch.arange(a.max_seq_len, device=device).float(), freqs)   # (max_seq_len, hd/2)
            # e^(i angle) stored as real (cos, sin) pairs, so that .to(dtype) and FSDP see a plain fp32 buffer;
            # torch.view_as_complex reads it as complex64 without a copy.
            self.register_buffer("freqs_cis", torch.stack((angles.cos(), angles.sin()), dim=-1), persistent=False)

    @torch.no_grad()
    def init_weights(self, seed: int = 0) -> None:
        """Deterministic init, the same on any device or sharding: every tensor is drawn in full on the CPU from one
        seeded generator, in parameter order. N(0, 0.02) as GPT-2/LLaMA; the residual projections (wo, w2) scaled
        by 1/sqrt(2 n_layers) so the residual stream's variance does not grow with depth; norms = 1."""
        gen = torch.Generator().manual_seed(seed)
        for name, p in self.named_parameters():
            if name.endswith("norm.weight"):
                full = torch.ones(p.shape)
            else:
                std = 0.02 / math.sqrt(2 * self.args.n_layers) if name.endswith(("wo.weight", "w2.weight")) else 0.02
                full = torch.empty(p.shape).normal_(0.0, std, generator=gen)
            if hasattr(p, "device_mesh"):   # an FSDP2 DTensor: keep this rank's shard of the full tensor
                from torch.distributed.tensor import distribute_tensor
                full = distribute_tensor(full.to(p.device), p.device_mesh, p.placements, src_data_rank=None)
            p.copy_(full)
        self.init_rope()

    @property
    def activation_checkpointing(self) -> bool:
        """`model.activation_checkpointing = True` recomputes every block in backward (each block's own switch is
        `block.checkpoint`)."""
        return all(layer.checkpoint for layer in self.layers)

    @activation_checkpointing.setter
    def activation_checkpointing(self, enabled: bool) -> None:
        for layer in self.layers:
            layer.checkpoint = enabled

    def forward(self, tokens, cache=None, last_only: bool = False, logits_mask=None):
        """tokens: (B, T) ids. With a KVCache, the tokens continue each cached row and the cache advances by T.
        last_only: return only the last position's logits, (B, 1, vocab) (what generation needs).
        logits_mask: a (B, T) bool mask; return the logits of those positions only, (N, vocab) in row-major order
        (training needs them only where the next token is trained: the output layer and the softmax then skip
        the prompt and the padding)."""
        B, T = tokens.shape
        if self.freqs_cis.dtype != torch.float32:
            self.init_rope()   # .to(bf16) casts buffers too; RoPE angles need fp32 (bf16 is off by 16 at position 4000)
        h = self.tok_embeddings(tokens)                                        # (B, T, dim)
        if cache is None:
            if T > self.args.max_seq_len:
                raise ValueError(f"sequence of {T} tokens is longer than max_seq_len={self.args.max_seq_len}")
            freqs_cis = torch.view_as_complex(self.freqs_cis[:T, None])         # (T, 1, hd/2): same for every row
            mask = None                                                        # causal
        else:
            # (B, T): each row's own positions. Clamped for generate's rows that are past their budget and decode
            # on (their tokens are dropped) until enough rows finish: they may run past the RoPE table.
            positions = cache.positions(T).clamp(max=self.args.max_seq_len - 1)
            freqs_cis = torch.view_as_complex(self.freqs_cis[positions].unsqueeze(2))   # (B, T, 1, hd/2)
            mask = cache.mask(T, h.dtype)                                      # (B, 1, T, pos + T)
        for layer in self.layers:
            h = layer(h, freqs_cis, mask, cache)
        if cache is not None:
            cache.pos += T
        if logits_mask is not None:
            h = h[logits_mask]                                                 # (N, dim)
        h = self.norm(h[:, -1:] if last_only else h)
        return self.output(h)                                                  # (B, T, vocab_size) or (N, vocab)

    @classmethod
    def from_pretrained(cls, path, device="cpu", dtype: torch.dtype | None = None) -> "Transformer":
        """Load a Meta, Hugging Face or our own checkpoint directory. dtype None keeps the stored dtype (the
        embedding's), so a CPU load in that dtype uses the mmap-ed file itself as the weights' memory."""
        import checkpoints
        args, state_dict = checkpoints.read_checkpoint(path)
        dtype = dtype or state_dict["tok_embeddings.weight"].dtype
        with torch.device("meta"):
            model = cls(args)
        model.load_state_dict({k: v.to(device=device, dtype=dtype) for k, v in state_dict.items()}, assign=True)
        model.init_rope()
        return model

    def save_pretrained(self, path, tokenizer_path=None, max_shard_size: int = 5 * 10**9) -> None:
        """Write the Hugging Face format (loads in transformers, vLLM, lm-evaluation-harness): write_hf_checkpoint."""
        import checkpoints
        checkpoints.write_hf_checkpoint(self.state_dict(), self.args, path, max_shard_size=max_shard_size,
                            tokenizer_path=tokenizer_path)


# ----------------------------------------------------------------------------------------------------------------------
# Generation


class KVCache:
    """Static key/value buffers, one (B, n_kv_heads, max_len, head_dim) pair per layer, allocated on first use in
    the dtype the layer computes in. Prompts are left-padded to a common length so that every row writes its next
    token into the same slot `pos`; the first pad[b] slots of row b are padding: masked out of attention, and row
    b's RoPE positions start after them, so a row decodes as if it were alone."""

    def __init__(self, n_layers: int, pad, max_len: int):
        self.k, self.v = [None] * n_layers, [None] * n_layers
        self.pad, self.max_len, self.pos, self.bias = pad, max_len, 0, None
        self.slots = torch.arange(max_len, device=pad.device)
        self.valid = self.slots[None, :] >= pad[:, None]             # (B, max_len): slot holds a real token
        self.samples, self.start = 1, 0   # rows per prompt, and the first slot k/v hold (share_prefix changes both)

    def positions(self, T: int):
        if T == 1:
            return (self.pos - self.pad)[:, None]                     # (B, 1)
        return (self.slots[self.pos:self.pos + T][None, :] - self.pad[:, None]).clamp(min=0)   # (B, T)

    def mask(self, T: int, dtype):
        """Additive attention bias, 0 where a query may look and -inf elsewhere: (B, 1, T, pos + T). Built once as a
        float bias, which spares SDPA converting a boolean mask in every layer at every step."""
        if self.bias is None or self.bias.dtype != dtype:
            self.bias = torch.zeros(self.valid.shape, dtype=dtype, device=self.valid.device)
            self.bias.masked_fill_(~self.valid, float("-inf"))      # (B, max_len)
        keys = self.bias[:, None, None, :self.pos + T]               # (B, 1, 1, pos + T)
        if T == 1:
            return keys   # one new token: every filled slot is in its past
        q, k = self.slots[self.pos:self.pos + T, None], self.slots[None, :self.pos + T]
        # Causal; and a padding query may see itself, so no row is all -inf (SDPA would return NaN there).
        return keys.masked_fill(k > q, float("-inf")).masked_fill(k == q, 0.0)   # (B, 1, T, pos + T)

    def update(self, layer: int, k, v):
        if self.pos + k.shape[2] > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} positions; cannot add {k.shape[2]} at {self.pos}")
        if self.k[layer] is None:
            shape = (k.shape[0], k.shape[1], self.max_len - self.start, k.shape[3])
            self.k[layer] = torch.zeros(shape, dtype=k.dtype, device=k.device)
            self.v[layer] = torch.zeros(shape, dtype=v.dtype, device=v.device)
        T, at = k.shape[2], self.pos - self.start
        self.k[layer].narrow(2, at, T).copy_(k)
        self.v[layer].narrow(2, at, T).copy_(v)
        return self.k[layer][:, :, :at + T], self.v[layer][:, :, :at + T]

    def append(self, layer: int, k, v):
        """update() for decoding's one new token per row, k and v (B, n_kv_heads, hd): written straight into slot
        pos (no T axis to add and narrow: at decoding sizes each PyTorch call saved counts)."""
        at = self.pos - self.start
        if self.k[layer] is None or at >= self.k[layer].shape[2]:   # first use, or full: update allocates or says so
            return self.update(layer, k.unsqueeze(2), v.unsqueeze(2))
        self.k[layer].select(2, at).copy_(k)
        self.v[layer].select(2, at).copy_(v)
        return self.k[layer][:, :, :at + 1], self.v[layer][:, :, :at + 1]

    def select(self, rows) -> None:
        """Keep (or repeat) rows: drops finished rows, or copies a prompt's cache for each of its samples. After
        share_prefix, rows go by whole prompts (all samples of a prompt, or none)."""
        self.k = [None if k is None else k[rows] for k in self.k]
        self.v = [None if v is None else v[rows] for v in self.v]
        self.pad, self.valid = self.pad[rows], self.valid[rows]
        self.bias = None if self.bias is None else self.bias[rows]
        if self.samples > 1:
            prompts = rows[::self.samples] // self.samples
            self.prefix_k = [k[prompts] for k in self.prefix_k]
            self.prefix_v = [v[prompts] for v in self.prefix_v]
            self.prefix_bias = self.prefix_bias[prompts]

    def share_prefix(self, num_samples: int) -> None:
        """After the prefill, for num_samples rows per prompt (IEFeedback's 5 samples): each prompt's keys and values
        stay here once, prefix_k/v (P, KV, prompt length, hd), read by attend_shared for all of its rows, and each
        row gets buffers for its new tokens only. Repeating the prompt's cache for every sample (select) would make
        each decoding step read it num_samples times; at sampling sizes that reading is most of the step."""
        rows = torch.arange(self.pad.shape[0], device=self.pad.device).repeat_interleave(num_samples)
        self.prefix_k = [k[:, :, :self.pos] for k in self.k]
        self.prefix_v = [v[:, :, :self.pos] for v in self.v]
        self.prefix_bias = self.mask(1, self.k[0].dtype)[:, 0, 0, :self.pos]   # (P, prompt length): 0 or -inf
        self.k, self.v = [None] * len(self.k), [None] * len(self.v)
        self.pad, self.valid, self.bias = self.pad[rows], self.valid[rows], None
        self.samples, self.start = num_samples, self.pos


def decode_weights(model: Transformer) -> tuple:
    """The weights decode_step reads, looked up once per generate call (an nn.Module attribute lookup costs about
    what a small matmul does): (tok_embeddings, layers, norm, output) with, per layer, (attention_norm, wq, wk, wv,
    wo, ffn_norm, w1, w2, w3). Projections are transposed views, (in, out) for `x @ w`: no copies."""
    layers = [(b.attention_norm.weight, b.attention.wq.weight.t(), b.attention.wk.weight.t(),
               b.attention.wv.weight.t(), b.attention.wo.weight.t(), b.ffn_norm.weight, b.feed_forward.w1.weight.t(),
               b.feed_forward.w2.weight.t(), b.feed_forward.w3.weight.t()) for b in model.layers]
    return model.tok_embeddings.weight, layers, model.norm.weight, model.output.weight.t()


def decode_step(args: ModelArgs, weights: tuple, tokens, cache: KVCache, freqs_cis):
    """Next-token logits (B, vocab) for one new token per row, tokens (B,): what
    model(tokens[:, None], cache=cache, last_only=True)[:, -1] computes, bit for bit, with the same functions
    (rms_norm, apply_rope, the cache, attend), written flat over decode_weights(model). Why: at decoding sizes a
    PyTorch call costs more than its arithmetic, and module calls, attribute lookups, (B, T, ...) shape bookkeeping
    and the per-step RoPE lookup are a third of a small model's step. For the same reason RoPE rotates q and k in
    place, cache.append writes k and v without a T axis, and SwiGLU multiplies in place: the same arithmetic in 72
    calls a step instead of 105 (tiny preset; README, Performance). freqs_cis: each row's RoPE rotation for this
    step, (B, 1, hd/2) complex. Only for a plain Transformer (flat_decoding_ok); tests/test_model.py checks that
    both paths give the same logits and tokens. After cache.share_prefix (several samples per prompt), attention is
    attend_shared, equal to attend's up to fp32 rounding (the same sums in another order)."""
    B, H, KV, hd, eps = tokens.shape[0], args.n_heads, args.n_kv_heads, args.head_dim, args.norm_eps
    tok_embeddings, layers, norm, output = weights
    x = F.embedding(tokens, tok_embeddings)                                  # (B, dim)
    shared = cache.samples > 1                                               # share_prefix: rows share prompts
    mask = None if shared else cache.mask(1, x.dtype)                        # (B, 1, 1, pos + 1)
    for i, (attention_norm, wq, wk, wv, wo, ffn_norm, w1, w2, w3) in enumerate(layers):
        h = rms_norm(x, attention_norm, eps)
        q = apply_rope((h @ wq).view(B, H, hd), freqs_cis, in_place=True)    # (B, H, hd)
        k = apply_rope((h @ wk).view(B, KV, hd), freqs_cis, in_place=True)   # (B, KV, hd)
        k, v = cache.append(i, k, (h @ wv).view(B, KV, hd))                  # (B, KV, pos + 1 - start, hd) each
        if shared:
            y = attend_shared(q, cache.prefix_k[i], cache.prefix_v[i], cache.prefix_bias, k, v)   # (B, H * hd)
        else:
            y = attend(q.unsqueeze(2), k, v, mask).reshape(B, -1)           # attend: (B, H, 1, hd)
        x = x + y @ wo
        h = rms_norm(x, ffn_norm, eps)
        x = x + F.silu(h @ w1).mul_(h @ w3) @ w2                            # SwiGLU (in place: no new tensor)
    cache.pos += 1
    return rms_norm(x, norm, eps) @ output                                  # (B, vocab)


def flat_decoding_ok(model) -> bool:
    """decode_step reads the weights directly, so it may stand in for model(...) only when nothing changes what the
    modules compute: our own module classes (no replaced layer, no torch.compile or FSDP2 wrapper), no hooks, no
    sharded (DTensor) weights."""
    plain = (Transformer, TransformerBlock, Attention, FeedForward, RMSNorm, nn.Linear, nn.Embedding, nn.ModuleList)
    return (all(type(m) in plain and not (m._forward_hooks or m._forward_pre_hooks) for m in model.modules())
            and not any(hasattr(p, "device_mesh") for p in model.parameters()))


def sample_next(logits, temperature: float, top_p: float, u=None):
    """Next token per row from (B, V) logits. temperature 0: argmax. Otherwise softmax(logits / temperature) in fp32
    (so 0.01 cannot overflow), cut to the top-p nucleus as transformers does (the smallest set of most likely tokens
    whose probability reaches top_p; at least one), and sampled by inverse CDF with the uniforms u (B,) in [0, 1)."""
    if temperature == 0:
        return logits.max(dim=-1).indices   # argmax (the first maximum of each row); faster than argmax on CPU
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    order = None
    if top_p < 1.0:
        probs, order = probs.sort(dim=-1, descending=True, stable=True)
        before = probs.cumsum(dim=-1) - probs                        # mass of the more likely tokens
        probs = probs.masked_fill(before >= top_p, 0.0)              # the first token has before = 0: always kept
    cdf = probs.double().cumsum(dim=-1)                              # fp64: u * total stays below total
    idx = torch.searchsorted(cdf, (u.to(cdf) * cdf[:, -1]).unsqueeze(-1), right=True).clamp(max=cdf.shape[-1] - 1)
    return (idx if order is None else order.gather(-1, idx)).squeeze(-1)


def _hash_seed(*parts) -> int:
    # sha256, not hash(): stable across processes, and nearby seeds give unrelated streams
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "little") >> 1


def prompt_seed(seed: int, index: int) -> int:
    """The seed generate(..., seed=seed) gives prompt number `index`. Pass it in `seeds=` to draw that prompt's
    samples again in another call, batch or rank."""
    return _hash_seed("prompt", seed, index)


@torch.inference_mode()   # like no_grad, and skips autograd's bookkeeping on every op (about 15% per step)
def generate(model: Transformer, prompts: list[list[int]], max_new_tokens: int, temperature: float = 0.0,
             top_p: float = 1.0, num_samples: int = 1, seed: int = 0, eos_id: int | None = None,
             seeds: list[int] | None = None, batch_size: int = 32, progress: bool = False) -> list[list[int]]:
    """Continue each prompt (a list of token ids) num_samples times; return the new tokens only, prompt-major (all
    samples of prompt 0 first), each ending at the first eos_id (included; None = never stop early) or after
    max_new_tokens (fewer when the prompt plus max_new_tokens would pass max_seq_len: a warning says how many).

    Sampling is reproducible per row: sample s of prompt i draws from a stream seeded by (seeds[i], s), where
    seeds[i] defaults to prompt_seed(seed, i). So the tokens never depend on which prompts share a batch, on
    batch_size, or on how callers split the prompts, given the same seeds. Prompts are decoded longest first in
    batches of about batch_size rows (a prompt's samples stay together); each prompt is prefilled once, and its
    keys and values are kept once for all of its samples (KVCache.share_prefix)."""
    if temperature < 0 or not 0 < top_p <= 1:
        raise ValueError(f"generate: need temperature >= 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
    if seeds is not None and len(seeds) != len(prompts):
        raise ValueError(f"generate: {len(seeds)} seeds for {len(prompts)} prompts")
    seeds = seeds if seeds is not None else [prompt_seed(seed, i) for i in range(len(prompts))]
    max_len, vocab = model.args.max_seq_len, model.args.vocab_size
    for i, p in enumerate(prompts):
        if not 0 < len(p) < max_len:
            raise ValueError(f"generate: prompt {i} has {len(p)} tokens; need 1 to {max_len - 1} (max_seq_len)")
        if min(p) < 0 or max(p) >= vocab:
            raise ValueError(f"generate: prompt {i} has token ids outside [0, {vocab})")
    budgets = [min(max_new_tokens, max_len - len(p)) for p in prompts]
    if any(b < max_new_tokens for b in budgets):
        warnings.warn(f"generate: {sum(b < max_new_tokens for b in budgets)} prompts get fewer than "
                      f"max_new_tokens={max_new_tokens} new tokens: they reach max_seq_len={max_len}")
    results = [[] for _ in range(len(prompts) * num_samples)]
    if max_new_tokens <= 0:
        return results
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    per_batch = max(1, batch_size // num_samples)
    from tqdm import tqdm
    bar = tqdm(total=len(results), unit="seq", desc="generate", disable=not progress)
    for start in range(0, len(order), per_batch):
        idx = order[start:start + per_batch]
        uniforms = None
        if temperature > 0:   # one stream per (prompt, sample), drawn on the CPU so every device agrees
            uniforms = torch.stack([torch.rand(max(budgets[i] for i in idx),
                                               generator=torch.Generator().manual_seed(_hash_seed(seeds[i], s)))
                                    for i in idx for s in range(num_samples)])
        outs = _generate_batch(model, [prompts[i] for i in idx], [budgets[i] for i in idx], num_samples,
                               temperature, top_p, uniforms, eos_id)
        for j, i in enumerate(idx):
            results[i * num_samples:(i + 1) * num_samples] = outs[j * num_samples:(j + 1) * num_samples]
        bar.update(len(idx) * num_samples)
    bar.close()
    return results


def _generate_batch(model, prompts, budgets, num_samples, temperature, top_p, uniforms, eos_id) -> list[list[int]]:
    device = model.tok_embeddings.weight.device
    P, L, n_new = len(prompts), max(map(len, prompts)), max(budgets)
    tokens = torch.zeros((P, L), dtype=torch.long)
    for i, p in enumerate(prompts):
        tokens[i, L - len(p):] = torch.tensor(p)                         # left-padded
    cache = KVCache(model.args.n_layers, torch.tensor([L - len(p) for p in prompts], device=device), L + n_new)
    logits = model(tokens.to(device), cache=cache, last_only=True)[:, -1]   # (P, vocab)
    flat = flat_decoding_ok(model)
    if num_samples > 1:   # every sample of a prompt starts from the same prefill
        rows = torch.arange(P, device=device).repeat_interleave(num_samples)
        if flat:
            cache.share_prefix(num_samples)   # the prompt's keys and values once, read by all of its samples
        else:
            cache.select(rows)
        logits = logits[rows]
    R = P * num_samples
    limit = torch.tensor(budgets, device=device).repeat_interleave(num_samples)   # new tokens allowed per row
    live = list(range(R))                                        # output row of each row still in the batch
    out = torch.zeros((R, n_new), dtype=torch.long, device=device)
    done = torch.zeros(R, dtype=torch.bool, device=device)
    finished = {}
    if uniforms is not None:
        uniforms = uniforms.to(device)
    ends = set(budgets)   # the steps after which some row has had its max_new_tokens
    if flat:   # each row's RoPE rotation for steps 1.. at once, clamped as in forward: one lookup, not one a step
        positions = (cache.positions(1) + torch.arange(n_new - 1, device=device)).clamp(max=model.args.max_seq_len - 1)
        rope = torch.view_as_complex(model.freqs_cis[positions])                   # (rows, n_new - 1, hd/2)
        weights = decode_weights(model)
    for step in range(n_new):
        nxt = sample_next(logits, temperature, top_p, None if uniforms is None else uniforms[:, step])   # (rows,)
        out[:, step] = nxt
        if eos_id is not None or step + 1 in ends:   # some row may finish now (else skip the host sync)
            if eos_id is not None:
                done |= nxt == eos_id
            if step + 1 in ends:
                done |= limit <= step + 1
            if bool(done.all()):
                break
            # rows that can leave the batch: those of prompts whose rows (1, or all samples after share_prefix) finished
            gone = done.view(-1, cache.samples).all(dim=1).repeat_interleave(cache.samples)
            if 2 * int(gone.sum()) >= len(live):   # half the rows can go: stop computing them (the copy soon pays off)
                keep = (~gone).nonzero().squeeze(1)
                for r, toks in zip([r for r, d in zip(live, gone.tolist()) if d], out[gone].cpu()):
                    finished[r] = toks
                live = [live[j] for j in keep.tolist()]
                out, limit, done, nxt = out[keep], limit[keep], done[keep], nxt[keep]
                uniforms = None if uniforms is None else uniforms[keep]
                rope = rope[keep] if flat else None
                cache.select(keep)
        if step + 1 < n_new:   # the next token's logits, (rows, vocab): flat, or through the modules
            logits = (decode_step(model.args, weights, nxt, cache, rope[:, step, None]) if flat
                      else model(nxt[:, None], cache=cache, last_only=True)[:, -1])
    finished.update(zip(live, out.cpu()))
    results = []
    for r in range(R):   # cut each row at its budget and first EOS (rows decode on after finishing until dropped)
        toks = finished[r][:budgets[r // num_samples]].tolist()
        if eos_id is not None and eos_id in toks:
            toks = toks[:toks.index(eos_id) + 1]
        results.append(toks)
    return results


# ----------------------------------------------------------------------------------------------------------------------
# Checkpoints and the tokenizer

class Tokenizer:
    """SentencePiece with BOS/EOS added only when asked (LLaMA-2: bos 1, eos 2, pad -1 = none)."""

    def __init__(self, path):
        from sentencepiece import SentencePieceProcessor
        self.path = str(path)
        if not Path(path).is_file():
            raise FileNotFoundError(f"tokenizer model {path} does not exist")
        self.sp = SentencePieceProcessor(model_file=self.path)
        self.vocab_size: int = self.sp.vocab_size()
        self.bos_id: int = self.sp.bos_id()
        self.eos_id: int = self.sp.eos_id()
        self.pad_id: int = self.sp.pad_id()
        # Tokens a Hugging Face tokenizer added after training (e.g. ADELIE's <pad>), listed beside the model file.
        # They widen the model's vocabulary; this tokenizer never emits them.
        added = Path(path).parent / "added_tokens.json"
        self.added_tokens: dict[str, int] = json.loads(added.read_text()) if added.is_file() else {}

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        return [self.bos_id] * bos + self.sp.encode(text) + [self.eos_id] * eos

    def decode(self, ids) -> str:
        return self.sp.decode(list(ids))

    def id_to_piece(self, i: int) -> str:
        return self.sp.id_to_piece(i)

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """ids = encode(text), and the (begin, end) character span of each piece in text. A character split into
        several byte pieces (byte fallback) gives its span to the last of them; the others get empty spans."""
        if hasattr(self.sp, "encode_as_offset_mapping"):   # sentencepiece >= 0.2.1
            res = self.sp.encode(text, out_type="offset_mapping")
            return res["ids"], [tuple(o) for o in res["offsets"]]
        proto = self.sp.encode(text, out_type="immutable_proto")   # older releases; begin/end are character offsets
        return [p.id for p in proto.pieces], [(p.begin, p.end) for p in proto.pieces]


def check_tokenizer_matches(args: ModelArgs, tokenizer: "Tokenizer") -> None:
    """The model's embedding rows must be the tokenizer's pieces plus the tokens added beside it (added_tokens.json:
    ADELIE's released checkpoints added <pad>, so 32000 pieces + 1 = vocab_size 32001)."""
    n_added = len(tokenizer.added_tokens)
    if tokenizer.vocab_size + n_added != args.vocab_size:
        added = f" + {n_added} added tokens" if n_added else ""
        raise ValueError(f"tokenizer {tokenizer.path} has {tokenizer.vocab_size} pieces{added} but the model's "
                         f"vocab_size is {args.vocab_size}: they do not belong together")
