"""`xuxie export --format hf`: the exported folder loads offline in transformers and computes what xuxie computes."""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers / huggingface_hub read it
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402
from conftest import assert_clear_error, corpus_path, run, snapshot  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2LMHeadModel, GPTNeoXForCausalLM  # noqa: E402

from xuxie import TextGenerator  # noqa: E402
from xuxie import checkpoint as ckpt  # noqa: E402
from xuxie.errors import XuxieError  # noqa: E402
from xuxie.export import export_hf, export_model  # noqa: E402

HF_CLASS = {"rotary": GPTNeoXForCausalLM, "learned": GPT2LMHeadModel}


@pytest.fixture(scope="module")
def make_model(tmp_path_factory, shakespeare_text):
    """Model directories of tiny transformers: trained 2 steps (a real directory), then the weights
    are pushed far from their initialisation so logits and greedy choices are not trivial."""
    made: dict[tuple, Path] = {}

    def make(positions: str = "rotary", bias: bool = True, tie: bool = True, context: int = 16,
             tokenizer: str = "char", text: str | None = None, **options) -> Path:
        key = (positions, bias, tie, context, tokenizer, text, *sorted(options.items()))
        if key not in made:
            out = tmp_path_factory.mktemp(f"tf_{positions}") / "model"
            tg = TextGenerator.train(text or shakespeare_text[:20_000], arch="transformer", tokenizer=tokenizer, out=out,
                                     steps=2, preview_length=0, progress=False,
                                     model_options={"n_layer": 2, "n_head": 2, "n_embd": 32, "context": context,
                                                    "positions": positions, "bias": bias, "tie_weights": tie, **options})
            g = torch.Generator().manual_seed(zlib.crc32(repr(key).encode()))
            with torch.no_grad():
                for p in tg.model.parameters():
                    p.add_(torch.randn(p.shape, generator=g) * 0.3)
            ckpt.save_weights(tg.model, out / ckpt.WEIGHTS)
            made[key] = out
        return made[key]

    return make


def _logits_match(model_dir: Path, out: Path, positions: str) -> None:
    tg = TextGenerator.load(model_dir, "cpu")
    hf = AutoModelForCausalLM.from_pretrained(out).eval()
    assert type(hf) is HF_CLASS[positions]
    V, W = tg.model.config.vocab_size, tg.model.config.context
    ids = torch.randint(0, V, (3, W), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = tg.model(ids)[0]
        theirs = hf(ids).logits
    assert ours.std() > 0.5  # not a near-constant model
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=0)


# --------------------------------------------------------------------------- same function
@pytest.mark.parametrize("positions", ["rotary", "learned"])
@pytest.mark.parametrize("bias", [True, False])
def test_logits_equal_xuxie(make_model, tmp_path, positions, bias):
    model_dir = make_model(positions, bias=bias)
    out = export_hf(model_dir, tmp_path / "hf")
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "README.md"} <= {p.name for p in out.iterdir()}
    _logits_match(model_dir, out, positions)


@pytest.mark.parametrize("positions", ["rotary", "learned"])
def test_untied_output_layer(make_model, tmp_path, positions):
    model_dir = make_model(positions, tie=False)
    out = export_hf(model_dir, tmp_path / "hf")
    _logits_match(model_dir, out, positions)
    hf = AutoModelForCausalLM.from_pretrained(out)
    assert hf.lm_head.weight.data_ptr() != hf.get_input_embeddings().weight.data_ptr()


@pytest.mark.parametrize("positions", ["rotary", "learned"])
def test_relu_squared_mlp(make_model, tmp_path, positions):
    model_dir = make_model(positions, mlp="relu2")
    _logits_match(model_dir, export_hf(model_dir, tmp_path / "hf"), positions)


