"""Models really learn: trained through the CLI on the real corpora, with the default settings.

These are the slow tests (minutes each); the budgets are wall-clock, so the thresholds keep a
margin for a machine busier than the one they were measured on (see README for the figures).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import corpus_path

from xuxie import TextGenerator

pytestmark = pytest.mark.slow

MINUTES = "2"


def _train(corpus: Path, out: Path, *extra: str) -> dict:
    cmd = [sys.executable, "-m", "xuxie.cli", "train", str(corpus), "--out", str(out), "--time", MINUTES, "--quiet", *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads((out / "config.json").read_text(encoding="utf-8"))


def test_lstm_learns_tinyshakespeare(tmp_path):
    cfg = _train(corpus_path("tinyshakespeare.txt"), tmp_path / "ts")
    r = cfg["results"]
    print("tinyshakespeare:", r)
    # Validation = the last 10% of the text, whole, fp32; measured 1.58 in 2 minutes (README).
    assert r["final_val_loss"] < 1.85
    assert cfg["corpus"]["chars"] == 1115394
    samples = (tmp_path / "ts" / "samples.md").read_text(encoding="utf-8")
    assert "temperature 0.2" in samples and "temperature 1.2" in samples
    tg = TextGenerator.load(tmp_path / "ts")
    text = tg.generate(prompt="ROMEO:", temperature=0.5, max_new_tokens=300, seed=0)[0]
    words = [w.strip(".,;:!?'").lower() for w in text.split()]
    common = {"the", "and", "i", "to", "of", "my", "you", "a", "that", "is", "in", "not", "me", "it", "with", "be", "your", "his", "this"}
    assert sum(w in common for w in words) >= 5, text


def test_lstm_learns_hongloumeng(tmp_path):
    cfg = _train(corpus_path("hongloumeng.txt"), tmp_path / "hlm")
    r = cfg["results"]
    print("hongloumeng:", r)
    assert cfg["corpus"]["encodings"] == ["utf-8"]
    # Measured 4.26–4.31 nats/char in 2 minutes on 2 cores (README); a unigram model scores ≈ 5.9.
    assert r["final_val_loss"] < 4.6
    tg = TextGenerator.load(tmp_path / "hlm")
    text = tg.generate(prompt="宝玉", temperature=0.5, max_new_tokens=200, seed=0)[0]
    assert "\r" not in text
    han = sum("\u4e00" <= c <= "\u9fff" for c in text)
    assert han > 100, text  # 200 tokens: Chinese characters plus punctuation and line breaks


def test_lines_model_writes_documents_that_end(tmp_path):
    cfg = _train(corpus_path("hacker_news_2000.txt"), tmp_path / "hn", "--mode", "lines", "--time", "1")
    assert cfg["mode"] == "lines"
    tg = TextGenerator.load(tmp_path / "hn")
    texts = tg.generate(20, temperature=0.8, max_new_tokens=400, seed=0)
    ended = [t for t in texts if 0 < len(t) < 400]
    print("hacker news samples:", texts[:5])
    assert len(ended) >= 18, texts
    assert all("\n" not in t for t in texts)
    assert sum(len(t) for t in texts) / len(texts) < 150  # headline-sized


def test_transformer_learns_tinyshakespeare(tmp_path):
    """The default transformer (preset tiny) within nanoGPT's CPU wall-clock (110 s; nanoGPT: 1.886)."""
    out = tmp_path / "tf"
    cmd = [sys.executable, "-m", "xuxie.cli", "train", str(corpus_path("tinyshakespeare.txt")), "--arch", "transformer",
           "--out", str(out), "--time", str(110 / 60), "--quiet"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    cfg = json.loads((out / "config.json").read_text(encoding="utf-8"))
    print("transformer:", cfg["results"])
    assert cfg["model"]["preset"] == "tiny" and cfg["train"]["seq_len"] == cfg["model"]["context"]
    # Measured 1.70 in 110 s on 2 cores (README); the margin is for a busier machine.
    assert cfg["results"]["final_val_loss"] < 1.85
    tg = TextGenerator.load(out)
    long = tg.generate(prompt="ROMEO:", temperature=0.7, max_new_tokens=400, seed=0)[0]  # past the 128-token context
    assert len(long) == len("ROMEO:") + 400


def test_attention_rnn_learns_lines(tmp_path):
    """textgenrnn's architecture on hacker_news_2000 (lines mode), 1 minute through the CLI."""
    cfg = _train(corpus_path("hacker_news_2000.txt"), tmp_path / "arnn", "--mode", "lines", "--arch", "attention-rnn", "--time", "1")
    r = cfg["results"]
    print("attention-rnn:", r)
    # Measured 1.99 nats/char in 1 minute on 2 cores (the default LSTM: 1.92 in the same run; README).
    assert r["final_val_loss"] < 2.3
    tg = TextGenerator.load(tmp_path / "arnn")
    texts = tg.generate(10, temperature=0.8, max_new_tokens=300, seed=0)
    assert sum(0 < len(t) < 300 for t in texts) >= 8, texts  # documents end by themselves
