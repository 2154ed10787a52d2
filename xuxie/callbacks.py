"""Training callbacks (Keras style): objects told of the :class:`~xuxie.training.Trainer`'s events.

Checkpoints, early stopping, the plateau schedule, sample previews, the metrics log and the
progress bar are all callbacks; add your own to ``TextGenerator.train(callbacks=[...])``. A
callback that must survive ``--resume`` returns its state from :meth:`Callback.state_dict`: the
checkpoint's trainer state carries it, and :meth:`Callback.load_state_dict` gets it back. Put such
callbacks before :class:`Checkpoint` in the list, so that the checkpoint written at an evaluation
holds what they made of it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from . import checkpoint as ckpt
from . import distributed
from .fileio import append_text

if TYPE_CHECKING:
    from .training import TrainConfig, Trainer

#: a loss must fall by more than this to count as an improvement (noise is not progress)
MIN_DELTA = 1e-4


def monitored(metrics: dict[str, Any]) -> float:
    """The figure training watches: the validation loss, or the training loss without validation text."""
    return metrics.get("val_loss", metrics["train_loss"])


def improves(loss: float, best: float) -> bool:
    return loss < best - MIN_DELTA


class Callback:
    """Training events. Override what you need; ``trainer`` gives access to everything.

    Under torchrun a callback runs in the main process only (it may write files and print),
    unless it sets ``every_process``: then every process calls it with the same metrics, as
    callbacks that steer training (stop, learning rate) must be."""

    every_process: bool = False

    def on_train_begin(self, trainer: Trainer) -> None: ...
    def on_step_end(self, trainer: Trainer, loss: float) -> None: ...
    def on_evaluate(self, trainer: Trainer, metrics: dict[str, float]) -> None: ...
    def on_train_end(self, trainer: Trainer, metrics: dict[str, float]) -> None: ...
    def on_interrupt(self, trainer: Trainer) -> None: ...

    def state_dict(self) -> dict[str, Any] | None:
        """What ``--resume`` restores of this callback (JSON-able), or ``None``: nothing."""
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


# --------------------------------------------------------------------------- state for resume
def _keyed(callbacks: Sequence[Callback]) -> list[tuple[str, Callback]]:
    """Each callback's name in a checkpoint: its class name, numbered from the second of a class on."""
    seen: dict[str, int] = {}
    out = []
    for cb in callbacks:
        name = type(cb).__name__
        seen[name] = seen.get(name, 0) + 1
        out.append((name if seen[name] == 1 else f"{name}.{seen[name]}", cb))
    return out


def callback_states(callbacks: Sequence[Callback]) -> str:
    """The callbacks' states as one JSON string (a checkpoint holds tensors and strings only)."""
    return json.dumps({key: state for key, cb in _keyed(callbacks) if (state := cb.state_dict()) is not None})


def load_callback_states(callbacks: Sequence[Callback], states: str | None, train_state: dict[str, Any]) -> None:
    """Give each callback its saved state. ``states`` is ``None`` in a checkpoint written before
    callbacks kept their own state: then the plateau-watching callbacks start from the counter the
    trainer kept for them (``train_state``'s ``best_val`` and ``bad_evals``)."""
    if states is None:
        legacy = {"best": train_state.get("best_val", math.inf), "bad_evals": train_state.get("bad_evals", 0)}
        for cb in callbacks:
            if isinstance(cb, _WatchesPlateau):
                cb.load_state_dict(legacy)
        return
    saved = json.loads(states)
    for key, cb in _keyed(callbacks):
        if key in saved:
            cb.load_state_dict(saved[key])


