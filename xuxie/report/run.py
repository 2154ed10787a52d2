"""The analysis itself: from :func:`analyze`'s arguments to the report files, in named steps."""

from __future__ import annotations

import datetime as _dt
import json
import math
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .. import analysis
from ..fileio import SAMPLES, atomic_write_text
from ..threads import threads_scope
from .collection import ModelRun, attach_corpora, build_indexes, load_models, prepare_prompts, read_heldout, read_training_log
from .plots import draw_plots
from .scoring import next_token_distribution, score
from .sections import render_html, render_markdown
from .settings import (
    DEFAULT_STRATEGIES,
    DEFAULT_TEMPERATURES,
    METRICS_JSON,
    REPORT_HTML,
    REPORT_MD,
    SAMPLES_JSON,
    STRATEGIES,
    Progress,
    Settings,
    next_token_temperatures,
)


class Stopwatch:
    """Seconds spent in each phase of the analysis (a phase may be entered many times), and since it began."""

    PHASES = ("load", "index", "generate", "score", "plot")

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - t0

    def summary(self) -> dict[str, float]:
        """metrics.json's ``timing``: each phase, then the total, in seconds."""
        timing = {f"{name}_seconds": round(self.seconds[name], 3) for name in self.PHASES}
        timing["total_seconds"] = round(time.perf_counter() - self.started, 3)
        return timing


@threads_scope("decode")
def analyze(models: Sequence[Any] | Any, out_dir: str | Path, corpus: str | Path | None = None, heldout: str | Path | None = None,
            temperatures: str | Sequence[float] = DEFAULT_TEMPERATURES, samples: int = 20, length: int = 200, prompt: str = "",
            strategies: str | Sequence[str] | None = DEFAULT_STRATEGIES, seed: int | None = 0, device: str | None = None,
            progress: Progress | None = None) -> dict[str, Any]:
    """Analyse what one or more models write; write the report into ``out_dir``; return the metrics.

    ``models``: model directories or loaded :class:`~xuxie.TextGenerator` objects. ``corpus``: the
    training text novelty is measured against (a file or named corpus; default: what each model's
    config.json records). ``heldout``: a text file scored for perplexity and bits per character
    (seq2seq models: a pairs file, or a plain text paired as in training). ``temperatures``: a list
    or a comma list. ``samples`` texts of ``length`` tokens are written per model × temperature
    (one batch, ``seed``), after ``prompt`` (seq2seq models answer it; it is required for them).
    ``strategies``: any of ``greedy``, ``beam`` (4 beams) and ``top-p`` (0.9 at temperature 1).

    Returns the content of ``metrics.json`` plus ``files`` (paths written).
    """
    say = progress or (lambda _msg: None)
    clock = Stopwatch()
    settings = Settings.check(out_dir, corpus, heldout, temperatures, samples, length, prompt, strategies, seed)
    with clock.phase("load"):
        runs = load_models(models, device)
        prepare_prompts(runs, settings.prompt)
    texts_by_key = attach_corpora(runs, settings.corpus)  # every check (corpus, held-out text) before any work
    heldout_text = read_heldout(settings.heldout)
    with clock.phase("index"):
        indexes = build_indexes(runs, texts_by_key, say)
    results, all_samples = [], {}
    for m in runs:
        index = indexes.get(m.corpus_key) if m.corpus_key is not None else None
        result, all_samples[m.name] = _analyse_model(m, index, settings, heldout_text, say, clock)
        results.append(result)
    settings.out.mkdir(parents=True, exist_ok=True)
    with clock.phase("plot"):
        say("drawing plots")
        images = draw_plots(results, settings.out)
    report = {"xuxie_analyze": 1, "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), "settings": settings.as_dict(),
              "models": results, "plots": sorted(images), "timing": clock.summary()}
    return _write_report(settings.out, report, all_samples, images)


# --------------------------------------------------------------------------- one model
def _analyse_model(m: ModelRun, index: analysis.CorpusIndex | None, settings: Settings, heldout_text: str | None,
                   say: Progress, clock: Stopwatch) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metrics.json's entry for the model, samples.json's): held-out scores, the temperature
    sweep, the strategies, the next-token distribution and the training run's own record."""
    result = _model_facts(m, index)
    result["heldout"] = None if heldout_text is None else _score_heldout(m, settings.heldout, heldout_text, say)
    result["by_temperature"], by_temperature = _sweep_temperatures(m, index, settings, say, clock)
    result["by_strategy"], by_strategy = _compare_strategies(m, index, settings, say, clock)
    result["next_token"] = next_token_distribution(m, next_token_temperatures(settings.temperatures))
    result["training_log"] = read_training_log(m.path)
    samples_md = m.path / SAMPLES if m.path is not None else None
    result["has_training_samples"] = bool(samples_md and samples_md.is_file())
    return result, {"temperatures": by_temperature, "strategies": by_strategy}


