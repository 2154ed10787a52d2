"""Interactive writing (``xuxie write MODEL``) and the ``--to-file`` samples format.

At each step the program shows the text so far and the model's most likely next tokens with
their probabilities, then reads one command line (plain ``input()``, so it works in any
terminal, a pipe, or under pexpect)::

    3         pick option 3
    w 20      let the model write 20 tokens (sampling at the current temperature)
    u         undo the last action
    t TEXT    type TEXT (any line that is not a command is typed too; \\n is a line break)
    temp 0.5  set the temperature used by w
    s FILE    save the text (atomically)
    q         quit            ?  help
"""

from __future__ import annotations

import datetime as _dt
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from .chars import EMPTY_TOKEN, WHITESPACE_SYMBOLS, show_whitespace
from .decoding import Temperature, encode_user_text
from .errors import XuxieError, XuxieWarning
from .fileio import atomic_write_text

HELP = """commands:
  N          pick option N
  w K        let the model write K tokens (default 10) at the current temperature; Ctrl-C stops it
  u          undo the last action
  t TEXT     type TEXT (any line that is not a command is typed as well; \\n is a line break)
  temp X     set the temperature for w (0: greedy)
  s FILE     save the text to FILE
  q          quit
  ?          this help"""


def samples_file_text(texts: Sequence[str], settings: dict[str, Any]) -> str:
    """The ``--to-file`` format: a ``#`` header of the settings, then one block per sample."""
    temps = list(settings.get("temperature") or [1.0])
    lines = ["# xuxie generate", f"# date: {_dt.datetime.now(_dt.UTC).isoformat(timespec='seconds')}"]
    for key, value in settings.items():
        if key == "temperature":
            value = ", ".join(f"{t:g}" for t in temps)
        elif key == "prompt":
            value = repr(value)
        lines.append(f"# {key}: {value}")
    lines.append("")
    for i, text in enumerate(texts):
        lines.append(f"--- sample {i + 1} (temperature {temps[i % len(temps)]:g}) ---")
        lines.append(text)
        lines.append("")
    return "\n".join(lines)


def show_token(piece: str) -> str:
    """A token as it reads in the options list: newline ⏎, space ␣, tab ⇥."""
    return show_whitespace(piece, {**WHITESPACE_SYMBOLS, "\r": "␍"}) or EMPTY_TOKEN


@dataclass
class _Snapshot:
    text: str
    tokens: int
    logits: torch.Tensor
    state: Any


class WritingSession:
    """The text so far, the model state after it, and an undo stack."""

    def __init__(self, tg, prompt: str = "", temperature: float = 1.0, seed: int | None = None):
        self.tg = tg
        self.model = tg.model
        self.tokenizer = tg.tokenizer
        self.model.eval()
        setup = tg.decoding
        # The model's suppressed ids and, whatever its mode, its end: a text written here ends when the user says so.
        self.suppress = [*setup.suppress, *([] if setup.eos_id is None else [setup.eos_id])]
        self.temperature = temperature
        self.generator = torch.Generator(device=self.model.device)
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(int(seed))
        ids = setup.prompt_ids(prompt)
        with torch.inference_mode():
            logits, state = self.model.prefill(torch.tensor([ids], dtype=torch.long, device=self.model.device))
        self.text = prompt
        self.tokens = len(self.tokenizer.encode(prompt)) if prompt else 0
        self.logits = logits[0, -1].float()
        self.state = state
        self.undo_stack: list[_Snapshot] = []

    # -- model -------------------------------------------------------------------------------
    def probabilities(self, temperature: float = 1.0) -> torch.Tensor:
        scores = self.logits.clone()
        scores[self.suppress] = float("-inf")
        if temperature > 0 and temperature != 1.0:
            scores = Temperature(temperature)(None, scores[None])[0]
        return scores.softmax(-1)

    def top(self, k: int) -> list[tuple[int, str, float]]:
        probs = self.probabilities()
        values, index = probs.topk(min(k, probs.numel()))
        return [(int(i), self.tokenizer.piece(int(i)), float(p)) for p, i in zip(values, index) if p > 0]

    def _snapshot(self) -> _Snapshot:
        # reorder_state copies (a KV cache is updated in place by step)
        first_row = torch.zeros(1, dtype=torch.long, device=self.model.device)
        state = None if self.state is None else self.model.reorder_state(self.state, first_row)
        return _Snapshot(self.text, self.tokens, self.logits.clone(), state)

    @torch.inference_mode()
    def _step(self, token_id: int) -> None:
        """Feed one token to the model (the text is the caller's to extend)."""
        logits, self.state = self.model.step(torch.tensor([token_id], dtype=torch.long, device=self.model.device), self.state)
        self.logits = logits[0].float()
        self.tokens += 1

    def _feed(self, token_id: int) -> None:
        """Add a token the model wrote or the user picked."""
        self._step(token_id)
        self.text += self.tokenizer.piece(token_id)

    # -- actions -----------------------------------------------------------------------------
    def pick(self, token_id: int) -> None:
        self.undo_stack.append(self._snapshot())
        self._feed(token_id)

    def type_text(self, text: str) -> None:
        ids = encode_user_text(self.tokenizer, text, "the typed text")
        if not ids:
            return
        self.undo_stack.append(self._snapshot())
        for i in ids:
            self._step(i)
        self.text += text  # the user's own characters: one the model never saw is <unk> to it, not U+FFFD

    def write(self, k: int, stop: Callable[[], bool] = lambda: False) -> int:
        """Let the model write ``k`` tokens, or fewer when ``stop()`` turns true; returns how many it wrote."""
        if k < 1:
            raise XuxieError(f"w needs a positive number of tokens, got {k}")
        self.undo_stack.append(self._snapshot())
        for written in range(k):
            if stop():
                if not written:
                    self.undo_stack.pop()  # nothing was written: nothing to undo
                return written
            probs = self.probabilities(self.temperature)
            if self.temperature == 0:
                token = int(probs.argmax())
            else:
                token = int(torch.multinomial(probs, 1, generator=self.generator))
            self._feed(token)
        return k

    def undo(self) -> bool:
        if not self.undo_stack:
            return False
        s = self.undo_stack.pop()
        self.text, self.tokens, self.logits, self.state = s.text, s.tokens, s.logits, s.state
        return True

    def save(self, path: str) -> None:
        atomic_write_text(path, self.text)


