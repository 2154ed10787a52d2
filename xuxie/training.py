"""The :class:`Trainer`: optimisation, schedule, evaluation, callbacks, checkpoints and resume.

It knows nothing model-specific: it drives ``model(ids, state) -> (logits, state)`` on random
windows of one id array. Training events go to small callback objects (Keras style) that the
user can add to or replace: checkpointing, early stopping, sample previews, the metrics log and
the progress bar are all callbacks.
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from . import checkpoint as ckpt
from .data import LMBatches, PairBatch, PairBatches, PairData, eval_streams
from .decoding import DecodingSetup, GenerationConfig
from .errors import XuxieError, XuxieWarning, check_numbers
from .fileio import append_text, atomic_write_text
from .models import LanguageModel
from .threads import threads_scope
from .tokenizers import PAD, Tokenizer

LN2 = math.log(2)
SCHEDULES = ("cosine", "plateau", "constant")
PRECISIONS = ("auto", "bf16", "fp32")


@dataclass
class TrainConfig:
    """Training settings. Defaults were chosen by measurement on 2 CPU cores (see README)."""

    seq_len: int = 128
    batch_size: int = 32
    grad_accum: int = 1  # micro-batches of batch_size per optimiser step
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50  # or 5% of the budget, whichever ends first
    schedule: str = "cosine"
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    # Budget: whichever comes first. Nothing set: 5 minutes.
    epochs: float | None = None
    steps: int | None = None
    time_minutes: float | None = None
    # Evaluation.
    val_fraction: float = 0.1
    eval_interval: int | None = None  # steps; None: every eval_seconds
    eval_seconds: float | None = None  # None: about 8 evaluations over a time budget
    eval_tokens: int = 40_000  # periodic evaluations read at most this many tokens (the final one reads all)
    save_minutes: float = 3.0  # a checkpoint at least this often, between evaluations too
    patience: int = 0  # early stopping after this many evaluations without improvement; 0: off
    plateau_factor: float = 0.5
    plateau_patience: int = 1
    precision: str = "auto"
    seed: int = 1234
    log_every: int = 50
    preview_temperatures: tuple[float, ...] = (0.2, 0.5, 1.0, 1.2)
    preview_length: int = 200

    def validate(self) -> TrainConfig:
        check_numbers(vars(self))
        if self.grad_accum < 1:
            raise XuxieError(f"--grad-accum must be at least 1, got {self.grad_accum}")
        if self.seq_len < 1 or self.batch_size < 1:
            raise XuxieError("--seq-len and --batch-size must be at least 1")
        if not self.lr > 0:
            raise XuxieError(f"learning rate must be positive, got {self.lr}")
        if self.schedule not in SCHEDULES:
            raise XuxieError(f"unknown schedule '{self.schedule}'; choose one of: {', '.join(SCHEDULES)}")
        if self.precision not in PRECISIONS:
            raise XuxieError(f"unknown precision '{self.precision}'; choose one of: {', '.join(PRECISIONS)}")
        for name in ("epochs", "steps", "time_minutes"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise XuxieError(f"--{name.replace('_minutes', '')} must be positive, got {v}")
        if not self.save_minutes > 0:
            raise XuxieError(f"--save-every must be a positive number of minutes, got {self.save_minutes}")
        if self.eval_interval is not None and self.eval_interval < 1:
            raise XuxieError(f"eval interval must be at least 1 step, got {self.eval_interval}")
        if self.patience < 0:
            raise XuxieError(f"patience must be 0 (off) or more, got {self.patience}")
        return self

    def budget_minutes(self) -> float | None:
        if self.epochs is None and self.steps is None and self.time_minutes is None:
            return 5.0
        return self.time_minutes

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["preview_temperatures"] = list(self.preview_temperatures)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        if "preview_temperatures" in d:
            d["preview_temperatures"] = tuple(d["preview_temperatures"])
        return cls(**d)


@dataclass
class TrainState:
    """Everything about progress that --resume restores."""

    step: int = 0
    tokens: int = 0
    elapsed: float = 0.0  # seconds of training (including evaluations) over all sessions
    best_val: float = float("inf")
    best_step: int = 0
    bad_evals: int = 0
    lr_scale: float = 1.0
    last_eval_step: int = -1
    last_eval_time: float = 0.0
    train_loss: float = float("nan")  # exponential moving average
    finished: bool = False


# --------------------------------------------------------------------------- callbacks
class Callback:
    """Training events. Override what you need; ``trainer`` gives access to everything."""

    def on_train_begin(self, trainer: Trainer) -> None: ...
    def on_step_end(self, trainer: Trainer, loss: float) -> None: ...
    def on_evaluate(self, trainer: Trainer, metrics: dict[str, float]) -> None: ...
    def on_train_end(self, trainer: Trainer, metrics: dict[str, float]) -> None: ...
    def on_interrupt(self, trainer: Trainer) -> None: ...


class Checkpoint(Callback):
    """Best weights on improvement; a checkpoint (weights and trainer state) at every evaluation,
    every ``save_minutes`` of training in between, at the end, and on Ctrl-C, SIGTERM or SIGHUP."""

    def on_train_begin(self, trainer):
        self.saved_at = trainer.state.elapsed

    def _save(self, trainer):
        trainer.save_checkpoint()
        self.saved_at = trainer.state.elapsed

    def on_step_end(self, trainer, loss):
        if trainer.state.elapsed - self.saved_at >= trainer.config.save_minutes * 60:
            self._save(trainer)

    def on_evaluate(self, trainer, metrics):
        if trainer.improved:
            trainer.save_best()
        self._save(trainer)

    def on_train_end(self, trainer, metrics):
        trainer.write_config()  # first: a kill in between leaves an unfinished checkpoint, which --resume finishes
        self._save(trainer)

    def on_interrupt(self, trainer):
        self._save(trainer)
        trainer.write_config()


class EarlyStopping(Callback):
    def __init__(self, patience: int):
        self.patience = patience

    def on_evaluate(self, trainer, metrics):
        if self.patience and trainer.state.bad_evals >= self.patience:
            trainer.request_stop(f"early stop: no improvement in {self.patience} evaluations")


class MetricsLog(Callback):
    """Appends metrics to ``log.jsonl`` (one JSON object per line)."""

    def _write(self, trainer, record):
        if trainer.out_dir is not None:
            append_text(trainer.out_dir / ckpt.LOG, json.dumps(record) + "\n")

    def on_step_end(self, trainer, loss):
        s = trainer.state
        if s.step % trainer.config.log_every == 0:
            self._write(trainer, {"event": "train", "step": s.step, "loss": round(loss, 5),
                                  "loss_avg": round(s.train_loss, 5), "lr": trainer.current_lr,
                                  "tokens": s.tokens, "elapsed": round(s.elapsed, 2),
                                  "tokens_per_s": round(trainer.tokens_per_second, 1)})

    def on_evaluate(self, trainer, metrics):
        self._write(trainer, {"event": "eval", **metrics})

    def on_train_end(self, trainer, metrics):
        self._write(trainer, {"event": "end", **metrics})


class SamplePreview(Callback):
    """At every evaluation, writes a sample at each preview temperature: shown on the console and
    appended to ``samples.md``."""

    def __init__(self, temperatures: Sequence[float], length: int, console=None):
        self.temperatures = list(temperatures)
        self.length = length
        self.console = console

    def on_evaluate(self, trainer, metrics):
        if not self.temperatures or self.length <= 0:
            return
        samples = trainer.preview(self.temperatures, self.length)
        s = trainer.state
        lines = [f"\n## step {s.step} · {s.elapsed:.0f} s · val loss {metrics.get('val_loss', float('nan')):.4f}\n"]
        if trainer.preview_input is not None:
            lines.append(f"\n**input**\n\n```\n{trainer.preview_input}\n```\n")
        for temp, text in samples:
            lines.append(f"\n**temperature {temp}**\n\n```\n{text}\n```\n")
        if trainer.out_dir is not None:
            append_text(trainer.out_dir / ckpt.SAMPLES, "".join(lines))
        if self.console is not None:
            from rich.markup import escape
            from rich.panel import Panel

            body = "\n".join(f"[bold cyan]T={temp}[/] {escape(text)}" for temp, text in samples)
            self.console.print(Panel(body, title=f"samples at step {s.step}", expand=False))


class ProgressBar(Callback):
    """A rich progress bar: step, loss, tokens/s, elapsed and ETA."""

    def __init__(self, console=None):
        self.console = console
        self.progress = None

    def on_train_begin(self, trainer):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]train[/]"), BarColumn(), TextColumn("step {task.fields[step]}"),
            TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[tps]} tok/s"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=self.console, transient=False,
        )
        self.progress.start()
        total, done = trainer.progress_fraction()
        self.task = self.progress.add_task("train", total=1000, completed=int(done * 1000), step=trainer.state.step, loss="-", tps="-")

    def on_step_end(self, trainer, loss):
        if self.progress is None or trainer.state.step % 5:
            return
        _, frac = trainer.progress_fraction()
        self.progress.update(self.task, completed=int(min(frac, 1.0) * 1000), step=trainer.state.step,
                             loss=f"{trainer.state.train_loss:.3f}", tps=f"{trainer.tokens_per_second:,.0f}")

    def on_evaluate(self, trainer, metrics):
        if self.progress is not None:
            self.progress.console.print(
                f"step {metrics['step']:>6}  train {metrics['train_loss']:.4f}  val {metrics.get('val_loss', float('nan')):.4f}"
                f"  ppl {metrics.get('val_ppl', float('nan')):.2f}  bpc {metrics.get('val_bpc', float('nan')):.3f}"
                f"  lr {metrics['lr']:.2e}  {metrics['tokens_per_s']:,.0f} tok/s  {metrics['elapsed']:.0f} s"
                + ("  [green]best[/]" if trainer.improved else "")
            )

    def _stop(self):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def on_train_end(self, trainer, metrics):
        self._stop()

    def on_interrupt(self, trainer):
        self._stop()


# --------------------------------------------------------------------------- the trainer
def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 when asked, or with ``auto`` when the device runs it fast (CPUs with AVX-512 bf16 /
    AMX, CUDA with bf16); ``None`` means fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu":
        try:
            return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else None
        except (AttributeError, RuntimeError):
            return None
    return None


@torch.no_grad()
def pair_loss(model: LanguageModel, data: PairData, max_tokens: int | None = None, amp_dtype: torch.dtype | None = None,
              batch_size: int = 64) -> dict[str, float]:
    """Teacher-forced loss per target token (``<eos>`` included) of an encoder–decoder over
    ``data`` (the first pairs holding about ``max_tokens`` target tokens, when given)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    device = model.device
    try:
        for batch in data.ordered_batches(batch_size, device, max_tokens):
            with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
                logits = model.forward_pairs(batch.src, batch.src_len, batch.tgt_in)
            y = batch.tgt_out
            total += F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=PAD, reduction="sum").item()
            count += int((y != PAD).sum())
    finally:
        model.train(was_training)
    loss = total / max(count, 1)
    return {"loss": loss, "ppl": math.exp(min(loss, 50)), "tokens": count}


