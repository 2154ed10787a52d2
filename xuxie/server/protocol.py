"""OpenAI's request and response shapes, and the server's limits.

Requests are pydantic models with OpenAI's field names and defaults, plus xuxie's extensions
(``top_k``, ``repetition_penalty``, ``no_repeat_ngram_size``, ``num_beams``, ``length_penalty``,
``context``). Ranges are checked here once; everything about decoding is then checked again by
:class:`~xuxie.decoding.GenerationConfig` like any other front-end's options.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..batching import Piece


class StreamOptions(BaseModel):
    include_usage: bool = False


class DecodingFields(BaseModel):
    """Fields every generating endpoint shares."""

    model_config = ConfigDict(extra="ignore")

    model: str
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[str, float] | None = None
    user: str | None = None
    # xuxie's extensions (as in vLLM and llama.cpp's server)
    top_k: int = Field(0, ge=0)
    repetition_penalty: float = Field(1.0, gt=0.0)
    no_repeat_ngram_size: int = Field(0, ge=0)
    num_beams: int = Field(1, ge=1)
    length_penalty: float = 1.0
    context: str | None = None

    def unsupported(self) -> str | None:
        """The first OpenAI option given that xuxie does not implement, as a message."""
        if self.presence_penalty or self.frequency_penalty:
            return "presence_penalty and frequency_penalty are not supported; use repetition_penalty (>1 discourages repeats)"
        if self.logit_bias:
            return "logit_bias is not supported"
        return None


class CompletionRequest(DecodingFields):
    prompt: str | list[str] = ""
    max_tokens: int | None = Field(16, ge=0)  # OpenAI's default
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=20)
    best_of: int | None = None
    suffix: str | None = None


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str = "text"
    text: str = ""


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: str
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content if p.type == "text")
        return self.content or ""


class ChatRequest(DecodingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=0)
    max_completion_tokens: int | None = Field(None, ge=0)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)

    def joined(self) -> str:
        """The text chat models continue: the messages' contents, one per line (README, serving)."""
        return "\n".join(m.text() for m in self.messages)


class TokenizeRequest(BaseModel):
    model: str
    prompt: str = ""


class DetokenizeRequest(BaseModel):
    model: str
    tokens: list[int]


FinishReason = Literal["stop", "length"] | None


def completion_logprobs(pieces: list[Piece], offset: int) -> dict[str, Any]:
    """OpenAI's completions ``logprobs`` for ``pieces`` whose text starts at ``offset``."""
    offsets = []
    for p in pieces:
        offsets.append(offset)
        offset += len(p.text)
    return {"tokens": [p.text for p in pieces], "token_logprobs": [p.logprob for p in pieces],
            "top_logprobs": [p.top or None for p in pieces], "text_offset": offsets}


def chat_logprobs(pieces: list[Piece]) -> dict[str, Any]:
    """OpenAI's chat ``logprobs``: ``{"content": [{token, logprob, bytes, top_logprobs}]}``."""
    def entry(text: str, logprob: float | None) -> dict[str, Any]:
        return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}
    return {"content": [{**entry(p.text, p.logprob), "top_logprobs": [entry(t, v) for t, v in p.top.items()]} for p in pieces]}
