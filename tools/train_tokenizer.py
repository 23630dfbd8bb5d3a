"""Train the embedded default tokenizer, assets/tokenizer.model. Tooling, not the method: run from the repository root.

    python tools/train_tokenizer.py --out assets/tokenizer.model   # re-make it (tests/test_data.py checks it is
                                                                   # reproduced byte for byte)
"""
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]  # the repository root: the top-level modules this tool uses
sys.path.insert(0, str(REPO))

import data  # noqa: E402
from config import flag, parse_config  # noqa: E402


@dataclass
class TokenizerConfig:
    out: str = flag(str(data.DEFAULT_TOKENIZER), "where to write the SentencePiece model")
    vocab_size: int = flag(2048, "vocabulary size (model.py's 'demo' preset uses 2048)")
    synthetic_n_train: int = flag(1000, "synthetic train records per data set in the training text")
    n_general: int = flag(20000, "synthetic general chat conversations in the training text")


def tokenizer_training_text(cfg: TokenizerConfig) -> list[str]:
    """What the embedded tokenizer is trained on: synthetic.py's corpus built into IEInstruct (every prompt pool
    of prompts/ in use) and synthetic general chat, rendered in the chat format, one line per sentence piece
    input, plus every prompt string verbatim."""
    import synthetic
    records = synthetic.generate_corpus(0, cfg.synthetic_n_train, 0)["train"]
    build_cfg = data.IEInstructConfig(max_tokens=0)
    prompts = data.load_prompts()
    ie, _ = data.ie_instruct(records, build_cfg, prompts, progress=False)
    conversations = ie + synthetic.generate_general(cfg.n_general, 0)
    lines = []
    for c in conversations:
        lines += data.render_chat(c["messages"]).split("\n")
    for name in ("task_descriptions", "output_formats", "explanations", "schema", "label_descriptions"):
        def walk(x):
            if isinstance(x, str):
                lines.extend(x.split("\n"))
            elif isinstance(x, dict):
                for k in sorted(x):
                    walk(x[k])
            elif isinstance(x, list):
                for v in x:
                    walk(v)
        walk(data._load_json(data.PROMPTS_DIR / f"{name}.json"))
    return [l for l in lines if l.strip()]


def train_tokenizer(cfg: TokenizerConfig) -> None:
    """`python tools/train_tokenizer.py`: the embedded default tokenizer, a LLaMA-like SentencePiece BPE model
    (byte fallback, identity normalisation, no extra-whitespace removal, digits split; unk 0, bos 1, eos 2, no
    pad) trained on tokenizer_training_text. Single-threaded and unshuffled, so the file is reproducible."""
    import io
    import sentencepiece as spm
    lines = tokenizer_training_text(cfg)
    model = io.BytesIO()  # no file paths: the trainer stores its input/prefix paths in the model, breaking equality
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=cfg.vocab_size, model_type="bpe",
        byte_fallback=True, normalization_rule_name="identity", remove_extra_whitespaces=False, split_digits=True,
        allow_whitespace_only_pieces=True, character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        num_threads=1, input_sentence_size=0, shuffle_input_sentence=False, max_sentence_length=16384,
        minloglevel=2)
    Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
    Path(cfg.out).write_bytes(model.getvalue())
    print(f"wrote {cfg.out} ({Path(cfg.out).stat().st_size} bytes, vocab {cfg.vocab_size}) from {len(lines)} lines")


def main(argv: list[str] | None = None) -> None:
    cfg, _ = parse_config(TokenizerConfig, sys.argv[1:] if argv is None else list(argv),
                          prog="python tools/train_tokenizer.py", description=train_tokenizer.__doc__.split("\n")[0])
    train_tokenizer(cfg)


if __name__ == "__main__":
    main()
