"""What an analysis is asked to do: the temperatures, the decoding strategies compared, the metrics
shown, the files written, and :class:`Settings`, every argument checked before any model loads."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import XuxieError, check_count
from ..limits import check_analysis_size

DEFAULT_TEMPERATURES: tuple[float, ...] = (0.2, 0.5, 0.8, 1.0, 1.2)
#: decoding strategies compared besides the temperature sweep: (description, generate() options,
#: whether it draws ``samples`` texts or one)
STRATEGIES: dict[str, tuple[str, dict[str, Any], bool]] = {
    "greedy": ("greedy (temperature 0), 1 sample", {"temperature": 0.0}, False),
    "beam": ("beam search, 4 beams, 1 sample", {"temperature": 0.0, "num_beams": 4}, False),
    "top-p": ("top-p 0.9 at temperature 1.0", {"temperature": 1.0, "top_p": 0.9}, True),
}
DEFAULT_STRATEGIES: tuple[str, ...] = tuple(STRATEGIES)

#: the metrics plotted against temperature and shown in the tables: key → (short name, long name)
KEY_METRICS: dict[str, tuple[str, str]] = {
    "distinct_2_char": ("distinct-2 char", "distinct-2, characters (higher = more varied)"),
    "distinct_2_token": ("distinct-2 tok", "distinct-2, tokens (higher = more varied)"),
    "repetition_4": ("repetition-4", "repetition: share of a sample's char 4-grams seen earlier in it"),
    "self_bleu": ("self-BLEU", "self-BLEU across samples (higher = samples more alike)"),
    "ngram8_in_corpus": ("8-grams in corpus", "share of char 8-grams found in the training corpus (lower = more novel)"),
    "longest_copy_max": ("longest copy", "longest span copied verbatim from the corpus (chars, max over samples)"),
    "mean_logprob": ("mean log p", "mean log-probability per token under the model (nats)"),
}
#: column headings for narrow tables (the CLI)
SHORT_NAMES: dict[str, str] = {"distinct_2_char": "d-2 char", "distinct_2_token": "d-2 tok", "repetition_4": "rep-4",
                               "self_bleu": "self-BLEU", "ngram8_in_corpus": "8g in corpus", "longest_copy_max": "copy",
                               "mean_logprob": "log p"}
#: more columns for the full tables (report.md / report.html)
TABLE_METRICS: dict[str, str] = {
    "distinct_1_char": "d-1 char", "distinct_2_char": "d-2 char", "distinct_3_char": "d-3 char",
    "distinct_1_token": "d-1 tok", "distinct_2_token": "d-2 tok", "distinct_3_token": "d-3 tok",
    "repetition_4": "rep-4", "longest_repeat_mean": "longest repeat (mean)", "self_bleu": "self-BLEU",
    "ngram8_in_corpus": "8-grams in corpus", "longest_copy_mean": "longest copy (mean)", "longest_copy_max": "longest copy (max)",
    "mean_logprob": "mean log p", "length_mean": "chars (mean)", "tokens_mean": "tokens (mean)",
}
EXAMPLES_PER_TEMPERATURE = 2
NEXT_TOKEN_TOP = 20
NEXT_TOKEN_CERTAIN = 0.7  # the next-token plot skips (greedily) steps whose top token is at least this likely
NEXT_TOKEN_WALK = 50  # ... for at most this many tokens
SAMPLES_MD_SECTIONS = 6  # evaluations of samples.md shown (evenly spaced, first and last included)
SAMPLES_MD_BLOCK_CHARS = 1500

#: the files an analysis writes into its folder (besides one next-token plot per model)
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
METRICS_JSON = "metrics.json"
SAMPLES_JSON = "samples.json"
TRAINING_CURVES = "training_curves.png"

Progress = Callable[[str], None]


def metric_plot(key: str) -> str:
    """File name of the plot of metric ``key`` against temperature."""
    return f"metric_{key}.png"


def parse_temperatures(value: str | float | Sequence[float]) -> list[float]:
    """Temperatures as given (``"0.2,0.5,1.0"``, a number or a list), checked, sorted and without
    duplicates; 0 means greedy."""
    from ..api import temperature_list

    return sorted(set(temperature_list(value)))


def parse_strategies(value: str | Sequence[str] | None) -> list[str]:
    """Strategy names from a comma list (``"greedy,beam,top-p"``; ``""`` or ``"none"``: none)."""
    if value is None:
        return []
    names = [s.strip().lower() for s in value.split(",")] if isinstance(value, str) else [str(s).strip().lower() for s in value]
    names = [s for s in names if s and s != "none"]
    for s in names:
        if s not in STRATEGIES:
            raise XuxieError(f"unknown decoding strategy {s!r}; choose from {', '.join(STRATEGIES)} (a comma list, or none)")
    return list(dict.fromkeys(names))


def next_token_temperatures(temperatures: Sequence[float]) -> list[float]:
    """3–4 temperatures for the next-token plot: spread over the analysed ones (without 0)."""
    ts = sorted({t for t in temperatures if t > 0})
    if len(ts) < 3:
        return [0.2, 0.5, 1.0, 1.2]
    if len(ts) <= 4:
        return ts
    picks = sorted({ts[round(i * (len(ts) - 1) / 3)] for i in range(4)})
    return picks


@dataclass(frozen=True)
class Settings:
    """The arguments of :func:`~xuxie.report.analyze`, checked (``corpus`` and ``heldout`` as given)."""

    out: Path
    corpus: str | Path | None
    heldout: str | Path | None
    temperatures: list[float]
    strategies: list[str]
    samples: int
    length: int
    prompt: str
    seed: int | None

    @classmethod
    def check(cls, out_dir: str | Path, corpus: str | Path | None, heldout: str | Path | None,
              temperatures: str | Sequence[float], samples: int, length: int, prompt: str,
              strategies: str | Sequence[str] | None, seed: int | None) -> Settings:
        """The settings, or one line on the first bad argument — before any model is loaded."""
        temps = parse_temperatures(temperatures)
        strats = parse_strategies(strategies)
        samples = check_count(samples, "--samples")
        length = check_count(length, "--length")
        check_analysis_size(samples, length)
        if not isinstance(prompt, str):
            raise XuxieError(f"the prompt must be a string, got {type(prompt).__name__}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise XuxieError(f"--seed must be a whole number, got {seed!r}")
        out = _check_out(Path(out_dir))
        if heldout is not None and not Path(heldout).is_file():
            raise XuxieError(f"held-out file {Path(heldout)} does not exist; give a text file to score")
        return cls(out, corpus, heldout, temps, strats, samples, length, prompt, seed)

    def as_dict(self) -> dict[str, Any]:
        """The settings as ``metrics.json`` records them."""
        return {"temperatures": self.temperatures, "samples": self.samples, "length": self.length, "prompt": self.prompt,
                "seed": self.seed, "strategies": self.strategies, "corpus": None if self.corpus is None else str(self.corpus),
                "heldout": None if self.heldout is None else str(self.heldout),
                "next_token_temperatures": next_token_temperatures(self.temperatures)}


def _check_out(out: Path) -> Path:
    """``out`` when a report may be written there: not a file, not a model directory."""
    if out.exists() and not out.is_dir():
        raise XuxieError(f"--out {out} is a file; give a folder for the report")
    from ..checkpoint import is_model_dir

    if is_model_dir(out):
        raise XuxieError(f"--out {out} holds a model; write the report to another folder")
    return out
