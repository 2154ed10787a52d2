"""``xuxie analyze``: what models write, measured per temperature and decoding strategy, as a report.

:func:`analyze` loads one or more models, writes ``samples`` texts at each temperature (and with
greedy decoding, beam search and top-p sampling), scores them with :mod:`xuxie.analysis`
(diversity, repetition, self-BLEU, novelty against the training corpus, lengths) and with the
model itself (mean log-probability per token), scores a held-out text (perplexity, bits per
character), draws plots and writes, atomically, into ``out_dir``:

``report.md``
    tables, example samples, the training run's per-evaluation samples, links to the plots
``report.html``
    the same, self-contained (plots embedded as base64 data URIs)
``metrics.json``
    every number (per model × temperature, per strategy, held-out scores, next-token
    distributions, timings)
``samples.json``
    every generated text
``*.png``
    ``training_curves.png``, ``metric_<name>.png`` (a metric against temperature, one line per
    model) and ``next_token_<model>.png`` (the next-token distribution at several temperatures)

The CLI (``xuxie analyze``) only parses options and prints the summary.

Modules: :mod:`~xuxie.report.settings` (what is asked, checked), :mod:`~xuxie.report.collection`
(models, corpora, the training run's files), :mod:`~xuxie.report.scoring` (log-probabilities,
next-token distributions), :mod:`~xuxie.report.plots`, :mod:`~xuxie.report.sections` (what the
report says) and :mod:`~xuxie.report.document` (one block list rendered as Markdown and as HTML),
:mod:`~xuxie.report.run` (:func:`analyze`, step by step).
"""

from .collection import read_training_log
from .run import analyze
from .scoring import next_token_distribution
from .sections import render_html, render_markdown
from .settings import (
    DEFAULT_STRATEGIES,
    DEFAULT_TEMPERATURES,
    KEY_METRICS,
    SHORT_NAMES,
    STRATEGIES,
    TABLE_METRICS,
    parse_strategies,
    parse_temperatures,
)

__all__ = ["DEFAULT_STRATEGIES", "DEFAULT_TEMPERATURES", "KEY_METRICS", "SHORT_NAMES", "STRATEGIES", "TABLE_METRICS", "analyze",
           "next_token_distribution", "parse_strategies", "parse_temperatures", "read_training_log", "render_html",
           "render_markdown"]
