"""Fidelity to the paper and to the authors' release (docs/fidelity.md), one test group per item of that document:
each default is checked against the paper's numbers or against an independent implementation written here.

- transformers-5 configs: `rope_theta` inside `rope_parameters` is read; RoPE scaling is refused.
"""
import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model import ModelArgs, Transformer  # noqa: E402


# --- Hugging Face configs written by transformers 5 ------------------------------------------------------------------

def _to_transformers5_layout(config_path: Path, theta: float) -> None:
    """Rewrite a transformers-4 config.json the way transformers 5 writes it: no top-level rope_theta/rope_scaling,
    both inside rope_parameters."""
    cfg = json.loads(config_path.read_text())
    cfg.pop("rope_theta", None)
    cfg.pop("rope_scaling", None)
    cfg["rope_parameters"] = {"rope_type": "default", "rope_theta": theta}
    config_path.write_text(json.dumps(cfg))


def test_transformers5_config_with_non_default_theta_gives_transformers_logits(tmp_path):
    transformers = pytest.importorskip("transformers")
    theta = 500000.0   # not LLaMA-2's 10000: a loader that ignores rope_parameters would be off by ~1e-2
    torch.manual_seed(0)
    config = transformers.LlamaConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, vocab_size=512,
                                      max_position_embeddings=256, rope_theta=theta, tie_word_embeddings=False)
    hf = transformers.LlamaForCausalLM(config).eval()
    hf.save_pretrained(tmp_path)
    _to_transformers5_layout(tmp_path / "config.json", theta)
    ours = Transformer.from_pretrained(tmp_path)
    assert ours.args.rope_theta == theta
    x = torch.randint(0, 512, (2, 200), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (ours(x) - hf(x).logits).abs().max().item() <= 1e-4
    # the same checkpoint read with the default theta would differ: the test can fail
    wrong = Transformer(ModelArgs(**{**ours.args.__dict__, "rope_theta": 10000.0}))
    wrong.load_state_dict(ours.state_dict())
    wrong.init_rope()
    with torch.no_grad():
        assert (wrong(x) - hf(x).logits).abs().max().item() > 1e-3


@pytest.mark.parametrize("rope", [{"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0},
                                  {"rope_type": "llama3", "factor": 8.0, "rope_theta": 500000.0},
                                  {"rope_type": "default", "rope_theta": 10000.0, "factor": 2.0}])
def test_rope_scaling_in_either_layout_is_refused(rope):
    base = ModelArgs(dim=64, n_layers=1, n_heads=4, vocab_size=512, multiple_of=32).to_hf_config()
    v5 = {k: v for k, v in base.items() if k not in ("rope_theta", "rope_scaling")}
    with pytest.raises(ValueError, match="rope_parameters.*not supported"):
        ModelArgs.from_hf_config({**v5, "rope_parameters": rope})
    with pytest.raises(ValueError, match="rope_scaling.*not supported"):
        ModelArgs.from_hf_config({**base, "rope_scaling": rope})


def test_both_layouts_read_the_same_theta():
    base = ModelArgs(dim=64, n_layers=1, n_heads=4, vocab_size=512, multiple_of=32, rope_theta=1e6).to_hf_config()
    v5 = {k: v for k, v in base.items() if k not in ("rope_theta", "rope_scaling")}
    assert ModelArgs.from_hf_config({**v5, "rope_parameters": {"rope_type": "default", "rope_theta": 1e6}}).rope_theta \
        == ModelArgs.from_hf_config(base).rope_theta == 1e6
    with pytest.raises(ValueError, match="disagree"):
        ModelArgs.from_hf_config({**base, "rope_parameters": {"rope_type": "default", "rope_theta": 5e5}})