@contextmanager
def ctrl_c_stops() -> Iterator[Callable[[], bool]]:
    """Ctrl-C asks the work in this block to stop instead of ending the program; yields a function
    telling whether it was pressed. So ``w 100000`` can be cut short keeping the session and its
    text, and the model stops between tokens, never inside one. (Signal handlers can only be set
    from the main thread; elsewhere Ctrl-C keeps its usual meaning.)"""
    pressed = threading.Event()
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pressed.set()) if in_main_thread else None
    try:
        yield pressed.is_set
    finally:
        if in_main_thread:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)


@contextmanager
def warnings_shown(write: Callable[[str], None]) -> Iterator[None]:
    """xuxie's warnings during one command as ``warning:`` lines in the session, every time (Python
    shows a repeated warning once per process) and in order with the screen."""
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", XuxieWarning)
            yield
    finally:
        for w in caught:
            if issubclass(w.category, XuxieWarning):
                write(f"warning: {w.message}")
            else:
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def render(session: WritingSession, top: int) -> str:
    lines = [f"┌─ text ({session.tokens} tokens) ─", session.text, "└─", f"next token (temperature for w: {session.temperature:g}):"]
    for n, (_, piece, p) in enumerate(session.top(top), 1):
        lines.append(f"  {n:>2}  {show_token(piece):<8} {100 * p:5.1f}%")
    lines.append("N pick · w K write · u undo · t TEXT type · s FILE save · q quit · ? help")
    return "\n".join(lines)


def _perform(session: WritingSession, line: str, top: int, write: Callable[[str], None]) -> bool | None:
    """Carry out one command line; returns whether to show the text again (``None``: quit)."""
    cmd, _, arg = line.strip().partition(" ")
    arg = arg.strip()
    if cmd in ("q", "quit", "exit"):
        return None
    if cmd in ("?", "h", "help"):
        write(HELP)
        return False
    if cmd.isdigit() and not arg:
        options = session.top(top)
        n = int(cmd)
        if not 1 <= n <= len(options):
            raise XuxieError(f"choose an option from 1 to {len(options)}")
        session.pick(options[n - 1][0])
    elif cmd == "w" and (not arg or arg.isdigit()):
        k = int(arg) if arg else 10
        with ctrl_c_stops() as pressed:
            written = session.write(k, stop=pressed)
        if written < k:
            write(f"stopped after {written} of {k} tokens (Ctrl-C); the text is kept")
    elif cmd == "u" and not arg:
        if not session.undo():
            write("nothing to undo")
    elif cmd == "s":
        if not arg:
            raise XuxieError("s needs a file name: s story.txt")
        session.save(arg)
        write(f"saved {len(session.text)} characters to {arg}")
        return False
    elif cmd == "temp":
        session.temperature = _temperature(arg)
    else:
        text = line[2:] if cmd == "t" else line
        session.type_text(text.replace("\\n", "\n"))
    return True


def _temperature(arg: str) -> float:
    try:
        t = float(arg)
    except ValueError:
        t = float("nan")
    if not t >= 0:
        raise XuxieError(f"temperature must be 0 (greedy) or positive, got {arg!r}")
    return t


def run(session: WritingSession, top: int = 10, read: Callable[[str], str] = input, write: Callable[[str], None] | None = None) -> int:
    """The command loop; returns the exit code."""
    if write is None:
        def write(s: str) -> None:
            sys.stdout.write(s + "\n")
            sys.stdout.flush()
    show: bool | None = True
    while True:
        if show:
            write(render(session, top))
        show = True
        try:
            line = read("> ")
        except EOFError:
            write("")
            return 0
        if not line.strip():
            continue
        with warnings_shown(write):
            try:
                show = _perform(session, line, top, write)
            except XuxieError as e:
                write(f"error: {e}")
                show = False
            except OSError as e:
                write(f"error: could not save: {e}")
                show = False
        if show is None:
            return 0


__all__ = ["HELP", "WritingSession", "ctrl_c_stops", "render", "run", "samples_file_text", "show_token", "warnings_shown"]
