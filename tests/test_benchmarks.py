"""Every benchmark script still starts: its imports resolve and ``--help`` prints its usage.

Benchmarks take minutes, so no test runs them; this catches the cheap way they break — a name
one script imports from another renamed (bench_chinese.py imported bench_speedrun's ``BASELINE``
after it had become ``EARLIER``), a module moved — in one process, a fraction of a second each.
"""

import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_"))

# Runs each script as __main__ with --help; prints its name, exit code and the help's first line.
DRIVER = """
import contextlib, io, runpy, sys
for name in sys.argv[1:]:
    out = io.StringIO()
    sys.argv = [name, "--help"]
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(name, run_name="__main__")
        code = "returned"
    except SystemExit as e:
        code = e.code
    except Exception as e:
        code = f"{type(e).__name__}: {e}"
    lines = out.getvalue().splitlines()
    print(name, code, lines[0] if lines else "", sep="\t")
"""


def test_every_benchmark_answers_help():
    assert len(SCRIPTS) >= 10, SCRIPTS
    proc = subprocess.run([sys.executable, "-c", DRIVER, *SCRIPTS], cwd=BENCHMARKS, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(BENCHMARKS)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    assert [name for name, *_ in rows] == SCRIPTS, proc.stdout
    for name, code, first in rows:
        assert code == "0", f"{name} --help: {code}"
        assert first.startswith("usage:"), f"{name} --help printed {first!r}"