@pytest.mark.parametrize("options, phrase", [({"qk_norm": True}, "uses QK-norm"), ({"logit_cap": 30.0}, "uses a logit cap")])
def test_options_without_a_counterpart_refuse_to_export(make_model, tmp_path, options, phrase):
    with pytest.raises(XuxieError, match=phrase):
        export_hf(make_model(**options), tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_tied_embeddings_stay_tied(make_model, tmp_path):
    out = export_hf(make_model("rotary"), tmp_path / "hf")
    hf = AutoModelForCausalLM.from_pretrained(out)
    assert hf.config.tie_word_embeddings
    assert hf.lm_head.weight.data_ptr() == hf.get_input_embeddings().weight.data_ptr()


@pytest.mark.parametrize("positions", ["rotary", "learned"])
def test_greedy_generation_equal(make_model, tmp_path, positions):
    """HF greedy generate continues a prompt exactly as xuxie's greedy decoding (within the context)."""
    model_dir = make_model(positions, context=32)
    out = export_hf(model_dir, tmp_path / "hf")
    tg = TextGenerator.load(model_dir, "cpu")
    hf = AutoModelForCausalLM.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    prompt = "ROMEO:\nWhat"
    ours = tg.generate(1, prompt, temperature=0, max_new_tokens=20, include_prompt=False)[0]
    ids = tok(prompt, return_tensors="pt").input_ids
    assert ids[0].tolist() == tg.tokenizer.encode(prompt)
    with torch.no_grad():
        gen = hf.generate(ids, do_sample=False, max_new_tokens=20)
    new = gen[0, ids.shape[1]:].tolist()
    assert len(new) == 20
    assert len(set(new)) > 3  # a real continuation, not one repeated token
    assert tok.decode(new) == ours


# --------------------------------------------------------------------------- tokenizer
def test_char_tokenizer_round_trip(make_model, tmp_path, shakespeare_text):
    chinese = corpus_path("hongloumeng.txt").read_text(encoding="utf-8")[:3000]
    text = shakespeare_text[:6000] + "\n\n" + chinese
    model_dir = make_model("rotary", text=text)
    out = export_hf(model_dir, tmp_path / "hf")
    ours = TextGenerator.load(model_dir, "cpu").tokenizer
    tok = AutoTokenizer.from_pretrained(out)
    assert len(tok) == ours.vocab_size
    assert (tok.pad_token_id, tok.unk_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2, 3)
    for sample in (text[:4000], "  two  spaces,\n\n\nthree breaks\t", chinese[:500], "宝玉 ROMEO"):
        ids = tok(sample).input_ids
        assert ids == ours.encode(sample)
        assert tok.decode(ids) == sample
    # an unknown character: <unk> like xuxie, read back as U+FFFD
    ids = tok("a\u2603b").input_ids
    assert ids == ours.encode("a\u2603b") and ids[1] == 1
    assert tok.decode(ids) == ours.decode(ids) == "a\ufffdb"


def test_word_tokenizer_exports_model_without_tokenizer(make_model, tmp_path):
    model_dir = make_model("rotary", tokenizer="word")
    out = export_hf(model_dir, tmp_path / "hf")
    names = {p.name for p in out.iterdir()}
    assert "tokenizer.json" not in names and "tokenizer_config.json" not in names
    assert "No tokenizer files" in (out / "README.md").read_text(encoding="utf-8")
    _logits_match(model_dir, out, "rotary")


# --------------------------------------------------------------------------- CLI and errors
def test_cli_export_and_overwrite(make_model, tmp_path):
    model_dir = make_model("learned")
    out = tmp_path / "hf"
    r = run("export", model_dir, out, "--format", "hf")
    assert r.exit_code == 0, r.stderr
    _logits_match(model_dir, out, "learned")
    (out / "notes.txt").write_text("the user's own file")
    r = run("export", make_model("rotary", tokenizer="word"), out, "--overwrite")
    assert r.exit_code == 0, r.stderr
    # Only xuxie's files are replaced: the earlier export's char tokenizer goes, the user's file stays.
    assert (out / "notes.txt").read_text() == "the user's own file"
    assert not (out / "tokenizer.json").exists() and not (out / "tokenizer_config.json").exists()
    assert AutoModelForCausalLM.from_pretrained(out).config.model_type == "gpt_neox"
    assert [p.name for p in tmp_path.iterdir()] == ["hf"]  # no temporary folders left behind


def test_cli_lstm_cannot_export(tmp_path, shakespeare_text):
    model_dir = tmp_path / "lstm"
    TextGenerator.train(shakespeare_text[:20_000], out=model_dir, steps=2, seq_len=32, batch_size=8, eval_interval=2,
                        preview_length=0, progress=False, model_options={"hidden_size": 16})
    out = tmp_path / "hf"
    assert_clear_error(run("export", model_dir, out, "--format", "hf"), "lstm model", "only transformer models export")
    assert not out.exists()


def test_cli_existing_out_untouched(make_model, tmp_path):
    out = tmp_path / "hf"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    before = snapshot(out)
    for flags in ((), ("--overwrite",)):  # a folder xuxie did not write is never replaced
        assert_clear_error(run("export", make_model("rotary"), out, *flags), "holds files xuxie did not write", "choose another path")
        assert snapshot(out) == before


def test_cli_export_never_replaces_foreign_folders(make_model, tmp_path):
    """A Hugging Face folder that xuxie did not write, and a xuxie model directory, survive --overwrite."""
    hf = tmp_path / "someone-elses-gpt2"
    export_hf(make_model("learned"), hf)
    config = json.loads((hf / "config.json").read_text())
    del config["xuxie_export"]  # as transformers' save_pretrained writes it
    (hf / "config.json").write_text(json.dumps(config))
    before = snapshot(hf)
    assert_clear_error(run("export", make_model("rotary"), hf, "--overwrite"), "holds files xuxie did not write")
    assert snapshot(hf) == before
    other_model = make_model("rotary", context=8)
    before = snapshot(other_model)
    assert_clear_error(run("export", make_model("rotary"), other_model, "--overwrite"), "is a xuxie model directory")
    assert snapshot(other_model) == before
    (tmp_path / "f.txt").write_text("x")
    assert_clear_error(run("export", make_model("rotary"), tmp_path / "f.txt" / "under"), "is inside", "which is a file")


def test_cli_unknown_format(make_model, tmp_path):
    assert_clear_error(run("export", make_model("rotary"), tmp_path / "out", "--format", "onnx"), "unknown export format 'onnx'", "hf")
    assert not (tmp_path / "out").exists()


def test_cli_bad_paths(make_model, tmp_path):
    assert_clear_error(run("export", tmp_path / "nowhere", tmp_path / "out"), "does not exist")
    f = tmp_path / "file.txt"
    f.write_text("x")
    assert_clear_error(run("export", make_model("rotary"), f), "is a file")
    model_dir = make_model("rotary")
    assert_clear_error(run("export", model_dir, model_dir.parent, "--overwrite"), "holds the model being exported")


def test_empty_out_dir_is_fine(make_model, tmp_path):
    out = tmp_path / "hf"
    out.mkdir()
    export_model(make_model("rotary"), out, "hf")
    assert (out / "model.safetensors").is_file()


def test_interrupted_export_leaves_nothing(make_model, tmp_path, monkeypatch):
    import safetensors.torch

    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors.torch, "save_file", broken)
    out = tmp_path / "hf"
    with pytest.raises(KeyboardInterrupt):
        export_hf(make_model("rotary"), out)
    assert list(tmp_path.iterdir()) == []
    # with --overwrite, an interrupted export keeps the previous one
    monkeypatch.undo()
    export_hf(make_model("learned"), out)
    before = snapshot(out)
    monkeypatch.setattr(safetensors.torch, "save_file", broken)
    with pytest.raises(KeyboardInterrupt):
        export_hf(make_model("rotary"), out, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["hf"]
    assert snapshot(out) == before


def test_api_error_type(make_model, tmp_path):
    with pytest.raises(XuxieError, match="unknown export format"):
        export_model(make_model("rotary"), tmp_path / "x", "gguf")
