"""A training process killed at any instant loses nothing but the steps since its last checkpoint:
`generate` always works, `--resume` always continues, and the resumed run ends with exactly the
weights of a run that was never interrupted. SIGTERM and SIGHUP save like Ctrl-C."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from xuxie.checkpoint import checkpoints

STEPS = 1500
TRAIN = ["--steps", str(STEPS), "--hidden-size", "32", "--seq-len", "32", "--batch-size", "8", "--eval-interval", "250",
         "--preview-length", "8", "--save-every", "0.004", "--dropout", "0.1", "--precision", "fp32", "--quiet"]


def xuxie(*args) -> list[str]:
    return [sys.executable, "-m", "xuxie.cli", *map(str, args)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, shakespeare_text) -> Path:
    path = tmp_path_factory.mktemp("crash") / "corpus.txt"
    path.write_text(shakespeare_text[:100_000], encoding="utf-8")
    return path


def _train_command(corpus: Path, out: Path) -> list[str]:
    resume = ["--resume"] if (out / "config.json").is_file() else []
    return xuxie("train", corpus, "--out", out, *TRAIN, *resume)


def _kill_at_a_random_instant(proc: subprocess.Popen, out: Path, rng: random.Random, kind: int) -> bool:
    """Three kinds of instant, in turn: anywhere from start-up on; while a checkpoint is being
    written (its temporary folder exists); shortly after a checkpoint of this process appeared.
    Returns whether the kill left a checkpoint half-written."""
    root = out / "checkpoints"
    before = {c.name for c in checkpoints(out)}
    deadline = time.monotonic() + 60
    if kind == 0:
        time.sleep(rng.uniform(0.0, 3.0))
    else:
        while proc.poll() is None and time.monotonic() < deadline:
            if kind == 1 and root.is_dir() and any(p.name.endswith(".tmp") for p in root.iterdir()):
                break
            if kind == 2 and {c.name for c in checkpoints(out)} - before:
                time.sleep(rng.uniform(0.0, 0.3))
                break
            time.sleep(0.0005 if kind == 1 else 0.01)
    proc.kill()
    proc.wait()
    return root.is_dir() and any(p.name.endswith(".tmp") for p in root.iterdir())


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


@pytest.mark.slow
def test_kill_9_at_random_instants_loses_nothing(corpus, tmp_path):
    straight = tmp_path / "straight"
    r = subprocess.run(xuxie("train", corpus, "--out", straight, *TRAIN), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr

    out, rng, kills, generated, during_save = tmp_path / "killed", random.Random(12), 0, 0, 0
    for _ in range(200):
        proc = subprocess.Popen(_train_command(corpus, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if kills < 24:
            during_save += _kill_at_a_random_instant(proc, out, rng, kills % 3)
        else:
            proc.wait(timeout=600)
        err = proc.stderr.read()
        proc.stderr.close()
        if proc.returncode == 0:
            break
        if proc.returncode != -signal.SIGKILL:  # it ended by itself between our decision and the kill
            assert "already reached its budget" in err, err
            break
        kills += 1
        assert "Traceback" not in err, err
        if checkpoints(out):  # generate works on whatever a kill left
            g = subprocess.run(xuxie("generate", out, "--max-new-tokens", "5", "--seed", "1"), capture_output=True, text=True, timeout=120)
            assert g.returncode == 0 and "Traceback" not in g.stderr, g.stderr
            generated += 1
        assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]  # a half-made model folder never shows
    assert kills >= 20 and generated >= 10 and during_save >= 3, (kills, generated, during_save)

    # Exactly the uninterrupted run's weights: last and best, and the same results.
    newest_a, newest_b = checkpoints(straight)[0], checkpoints(out)[0]
    assert newest_a.name == newest_b.name == f"step-{STEPS:09d}"
    for name in ("weights.safetensors",):
        a, b = _weights(newest_a / name), _weights(newest_b / name)
        assert all(torch.equal(a[k], b[k]) for k in a)
    a, b = _weights(straight / "model.safetensors"), _weights(out / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    ra = json.loads((straight / "config.json").read_text())["results"]
    rb = json.loads((out / "config.json").read_text())["results"]
    assert (ra["steps"], ra["best_step"], ra["final_val_loss"]) == (rb["steps"], rb["best_step"], rb["final_val_loss"])
    assert not list((out / "checkpoints").glob(".*"))  # stale temporary folders were cleaned
    # log.jsonl reads as one history: what a killed process logged past its checkpoint was dropped.
    evals = [[(r["step"], r["val_loss"]) for r in _log(folder) if r["event"] == "eval"] for folder in (straight, out)]
    assert evals[0] == evals[1] and len(evals[0]) == STEPS // 250
    steps = [r["step"] for r in _log(out) if r["event"] == "train"]
    assert steps == sorted(set(steps))


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_save_like_ctrl_c(corpus, tmp_path, signum):
    out = tmp_path / "run"
    args = ["--steps", "100000", "--hidden-size", "32", "--seq-len", "32", "--batch-size", "8", "--preview-length", "0", "--quiet",
            "--eval-interval", "100000", "--save-every", "100"]  # no checkpoint but the one the signal asks for
    proc = subprocess.Popen(xuxie("train", corpus, "--out", out, *args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not _logged_step(out, 20):
            time.sleep(0.1)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signum, err
    assert f"interrupted ({signal.Signals(signum).name})" in err and "--resume" in err and "Traceback" not in err
    saved = json.loads(torch.load(checkpoints(out)[0] / "trainer_state.pt", weights_only=True)["state"])["step"]
    assert saved >= 20
    r = subprocess.run(xuxie("train", "--out", out, "--resume", "--steps", saved + 5, "--quiet"),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "config.json").read_text())["results"]["steps"] == saved + 5


def _logged_step(out: Path, step: int) -> bool:
    """Whether log.jsonl records ``step`` (its last line may be half-written while we read)."""
    log = out / "log.jsonl"
    lines = log.read_text().splitlines() if log.is_file() else []
    return any(line.endswith("}") and json.loads(line).get("step", 0) >= step for line in lines)


def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(corpus, tmp_path):
    from xuxie import TextGenerator

    out = tmp_path / "run"
    common = dict(steps=12, eval_interval=4, seq_len=32, batch_size=8, preview_length=0, progress=False, precision="fp32")
    TextGenerator.train(corpus, out=out, model_options={"hidden_size": 16}, **common)
    newest, before = checkpoints(out)[:2]
    (newest / "weights.safetensors").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match=f"checkpoint {newest} is damaged"):
        tg = TextGenerator.train(corpus, out=out, resume=True, **{**common, "steps": 16})
    assert before.name == "step-000000008" and tg.config["results"]["steps"] == 16
    for c in checkpoints(out):  # every checkpoint damaged: one line, no guessing
        (c / "trainer_state.pt").write_bytes(b"garbage")
    with pytest.raises(Exception, match="every checkpoint in .* is damaged"):
        TextGenerator.train(corpus, out=out, resume=True, **{**common, "steps": 20})


def test_stale_temporaries_are_cleaned_and_nothing_else(corpus, tmp_path):
    from xuxie import TextGenerator

    out = tmp_path / "run"
    common = dict(seq_len=32, batch_size=8, preview_length=0, progress=False, eval_interval=2)
    TextGenerator.train(corpus, out=out, steps=2, model_options={"hidden_size": 16}, **common)
    stale = [out / ".model.safetensors.k2j4.tmp", out / ".config.json.x9.tmp", out / "checkpoints" / ".step.ab12.tmp"]
    stale[0].write_bytes(b"half")
    stale[1].write_text("{")
    stale[2].mkdir()
    (stale[2] / "weights.safetensors").write_bytes(b"half")
    users = [out / ".my-notes.tmp", out / "checkpoints" / ".mine.tmp"]
    for f in users:
        f.write_text("mine")
    TextGenerator.train(corpus, out=out, resume=True, steps=4, **common)
    assert not any(p.exists() for p in stale)
    assert all(f.read_text() == "mine" for f in users)


def test_a_folder_of_the_earlier_layout_still_resumes(corpus, tmp_path):
    """Before checkpoint folders, --resume read last.safetensors + trainer_state.pt beside config.json."""
    import shutil

    from xuxie import TextGenerator

    out = tmp_path / "run"
    common = dict(seq_len=32, batch_size=8, preview_length=0, progress=False, eval_interval=3)
    TextGenerator.train(corpus, out=out, steps=3, model_options={"hidden_size": 16}, **common)
    newest = checkpoints(out)[0]
    shutil.move(newest / "weights.safetensors", out / "last.safetensors")
    shutil.move(newest / "trainer_state.pt", out / "trainer_state.pt")
    shutil.rmtree(out / "checkpoints")
    tg = TextGenerator.train(corpus, out=out, resume=True, steps=6, **common)
    assert tg.config["results"]["steps"] == 6 and checkpoints(out)[0].name == "step-000000006"
