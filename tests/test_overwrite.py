"""--overwrite replaces only what xuxie wrote: a folder is a xuxie model only if its config.json
carries xuxie's format marker, and in it only xuxie's own files are replaced."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import assert_clear_error, run, snapshot

from xuxie import TextGenerator, XuxieError
from xuxie.checkpoint import checkpoints
from xuxie.export import export_hf

TINY = ["--steps", "3", "--hidden-size", "16", "--seq-len", "32", "--batch-size", "4", "--preview-length", "0", "-q"]


@pytest.fixture
def corpus(tmp_path, shakespeare_text) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(shakespeare_text[:20_000], encoding="utf-8")
    return path


def _users_documents(folder: Path) -> Path:
    folder.mkdir()
    (folder / "thesis.txt").write_text("years of work", encoding="utf-8")
    (folder / "config.json").write_text('{"theme": "dark"}', encoding="utf-8")  # a config.json that is not xuxie's
    (folder / "drafts").mkdir()
    (folder / "drafts" / "one.md").write_text("draft", encoding="utf-8")
    return folder


def _hf_folder(folder: Path) -> Path:
    """What transformers' save_pretrained writes: config.json, weights and tokenizer files."""
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}), encoding="utf-8")
    (folder / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    (folder / "tokenizer.json").write_text("{}", encoding="utf-8")
    (folder / "generation_config.json").write_text("{}", encoding="utf-8")
    return folder


@pytest.mark.parametrize("make", [_users_documents, _hf_folder], ids=["documents", "hf-folder"])
@pytest.mark.parametrize("flags", [[], ["--overwrite"]], ids=["plain", "overwrite"])
def test_a_folder_xuxie_did_not_write_survives(tmp_path, corpus, make, flags):
    folder = make(tmp_path / "folder")
    before = snapshot(folder)
    assert_clear_error(run("train", corpus, "--out", folder, *flags, *TINY), "holds files xuxie did not write", "choose another --out")
    assert snapshot(folder) == before


def test_an_export_folder_is_not_a_model_directory(tmp_path, corpus, shakespeare_text):
    model = TextGenerator.train(shakespeare_text[:20_000], arch="transformer", out=tmp_path / "tf", steps=2, preview_length=0,
                                progress=False, model_options={"n_layer": 1, "n_head": 2, "n_embd": 16, "context": 16})
    export = export_hf(model.path, tmp_path / "hf")
    before = snapshot(export)
    assert_clear_error(run("train", corpus, "--out", export, "--overwrite", *TINY), "is a Hugging Face export")
    assert snapshot(export) == before


def test_overwrite_replaces_only_xuxies_files(tmp_path, corpus):
    out = tmp_path / "run"
    assert run("train", corpus, "--out", out, "--steps", "6", "--eval-interval", "2", *TINY[2:]).exit_code == 0
    (out / "notes.txt").write_text("what I learned", encoding="utf-8")
    (out / "checkpoints" / "keep-me.txt").write_text("mine", encoding="utf-8")
    old_checkpoints = {c.name for c in checkpoints(out)}
    r = run("train", corpus, "--out", out, "--overwrite", *TINY)
    assert r.exit_code == 0, r.stderr
    assert (out / "notes.txt").read_text(encoding="utf-8") == "what I learned"
    assert (out / "checkpoints" / "keep-me.txt").read_text(encoding="utf-8") == "mine"
    assert json.loads((out / "config.json").read_text())["results"]["steps"] == 3
    assert old_checkpoints == {"step-000000004", "step-000000006"}
    assert checkpoints(out)[0].name.startswith("step-000000003") and not old_checkpoints & {c.name for c in checkpoints(out)}
    logged_steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert max(logged_steps) == 3  # the old run's log went with it


def test_out_is_a_file_or_under_a_file(tmp_path, corpus):
    a_file = tmp_path / "model.bin"
    a_file.write_bytes(b"precious")
    assert_clear_error(run("train", corpus, "--out", a_file, "--overwrite", *TINY), "is a file", "give a folder path")
    assert_clear_error(run("train", corpus, "--out", a_file / "sub" / "run", *TINY), "is inside", "which is a file")
    assert a_file.read_bytes() == b"precious"


def test_a_folder_holding_the_corpus_is_refused(tmp_path, corpus):
    out = tmp_path / "run"
    assert run("train", corpus, "--out", out, *TINY).exit_code == 0
    inside = out / "more.txt"
    inside.write_text(corpus.read_text(encoding="utf-8"), encoding="utf-8")
    before = snapshot(out)
    assert_clear_error(run("train", inside, "--out", out, "--overwrite", *TINY), "is inside --out")
    assert snapshot(out) == before


def test_a_run_stopped_before_its_first_checkpoint_is_reused(tmp_path, corpus, monkeypatch):
    """The folder a run leaves when it dies before saving anything holds nothing to lose: the next
    run takes it over without --overwrite, and --resume starts it again from step 0."""
    import xuxie.training as training

    def die(self, lr):
        raise RuntimeError("killed")

    out = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(training.Trainer, "_train_step", die)
        with pytest.raises(RuntimeError):
            TextGenerator.train(corpus, out=out, steps=3, progress=False, preview_length=0, model_options={"hidden_size": 16})
    assert (out / "config.json").is_file() and not checkpoints(out) and not (out / "model.safetensors").exists()
    r = run("generate", out, "--max-new-tokens", "5")
    assert r.exit_code == 2 and "training has not saved a checkpoint" in r.stderr
    with pytest.warns(UserWarning, match="no checkpoint yet"):
        resumed = TextGenerator.train(corpus, out=out, resume=True, steps=3, progress=False)
    assert resumed.config["results"]["steps"] == 3
    # A fresh run over the folder a dead run left needs no --overwrite either.
    with monkeypatch.context() as m:
        m.setattr(training.Trainer, "_train_step", die)
        with pytest.raises(RuntimeError):
            TextGenerator.train(corpus, out=tmp_path / "again", steps=3, progress=False, preview_length=0)
    r = run("train", corpus, "--out", tmp_path / "again", *TINY)
    assert r.exit_code == 0, r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run("train", corpus, "--out", empty, *TINY).exit_code == 0


def test_no_temporary_folder_is_left_beside_a_new_model(tmp_path, corpus):
    assert run("train", corpus, "--out", tmp_path / "m", *TINY).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.txt", "m"]
    assert os.stat(tmp_path / "m").st_mode & 0o777 == 0o777 & ~_umask()  # a plain folder, not a private temp one
    assert os.stat(tmp_path / "m" / "config.json").st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_save_copies_only_into_a_folder_it_may_write(tmp_path, small_shakespeare_model):
    docs = _users_documents(tmp_path / "docs")
    before = snapshot(docs)
    with pytest.raises(XuxieError, match="holds files xuxie did not write"):
        small_shakespeare_model.save(docs, overwrite=True)
    assert snapshot(docs) == before
    small_shakespeare_model.save(tmp_path / "copy")
    with pytest.raises(XuxieError, match="already holds a model"):
        small_shakespeare_model.save(tmp_path / "copy")
    small_shakespeare_model.save(tmp_path / "copy", overwrite=True)
    copy = TextGenerator.load(tmp_path / "copy")
    assert copy.generate(max_new_tokens=5, seed=1) == small_shakespeare_model.generate(max_new_tokens=5, seed=1)