def _model_facts(m: ModelRun, index: analysis.CorpusIndex | None) -> dict[str, Any]:
    """What the model is: its architecture, size, training results and corpus."""
    tg, cfg = m.tg, m.tg.config
    return {
        "name": m.name, "path": str(m.path) if m.path is not None else None, "arch": cfg.get("arch"),
        "mode": tg.mode, "tokenizer": cfg.get("tokenizer"), "parameters": tg.model.num_parameters(),
        "seq2seq": tg.is_seq2seq, "training": {k: v for k, v in (cfg.get("results") or {}).items() if isinstance(v, (int, float))},
        "corpus": m.corpus_label, "corpus_chars": len(index) if index is not None else None,
        "notes": [m.corpus_note] if m.corpus_note else [],
    }


def _score_heldout(m: ModelRun, heldout: str | Path, text: str, say: Progress) -> dict[str, Any]:
    """Loss, perplexity and bits per character of the held-out text (seq2seq models: of its pairs)."""
    say(f"{m.name}: scoring the held-out text")
    tg = m.tg
    if tg.is_seq2seq:
        r = tg.evaluate_pairs(tg.read_pairs_for_eval(Path(heldout)), decode=False)
        return {k: float(r[k]) for k in ("loss", "perplexity", "bits_per_char")} | {"pairs": int(r["pairs"])}
    r = tg.evaluate(text)
    return {k: float(r[k]) for k in ("loss", "perplexity", "bits_per_char")} | {
        "tokens": int(r["tokens"]), "chars": int(r["chars"]), "unknown_chars": int(r["unknown_chars"])}


def _sweep_temperatures(m: ModelRun, index: analysis.CorpusIndex | None, settings: Settings, say: Progress,
                        clock: Stopwatch) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """Metrics per temperature, and the samples by temperature."""
    rows, texts_by_t = [], {}
    for t in settings.temperatures:
        say(f"{m.name}: {settings.samples} samples at temperature {t:g}")
        texts, metrics = _write_and_score(m, index, settings, clock, settings.samples, temperature=t)
        rows.append({"temperature": t, **metrics})
        texts_by_t[f"{t:g}"] = texts
    return rows, texts_by_t


def _compare_strategies(m: ModelRun, index: analysis.CorpusIndex | None, settings: Settings, say: Progress,
                        clock: Stopwatch) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """Metrics per decoding strategy, and the samples by strategy."""
    rows, texts_by_s = [], {}
    for s in settings.strategies:
        desc, opts, many = STRATEGIES[s]
        say(f"{m.name}: {desc}")
        texts, metrics = _write_and_score(m, index, settings, clock, settings.samples if many else 1, **opts)
        rows.append({"strategy": s, "description": desc, **opts, **metrics})
        texts_by_s[s] = texts
    return rows, texts_by_s


def _write_and_score(m: ModelRun, index: analysis.CorpusIndex | None, settings: Settings, clock: Stopwatch, n: int,
                     **options: Any) -> tuple[list[str], dict[str, float]]:
    """``n`` samples written with the decoding ``options``, and their metrics."""
    with clock.phase("generate"):
        texts = m.tg.generate(n, settings.prompt, max_new_tokens=settings.length, seed=settings.seed, include_prompt=False, **options)
    with clock.phase("score"):
        metrics = score(m, texts, index, settings.length)
    return texts, metrics


# --------------------------------------------------------------------------- the files
def _write_report(out: Path, report: dict[str, Any], all_samples: dict[str, Any], images: dict[str, bytes]) -> dict[str, Any]:
    """Write metrics.json, samples.json, report.md and report.html; return the metrics with ``files``."""
    training_samples = {r["name"]: (Path(r["path"]) / SAMPLES).read_text(encoding="utf-8", errors="replace")
                        for r in report["models"] if r["has_training_samples"]}
    report = _finite(report)
    atomic_write_text(out / METRICS_JSON, json.dumps(report, ensure_ascii=False, indent=1, allow_nan=False) + "\n")
    atomic_write_text(out / SAMPLES_JSON, json.dumps(all_samples, ensure_ascii=False, indent=1) + "\n")
    atomic_write_text(out / REPORT_MD, render_markdown(report, all_samples, training_samples))
    atomic_write_text(out / REPORT_HTML, render_html(report, all_samples, training_samples, images))
    report["files"] = {"report_html": str(out / REPORT_HTML), "report_md": str(out / REPORT_MD),
                       "metrics_json": str(out / METRICS_JSON), "samples_json": str(out / SAMPLES_JSON),
                       "plots": [str(out / f) for f in sorted(images)]}
    return report


def _finite(x: Any) -> Any:
    """JSON-ready: numpy scalars become Python numbers, NaN and infinities become None."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x
