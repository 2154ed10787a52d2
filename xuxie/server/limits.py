"""What one request may ask of the server (each a ``xuxie serve`` flag)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerLimits:
    """What one request may ask for (each a ``xuxie serve`` flag; README, serving)."""

    max_tokens: int = 2048  # --max-tokens: new tokens per sequence
    max_n: int = 16  # --max-n: sequences per request (prompts × n)
    max_prompt_tokens: int = 4096  # --max-prompt-tokens
    max_rows: int = 32  # --max-concurrency: sequences decoded together per model
    max_queue: int = 64  # --max-queue: requests waiting per model; beyond: 429
    timeout: float = 300.0  # --timeout: seconds a request may take
    max_body_bytes: int = 4 * 1024 * 1024  # a request body larger than this: 413
