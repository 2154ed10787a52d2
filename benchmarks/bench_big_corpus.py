"""Training on a corpus larger than memory should allow: peak memory, reading speed, and the start
of a second run on the same corpus (its token ids cached).

For each language the benchmark makes a corpus of ``--mb`` MB (500 by default) in a temporary
folder by repeating the shipped corpus with its paragraphs (English: speeches; Chinese: 红楼梦's
paragraphs) shuffled, then runs ``xuxie train CORPUS --steps 20`` three times, each in its own
process, and reports its peak resident memory and the time to its first training step:

- ``baseline``: the same command with xuxie as it was before corpora were streamed (git
  revision ``--baseline-rev``, checked out in a temporary worktree), measured in this run;
- ``first run``: a new cache folder: the corpus is hashed, read, its tokenizer learnt and its ids
  written (the MB/s of each pass is printed);
- ``second run``: the same corpus into a new model folder: everything comes from the cache
  (``--repeats`` times: the peak of identical runs varies by a few hundred MB);
- ``2 MB of it``: the same command on the corpus's first 2 MB, for the memory of the model and
  its training alone (what the corpus adds is the difference).

    python benchmarks/bench_big_corpus.py                 # 500 MB, English and Chinese, with the baseline
    python benchmarks/bench_big_corpus.py --mb 100 --langs en --no-baseline

The baseline holds the corpus in memory several times over (about 11 GB at 500 MB); run it on a
machine with the memory for it, and quiet: every run takes all the cores.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import CORPORA, parser

REPO = Path(__file__).resolve().parents[1]
BASELINE_REV = "6b7e75c"  # the last commit that read every corpus into memory
SOURCES = {"en": ("tinyshakespeare.txt", "\n\n"), "zh": ("hongloumeng.txt", "\n")}

# Runs the command given after it in this process and reports, on its last stderr line, the peak
# resident memory and the seconds from the start of the process to the first training step.
PROBE = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from xuxie import callbacks, runs
first = []
class FirstStep(callbacks.Callback):
    def on_step_end(self, trainer, loss):
        if not first:
            first.append(time.perf_counter() - t0)
defaults = runs.default_callbacks
runs.default_callbacks = lambda *a, **k: [*defaults(*a, **k), FirstStep()]
sys.argv = ["xuxie", *sys.argv[1:]]
from xuxie.cli import main
try:
    main()
except SystemExit as e:
    code = e.code
else:
    code = 0
import xuxie
status = open("/proc/self/status").read()  # VmHWM: this process's own peak (ru_maxrss keeps the launcher's across exec)
hwm = int(status.split("VmHWM:")[1].split()[0]) / 1024
print(json.dumps({"code": code, "xuxie": xuxie.__file__, "first_step_s": first[0] if first else None,
                  "peak_rss_mb": hwm, "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), file=sys.stderr)
"""


def cpu_name() -> str:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "unknown CPU")
    return f"{name} ({'avx512_bf16' if 'avx512_bf16' in info else 'no bf16'}), {os.cpu_count()} cores"


def make_corpus(lang: str, mb: int, folder: Path) -> Path:
    """``mb`` MB of the shipped corpus, its paragraphs shuffled anew at each repetition."""
    name, sep = SOURCES[lang]
    paragraphs = [p for p in (CORPORA / name).read_text(encoding="utf-8").replace("\r\n", "\n").split(sep) if p.strip()]
    rng = random.Random(0)
    path = folder / f"big_{lang}.txt"
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < mb << 20:
            rng.shuffle(paragraphs)
            block = sep.join(paragraphs) + sep
            f.write(block)
            written += len(block.encode("utf-8"))
    return path


def run(corpus: Path, out: Path, env: dict[str, str], pythonpath: Path) -> dict:
    cmd = [sys.executable, "-c", PROBE, "train", str(corpus), "--out", str(out), "--steps", "20", "--preview-length", "0", "-q"]
    # run from the temporary folder: "python -c" puts the working directory first on sys.path
    done = subprocess.run(cmd, capture_output=True, text=True, env={**env, "PYTHONPATH": str(pythonpath)}, cwd=out.parent)
    record = json.loads(done.stderr.strip().splitlines()[-1])
    assert record["xuxie"].startswith(str(pythonpath)), record  # the revision asked for, not the installed one
    if record["code"]:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return record


