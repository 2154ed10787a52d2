"""Every bad input gets one clear line on stderr, exit code 2, no traceback, and nothing overwritten."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_clear_error, run, snapshot

from xuxie import TextGenerator, XuxieError


@pytest.fixture
def copy_of(tiny_model_dir, tmp_path):
    def make() -> Path:
        dst = tmp_path / "copy"
        dst.mkdir()
        for p in tiny_model_dir.iterdir():
            if p.is_file():  # the model, not its checkpoints
                (dst / p.name).write_bytes(p.read_bytes())
        return dst
    return make


# --------------------------------------------------------------------------- train: bad corpora
@pytest.mark.parametrize("content, phrase", [
    (b"", "empty or only whitespace"),
    (b"  \r\n\t \n", "empty or only whitespace"),
    (np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes(), "does not look like text"),
    (b"too short for one window", "fewer than one training window"),
])
def test_train_bad_corpus(tmp_path, content, phrase):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(content)
    out = tmp_path / "out"
    assert_clear_error(run("train", corpus, "--out", out, "--steps", "5", "-q"), phrase)
    assert not out.exists()  # nothing written


def test_train_missing_path(tmp_path):
    r = run("train", tmp_path / "nowhere.txt", "--out", tmp_path / "out", "--steps", "5")
    assert_clear_error(r, "does not exist", "named corpus")
    assert not (tmp_path / "out").exists()


def test_train_short_corpus_keeps_existing_model(tiny_model_dir, copy_of, tmp_path):
    """Even with --overwrite, a corpus that fails its checks leaves the old model untouched."""
    target = copy_of()
    before = snapshot(target, recursive=False)
    corpus = tmp_path / "short.txt"
    corpus.write_text("tiny text", encoding="utf-8")
    assert_clear_error(run("train", corpus, "--out", target, "--overwrite", "--steps", "3", "-q"),
                       "fewer than one training window", "--seq-len")
    assert snapshot(target, recursive=False) == before


def test_train_refuses_to_overwrite(tiny_model_dir, copy_of, shakespeare_text, tmp_path):
    target = copy_of()
    before = snapshot(target, recursive=False)
    corpus = tmp_path / "c.txt"
    corpus.write_text(shakespeare_text[:5000], encoding="utf-8")
    assert_clear_error(run("train", corpus, "--out", target, "--steps", "3", "-q"), "already holds a model", "--resume", "--overwrite")
    assert snapshot(target, recursive=False) == before


@pytest.mark.parametrize("args, phrase", [
    (["--arch", "lstn"], "unknown architecture 'lstn'"),
    (["--tokenizer", "bytes"], "unknown tokenizer 'bytes'"),
    (["--mode", "paragraphs"], "unknown mode 'paragraphs'"),
    (["--lr", "0"], "learning rate must be positive"),
    (["--dropout", "1.5"], "dropout must be in [0, 1)"),
    (["--precision", "fp8"], "unknown precision 'fp8'"),
    (["--time", "-1"], "must be positive"),
    (["--encoding", "klingon"], "unknown encoding 'klingon'"),
    (["--arch", "transformer", "--preset", "huge"], "unknown transformer preset 'huge'"),
    (["--arch", "transformer", "--heads", "5", "--hidden-size", "128"], "5 heads do not divide the width 128"),
    (["--arch", "transformer", "--context", "0"], "context must be at least 1"),
    (["--arch", "transformer", "--positions", "learned", "--seq-len", "300"], "longer than the model's context 128"),
    (["--heads", "4"], "transformer options; add --arch transformer"),
    (["--grad-accum", "0"], "grad-accum must be at least 1"),
    (["--weight-decay", "-0.1"], "--weight-decay must be 0 (off) or positive"),
    (["--min-lr-ratio", "1.5"], "--min-lr-ratio must be in [0, 1]"),
    (["--weight-decay", "nan"], "--weight-decay must be a finite number"),
    (["--time", "nan"], "--time must be a finite number, got nan"),
    (["--time", "inf"], "--time must be a finite number, got inf"),
    (["--epochs", "inf"], "--epochs must be a finite number"),
    (["--lr", "nan"], "--lr must be a finite number"),
    (["--dropout", "nan"], "--dropout must be a finite number"),
    (["--val-fraction", "inf"], "--val-fraction must be a finite number"),
    (["--seed", "-1"], "--seed must be a whole number from 0 to"),
    (["--seed", "99999999999999999999"], "--seed must be a whole number from 0 to"),
])
def test_train_bad_options(tmp_path, shakespeare_text, args, phrase):
    corpus = tmp_path / "c.txt"
    corpus.write_text(shakespeare_text[:5000], encoding="utf-8")
    assert_clear_error(run("train", corpus, "--out", tmp_path / "out", "-q", *args), phrase)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- model directories
def test_not_a_model_directory(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("hello", encoding="utf-8")
    for command in (["generate"], ["info"]):
        assert_clear_error(run(*command, plain), "not a xuxie model directory")
        assert_clear_error(run(*command, tmp_path / "missing"), "does not exist")
        assert_clear_error(run(*command, plain / "notes.txt"), "is a file, not a model directory")


@pytest.mark.parametrize("damage, phrase", [
    (lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:200]), "damaged"),
    (lambda d: (d / "model.safetensors").unlink(), "has no model.safetensors"),
    (lambda d: (d / "config.json").write_text("{\"format\": \"xuxie-model\", ", encoding="utf-8"), "damaged"),
    (lambda d: (d / "tokenizer.json").write_text("[]", encoding="utf-8"), "damaged"),
    (lambda d: (d / "tokenizer.json").unlink(), "has no tokenizer.json"),
])
def test_damaged_model_directory(copy_of, damage, phrase):
    target = copy_of()
    damage(target)
    before = snapshot(target, recursive=False)
    for command in (["generate", target, "--max-new-tokens", "5"], ["info", target]):
        assert_clear_error(run(*command), phrase)
    assert snapshot(target, recursive=False) == before


def test_weights_for_another_model(copy_of):
    target = copy_of()
    config = json.loads((target / "config.json").read_text(encoding="utf-8"))
    config["model"]["hidden_size"] = 32
    (target / "config.json").write_text(json.dumps(config), encoding="utf-8")
    assert_clear_error(run("generate", target), "does not fit model.safetensors", "damaged")


@pytest.mark.parametrize("size", [10**7, 10**12])
def test_config_claiming_a_huge_model_is_one_line_before_allocating(copy_of, size):
    """A hidden size of 10^7 would ask for terabytes: config.json is checked against the weights'
    shapes on the meta device first, so this is one line, not an out-of-memory crash."""
    import resource
    import time

    target = copy_of()
    config = json.loads((target / "config.json").read_text(encoding="utf-8"))
    config["model"]["hidden_size"] = size
    (target / "config.json").write_text(json.dumps(config), encoding="utf-8")
    peak_before, start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
    assert_clear_error(run("generate", target), "config.json", "damaged")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 200_000  # KiB: nothing big was allocated
    assert time.perf_counter() - start < 30  # a guard against a hang, not a speed test


# --------------------------------------------------------------------------- generate: bad values
@pytest.mark.parametrize("args, phrase", [
    (["--temperature", "-0.5"], "temperature must be 0 (greedy) or positive"),
    (["--top-p", "0"], "top_p must be in (0, 1]"),
    (["--top-p", "1.5"], "top_p must be in (0, 1]"),
    (["--top-k", "-1"], "top_k must be 0 (off)"),
    (["--max-new-tokens", "-3"], "max_new_tokens must be 0 or more"),
    (["--repetition-penalty", "0"], "repetition_penalty must be positive"),
    (["--num-beams", "0"], "num_beams must be at least 1"),
    (["-n", "0"], "-n must be at least 1"),
    (["--top-p", "nan"], "--top-p must be a finite number"),
    (["--temperature", "inf"], "temperature must be 0 (greedy) or positive, and finite"),
    (["--temperature", "0.5,nan"], "temperature must be 0 (greedy) or positive, and finite"),
    (["--repetition-penalty", "nan"], "--repetition-penalty must be a finite number"),
    (["--length-penalty", "-inf"], "--length-penalty must be a finite number"),
    (["--seed", "18446744073709551616"], "--seed must be a whole number from 0 to"),
])
def test_generate_bad_values(tiny_model_dir, args, phrase):
    assert_clear_error(run("generate", tiny_model_dir, *args), phrase)


def test_evaluate_bad_inputs(tiny_model_dir, tmp_path):
    assert_clear_error(run("evaluate", tiny_model_dir, tmp_path / "none.txt"), "does not exist")
    blank = tmp_path / "blank.txt"
    blank.write_text("   ", encoding="utf-8")
    assert_clear_error(run("evaluate", tiny_model_dir, blank), "empty")


def test_real_process_exit_code_and_stderr(tiny_model_dir):
    """The installed entry point: a separate process, exit 2, one line, no traceback."""
    proc = subprocess.run([sys.executable, "-m", "xuxie.cli", "generate", str(tiny_model_dir), "--top-p", "2"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: top_p must be in (0, 1]") and len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_help_has_examples():
    for command in ("train", "generate", "evaluate", "info"):
        r = run(command, "--help")
        assert r.exit_code == 0 and "xuxie " + command in r.stdout


def test_api_missing_file_is_not_taken_as_text(tmp_path):
    from xuxie import XuxieError

    with pytest.raises(XuxieError, match="does not exist"):
        TextGenerator.train("data/my_novel.txt", out=tmp_path / "out", steps=1)
    assert not (tmp_path / "out").exists()


def test_python_api_rejects_non_finite_numbers(tiny_model_dir, shakespeare_text):
    tg = TextGenerator.load(tiny_model_dir)
    for options in ({"top_p": float("nan")}, {"length_penalty": float("inf")}, {"seed": 2**64}, {"temperature": float("inf")}):
        with pytest.raises(XuxieError):
            tg.generate(**options)
    with pytest.raises(XuxieError, match="finite"):
        TextGenerator.train(shakespeare_text[:5000], time=float("nan"))


@pytest.mark.parametrize("device, phrase", [
    ("cuda:7", "device 'cuda:7' is not available"),
    ("banana", "unknown device 'banana'"),
])
def test_unavailable_device_is_one_line(tiny_model_dir, device, phrase):
    import torch

    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    assert_clear_error(run("generate", tiny_model_dir, "--device", device), phrase)
