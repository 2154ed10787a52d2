"""The FastAPI app: OpenAI's routes over the decoding threads, auth, limits, metrics, the playground.

Routes turn a request into jobs (:class:`~xuxie.batching.Job`, options checked by
:class:`~xuxie.decoding.GenerationConfig` as in every front-end), queue them on the model's
:class:`~xuxie.server.scheduler.ModelWorker`, and turn what comes back into OpenAI's shapes —
a JSON body, or server-sent events ending in ``data: [DONE]``. No route runs model code.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from ..batching import Emission, Job
from ..errors import XuxieError
from .errors import APIError, error_body
from .guard import Guard, add_error_handlers
from .limits import ServerLimits
from .metrics import Metrics
from .outputs import Outputs
from .protocol import (
    ChatRequest,
    CompletionRequest,
    DecodingFields,
    DetokenizeRequest,
    TokenizeRequest,
    chat_logprobs,
    completion_logprobs,
)
from .scheduler import BeamJob, ModelWorker, QueueFull

STATIC = Path(__file__).parent / "static"


@dataclass
class Served:
    """One model the server answers for."""

    name: str
    generator: Any  # TextGenerator
    worker: ModelWorker
    created: int

    @property
    def setup(self):
        return self.generator.decoding

    def card(self) -> dict[str, Any]:
        cfg = self.generator.config
        return {"id": self.name, "object": "model", "created": self.created, "owned_by": "xuxie",
                "xuxie": {"arch": cfg.get("arch"), "tokenizer": cfg.get("tokenizer"), "mode": self.generator.mode,
                          "seq2seq": self.generator.is_seq2seq,
                          "labels": list(self.setup.labels), "vocab_size": self.generator.tokenizer.vocab_size}}


def create_app(generators: dict[str, Any], limits: ServerLimits | None = None, api_key: str | None = None) -> FastAPI:
    """An app serving ``generators`` (name -> loaded :class:`~xuxie.api.TextGenerator`)."""
    limits = limits or ServerLimits()
    now = int(time.time())
    served = {name: Served(name, tg, ModelWorker(name, tg.decoding, limits.max_rows, limits.max_queue), now)
              for name, tg in generators.items()}
    metrics = Metrics(served)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        for s in served.values():
            s.worker.start()
        yield
        for s in served.values():
            s.worker.stop()

    app = FastAPI(title="xuxie", version="1", lifespan=lifespan,
                  description="OpenAI-compatible completions for models trained with xuxie (README, serving).")
    app.state.served, app.state.limits, app.state.metrics = served, limits, metrics
    # Pure ASGI middleware only: Starlette's BaseHTTPMiddleware passes every streamed chunk
    # through a task and a memory stream of its own, which cost more than the chunk's token.
    app.add_middleware(Guard, api_key=api_key, max_body=limits.max_body_bytes, count=metrics.count)
    add_error_handlers(app)

    def lookup(name: str) -> Served:
        # Names are keys of the table made at start-up: never a path, never touches the file system.
        if name not in served:
            raise APIError(404, f"the model '{name}' does not exist; this server has: {', '.join(served)}", param="model",
                           code="model_not_found")
        return served[name]

    # -- routes ------------------------------------------------------------------------------
    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "models": list(served)}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [s.card() for s in served.values()]}

    @app.get("/v1/models/{name:path}")
    async def model(name: str) -> dict[str, Any]:
        return lookup(name).card()

    @app.get("/metrics")
    async def metrics_text() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/tokenize")
    async def tokenize(req: TokenizeRequest) -> dict[str, Any]:
        s = lookup(req.model)
        _check_chars(req.prompt, limits)
        ids = await run_in_threadpool(s.generator.tokenizer.encode, req.prompt)
        return {"tokens": ids, "count": len(ids), "max_model_len": _context(s)}

    @app.post("/detokenize")
    async def detokenize(req: DetokenizeRequest) -> dict[str, Any]:
        s = lookup(req.model)
        vocab = s.generator.tokenizer.vocab_size
        bad = [t for t in req.tokens if not 0 <= t < vocab]
        if bad:
            raise APIError(400, f"token id {bad[0]} is outside this model's vocabulary (0 to {vocab - 1})", param="tokens")
        return {"prompt": s.generator.tokenizer.decode(req.tokens)}

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest, request: Request):
        s = lookup(req.model)
        if req.suffix:
            raise APIError(400, "suffix (insertion) is not supported: these models only continue text", param="suffix")
        if req.best_of not in (None, req.n):
            raise APIError(400, "best_of is not supported apart from best_of = n; use num_beams for beam search", param="best_of")
        prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        if not prompts:
            raise APIError(400, "prompt is an empty list; give a string or a list of strings", param="prompt")
        max_tokens = 16 if req.max_tokens is None else req.max_tokens
        run = await _start(s, req, prompts, max_tokens, req.logprobs, req.echo, metrics, limits)
        names = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()), "model": s.name}
        if req.stream:
            return _sse(_completion_chunks(run, names, req, request))
        texts, pieces, reasons = await _collect(run, request)
        choices = []
        for i, (text, ps, reason) in enumerate(zip(texts, pieces, reasons)):
            if req.echo:
                text, ps = prompts[i // req.n] + text, (run.jobs[i // req.n].prompt_pieces or []) + ps
            choices.append({"index": i, "text": text, "logprobs": completion_logprobs(ps, 0) if req.logprobs is not None else None,
                            "finish_reason": reason})
        return {**names, "choices": choices, "usage": run.usage()}

    @app.post("/v1/chat/completions")
    async def chat(req: ChatRequest, request: Request):
        s = lookup(req.model)
        max_tokens = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
        if max_tokens is None:
            max_tokens = s.setup.default_max_new_tokens
        top = (req.top_logprobs or 0) if req.logprobs else None
        run = await _start(s, req, [req.joined()], max_tokens, top, False, metrics, limits)
        names = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()), "model": s.name}
        if req.stream:
            return _sse(_chat_chunks(run, {**names, "object": "chat.completion.chunk"}, req, request))
        texts, pieces, reasons = await _collect(run, request)
        choices = [{"index": i, "message": {"role": "assistant", "content": text},
                    "logprobs": chat_logprobs(ps) if req.logprobs else None, "finish_reason": reason}
                   for i, (text, ps, reason) in enumerate(zip(texts, pieces, reasons))]
        return {**names, "choices": choices, "usage": run.usage()}

    @app.get("/", include_in_schema=False)
    async def playground() -> Response:
        index = STATIC / "index.html"
        if not index.is_file():
            return JSONResponse(error_body("the playground is not installed with this copy of xuxie", "not_found"), 404)
        return FileResponse(index, media_type="text/html; charset=utf-8")

    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


# --------------------------------------------------------------------------- one request's run
@dataclass
class _Run:
    served: Served
    outputs: Outputs
    jobs: list[Job]
    n: int
    started: float
    metrics: Metrics
    prompts: list[str]

    def usage(self) -> dict[str, int]:
        prompt = sum(j.prompt_length for j in self.jobs)
        completion = sum(j.generated_tokens for j in self.jobs)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def choice(self, job_number: int, e: Emission) -> int:
        return job_number * self.n + e.index

    def finished(self) -> None:
        name = self.served.name
        self.metrics.latency.labels(name).observe(time.monotonic() - self.started)
        self.metrics.generated_tokens.labels(name).inc(sum(j.generated_tokens for j in self.jobs))


def _context(s: Served) -> int | None:
    cfg = s.generator.model.config
    return getattr(cfg, "context", None) or getattr(cfg, "max_source_len", None)


def _check_chars(text: str, limits: ServerLimits) -> None:
    # No tokenizer yields fewer tokens than characters / 64: a longer text is over the token cap
    # whatever it is, and is refused before it is tokenized.
    if len(text) > 64 * limits.max_prompt_tokens:
        raise APIError(400, f"the prompt is {len(text):,} characters, far over this server's limit of {limits.max_prompt_tokens} "
                       "tokens (--max-prompt-tokens); send less text", param="prompt", code="context_length_exceeded")


def _config(s: Served, req: DecodingFields, max_tokens: int):
    stop = (req.stop,) if isinstance(req.stop, str) else tuple(req.stop or ())
    return s.generator.generation_config.updated(
        max_new_tokens=max_tokens, temperature=req.temperature, top_p=req.top_p, top_k=req.top_k,
        repetition_penalty=req.repetition_penalty, no_repeat_ngram_size=req.no_repeat_ngram_size,
        num_beams=req.num_beams, length_penalty=req.length_penalty, stop=stop, seed=req.seed).validate()


def _check_request(req: DecodingFields, prompts: list[str], max_tokens: int, limits: ServerLimits) -> None:
    unsupported = req.unsupported()
    if unsupported:
        raise APIError(400, unsupported)
    if max_tokens > limits.max_tokens:
        raise APIError(400, f"max_tokens is {max_tokens}; this server writes at most {limits.max_tokens} tokens a sequence "
                       "(--max-tokens)", param="max_tokens")
    if req.n * len(prompts) > limits.max_n:
        raise APIError(400, f"asked for {req.n * len(prompts)} sequences (n × prompts); this server writes at most {limits.max_n} "
                       "a request (--max-n)", param="n")
    if req.num_beams > 1 and req.stream:
        raise APIError(400, "beam search is not streamed (its best sequence is known only at the end); set stream to false",
                       param="num_beams")
    for p in prompts:
        _check_chars(p, limits)


def _encode(s: Served, prompts: list[str], context: str | None, limits: ServerLimits) -> list[list[int]]:
    """Token ids of each prompt (a seq2seq model's input: the text it answers)."""
    out = []
    for p in prompts:
        ids = s.setup.prompt_ids(p, context)
        if len(ids) > limits.max_prompt_tokens:
            raise XuxieError(f"the prompt is {len(ids)} tokens; this server reads at most {limits.max_prompt_tokens} "
                             "(--max-prompt-tokens)")
        out.append(ids)
    return out


async def _start(s: Served, req: DecodingFields, prompts: list[str], max_tokens: int, logprobs: int | None, echo: bool,
                 metrics: Metrics, limits: ServerLimits) -> _Run:
    """Check, encode and queue one job per prompt (``n`` sequences each)."""
    started = time.monotonic()
    _check_request(req, prompts, max_tokens, limits)
    config = _config(s, req, max_tokens)
    ids = await run_in_threadpool(_encode, s, prompts, req.context, limits)
    kind = BeamJob if config.num_beams > 1 else Job
    jobs = [kind(s.setup, p_ids, config, req.n, logprobs=logprobs, prompt_text=text if echo and logprobs is not None else None)
            for p_ids, text in zip(ids, prompts)]
    outputs = Outputs(jobs, limits.timeout, req.stream)
    try:
        for job in jobs:
            s.worker.submit(job)
    except QueueFull:
        outputs.cancel()
        raise APIError(429, f"the server is busy: {limits.max_queue} requests are already waiting for '{s.name}' (--max-queue); "
                       "retry shortly", "rate_limit_exceeded", headers={"Retry-After": "1"}) from None
    metrics.prompt_tokens.labels(s.name).inc(sum(len(i) for i in ids))
    return _Run(s, outputs, jobs, req.n, started, metrics, prompts)


async def _collect(run: _Run, request: Request) -> tuple[list[str], list[list], list[str | None]]:
    """Every sequence's text, pieces and finish reason (a non-streamed response)."""
    count = len(run.jobs) * run.n
    texts, pieces, reasons = [""] * count, [[] for _ in range(count)], [None] * count
    try:
        async for number, e in run.outputs.events(request.is_disconnected):
            i = run.choice(number, e)
            texts[i] += e.text
            pieces[i] += e.pieces
            reasons[i] = e.finish_reason or reasons[i]
    finally:
        run.outputs.cancel()
    run.finished()
    return texts, pieces, reasons


def _sse(events: AsyncIterator[dict[str, Any]]) -> StreamingResponse:
    async def body() -> AsyncIterator[str]:
        async for event in events:
            yield f"data: {json.dumps(event, ensure_ascii=False)}\n\n"
        yield "data: [DONE]\n\n"
    return StreamingResponse(body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _stream(run: _Run) -> AsyncIterator[tuple[int, Emission]]:
    """(choice, emission) as they come; an error event ends the stream. Cancels what is left
    when the client goes (the generator is closed) or the request fails."""
    first = True
    try:
        async for number, e in run.outputs.events():
            if first and e.text:
                run.metrics.first_token.labels(run.served.name).observe(time.monotonic() - run.started)
                first = False
            yield run.choice(number, e), e
        run.finished()
    finally:
        run.outputs.cancel()


async def _completion_chunks(run: _Run, names: dict[str, Any], req: CompletionRequest, request: Request) -> AsyncIterator[dict[str, Any]]:
    usage = {"usage": None} if req.stream_options and req.stream_options.include_usage else {}
    offsets = [0] * (len(run.jobs) * run.n)

    def chunk(i: int, text: str, pieces: list, reason: str | None) -> dict[str, Any]:
        logprobs = completion_logprobs(pieces, offsets[i]) if req.logprobs is not None else None
        offsets[i] += len(text)
        return {**names, "choices": [{"index": i, "text": text, "logprobs": logprobs, "finish_reason": reason}], **usage}

    if req.echo:  # each choice starts with its prompt (as vLLM streams it)
        for number, job in enumerate(run.jobs):
            for k in range(run.n):
                yield chunk(number * run.n + k, run.prompts[number], job.prompt_pieces or [], None)
    try:
        async for i, e in _stream(run):
            yield chunk(i, e.text, e.pieces, e.finish_reason)
    except APIError as failure:
        yield failure.body
        return
    if usage:
        yield {**names, "choices": [], "usage": run.usage()}


async def _chat_chunks(run: _Run, names: dict[str, Any], req: ChatRequest, request: Request) -> AsyncIterator[dict[str, Any]]:
    usage = {"usage": None} if req.stream_options and req.stream_options.include_usage else {}
    for i in range(run.n):
        yield {**names, "choices": [{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                                     "finish_reason": None}], **usage}
    try:
        async for i, e in _stream(run):
            delta = {"content": e.text} if e.text else {}
            yield {**names, "choices": [{"index": i, "delta": delta, "logprobs": chat_logprobs(e.pieces) if req.logprobs else None,
                                         "finish_reason": e.finish_reason}], **usage}
    except APIError as failure:
        yield failure.body
        return
    if usage:
        yield {**names, "choices": [], "usage": run.usage()}


