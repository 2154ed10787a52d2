"""The largest sizes xuxie accepts, declared once, each raisable through an environment variable.

A size the user types (``--n``, ``--max-new-tokens``, ``--samples``, ``--paragraphs``) is checked
here before anything is allocated for it. The defaults sit far above what anyone asks on purpose
and far below what a typo asks (``--max-new-tokens 10000000000``): the answer to a typo is one
line naming the limit and how to raise it, not minutes of work ending in an out-of-memory kill.
They are guards against typos, not a memory guarantee: what a size costs depends on the model.

Every limit is read from its environment variable at check time (so a test or a long-running
program can change it), and a value there that is not a positive whole number is itself one
clear line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import XuxieError


@dataclass(frozen=True)
class Limit:
    """The largest value of one size: ``default``, unless the environment variable ``env`` says otherwise."""

    env: str
    default: int
    counts: str  # what the number counts (for readers; the README's table says the same)

    def value(self) -> int:
        """The limit in force: ``$env`` when it is set, else ``default``."""
        raw = os.environ.get(self.env, "").strip()
        if not raw:
            return self.default
        try:
            value = int(raw)  # digits, optionally grouped with underscores (50_000_000)
        except ValueError:
            value = 0
        if value < 1:
            raise XuxieError(f"{self.env} must be a positive whole number, got {raw!r}; "
                             f"unset it to use the default {self.default}")
        return value

    def check(self, asked: int, what: str, fix: str) -> None:
        """One line when ``asked`` (described by ``what``: "generate 4 × 1 × (12 + 50) tokens") is over the limit."""
        limit = self.value()
        if asked > limit:
            raise XuxieError(f"asked to {what}, over the limit of {limit}; {fix} or raise {self.env}")


# Decoding keeps every sequence's tokens in one int64 tensor (8 bytes a token), and each token
# costs a forward step: 50 million tokens are 400 MB of ids alone and, at the 4,000-23,000 tokens a
# second the default LSTM decodes on 2 CPU cores (README, generation speed), 35 minutes to 3.5
# hours. Generous use — 100 samples of 2,000 tokens — is 200,000 tokens, 250 times below.
GENERATE_TOKENS = Limit("XUXIE_MAX_GENERATE_TOKENS", 50_000_000,
                        "tokens one generation holds: samples × beams × (prompt + new tokens)")

# Each sequence decoded at once holds a score per vocabulary entry at every step, and top-p
# sampling makes about 8 copies of those scores (measured: 2,000 rows × 20,000 words, 1.3 GB).
# 4,096 rows with the word tokenizer's 20,000-word vocabulary is about 2.6 GB; with a character
# vocabulary (100-5,000) well under 1 GB.
GENERATE_ROWS = Limit("XUXIE_MAX_GENERATE_ROWS", 4_096, "sequences decoded at once: samples × beams")

# xuxie analyze writes samples × length tokens per model at each temperature (5 by default) and
# with top-p sampling, then scores every text with the model and against the corpus: a million is
# 6 million tokens generated and scored per model, hours on a CPU. Its default is 20 × 200.
ANALYZE_TOKENS = Limit("XUXIE_MAX_ANALYZE_TOKENS", 1_000_000, "xuxie analyze: --samples × --length")

# 红楼梦 has 2,654 paragraphs: 10,000 is a few whole novels, each paragraph a generation of its own.
PARAGRAPHS = Limit("XUXIE_MAX_PARAGRAPHS", 10_000, "xuxie continue: --paragraphs")

LIMITS = (GENERATE_TOKENS, GENERATE_ROWS, ANALYZE_TOKENS, PARAGRAPHS)


def _known(value: int | None, name: str) -> str:
    """A factor of a message: the number, or its name while it is not known yet."""
    return name if value is None else str(value)


def check_generation_size(n: int | None, beams: int, prompt_tokens: int | None, max_new_tokens: int, *,
                          n_flag: str | None = "--n", new_flag: str = "--max-new-tokens") -> None:
    """Check one generation — ``n`` samples, ``beams`` beams each, ``prompt_tokens`` + ``max_new_tokens``
    tokens per sequence — against :data:`GENERATE_ROWS` and :data:`GENERATE_TOKENS`.

    ``n`` or ``prompt_tokens`` may be ``None`` while not known yet (a :class:`GenerationConfig`
    validated before the prompt is encoded): they count as 1 and 0, so the check is then a lower
    bound, and the message shows them by name. ``n_flag`` and ``new_flag`` are the options that
    set ``n`` and ``max_new_tokens`` where the request came from, named in the message
    (``n_flag=None``: the user does not choose ``n`` there).
    """
    n_known = 1 if n is None else n
    rows = n_known * beams
    # The message names only the options whose lowering would help: a factor of 1 is already low.
    row_flags = [flag for flag, size in ((n_flag, n_known), ("--num-beams", beams)) if flag and size > 1]
    GENERATE_ROWS.check(rows, f"decode {_known(n, 'n')} × {beams} sequences at once (samples × beams)",
                        "lower " + "/".join(row_flags))
    tokens = rows * ((prompt_tokens or 0) + max_new_tokens)
    sizes = f"{_known(n, 'n')} × {beams} × ({_known(prompt_tokens, 'prompt')} + {max_new_tokens})"
    GENERATE_TOKENS.check(tokens, f"generate {sizes} tokens", "lower " + "/".join([*row_flags, new_flag]))


def check_analysis_size(samples: int, length: int) -> None:
    """``xuxie analyze``: ``samples`` texts of ``length`` tokens per model and temperature, in one batch."""
    ANALYZE_TOKENS.check(samples * length, f"analyze {samples} × {length} tokens (--samples × --length)",
                         "lower --samples/--length")
    check_generation_size(samples, 1, None, length, n_flag="--samples", new_flag="--length")


def check_paragraphs(paragraphs: int) -> None:
    """``xuxie continue --paragraphs``: each paragraph is one more generation."""
    PARAGRAPHS.check(paragraphs, f"write {paragraphs} paragraphs", "lower --paragraphs")