def pass_speeds(corpus: Path, cache: Path) -> dict[str, float]:
    """MB/s of hashing, reading (decoding, counting) and encoding the corpus, in this process."""
    import time

    from xuxie.cache import cached_ids, cached_tokenizer, streamed_corpus
    from xuxie.corpus.sources import expand_paths

    os.environ["XUXIE_CACHE_DIR"] = str(cache)
    mb = corpus.stat().st_size / 2**20
    t = time.perf_counter()
    sc = streamed_corpus(expand_paths(corpus), "text", None)
    read = time.perf_counter() - t
    t = time.perf_counter()
    tok = cached_tokenizer(sc, {"kind": "char", "min_freq": 1, "max_vocab": 20000, "vocab_size": None}, 0.1)
    learn = time.perf_counter() - t
    t = time.perf_counter()
    train, val, _ = cached_ids(sc, tok, 0.1)
    encode = time.perf_counter() - t
    return {"hash+read": mb / read, "tokenizer": mb / learn, "encode": mb / encode, "tokens": len(train) + len(val)}


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--mb", type=int, default=500, help="corpus size in MB (default 500)")
    p.add_argument("--langs", default="en,zh", help="en, zh or both (default en,zh)")
    p.add_argument("--baseline-rev", default=BASELINE_REV, help=f"git revision of the baseline (default {BASELINE_REV})")
    p.add_argument("--no-baseline", action="store_true", help="skip the baseline run")
    p.add_argument("--repeats", type=int, default=3, help="second runs (peak memory varies by a few hundred MB between "
                                                            "identical runs: allocator and oneDNN caches)")
    args = p.parse_args()
    print(f"CPU: {cpu_name()}; corpus {args.mb} MB; xuxie train CORPUS --steps 20 (char LSTM, the defaults)")
    with tempfile.TemporaryDirectory(prefix="xuxie-big-") as tmp:
        tmp = Path(tmp)
        baseline = None
        if not args.no_baseline:
            baseline = tmp / "baseline"
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(baseline), args.baseline_rev],
                           check=True, capture_output=True)
        try:
            for lang in args.langs.split(","):
                corpus = make_corpus(lang, args.mb, tmp)
                env = {**os.environ, "XUXIE_CACHE_DIR": str(tmp / f"cache-{lang}")}
                print(f"\n{lang}: {corpus.stat().st_size / 2**20:,.0f} MB")
                rows = []
                if baseline is not None:
                    rows.append(("baseline", run(corpus, tmp / f"m-{lang}-0", env, baseline)))
                rows.append(("first run", run(corpus, tmp / f"m-{lang}-1", env, REPO)))
                rows += [(f"second run {i + 1}", run(corpus, tmp / f"m-{lang}-2{i}", env, REPO)) for i in range(args.repeats)]
                small = tmp / f"small_{lang}.txt"  # the model's own memory: the same command on 2 MB of the corpus
                with open(corpus, "rb") as f:
                    small.write_bytes(f.read(2 << 20).rsplit(b"\n", 1)[0])
                rows.append(("2 MB of it", run(small, tmp / f"m-{lang}-small", env, REPO)))
                print(f"  {'run':<13} {'peak RSS':>10} {'first step':>11}")
                for name, r in rows:
                    print(f"  {name:<13} {r['peak_rss_mb']:>7,.0f} MB {r['first_step_s']:>9.1f} s")
                speeds = pass_speeds(corpus, tmp / f"speed-{lang}")
                print(f"  passes in one process: hash+read {speeds['hash+read']:,.0f} MB/s, char tokenizer "
                      f"{speeds['tokenizer']:,.0f} MB/s, encoding {speeds['encode']:,.0f} MB/s ({speeds['tokens']:,} tokens)")
                corpus.unlink()
        finally:
            if baseline is not None:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(baseline)], capture_output=True)


if __name__ == "__main__":
    main()
