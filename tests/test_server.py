"""``xuxie serve``: OpenAI's protocol through the official ``openai`` client, continuous batching
that gives a seeded request the same text alone and amid others, and bad requests that get a
clear 4xx while the server goes on serving."""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time

import httpx
import openai
import pytest
import uvicorn
from conftest import assert_clear_error, corpus_path, run

from xuxie import TextGenerator
from xuxie.server.app import create_app
from xuxie.server.limits import ServerLimits
from xuxie.server.run import listening_socket

SMALL = {"steps": 40, "batch_size": 8, "eval_interval": 40, "preview_length": 0, "progress": False}


class LiveServer:
    """The app on a free loopback port, in a thread of this process (stopped by :meth:`close`)."""

    def __init__(self, generators: dict[str, TextGenerator], limits: ServerLimits | None = None, api_key: str | None = None):
        sock = listening_socket("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(generators, limits, api_key), log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)

    def client(self, **kwargs) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=kwargs.pop("api_key", "unused"), max_retries=0, **kwargs)

    def post(self, path: str, body=None, **kwargs) -> httpx.Response:
        return httpx.post(self.url + path, json=body, timeout=60, **kwargs)

    def metric(self, name: str, model: str) -> float:
        for line in httpx.get(self.url + "/metrics").text.splitlines():
            if line.startswith(f'{name}{{model="{model}"}}'):
                return float(line.split()[-1])
        raise AssertionError(f"no metric {name} for {model}")

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def hlm_text() -> str:
    return corpus_path("hongloumeng.txt").read_bytes().decode("utf-8").replace("\r\n", "\n")


@pytest.fixture(scope="module")
def models(tmp_path_factory, hlm_text, shakespeare_text) -> dict[str, TextGenerator]:
    root = tmp_path_factory.mktemp("served")
    mixed = hlm_text[:30_000] + shakespeare_text[:30_000]
    paragraphs = "\n\n".join(p for p in hlm_text[:40_000].split("\n") if p.strip())
    return {
        "lstm": TextGenerator.train(mixed, out=root / "lstm", seq_len=32, model_options={"hidden_size": 48}, **SMALL),
        "gpt": TextGenerator.train(mixed, arch="transformer", out=root / "gpt",
                                   model_options={"n_layer": 2, "n_head": 2, "n_embd": 32, "context": 32}, **SMALL),
        "bpe": TextGenerator.train(hlm_text[:60_000], tokenizer="bpe", vocab_size=800, out=root / "bpe", seq_len=32,
                                   model_options={"hidden_size": 32}, **SMALL),
        "s2s": TextGenerator.train(paragraphs, arch="seq2seq", mode="continuation", out=root / "s2s",
                                   model_options={"hidden_size": 32, "embed_dim": 16, "max_source_len": 64, "max_target_len": 24},
                                   **SMALL),
    }


@pytest.fixture(scope="module")
def server(models):
    live = LiveServer(models)
    yield live
    live.close()


# --------------------------------------------------------------------------- the openai client
def test_completion_and_model_list(server, models):
    client = server.client()
    assert [m.id for m in client.models.list()] == ["lstm", "gpt", "bpe", "s2s"]
    r = client.completions.create(model="lstm", prompt="宝玉笑道", max_tokens=30, seed=3, temperature=0.8)
    choice = r.choices[0]
    assert r.object == "text_completion" and r.model == "lstm" and choice.finish_reason == "length"
    assert r.usage.prompt_tokens == 4 and r.usage.completion_tokens == 30 and r.usage.total_tokens == 34
    # The server's text is the Python API's text for the same seed and options.
    assert choice.text == models["lstm"].generate(1, "宝玉笑道", include_prompt=False, max_new_tokens=30, seed=3, temperature=0.8)[0]


def test_n_and_a_list_of_prompts(server):
    r = server.client().completions.create(model="gpt", prompt=["ROMEO:", "宝玉"], n=3, max_tokens=12, seed=1)
    assert [c.index for c in r.choices] == list(range(6))
    assert len({c.text for c in r.choices[:3]}) == 3, "n samples of one prompt differ"
    assert r.usage.completion_tokens == 6 * 12


