from __future__ import annotations

import os
from pathlib import Path

import pytest

import xuxie  # noqa: F401  (first: it sets how torch's OpenMP threads wait before torch loads)

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"

# Tests must never reach the network for named corpora.
os.environ.setdefault("XUXIE_DATA_DIR", str(CORPORA))


def corpus_path(name: str) -> Path:
    path = CORPORA / name
    if not path.is_file():  # the suite is about real text: a missing corpus is a failure, not a skip
        pytest.fail(f"real corpus {path} is not present; the tests expect ../shared/corpora beside the repository")
    return path


@pytest.fixture(scope="session")
def shakespeare_text() -> str:
    return corpus_path("tinyshakespeare.txt").read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def small_shakespeare_model(tmp_path_factory, shakespeare_text):
    """A small char LSTM trained for a few seconds: enough structure for decoding tests."""
    from xuxie import TextGenerator

    out = tmp_path_factory.mktemp("small_lstm")
    return TextGenerator.train(
        shakespeare_text[:200_000], arch="lstm", out=out, steps=150, seq_len=64, batch_size=32,
        lr=5e-3, eval_interval=150, preview_length=0, progress=False,
        model_options={"hidden_size": 128, "num_layers": 1},
    )