def _forget_log_after(log: Path, step: int) -> None:
    """Drop what log.jsonl says about steps after ``step``: a killed run logged steps that its
    resumed run does again, and a log read as one history must not hold them twice. A line torn
    by the kill goes too."""
    if not log.is_file():
        return
    kept = []
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("step", 0) <= step:
            kept.append(line + "\n")
    atomic_write_text(log, "".join(kept))


class TrainingInterrupted(KeyboardInterrupt):
    """Raised after Ctrl-C (or SIGTERM/SIGHUP) once the last checkpoint is safely written;
    ``exit_code`` follows the shell's convention, 128 + the signal's number."""

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.exit_code = 128 + int(signum)


#: signals that stop training at the next step boundary with a checkpoint (SIGHUP: a closed
#: terminal or SSH session; SIGTERM: kill, systemd, docker stop, a batch scheduler's time limit)
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class Trainer:
    def __init__(self, model: LanguageModel, tokenizer: Tokenizer, train_ids: np.ndarray,
                 val_ids: np.ndarray | None, config: TrainConfig, out_dir: str | Path | None = None,
                 run_info: dict[str, Any] | None = None, callbacks: Sequence[Callback] | None = None,
                 val_chars: int | None = None, mode: str = "text"):
        self.config = config.validate()
        self.model = model
        self.tokenizer = tokenizer
        self.mode = mode
        self.device = model.device
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.run_info = dict(run_info or {})
        #: source→target pairs (an encoder–decoder) rather than one stream of text
        self.pairs = isinstance(train_ids, PairData)
        if self.pairs:
            self.batches = PairBatches(train_ids, config.batch_size, self.device, config.seed)
            self.val_ids = val_ids if val_ids is not None and len(val_ids) > 0 else None
            val_tokens = self.val_ids.target_tokens if self.val_ids is not None else 0
        else:
            self.batches = LMBatches(train_ids, config.seq_len, config.batch_size, self.device)
            self.val_ids = val_ids if val_ids is not None and len(val_ids) > 1 else None
            val_tokens = len(self.val_ids) - 1 if self.val_ids is not None else 0
        # Characters per token of the validation text, for bits per character.
        self.chars_per_token = (val_chars / max(val_tokens, 1)) if (val_chars and self.val_ids is not None) else 1.0
        #: the input the sample previews answer (encoder–decoder models)
        self.preview_input: str | None = None
        self.optimizer = self._make_optimizer()
        self.amp_dtype = autocast_dtype(config.precision, self.device)
        self.generator = torch.Generator()
        self.generator.manual_seed(config.seed)
        torch.manual_seed(config.seed)
        self.state = TrainState()
        self.callbacks: list[Callback] = list(callbacks) if callbacks is not None else []
        self.improved = False
        self.current_lr = config.lr
        self.tokens_per_second = 0.0
        self._stop_reason: str | None = None
        self._session_start = 0.0
        self._session_elapsed0 = 0.0
        self._rate_window: list[tuple[float, int]] = []
        self.final_metrics: dict[str, Any] = {}

    # -- setup -------------------------------------------------------------------------------
    def _make_optimizer(self) -> torch.optim.Optimizer:
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            if not p.requires_grad:
                continue
            (decay if p.dim() >= 2 and "embed" not in name else no_decay).append(p)
        groups = [{"params": decay, "weight_decay": self.config.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
        kwargs: dict[str, Any] = {"lr": self.config.lr, "betas": (0.9, 0.99)}
        if self.device.type == "cpu":
            kwargs["foreach"] = True
        return torch.optim.AdamW(groups, **kwargs)

    def total_steps(self) -> int | None:
        c = self.config
        limits = []
        if c.steps is not None:
            limits.append(int(c.steps))
        if c.epochs is not None:
            limits.append(max(1, int(round(c.epochs * self.batches.steps_per_epoch() / c.grad_accum))))
        return min(limits) if limits else None

    def budget_seconds(self) -> float | None:
        m = self.config.budget_minutes()
        return None if m is None else m * 60.0

    def progress_fraction(self) -> tuple[str, float]:
        """(what limits the run, fraction of it done)."""
        fracs = []
        total = self.total_steps()
        if total:
            fracs.append(("steps", self.state.step / total))
        secs = self.budget_seconds()
        if secs:
            fracs.append(("time", self.state.elapsed / secs))
        return max(fracs, key=lambda x: x[1]) if fracs else ("steps", 0.0)

    def budget_done(self) -> bool:
        return self.progress_fraction()[1] >= 1.0

    def lr_at(self, step: int, fraction: float) -> float:
        c = self.config
        # Warm-up ends after warmup_steps or 5% of the budget, whichever comes first: a slow model
        # (large vocabulary, big batch) would otherwise spend much of a short run warming up.
        warm = min(1.0, max((step + 1) / max(c.warmup_steps, 1), fraction / 0.05))
        if c.schedule == "cosine":
            f = min(max(fraction, 0.0), 1.0)
            scale = c.min_lr_ratio + (1 - c.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * f))
        elif c.schedule == "plateau":
            scale = self.state.lr_scale
        else:
            scale = 1.0
        return c.lr * warm * scale

    def request_stop(self, reason: str) -> None:
        self._stop_reason = reason

    # -- state for resume --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "state": json.dumps(asdict(self.state)),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.state = TrainState(**json.loads(d["state"]))
        self.optimizer.load_state_dict(d["optimizer"])
        self.generator.set_state(d["generator"])
        torch.set_rng_state(d["torch_rng"])

    def resume(self) -> None:
        """Continue from ``out_dir``'s newest whole checkpoint: weights, optimiser, step, schedule,
        RNG. With none (killed before the first), the run starts again from step 0."""
        if self.out_dir is None:
            raise XuxieError("resume needs an output directory")
        d = ckpt.load_checkpoint(self.out_dir, self.model, self.device)
        if d is None:
            warnings.warn(f"{self.out_dir} has no checkpoint yet; training starts again from step 0", XuxieWarning, stacklevel=2)
        else:
            self.load_state_dict(d)
        _forget_log_after(self.out_dir / ckpt.LOG, self.state.step)

    # -- checkpoints -------------------------------------------------------------------------
    def save_best(self) -> None:
        if self.out_dir is not None:
            ckpt.save_weights(self.model, self.out_dir / ckpt.WEIGHTS, {"step": str(self.state.step)})

    def save_checkpoint(self) -> None:
        if self.out_dir is None:
            return
        if not (self.out_dir / ckpt.WEIGHTS).exists():
            self.save_best()  # first, so that generate works as soon as a checkpoint exists
        ckpt.save_checkpoint(self.out_dir, self.model, self.state_dict(), self.state.step)

    def summary(self) -> dict[str, Any]:
        s = self.state
        return {"steps": s.step, "tokens": s.tokens, "seconds": round(s.elapsed, 1),
                "best_val_loss": None if math.isinf(s.best_val) else round(s.best_val, 5),
                "best_val_bpc": None if math.isinf(s.best_val) else round(s.best_val * self.chars_per_token / LN2, 5),
                "best_step": s.best_step, "tokens_per_s": round(self.tokens_per_second, 1),
                "precision": "bf16" if self.amp_dtype == torch.bfloat16 else "fp32",
                **{f"final_{k}": round(v, 5) for k, v in self.final_metrics.items() if k.startswith("val_") and k != "val_tokens"}}

    def write_config(self) -> None:
        if self.out_dir is None:
            return
        info = dict(self.run_info)
        info["train"] = self.config.to_dict()
        info["results"] = self.summary()
        ckpt.write_config(self.out_dir, info)

    # -- evaluation --------------------------------------------------------------------------
    def _logits_targets(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(batch, PairBatch):
            return self.model.forward_pairs(batch.src, batch.src_len, batch.tgt_in), batch.tgt_out
        x, y = batch
        logits, _ = self.model(x, None)
        return logits, y

    @torch.no_grad()
    def evaluate_pairs(self, data: PairData, max_tokens: int | None = None, amp: bool = True) -> dict[str, float]:
        r = pair_loss(self.model, data, max_tokens, self.amp_dtype if amp else None)
        return {**r, "bpc": r["loss"] * self.chars_per_token / LN2}

    @torch.no_grad()
    def evaluate_ids(self, ids: np.ndarray, max_tokens: int | None = None, amp: bool = True) -> dict[str, float]:
        if isinstance(ids, PairData):
            return self.evaluate_pairs(ids, max_tokens, amp)
        was_training = self.model.training
        self.model.eval()
        carry = self.model.carries_state
        seq_len = 256 if carry else self.config.seq_len
        total, count, state = 0.0, 0, None
        dtype = self.amp_dtype if amp else None
        try:
            for x, y in eval_streams(ids, seq_len, 16, max_tokens):
                x, y = x.to(self.device), y.to(self.device)
                with torch.autocast(self.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                    logits, new_state = self.model(x, state if carry else None)
                state = self.model.detach_state(new_state) if carry else None
                total += F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item()
                count += y.numel()
        finally:
            self.model.train(was_training)
        loss = total / max(count, 1)
        return {"loss": loss, "ppl": math.exp(min(loss, 50)), "bpc": loss * self.chars_per_token / LN2, "tokens": count}

    def _evaluate(self, final: bool = False) -> dict[str, float]:
        s = self.state
        metrics: dict[str, Any] = {"step": s.step, "elapsed": round(s.elapsed, 2), "tokens": s.tokens,
                                   "train_loss": s.train_loss, "lr": self.current_lr,
                                   "tokens_per_s": round(self.tokens_per_second, 1)}
        self.improved = False
        if self.val_ids is not None:
            r = self.evaluate_ids(self.val_ids, None if final else self.config.eval_tokens, amp=not final)
            metrics.update(val_loss=r["loss"], val_ppl=r["ppl"], val_bpc=r["bpc"], val_tokens=r["tokens"])
            key = r["loss"]
        else:
            key = s.train_loss
        if key < s.best_val - 1e-4:
            s.best_val, s.best_step, s.bad_evals = key, s.step, 0
            self.improved = True
        else:
            s.bad_evals += 1
            if self.config.schedule == "plateau" and s.bad_evals % max(self.config.plateau_patience, 1) == 0:
                s.lr_scale *= self.config.plateau_factor
        s.last_eval_step = s.step
        s.last_eval_time = s.elapsed
        return metrics

    def preview(self, temperatures: Sequence[float], length: int) -> list[tuple[float, str]]:
        was_training = self.model.training
        self.model.eval()
        try:
            # The same end, suppressed ids and constraints as the trained model will decode with.
            setup = DecodingSetup.for_model(self.model, self.tokenizer, self.mode)
            if self.pairs:  # answer the first validation (else training) source
                data = self.val_ids if self.val_ids is not None else self.batches.data
                prompt = [int(t) for t in data.src[0, :data.src_len[0]]]
                self.preview_input = self.tokenizer.decode(prompt)
                length = min(length, getattr(self.model.config, "max_target_len", length))
            else:
                prompt = setup.prompt_ids("")
            out = []
            for i, temp in enumerate(temperatures):
                cfg = GenerationConfig(max_new_tokens=length, temperature=temp, seed=self.config.seed + self.state.step + i)
                out.append((temp, setup.texts(prompt, cfg)[0]))
            return out
        finally:
            self.model.train(was_training)

    def _eval_due(self) -> bool:
        c, s = self.config, self.state
        if c.eval_interval is not None:
            return s.step % c.eval_interval == 0
        every = c.eval_seconds
        if every is None:
            secs = self.budget_seconds()
            total = self.total_steps()
            if secs is None and total:
                return s.step % max(1, total // 8) == 0
            every = min(max((secs or 600) / 8, 10.0), 300.0)
        return s.elapsed - s.last_eval_time >= every

    # -- the loop ----------------------------------------------------------------------------
    def _train_step(self, lr: float) -> float:
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        n = self.config.grad_accum
        total = 0.0
        for _ in range(n):
            batch = self.batches.sample(self.generator)
            with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.bfloat16, enabled=self.amp_dtype is not None):
                logits, y = self._logits_targets(batch)
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=PAD)
            (loss / n).backward()
            total += loss.item()
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        return total / n

    def _tick(self) -> None:
        s = self.state
        now = time.perf_counter()
        s.elapsed = self._session_elapsed0 + (now - self._session_start)
        self._rate_window.append((now, s.tokens))
        if len(self._rate_window) > 50:
            self._rate_window.pop(0)
        (t0, n0), (t1, n1) = self._rate_window[0], self._rate_window[-1]
        if t1 > t0:
            self.tokens_per_second = (n1 - n0) / (t1 - t0)

    def _catch_stop_signals(self) -> dict[int, Any]:
        """Ctrl-C, SIGTERM and SIGHUP stop at the next step boundary (so the checkpoint written is
        consistent); a second one interrupts at once. Returns the handlers to restore (none off the
        main thread). Installed even when SIGINT was inherited as ignored (a job started in the
        background by a script): found when such a run never answered Ctrl-C in CI."""
        self._stop_signal: int | None = None
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum, frame):
            if self._stop_signal is not None:
                raise KeyboardInterrupt
            self._stop_signal = signum

        previous = {}
        for signum in STOP_SIGNALS:
            previous[signum] = signal.getsignal(signum)
            signal.signal(signum, handler)
        return previous

    @threads_scope("train")
    def fit(self) -> dict[str, Any]:
        """Train until the budget is spent (or early stopping); returns the final metrics."""
        s = self.state
        if s.finished and self.budget_done():
            raise XuxieError(f"this run already reached its budget (step {s.step}, {s.elapsed / 60:.1f} min); raise --steps/--epochs/--time to train further")
        s.finished = False  # a run killed after its last step but before the end is finished below
        self.model.train()
        self._session_start = time.perf_counter()
        self._session_elapsed0 = s.elapsed
        self._rate_window = [(self._session_start, s.tokens)]
        for cb in self.callbacks:
            cb.on_train_begin(self)
        previous_handlers = self._catch_stop_signals()
        try:
            if self.out_dir is not None:
                ckpt.remove_stale_temporaries(self.out_dir)
                self.write_config()
            while not self.budget_done() and self._stop_reason is None:
                if self._stop_signal is not None:
                    raise KeyboardInterrupt
                frac = self.progress_fraction()[1]
                self.current_lr = self.lr_at(s.step, frac)
                loss = self._train_step(self.current_lr)
                if not math.isfinite(loss):
                    raise XuxieError(f"training diverged at step {s.step + 1} (loss {loss}); lower --lr or raise --warmup")
                s.step += 1
                s.tokens += self.batches.tokens_per_batch * self.config.grad_accum
                s.train_loss = loss if math.isnan(s.train_loss) else 0.98 * s.train_loss + 0.02 * loss
                self._tick()
                if self._eval_due() and not self.budget_done():
                    metrics = self._evaluate()
                    for cb in self.callbacks:
                        cb.on_evaluate(self, metrics)
                    self._tick()
                # After the evaluation: a checkpoint written here is resumed after this step's
                # evaluation, so a resumed run repeats exactly what an unbroken one does.
                for cb in self.callbacks:
                    cb.on_step_end(self, loss)
        except KeyboardInterrupt:
            self._tick()
            for cb in self.callbacks:
                cb.on_interrupt(self)
            signum = self._stop_signal or signal.SIGINT
            raise TrainingInterrupted(f"interrupted ({signal.Signals(signum).name}) at step {s.step}; the checkpoint is saved — "
                                      "continue with --resume", signum) from None
        finally:
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)
        if s.last_eval_step != s.step:
            metrics = self._evaluate()
            for cb in self.callbacks:
                cb.on_evaluate(self, metrics)
        # The figure to report: the final weights on the whole validation set, in fp32.
        final: dict[str, Any] = {"step": s.step, "elapsed": round(s.elapsed, 2), "tokens": s.tokens,
                                 "tokens_per_s": round(self.tokens_per_second, 1)}
        if self.val_ids is not None:
            r = self.evaluate_ids(self.val_ids, None, amp=False)
            final.update(val_loss=r["loss"], val_ppl=r["ppl"], val_bpc=r["bpc"], val_tokens=r["tokens"])
        self.final_metrics = final
        s.finished = True
        if self._stop_reason:
            final["stopped"] = self._stop_reason
        for cb in self.callbacks:
            cb.on_train_end(self, final)
        return final


def default_callbacks(config: TrainConfig, console=None, progress: bool = True) -> list[Callback]:
    cbs: list[Callback] = [MetricsLog(), Checkpoint(), EarlyStopping(config.patience),
                           SamplePreview(config.preview_temperatures, config.preview_length, console)]
    if progress:
        cbs.insert(0, ProgressBar(console))
    return cbs


__all__ = [
    "Callback", "Checkpoint", "EarlyStopping", "MetricsLog", "ProgressBar", "SamplePreview",
    "TrainConfig", "TrainState", "Trainer", "TrainingInterrupted", "autocast_dtype", "default_callbacks", "pair_loss",
]
