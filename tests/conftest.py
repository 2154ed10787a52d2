"""Fixtures and assertions the test modules share: real corpora, small trained models, the CLI
run in-process, and the checks every bad-input test makes."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

import xuxie  # first: it sets how torch's OpenMP threads wait before torch loads

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"

# Tests must never reach the network for named corpora.
os.environ.setdefault("XUXIE_DATA_DIR", str(CORPORA))
# Nor leave corpus caches in the user's home: one fresh cache per test session.
os.environ["XUXIE_CACHE_DIR"] = tempfile.mkdtemp(prefix="xuxie-test-cache-")


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


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, shakespeare_text) -> Path:
    """A real model directory (an LSTM of hidden size 16 trained 4 steps) for tests of bad input."""
    from xuxie import TextGenerator

    out = tmp_path_factory.mktemp("tiny") / "model"
    TextGenerator.train(shakespeare_text[:20_000], out=out, steps=4, seq_len=32, batch_size=8, eval_interval=4,
                        preview_length=0, progress=False, model_options={"hidden_size": 16})
    return out


# --------------------------------------------------------------------------- the CLI, in this process
_runner = CliRunner()


def run(*args):
    """``xuxie ARGS`` in this process; an exception the CLI does not turn into a message propagates."""
    from xuxie.cli import app

    return _runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def assert_clear_error(result, *phrases: str) -> None:
    """Exit code 2, exactly one line on stderr starting with 'error:', containing ``phrases``, and no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for phrase in phrases:
        assert phrase in errors[0], (phrase, errors[0])


def snapshot(folder: Path, *, recursive: bool = True) -> dict[str, str]:
    """The SHA-256 of every file in ``folder`` (and below it when ``recursive``) by relative path:
    equal before and after, nothing in it changed."""
    files = folder.rglob("*") if recursive else folder.iterdir()
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(files) if p.is_file()}


class InterruptAt(xuxie.Callback):
    """A callback that presses Ctrl-C once training reaches ``step``."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, trainer, loss):
        if trainer.state.step == self.step:
            raise KeyboardInterrupt
