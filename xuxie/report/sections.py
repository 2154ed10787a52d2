"""What the analysis report says, section by section, as one list of blocks (see
:mod:`.document`) that :func:`render_markdown` and :func:`render_html` render."""

from __future__ import annotations

import math
from typing import Any

from ..fileio import SAMPLES
from .collection import samples_md_sections
from .document import Block, Figure, Figures, Glossary, Heading, Paragraph, Sample, Table, to_html, to_markdown
from .settings import (
    EXAMPLES_PER_TEMPERATURE,
    KEY_METRICS,
    SAMPLES_MD_BLOCK_CHARS,
    SAMPLES_MD_SECTIONS,
    STRATEGIES,
    TABLE_METRICS,
    TRAINING_CURVES,
    metric_plot,
)


def render_markdown(report: dict[str, Any], samples: dict[str, Any], training_samples: dict[str, str]) -> str:
    """report.md: ``report`` is metrics.json's content, ``samples`` samples.json's, ``training_samples``
    each model's samples.md by model name."""
    return to_markdown(report_blocks(report, samples, training_samples))


def render_html(report: dict[str, Any], samples: dict[str, Any], training_samples: dict[str, str], images: dict[str, bytes]) -> str:
    """report.html: the blocks of report.md as one page, with ``images`` (file name → PNG bytes) embedded."""
    title = f"xuxie analyze: {', '.join(r['name'] for r in report['models'])}"
    return to_html(report_blocks(report, samples, training_samples), images, title)


def report_blocks(report: dict[str, Any], samples: dict[str, Any], training_samples: dict[str, str]) -> list[Block]:
    """Every section of the report, in order."""
    return [Heading(1, "What the models write (xuxie analyze)"), Paragraph(f"{report['date']} · {_settings_line(report)}", "byline"),
            *_models(report), *_metrics(report), *_training_curves(report), *_next_tokens(report),
            *_examples(report, samples), *_training_samples(training_samples), _timing(report)]


