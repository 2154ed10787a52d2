"""Training in several processes with PyTorch's own engine (torchrun + DistributedDataParallel,
gloo on CPU): the model loads in one process, ``--resume`` under torchrun goes on exactly, and
2 processes × batch B/2 follow 1 process × batch B (and ``--grad-accum 2`` × B/2)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import assert_clear_error, corpus_path, run

SMALL = ["--steps", "12", "--eval-interval", "6", "--preview-length", "0", "--precision", "fp32", "-q"]
ARCH_OPTIONS = {"lstm": ["--hidden-size", "48"], "transformer": ["--layers", "2", "--heads", "2", "--hidden-size", "32", "--context", "32"]}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ddp") / "shakespeare.txt"
    path.write_text(corpus_path("tinyshakespeare.txt").read_text(encoding="utf-8")[:200_000], encoding="utf-8")
    return path


def train(*args) -> subprocess.CompletedProcess:
    """``xuxie train ARGS`` as a user types it (``--nproc`` starts torchrun from the command line)."""
    return subprocess.run([sys.executable, "-m", "xuxie", "train", *map(str, args)], capture_output=True, text=True, timeout=300)


def losses(out: Path) -> list[tuple[int, float, float]]:
    """(step, training loss, validation loss) of every evaluation in the run's log."""
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return [(r["step"], r["train_loss"], r["val_loss"]) for r in rows if "train_loss" in r]


@pytest.mark.parametrize("arch", ["lstm", "transformer"])
def test_two_processes_train_a_model_that_loads_in_one_and_resumes_under_torchrun(corpus, tmp_path, arch):
    out = tmp_path / arch
    done = train(corpus, "--arch", arch, *ARCH_OPTIONS[arch], "--out", out, "--batch-size", 8, *SMALL, "--nproc", 2)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("trained ") == 1, "one process speaks for all"
    config = json.loads((out / "config.json").read_text())
    assert config["results"]["steps"] == 12
    generated = run("generate", out, "--prompt", "ROMEO:", "--max-new-tokens", 20, "--seed", 1)
    assert generated.exit_code == 0 and generated.stdout.strip().startswith("ROMEO:")
    resumed = train("--out", out, "--resume", "--steps", 18, "-q", "--nproc", 2)
    assert resumed.returncode == 0, resumed.stderr
    assert [s for s, _, _ in losses(out)] == [6, 12, 18]
    assert (out / "checkpoints" / "step-000000018").is_dir()


def test_resume_under_torchrun_goes_on_as_in_one_process(corpus, tmp_path):
    """Stopped at step 6 and resumed to 12 (weights, optimiser, schedule, the window generator and
    every process's random state from the checkpoint), two processes end where one process does."""
    options = [corpus, *ARCH_OPTIONS["lstm"], "--batch-size", 8, "--preview-length", "0", "--precision", "fp32", "-q", "--eval-interval", 6]
    for name, nproc in (("one", 1), ("two", 2)):
        assert train(*options, "--out", tmp_path / name, "--steps", 6, "--nproc", nproc).returncode == 0
        assert train("--out", tmp_path / name, "--resume", "--steps", 12, "-q", "--nproc", nproc).returncode == 0
    (step_a, train_a, val_a), (step_b, train_b, val_b) = losses(tmp_path / "one")[-1], losses(tmp_path / "two")[-1]
    assert step_a == step_b == 12
    assert train_a == pytest.approx(train_b, abs=1e-4) and val_a == pytest.approx(val_b, abs=1e-4)


def test_two_processes_and_gradient_accumulation_follow_one_process(corpus, tmp_path):
    """The same initialisation and the same windows (every process draws the whole batch's windows
    from the same generator and trains on its share), so only the order of additions differs."""
    base = [corpus, *ARCH_OPTIONS["lstm"], *SMALL]
    one = train(*base, "--out", tmp_path / "one", "--batch-size", 8)
    two = train(*base, "--out", tmp_path / "two", "--batch-size", 8, "--nproc", 2)
    accum = train(*base, "--out", tmp_path / "accum", "--batch-size", 4, "--grad-accum", 2)
    for r in (one, two, accum):
        assert r.returncode == 0, r.stderr
    reference = losses(tmp_path / "one")
    for other in ("two", "accum"):
        got = losses(tmp_path / other)
        assert [s for s, _, _ in got] == [s for s, _, _ in reference]
        for (_, train_a, val_a), (_, train_b, val_b) in zip(reference, got):
            assert train_a == pytest.approx(train_b, abs=1e-4) and val_a == pytest.approx(val_b, abs=1e-4), other


def test_bad_process_counts(corpus, tmp_path):
    assert_clear_error(run("train", corpus, "--out", tmp_path / "zero", "--nproc", 0), "--nproc must be at least 1")
    uneven = train(corpus, "--out", tmp_path / "uneven", "--batch-size", 5, "--steps", 2, "-q", "--nproc", 2)
    assert uneven.returncode == 2
    errors = [line for line in uneven.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "not a multiple of the 2 training processes" in errors[0], uneven.stderr
    assert "Traceback" not in uneven.stderr and not (tmp_path / "uneven").exists()



def _worker(agent: int, rank: int) -> int | None:
    """The pid of torchrun's (``agent``'s) worker process of ``rank``, from /proc."""
    for children in Path(f"/proc/{agent}/task").glob("*/children"):
        for pid in children.read_text().split():
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"RANK={rank}".encode() in environ:
                return int(pid)
    return None


def test_torchrun_restarts_a_group_whose_process_was_killed_and_it_goes_on_from_the_checkpoint(corpus, tmp_path):
    """One process SIGKILLed halfway (after the checkpoint of step 100 of 200): torchrun
    (--max-restarts 1) stops the other and starts the group again, which resumes by itself and ends
    where an unbroken run does. Before each attempt's store keys had their own prefix, the new group
    failed to connect or hung in 13 of 20 tries (benchmarks/elastic_restart.py; 20 of 20 since)."""
    options = [corpus, "--hidden-size", 64, "--seq-len", 32, "--batch-size", 8, "--steps", 200, "--eval-interval", 50,
               "--save-every", 0.001, "--preview-length", 0, "--precision", "fp32", "-q"]
    assert train(*options, "--out", tmp_path / "unbroken").returncode == 0
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", 2, "--max-restarts", 1,
           "-m", "xuxie", "train", *options, "--out", out]
    proc = subprocess.Popen(list(map(str, cmd)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    killed = None
    try:
        deadline = time.monotonic() + 60
        while killed is None and proc.poll() is None and time.monotonic() < deadline:
            halfway = any(int(p.name[5:].split(".")[0]) >= 100 for p in (out / "checkpoints").glob("step-*"))
            if halfway and (pid := _worker(proc.pid, 1)):
                os.kill(pid, signal.SIGKILL)
                killed = pid
            time.sleep(0.02)
        output, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert killed, "the run ended before a process could be killed"
    assert proc.returncode == 0, output
    assert f"pid: {killed}" in output and "exitcode: -9" in output, "torchrun saw the killed process"
    assert "training starts again from step 0" not in output
    assert json.loads((out / "config.json").read_text())["results"]["steps"] == 200
    (step_a, train_a, val_a), (step_b, train_b, val_b) = losses(tmp_path / "unbroken")[-1], losses(out)[-1]
    assert step_a == step_b == 200
    assert train_a == pytest.approx(train_b, abs=1e-4) and val_a == pytest.approx(val_b, abs=1e-4)