def test_stream_with_usage_equals_the_whole_answer(server):
    client = server.client()
    whole = client.completions.create(model="lstm", prompt="The ", max_tokens=40, seed=5).choices[0].text
    chunks = list(client.completions.create(model="lstm", prompt="The ", max_tokens=40, seed=5, stream=True,
                                            stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole
    assert all(c.usage is None for c in chunks[:-1]) and chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 40
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    plain = list(client.completions.create(model="lstm", prompt="The ", max_tokens=5, seed=5, stream=True))
    assert all(c.usage is None for c in plain) and all(c.choices for c in plain), "no usage chunk unless asked for"


def test_stop_sequences_spanning_tokens(server):
    client = server.client()
    free = client.completions.create(model="lstm", prompt="宝玉", max_tokens=80, seed=11).choices[0].text
    stop = free[20:22]  # two characters: two tokens of this char model
    first = free.index(stop)
    for stream in (False, True):
        r = client.completions.create(model="lstm", prompt="宝玉", max_tokens=80, seed=11, stop=[stop, "never-there"], stream=stream)
        if stream:
            parts = [c.choices[0] for c in r]
            text, reason = "".join(p.text for p in parts), parts[-1].finish_reason
        else:
            text, reason = r.choices[0].text, r.choices[0].finish_reason
        assert (text, reason) == (free[:first], "stop"), stream


def test_chat_completion(server):
    client = server.client()
    r = client.chat.completions.create(model="lstm", messages=[{"role": "system", "content": "宝玉"}, {"role": "user", "content": "笑道"}],
                                       max_tokens=20, seed=2)
    m = r.choices[0].message
    assert r.object == "chat.completion" and m.role == "assistant" and len(m.content) > 0
    # The messages' contents are joined one per line: the same text as a completion of that.
    same = client.completions.create(model="lstm", prompt="宝玉\n笑道", max_tokens=20, seed=2).choices[0].text
    assert m.content == same
    parts = list(client.chat.completions.create(model="lstm", messages=[{"role": "user", "content": "宝玉\n笑道"}], max_tokens=20,
                                                seed=2, stream=True))
    assert parts[0].choices[0].delta.role == "assistant"
    assert "".join(p.choices[0].delta.content or "" for p in parts) == same


def test_logprobs_on_chinese_never_split_a_character(server):
    """A byte-level BPE model writes Chinese characters in several tokens: each logprobs entry is
    a whole piece of text, and the entries spell the text exactly."""
    r = server.client().completions.create(model="bpe", prompt="黛玉", max_tokens=60, seed=4, logprobs=3, echo=True)
    c = r.choices[0]
    lp = c.logprobs
    assert "".join(lp.tokens) == c.text and c.text.startswith("黛玉")
    assert all(t and "\ufffd" not in t for t in lp.tokens)
    assert lp.token_logprobs[0] is None and all(v <= 0 for v in lp.token_logprobs[1:])
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(len(lp.tokens))]
    assert all(1 <= len(top) <= 3 for top in lp.top_logprobs[1:])
    assert any(ord(ch) > 0x2E80 for ch in c.text[2:]), "wrote Chinese"
    streamed = list(server.client().completions.create(model="bpe", prompt="黛玉", max_tokens=60, seed=4, logprobs=3, stream=True))
    assert all("".join(s.choices[0].logprobs.tokens) == s.choices[0].text for s in streamed)
    assert "".join(s.choices[0].text for s in streamed) == c.text[2:]


def test_seq2seq_answers_its_input(server, models):
    source = "宝玉听了，忙笑道"
    r = server.client().completions.create(model="s2s", prompt=source, max_tokens=24, temperature=0)
    assert r.choices[0].text == models["s2s"].generate(1, source, include_prompt=False, max_new_tokens=24, temperature=0)[0]
    assert r.choices[0].finish_reason in ("stop", "length")


# --------------------------------------------------------------------------- continuous batching
@pytest.mark.parametrize("model", ["lstm", "gpt", "s2s"])
def test_a_seeded_request_is_the_same_alone_and_amid_others(server, model):
    client = server.client()

    def ask(seed: int, tokens: int) -> str:
        return client.completions.create(model=model, prompt="宝玉笑道", max_tokens=tokens, seed=seed, temperature=0.9).choices[0].text

    alone = ask(7, 60)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        others = [pool.submit(ask, 100 + i, 20 + 10 * i) for i in range(7)]
        time.sleep(0.05)  # the others are decoding when it joins
        amid = pool.submit(ask, 7, 60).result()
        texts = [f.result() for f in others]
    assert amid == alone
    assert len(set(texts)) == 7


def test_a_client_that_leaves_frees_its_rows(server):
    with httpx.stream("POST", server.url + "/v1/completions", json={"model": "lstm", "prompt": "a", "max_tokens": 2000,
                                                                    "stream": True}, timeout=30) as r:
        lines = r.iter_lines()
        assert next(line for line in lines if line.startswith("data:"))
        assert server.metric("xuxie_active_sequences", "lstm") == 1
    deadline = time.monotonic() + 10
    while server.metric("xuxie_active_sequences", "lstm") > 0:
        assert time.monotonic() < deadline, "the rows of a client that left were not freed"
        time.sleep(0.05)
    assert server.client().completions.create(model="lstm", prompt="a", max_tokens=3).choices[0].text


# --------------------------------------------------------------------------- bad requests
BAD = [
    ({"model": "lstm", "prompt": "a", "max_tokens": -1}, 400, "max_tokens"),
    ({"model": "lstm", "prompt": "a", "temperature": 100}, 400, "temperature"),
    ({"model": "lstm", "prompt": "a", "n": 10 ** 6}, 400, "--max-n"),
    ({"model": "lstm", "prompt": "a" * 1_000_000}, 400, "--max-prompt-tokens"),
    ({"model": "lstm", "prompt": "a", "max_tokens": 10 ** 9}, 400, "--max-tokens"),
    ({"model": "nope", "prompt": "a"}, 404, "does not exist"),
    ({"model": "../lstm", "prompt": "a"}, 404, "does not exist"),
    ({"model": "/etc/passwd", "prompt": "a"}, 404, "does not exist"),
    ({"model": "lstm", "prompt": "a", "top_p": 0}, 400, "top_p"),
    ({"model": "lstm", "prompt": "a", "seed": -5}, 400, "seed"),
    ({"model": "lstm", "prompt": "a", "logprobs": 100}, 400, "logprobs"),
    ({"model": "lstm", "prompt": "a", "frequency_penalty": 1}, 400, "repetition_penalty"),
    ({"model": "lstm", "prompt": "a", "num_beams": 2, "stream": True}, 400, "not streamed"),
    ({"model": "lstm", "prompt": "a", "num_beams": 2, "n": 3}, 400, "n ≤ num_beams"),
    ({"model": "lstm", "prompt": "a", "context": "x"}, 400, "context"),
    ({"model": "lstm", "prompt": []}, 400, "prompt"),
    ({"model": "lstm", "prompt": 5}, 400, "prompt"),
    ({"prompt": "a"}, 400, "model"),
    ({"model": "s2s", "prompt": "  "}, 400, "input"),
]


@pytest.mark.parametrize("body,status,phrase", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_requests_get_a_clear_4xx_and_the_server_goes_on(server, body, status, phrase):
    r = server.post("/v1/completions", body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert phrase in error["message"] + str(error["param"]) and error["type"]
    assert server.client().completions.create(model="lstm", prompt="a", max_tokens=2).choices[0].text is not None


def test_invalid_json_a_huge_body_and_unknown_routes(server):
    r = httpx.post(server.url + "/v1/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]
    r = httpx.post(server.url + "/v1/completions", content=b"x" * (5 * 1024 * 1024), headers={"content-type": "application/json"})
    assert r.status_code == 413
    r = httpx.get(server.url + "/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["message"]
    assert httpx.get(server.url + "/health").json()["status"] == "ok"


def test_beam_search_and_tokenize_routes(server, models):
    r = server.post("/v1/completions", {"model": "lstm", "prompt": "宝玉", "max_tokens": 10, "num_beams": 3, "n": 2})
    texts = [c["text"] for c in r.json()["choices"]]
    best = models["lstm"].generate(1, "宝玉", include_prompt=False, max_new_tokens=10, num_beams=3)[0]
    assert r.status_code == 200 and texts[0] == best and len(texts) == 2
    ids = server.post("/tokenize", {"model": "bpe", "prompt": "宝玉笑道"}).json()
    assert ids["count"] == len(ids["tokens"]) > 0
    assert server.post("/detokenize", {"model": "bpe", "tokens": ids["tokens"]}).json()["prompt"] == "宝玉笑道"
    assert server.post("/detokenize", {"model": "bpe", "tokens": [10 ** 6]}).status_code == 400
    schema = httpx.get(server.url + "/openapi.json").json()
    assert {"/v1/completions", "/v1/chat/completions", "/v1/models", "/tokenize"} <= set(schema["paths"])
    text = httpx.get(server.url + "/metrics").text
    for name in ("xuxie_requests_total", "xuxie_generated_tokens_total", "xuxie_queue_depth", "xuxie_request_latency_seconds_bucket",
                 "xuxie_time_to_first_token_seconds_bucket"):
        assert name in text


def test_api_key(models):
    live = LiveServer({"lstm": models["lstm"]}, api_key="s3cret")
    try:
        assert httpx.get(live.url + "/health").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            r = httpx.get(live.url + "/v1/models", headers=headers)
            assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key", headers
        assert httpx.get(live.url + "/metrics").status_code == 401
        with pytest.raises(openai.AuthenticationError):
            live.client(api_key="wrong").models.list()
        assert live.client(api_key="s3cret").completions.create(model="lstm", prompt="a", max_tokens=2).choices
    finally:
        live.close()


def slowed(tg: TextGenerator, seconds: float) -> TextGenerator:
    """Another copy of ``tg`` whose every decoding step takes ``seconds`` longer."""
    slow = TextGenerator.load(tg.path)
    step = slow.model.step

    def slow_step(*args, **kwargs):
        time.sleep(seconds)
        return step(*args, **kwargs)

    slow.model.step = slow_step
    return slow


def test_a_full_queue_is_429_and_a_slow_request_times_out(models):
    live = LiveServer({"lstm": slowed(models["lstm"], 0.01)}, ServerLimits(max_rows=1, max_queue=1, timeout=1.0))
    try:
        long = {"model": "lstm", "prompt": "a", "max_tokens": 2000, "stream": True}
        with httpx.stream("POST", live.url + "/v1/completions", json=long, timeout=30) as first:
            lines = first.iter_lines()  # kept: a discarded iterator closes the response
            next(lines)  # decoding: the one row is taken
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                waiting = pool.submit(live.post, "/v1/completions", {**long, "stream": False})
                deadline = time.monotonic() + 10
                while live.metric("xuxie_queue_depth", "lstm") < 1:
                    assert time.monotonic() < deadline
                    time.sleep(0.02)
                r = live.post("/v1/completions", {"model": "lstm", "prompt": "a", "max_tokens": 5})
                assert r.status_code == 429 and r.headers["Retry-After"] and "--max-queue" in r.json()["error"]["message"]
                late = waiting.result()
            events = [json.loads(line[5:]) for line in lines if line.startswith("data: {")]
        assert late.status_code == 408 and "--timeout" in late.json()["error"]["message"]
        assert "error" in events[-1] and "timeout" in events[-1]["error"]["message"]
        assert live.client().completions.create(model="lstm", prompt="a", max_tokens=2).choices
    finally:
        live.close()


def test_serve_command_errors(tmp_path, tiny_model_dir):
    assert_clear_error(run("serve", tiny_model_dir, tiny_model_dir, "--port", "0"), "two models are named")
    assert_clear_error(run("serve", tmp_path / "missing", "--port", "0"), "does not exist")
    with listening_socket("127.0.0.1", 0) as taken:
        assert_clear_error(run("serve", tiny_model_dir, "--port", taken.getsockname()[1]), "cannot listen")


def test_sequences_that_end_at_different_steps_are_all_whole(server, models):
    """n sequences of one request that stop at different steps: each choice is the Python API's
    text for that sequence, streamed or not."""
    client = server.client()
    expected = models["lstm"].generate(3, "宝玉", include_prompt=False, max_new_tokens=60, seed=5, stop=["，", " ", "\n"])
    assert len({len(t) for t in expected}) > 1, "the sequences stop at different steps"
    whole = client.completions.create(model="lstm", prompt="宝玉", max_tokens=60, seed=5, n=3, stop=["，", " ", "\n"])
    assert [c.text for c in whole.choices] == expected
    texts = ["", "", ""]
    for chunk in client.completions.create(model="lstm", prompt="宝玉", max_tokens=60, seed=5, n=3, stop=["，", " ", "\n"], stream=True):
        texts[chunk.choices[0].index] += chunk.choices[0].text
    assert texts == expected