# --------------------------------------------------------------------------- the callbacks
class Checkpoint(Callback):
    """Best weights (``model.safetensors``) whenever the evaluation improved; a checkpoint
    (weights and trainer state) at every evaluation, every ``save_minutes`` of training in between,
    at the end, and on Ctrl-C, SIGTERM or SIGHUP; ``config.json`` with the results so far.

    Under torchrun every process takes part (the trainer state holds each one's random state);
    the main process writes, and the others wait for it."""

    every_process = True

    def on_train_begin(self, trainer):
        self.saved_at = trainer.state.elapsed
        if trainer.out_dir is not None and distributed.is_main():
            ckpt.remove_stale_temporaries(trainer.out_dir)
            self._write_config(trainer)

    def on_step_end(self, trainer, loss):
        if trainer.state.elapsed - self.saved_at >= trainer.config.save_minutes * 60:
            self._save(trainer)

    def on_evaluate(self, trainer, metrics):
        if trainer.improved:
            self._save_best(trainer)
        self._save(trainer)

    def on_train_end(self, trainer, metrics):
        self._write_config(trainer)  # first: a kill in between leaves an unfinished checkpoint, which --resume finishes
        self._save(trainer)

    def on_interrupt(self, trainer):
        self._save(trainer)
        self._write_config(trainer)

    def _save(self, trainer):
        if trainer.out_dir is not None:
            state = trainer.state_dict()  # every process: it gathers their random states
            if distributed.is_main():
                if not (trainer.out_dir / ckpt.WEIGHTS).exists():
                    self._save_best(trainer)  # first, so that generate works as soon as a checkpoint exists
                ckpt.save_checkpoint(trainer.out_dir, trainer.model, state, trainer.state.step)
            distributed.barrier()
        self.saved_at = trainer.state.elapsed

    @staticmethod
    def _save_best(trainer):
        if trainer.out_dir is not None and distributed.is_main():
            ckpt.save_weights(trainer.model, trainer.out_dir / ckpt.WEIGHTS, {"step": str(trainer.state.step)})

    @staticmethod
    def _write_config(trainer):
        if trainer.out_dir is not None and distributed.is_main():
            ckpt.write_config(trainer.out_dir, trainer.run_record())


@dataclass
class Plateau:
    """The best monitored loss so far, and the evaluations since it last improved."""

    best: float = math.inf
    bad_evals: int = 0

    def update(self, loss: float) -> bool:
        """Record an evaluation; whether it improved."""
        if improves(loss, self.best):
            self.best, self.bad_evals = loss, 0
            return True
        self.bad_evals += 1
        return False


class _WatchesPlateau(Callback):
    """A callback that acts on evaluations without improvement; its :class:`Plateau` is resumed."""

    every_process = True  # it steers training: every process must take the same decision

    def __init__(self) -> None:
        self.plateau = Plateau()

    def state_dict(self) -> dict[str, Any]:
        return asdict(self.plateau)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.plateau = Plateau(**state)


class EarlyStopping(_WatchesPlateau):
    """Stops training after ``patience`` evaluations in a row without improvement (0: never)."""

    def __init__(self, patience: int):
        super().__init__()
        self.patience = patience

    def on_evaluate(self, trainer, metrics):
        self.plateau.update(monitored(metrics))
        if self.patience and self.plateau.bad_evals >= self.patience:
            trainer.request_stop(f"early stop: no improvement in {self.patience} evaluations")


class ReduceLROnPlateau(_WatchesPlateau):
    """Multiplies the learning rate by ``factor`` after every ``patience`` evaluations without
    improvement (``--schedule plateau``; the trainer adds one for that schedule when its list has none)."""

    def __init__(self, factor: float = 0.5, patience: int = 1):
        super().__init__()
        self.factor = factor
        self.patience = max(patience, 1)

    def on_evaluate(self, trainer, metrics):
        if not self.plateau.update(monitored(metrics)) and self.plateau.bad_evals % self.patience == 0:
            trainer.state.lr_scale *= self.factor


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


def default_callbacks(config: TrainConfig, console=None, progress: bool = True) -> list[Callback]:
    """The progress bar (when ``progress``), the metrics log, early stopping, checkpoints and
    sample previews; the trainer adds the plateau schedule's callback itself."""
    cbs: list[Callback] = [MetricsLog(), EarlyStopping(config.patience), Checkpoint(),
                           SamplePreview(config.preview_temperatures, config.preview_length, console)]
    if progress:
        cbs.insert(0, ProgressBar(console))
    return cbs


def with_schedule_callbacks(callbacks: Sequence[Callback], config: TrainConfig) -> list[Callback]:
    """``callbacks``, first a :class:`ReduceLROnPlateau` for ``--schedule plateau`` when they hold none."""
    cbs = list(callbacks)
    if config.schedule == "plateau" and not any(isinstance(cb, ReduceLROnPlateau) for cb in cbs):
        cbs.insert(0, ReduceLROnPlateau(config.plateau_factor, config.plateau_patience))
    return cbs


__all__ = [
    "Callback", "Checkpoint", "EarlyStopping", "MetricsLog", "Plateau", "ProgressBar", "ReduceLROnPlateau", "SamplePreview",
    "callback_states", "default_callbacks", "load_callback_states", "monitored", "with_schedule_callbacks",
]
