"""Training: save/load round trip, exact resume, Ctrl-C through the CLI, the model directory."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import InterruptAt

from xuxie import TextGenerator, XuxieError
from xuxie.checkpoint import checkpoints, load_trainer_state

TINY = {"hidden_size": 48, "num_layers": 1}
FAST = dict(seq_len=48, batch_size=16, preview_length=0, progress=False, precision="fp32")


def _log(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path / "log.jsonl").read_text().splitlines() if line.strip()]


def test_save_load_generate_same_text(small_shakespeare_model, tmp_path):
    tg = small_shakespeare_model
    loaded = TextGenerator.load(tg.path)
    kw = dict(prompt="ROMEO:", temperature=0.9, top_p=0.95, max_new_tokens=120, seed=11)
    assert tg.generate(2, **kw) == loaded.generate(2, **kw)
    for name in ("config.json", "tokenizer.json", "model.safetensors", "log.jsonl"):
        assert (Path(tg.path) / name).is_file(), name
    assert checkpoints(tg.path) and (checkpoints(tg.path)[0] / "trainer_state.pt").is_file()
    cfg = json.loads((Path(tg.path) / "config.json").read_text())
    assert cfg["format"] == "xuxie-model" and cfg["arch"] == "lstm" and cfg["results"]["final_val_loss"] > 0
    # A copy elsewhere loads on its own.
    tg.save(tmp_path / "copy")
    assert TextGenerator.load(tmp_path / "copy").generate(**kw) == tg.generate(**kw)


def test_resume_continues_exactly(shakespeare_text, tmp_path):
    text = shakespeare_text[:60_000]
    common = dict(steps=40, eval_interval=10, model_options={"dropout": 0.1, **TINY}, **FAST)
    straight = TextGenerator.train(text, out=tmp_path / "a", **common)

    from xuxie.training import Checkpoint, MetricsLog

    with pytest.raises(KeyboardInterrupt):
        TextGenerator.train(text, out=tmp_path / "b", callbacks=[MetricsLog(), Checkpoint(), InterruptAt(23)], **common)
    state = load_trainer_state(tmp_path / "b")
    assert json.loads(state["state"])["step"] == 23
    resumed = TextGenerator.train(text, out=tmp_path / "b", resume=True, **{k: v for k, v in common.items() if k != "model_options"})

    # Same weights as the uninterrupted run: optimiser, schedule, data order and dropout RNG all resumed.
    a, b = load_trainer_state(tmp_path / "a"), load_trainer_state(tmp_path / "b")
    assert json.loads(a["state"])["step"] == json.loads(b["state"])["step"] == 40
    for pa, pb in zip(straight.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(pa, pb, atol=1e-6, rtol=0)
    la = [(r["step"], r["val_loss"]) for r in _log(tmp_path / "a") if r["event"] == "eval"]
    lb = [(r["step"], r["val_loss"]) for r in _log(tmp_path / "b") if r["event"] == "eval"]
    assert [s for s, _ in lb] == [s for s, _ in la]
    assert [v for _, v in lb] == pytest.approx([v for _, v in la], abs=1e-5)


def test_resume_of_finished_run_needs_a_bigger_budget(shakespeare_text, tmp_path):
    TextGenerator.train(shakespeare_text[:30_000], out=tmp_path / "m", steps=5, eval_interval=5, model_options=TINY, **FAST)
    with pytest.raises(XuxieError, match="already reached its budget"):
        TextGenerator.train(shakespeare_text[:30_000], out=tmp_path / "m", resume=True, steps=5, **FAST)
    tg = TextGenerator.train(shakespeare_text[:30_000], out=tmp_path / "m", resume=True, steps=9, **FAST)
    assert tg.config["results"]["steps"] == 9


def test_ctrl_c_in_cli_saves_and_resume_continues(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(("the quick brown fox jumps over the lazy dog. " * 400 + "\n") * 5)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "xuxie.cli", "train", str(corpus), "--out", str(out), "--steps", "100000",
           "--hidden-size", "32", "--layers", "1", "--seq-len", "32", "--batch-size", "8", "--eval-interval", "20",
           "--preview-length", "0", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        if (out / "log.jsonl").exists() and any(r["event"] == "eval" and r["step"] >= 40 for r in _log(out)):
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # never leave a training process behind
            proc.kill()
    assert proc.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    stopped = json.loads(load_trainer_state(out)["state"])["step"]
    assert stopped >= 40

    r = subprocess.run([sys.executable, "-m", "xuxie.cli", "train", "--out", str(out), "--resume", "--steps", str(stopped + 30),
                        "--quiet"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    steps = [rec["step"] for rec in _log(out) if rec["event"] in ("train", "eval")]
    assert steps == sorted(steps) and steps[-1] == stopped + 30
    assert json.loads((out / "config.json").read_text())["results"]["steps"] == stopped + 30


def test_out_dir_with_model_is_not_overwritten(small_shakespeare_model, shakespeare_text):
    before = (Path(small_shakespeare_model.path) / "model.safetensors").read_bytes()
    with pytest.raises(XuxieError, match="already holds a model"):
        TextGenerator.train(shakespeare_text[:20_000], out=small_shakespeare_model.path, steps=2, **FAST)
    assert (Path(small_shakespeare_model.path) / "model.safetensors").read_bytes() == before


def test_early_stopping(shakespeare_text, tmp_path):
    # A learning rate this small cannot improve in 1e-4 steps between evaluations of a big val set.
    tg = TextGenerator.train(shakespeare_text[:50_000], out=tmp_path / "es", steps=400, eval_interval=5, patience=2,
                             lr=1e-9, warmup_steps=1, model_options=TINY, **FAST)
    assert tg.config["results"]["steps"] < 400
    assert any(r.get("stopped", "").startswith("early stop") for r in _log(tmp_path / "es"))


def test_plateau_schedule_lowers_lr(shakespeare_text, tmp_path):
    TextGenerator.train(shakespeare_text[:50_000], out=tmp_path / "pl", steps=30, eval_interval=5, schedule="plateau",
                        lr=1e-9, warmup_steps=1, log_every=1, model_options=TINY, **FAST)
    lrs = [r["lr"] for r in _log(tmp_path / "pl") if r["event"] == "train"]
    assert lrs[-1] < lrs[5] / 4


def test_word_tokenizer_lines_mode_trains(tmp_path):
    lines = "\n".join(f"今天{w}很好，我们去{p}散步。" for w in "天气 心情 风景 饭菜".split() for p in "公园 河边 山上".split())
    tg = TextGenerator.train(lines * 20, tokenizer="word", mode="lines", out=tmp_path / "w", steps=60, lr=1e-2,
                             eval_interval=30, val_fraction=0.1, model_options={"hidden_size": 64, "num_layers": 1},
                             seq_len=16, batch_size=16, preview_length=0, progress=False)
    assert tg.tokenizer.kind == "word" and "公园" in tg.tokenizer.index
    texts = tg.generate(5, temperature=0.5, seed=0, max_new_tokens=60, include_prompt=False)
    assert all(len(t) < 60 for t in texts)  # lines models stop at <eos>


def test_gradient_accumulation_counts_tokens(shakespeare_text, tmp_path):
    tg = TextGenerator.train(shakespeare_text[:30_000], out=tmp_path / "ga", steps=3, grad_accum=2, eval_interval=3,
                             model_options=TINY, **FAST)
    r = tg.config["results"]
    assert r["steps"] == 3 and r["tokens"] == 3 * 2 * FAST["seq_len"] * FAST["batch_size"]
    with pytest.raises(XuxieError, match="grad-accum must be at least 1"):
        TextGenerator.train(shakespeare_text[:30_000], out=tmp_path / "bad", steps=1, grad_accum=0, **FAST)


def test_transformer_trains_saves_and_resumes(shakespeare_text, tmp_path):
    common = dict(arch="transformer", steps=20, eval_interval=10, seq_len=None, batch_size=4, preview_length=0,
                  progress=False, precision="fp32")
    opts = {"n_layer": 2, "n_head": 2, "n_embd": 32, "context": 32}
    tg = TextGenerator.train(shakespeare_text[:50_000], out=tmp_path / "t", model_options=opts, **common)
    assert tg.config["train"]["seq_len"] == 32 and tg.config["model"]["positions"] == "rotary"
    evals = [e["val_loss"] for e in _log(tmp_path / "t") if e["event"] == "eval"]
    assert len(evals) >= 2 and evals[-1] < evals[0] < 4.2
    again = TextGenerator.load(tmp_path / "t")
    kw = dict(prompt="ROMEO:", temperature=0.8, max_new_tokens=80, seed=3)  # 80 > context: the window slides
    assert again.generate(**kw) == tg.generate(**kw)
    resumed = TextGenerator.train(shakespeare_text[:50_000], out=tmp_path / "t", resume=True, **{**common, "steps": 30})
    assert resumed.config["results"]["steps"] == 30


def test_resume_on_a_changed_corpus_says_so(shakespeare_text, tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(shakespeare_text[:30_000], encoding="utf-8")
    out = tmp_path / "run"
    common = ["--hidden-size", "16", "--seq-len", "32", "--batch-size", "8", "--preview-length", "0", "--quiet"]
    r = subprocess.run([sys.executable, "-m", "xuxie.cli", "train", str(corpus), "--out", str(out), "--steps", "4", *common],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    corpus.write_text(shakespeare_text[:30_000] + "\nA LINE ADDED LATER\n", encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "xuxie.cli", "train", "--out", str(out), "--resume", "--steps", "8", *common],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "corpus is not the one" in warnings[0] and "c.txt (changed)" in warnings[0], r.stderr