# --------------------------------------------------------------------------- the sections
def _models(report: dict[str, Any]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Models"), Table(*_summary_rows(report))]
    heldout = _heldout_rows(report)
    if heldout:
        blocks += [Heading(2, f"Held-out text ({report['settings']['heldout']})"), Table(*heldout)]
    blocks += [Paragraph(f"{r['name']}: {note}", "note") for r in report["models"] for note in r["notes"]]
    return blocks


def _metrics(report: dict[str, Any]) -> list[Block]:
    figures = [Figure(metric_plot(key), long, long) for key, (_, long) in KEY_METRICS.items() if metric_plot(key) in report["plots"]]
    blocks: list[Block] = [Heading(2, "Metrics against temperature"), Figures(figures, grid=True)]
    for r in report["models"]:
        blocks += [Heading(3, f"{r['name']}: temperature sweep"), Table(*_metric_rows(r["by_temperature"], "temperature", TABLE_METRICS))]
        if r["by_strategy"]:
            blocks += [Heading(3, f"{r['name']}: decoding strategies"), Table(*_metric_rows(r["by_strategy"], "strategy", TABLE_METRICS))]
    return [*blocks, Paragraph("What the columns mean:"), Glossary(METRIC_HELP)]


def _training_curves(report: dict[str, Any]) -> list[Block]:
    if TRAINING_CURVES not in report["plots"]:
        return []
    return [Heading(2, "Training curves"), Figure(TRAINING_CURVES, "training curves", "train and validation loss against step")]


def _next_tokens(report: dict[str, Any]) -> list[Block]:
    figures = [Figure(r["next_token"]["plot"], f"next token, {r['name']}",
                      f"{r['name']}: the {len(r['next_token']['tokens'])} most likely next tokens") for r in report["models"]]
    return [Heading(2, "How temperature reshapes the next-token distribution"), Figures(figures)]


def _examples(report: dict[str, Any], samples: dict[str, Any]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Example samples")]
    for r in report["models"]:
        s = samples[r["name"]]
        blocks.append(Heading(3, r["name"]))
        for t, texts in s["temperatures"].items():
            blocks += [Sample(f"temperature {t}, sample {i}", text) for i, text in enumerate(texts[:EXAMPLES_PER_TEMPERATURE], 1)]
        blocks += [Sample(STRATEGIES[name][0], texts[0] if texts else "") for name, texts in s["strategies"].items()]
    return blocks


def _training_samples(training_samples: dict[str, str]) -> list[Block]:
    """A few evaluations of each training run's samples.md (evenly spaced, first and last included)."""
    if not training_samples:
        return []
    blocks: list[Block] = [Heading(2, f"Samples during training ({SAMPLES})")]
    for name, text in training_samples.items():
        sections, omitted = pick_sections(samples_md_sections(text))
        blocks.append(Heading(3, name))
        if omitted:
            blocks.append(Paragraph(f"{omitted} of {len(sections) + omitted} evaluations left out; all are in {name}/{SAMPLES}", "note"))
        for heading, samples in sections:
            blocks.append(Heading(4, heading))
            blocks += [Sample(label, _clip(block)) for label, block in samples]
    return blocks


def _timing(report: dict[str, Any]) -> Paragraph:
    t = report["timing"]
    return Paragraph(f"analysed in {t['total_seconds']:.1f} s (corpus index {t['index_seconds']:.1f} s, "
                     f"generation {t['generate_seconds']:.1f} s, scoring {t['score_seconds']:.1f} s, plots {t['plot_seconds']:.1f} s)",
                     "footer")


# --------------------------------------------------------------------------- tables and text
def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "–"
        if v.is_integer() and abs(v) >= 10:
            return f"{int(v):,}"
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


_ONE_DECIMAL = ("self_bleu", "longest_", "length_", "tokens_")  # metrics in characters, tokens or BLEU points


def _fmt_metric(key: str, v: Any) -> str:
    """A metric with the same decimals all down its column: 1 for lengths and BLEU, else 3."""
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        return "–"
    return f"{v:,.1f}" if key.startswith(_ONE_DECIMAL) else f"{v:.3f}"


def _metric_rows(rows: list[dict[str, Any]], first: str, cols: dict[str, str]) -> tuple[list[str], list[list[str]]]:
    keys = [k for k in cols if any(k in r for r in rows)]
    headers = [first] + [cols[k] for k in keys]
    body = [[f"{r[first]:g}" if first == "temperature" else str(r[first])] + [_fmt_metric(k, r.get(k)) for k in keys] for r in rows]
    return headers, body


def _summary_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    headers = ["model", "arch", "parameters", "mode", "val loss (training)", "corpus"]
    body = []
    for r in report["models"]:
        val = r["training"].get("final_val_loss", r["training"].get("best_val_loss"))
        body.append([r["name"], str(r["arch"]), _fmt(r["parameters"]), r["mode"], _fmt(val), r["corpus"] or "–"])
    return headers, body


def _heldout_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]] | None:
    rows = [r for r in report["models"] if r["heldout"]]
    if not rows:
        return None
    headers = ["model", "loss (nats/token)", "perplexity", "bits per character"]
    return headers, [[r["name"], _fmt(r["heldout"]["loss"]), _fmt(r["heldout"]["perplexity"]), _fmt(r["heldout"]["bits_per_char"])]
                     for r in rows]


METRIC_HELP = [
    ("d-n char / d-n tok", "distinct-n: distinct n-grams ÷ n-gram occurrences, pooled over the samples, in characters or in "
                           "tokens (words; one token per Chinese character). Higher = more varied."),
    ("rep-4", "repetition: the share of a sample's character 4-grams that already occurred earlier in the same sample "
              "(mean over samples). High = the text loops."),
    ("longest repeat", "the longest substring occurring twice inside one sample (characters)."),
    ("self-BLEU", "BLEU-4 of each sample against the other samples (0–100, mean). High = the samples are alike."),
    ("8-grams in corpus", "the share of a sample's character 8-grams that occur verbatim in the training corpus "
                          "(1 − this is the novelty)."),
    ("longest copy", "the longest span of a sample found verbatim in the training corpus (characters)."),
    ("mean log p", "the mean log-probability per token the model gives its own samples (at temperature 1): "
                   "close to 0 = what the model finds most likely; very negative = improbable text."),
]


def _settings_line(report: dict[str, Any]) -> str:
    s = report["settings"]
    return (f"temperatures {', '.join(f'{t:g}' for t in s['temperatures'])}; {s['samples']} samples of {s['length']} tokens "
            f"per temperature; prompt {s['prompt']!r}; seed {s['seed']}; strategies {', '.join(s['strategies']) or 'none'}")


def pick_sections(sections: list, k: int = SAMPLES_MD_SECTIONS) -> tuple[list, int]:
    """At most ``k`` of ``sections``, evenly spaced with the first and the last, and how many were left out."""
    if len(sections) <= k:
        return sections, 0
    idx = sorted({round(i * (len(sections) - 1) / (k - 1)) for i in range(k)})
    return [sections[i] for i in idx], len(sections) - len(idx)


def _clip(text: str, limit: int = SAMPLES_MD_BLOCK_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + " …"
