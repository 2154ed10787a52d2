"""Elastic restarts under torchrun: K trials of a 2-process LSTM run with ``--max-restarts 1``,
each SIGKILLing one worker (ranks 1, 0, 1, 0… in turn) a little after the first checkpoint exists.
A trial *finished* when torchrun exits 0 with the run at its final step after a restart that
resumed from a checkpoint; it *failed* when torchrun exits otherwise (the last error line is
shown); it *hung* when it is still running after ``--timeout`` seconds (then where its workers
wait is written to its log with py-spy, and its process group is killed).

    python benchmarks/elastic_restart.py                 # 20 trials
    python benchmarks/elastic_restart.py --trials 5 --steps 100

One trial at a time: each takes both cores of a 2-core machine. The corpus is synthetic (seeded
random sentences) and lives in a temporary folder with the runs (``--keep DIR`` keeps them).

Measured on 2 cores (AMD EPYC), 20 trials: 7 finished, 10 failed ("Gloo connectFullMesh failed …
Connection refused"), 3 hung (in init_process_group) while every restart of a group shared the
process group's keys in torchrun's store; 20 of 20 finished since xuxie.distributed.init gives
each attempt its own prefix.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from _common import parser

WORDS = ("the king queen lord lady sword crown night day love death blood heart fair foul sweet bitter "
         "speak hear come go stay fly weep laugh rise fall thou thee thy my our your noble gentle").split()


def synthetic_corpus(path: Path, chars: int = 200_000, seed: int = 0) -> Path:
    rng = random.Random(seed)
    lines, size = [], 0
    while size < chars:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))).capitalize() + rng.choice(".,;!?")
        lines.append(line)
        size += len(line) + 1
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def workers(agent: int) -> dict[int, int]:
    """The agent's worker processes, by their RANK (read from each child's environment)."""
    ranks = {}
    for task in Path(f"/proc/{agent}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for pid in map(int, children):
            try:
                env = dict(kv.split("=", 1) for kv in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in kv)
            except OSError:
                continue
            if "RANK" in env and "TORCHELASTIC_RESTART_COUNT" in env:
                ranks[int(env["RANK"])] = pid
    return ranks


def dump_stacks(agent: int, log) -> None:
    """Where a hung trial's workers are (py-spy, when installed), into its log."""
    spy = Path(sys.executable).with_name("py-spy")
    for rank, pid in sorted(workers(agent).items()):
        log.write(f"\n--- rank {rank} (pid {pid}) hung in:\n")
        log.flush()
        if spy.exists():
            subprocess.run([str(spy), "dump", "--pid", str(pid)], stdout=log, stderr=subprocess.STDOUT, timeout=30)


def newest_checkpoint(out: Path) -> int | None:
    """The step of the newest whole checkpoint (``step-N``; unfinished ones have other names)."""
    steps = [int(p.name[5:].split(".")[0]) for p in (out / "checkpoints").glob("step-*")]
    return max(steps, default=None)


def last_error(text: str) -> str:
    """The error that ended the run: a failed connection of the restarted group first (the killed
    attempt's survivor always reports its lost peer), else the last error line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for key in ("connectFullMesh", "Error:", "error:"):
        found = [line for line in lines if key in line]
        if found:
            return found[-1][:240]
    return lines[-1][:240] if lines else ""


def trial(root: Path, corpus: Path, i: int, args) -> tuple[str, str]:
    out = root / f"run-{i}"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "--max-restarts", "1",
           "-m", "xuxie", "train", str(corpus), "--out", str(out), "--arch", "lstm", "--hidden-size", str(args.hidden_size),
           "--seq-len", "64", "--batch-size", "16", "--steps", str(args.steps), "--save-every", str(args.save_every),
           "--preview-length", "0", "--precision", "fp32", "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = (root / f"run-{i}.log").open("w+")
    # its own session: a hung trial's whole process tree is killed by its group id
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    start, killed, victim = time.monotonic(), None, i % 2
    delay = random.Random(i).uniform(0, args.max_delay)
    seen_at = None
    try:
        while proc.poll() is None and time.monotonic() - start < args.timeout:
            if killed is None and (step := newest_checkpoint(out)) is not None:
                seen_at = seen_at or time.monotonic()
                ranks = workers(proc.pid)
                if time.monotonic() - seen_at >= delay and victim in ranks:
                    os.kill(ranks[victim], signal.SIGKILL)
                    killed = step
            time.sleep(0.05)
        if proc.poll() is None:
            dump_stacks(proc.pid, log)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return "hung", f"killed after checkpoint {killed}; still running after {args.timeout:.0f} s (stacks in run-{i}.log)"
    finally:
        log.seek(0)
        text = log.read()
        log.close()
    if killed is None:
        return "not killed", "the run ended before the kill"
    steps = json.loads((out / "config.json").read_text()).get("results", {}).get("steps") if (out / "config.json").exists() else None
    if proc.returncode == 0 and steps == args.steps:
        if "training starts again from step 0" in text:  # restarted, but found no checkpoint
            return "failed", f"killed after checkpoint {killed}; the restarted group did not resume"
        return "finished", f"killed after checkpoint {killed}, {time.monotonic() - start:.0f} s"
    return "failed", f"killed after checkpoint {killed}; exit {proc.returncode}: {last_error(text)}"


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--hidden-size", type=int, default=256)
    p.add_argument("--save-every", type=float, default=0.002, help="minutes between checkpoints")
    p.add_argument("--max-delay", type=float, default=3.0, help="seconds after the first checkpoint to kill at (random, up to)")
    p.add_argument("--timeout", type=float, default=240.0, help="seconds before a trial counts as hung")
    p.add_argument("--keep", help="keep the runs and logs in this folder")
    args = p.parse_args()
    counts: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp)
        root.mkdir(parents=True, exist_ok=True)
        corpus = synthetic_corpus(root / "corpus.txt")
        for i in range(args.trials):
            outcome, detail = trial(root, corpus, i, args)
            counts[outcome] += 1
            print(f"trial {i + 1:>2} (killed rank {i % 2}): {outcome:<10} {detail}", flush=True)
    print(", ".join(f"{n} {k}" for k, n in counts.most_common()) + f" of {args.trials}")


if __name__ == "__main__":
    main()
