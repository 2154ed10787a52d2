"""The trainer as a loop: callbacks that own their state (and resume it, from old checkpoints too),
one evaluation shared by the trainer and TextGenerator, and defaults read from the model families."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import InterruptAt

from xuxie import TextGenerator
from xuxie.checkpoint import checkpoints
from xuxie.corpus import corpus_from_text
from xuxie.training import Checkpoint, EarlyStopping, MetricsLog, ReduceLROnPlateau

# Nothing improves at this learning rate: the plateau halves it every 2 evaluations and early
# stopping ends the run after 4.
STUCK = dict(steps=40, eval_interval=3, eval_tokens=600, schedule="plateau", plateau_patience=2, patience=4, lr=1e-9, warmup_steps=1,
             log_every=1, seq_len=48, batch_size=16, preview_length=0, progress=False, precision="fp32")
TINY = {"hidden_size": 32, "dropout": 0.1}


def _log(path: Path) -> list[tuple]:
    records = [json.loads(line) for line in (path / "log.jsonl").read_text().splitlines()]
    return [(r["event"], r.get("step"), r.get("lr"), r.get("val_loss"), r.get("stopped")) for r in records]


def _as_written_before_callbacks_kept_state(out: Path) -> None:
    """Rewrite the newest checkpoint as an older xuxie wrote it: the trainer kept the plateau
    counter (``bad_evals``) in its own state, and there were no callback states."""
    f = checkpoints(out)[0] / "trainer_state.pt"
    d = torch.load(f, weights_only=True)
    plateau = json.loads(d.pop("callbacks"))["EarlyStopping"]
    state = json.loads(d["state"])
    d["state"] = json.dumps({**state, "bad_evals": plateau["bad_evals"]})
    torch.save(d, f)


@pytest.mark.parametrize("old_format", [False, True], ids=["callback-state", "old-trainer-state"])
def test_early_stopping_and_plateau_resume_exactly(shakespeare_text, tmp_path, old_format):
    text = shakespeare_text[:60_000]
    TextGenerator.train(text, out=tmp_path / "a", model_options=TINY, **STUCK)
    callbacks = [MetricsLog(), EarlyStopping(STUCK["patience"]), Checkpoint(), InterruptAt(10)]
    with pytest.raises(KeyboardInterrupt):
        TextGenerator.train(text, out=tmp_path / "b", model_options=TINY, callbacks=callbacks, **STUCK)
    if old_format:
        _as_written_before_callbacks_kept_state(tmp_path / "b")
    TextGenerator.train(text, out=tmp_path / "b", resume=True, **STUCK)
    straight, resumed = _log(tmp_path / "a"), _log(tmp_path / "b")
    assert resumed == straight
    assert straight[-1][1] == 15 and straight[-1][4].startswith("early stop")  # stopped by the restored counter
    assert sorted({r[2] for r in straight if r[2]}) == [5e-10, 1e-9]  # and the learning rate lowered once, after resume


def test_plateau_schedule_works_with_a_callback_list_of_ones_own(shakespeare_text, tmp_path):
    """--schedule plateau is a ReduceLROnPlateau callback; the trainer adds it to a list without one."""
    TextGenerator.train(shakespeare_text[:60_000], out=tmp_path / "m", model_options=TINY, callbacks=[MetricsLog(), Checkpoint()],
                        **{**STUCK, "patience": 0, "steps": 15})
    lrs = [r[2] for r in _log(tmp_path / "m") if r[0] == "train"]
    assert lrs[0] == 1e-9 and lrs[-1] == 5e-10  # halved after the evaluations at steps 6 and 9 (none improved)
    assert ReduceLROnPlateau(0.5, 2).state_dict() == {"best": float("inf"), "bad_evals": 0}


def test_evaluate_scores_like_the_trainer(shakespeare_text, tmp_path):
    """TextGenerator.evaluate and the trainer's final evaluation are one evaluation."""
    text = shakespeare_text[:30_000]
    opts = {"n_layer": 1, "n_head": 2, "n_embd": 32, "context": 32}
    tg = TextGenerator.train(text, arch="transformer", out=tmp_path / "t", model_options=opts, steps=6, eval_interval=3,
                             val_fraction=0.1, preview_length=0, progress=False, precision="fp32")
    val_text = corpus_from_text(text, "text").split(0.1)[1].text  # what the trainer validated on
    assert tg.evaluate(val_text)["loss"] == pytest.approx(tg.config["results"]["final_val_loss"], abs=1e-5)


def test_readme_table_of_defaults_is_read_from_the_families():
    from xuxie.defaults import defaults_table

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert defaults_table() in readme, "README's defaults table is stale: paste `python -m xuxie.defaults`"


def test_evaluation_reads_a_fixed_sample_spread_over_the_split():
    from xuxie.data import eval_streams

    ids = np.arange(100_001)
    chunks = list(eval_streams(ids, seq_len=50, n_streams=4, max_tokens=1_000))
    firsts = chunks[0][0][:, 0].tolist()
    assert firsts[0] == 0 and firsts[-1] > 99_000, "the sample reaches the end of the split, not just its beginning"
    assert sum(y.numel() for _, y in chunks) == 1_000
    again = list(eval_streams(ids, seq_len=50, n_streams=4, max_tokens=1_000))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(chunks, again)), "the same sample every time"
    whole = list(eval_streams(ids, seq_len=50, n_streams=4))
    assert sum(y.numel() for _, y in whole) == 100_000


def test_the_final_evaluation_is_bounded_and_has_an_error_bar(shakespeare_text, tmp_path):
    tg = TextGenerator.train(shakespeare_text[:100_000], out=tmp_path / "m", steps=4, eval_interval=4, seq_len=32, batch_size=8,
                             final_eval_tokens=3_000, preview_length=0, progress=False, model_options={"hidden_size": 16})
    r = tg.config["results"]
    assert r["final_val_tokens"] <= 3_000 < len(shakespeare_text[90_000:100_000])
    assert 0 < r["final_val_loss_stderr"] < 0.5 * r["final_val_loss"]


def test_training_windows_come_from_a_compact_id_array():
    from xuxie.data import LMBatches

    ids = np.random.default_rng(0).integers(0, 70_000, 5_000).astype(np.int32)
    small = LMBatches(ids % 4_000, seq_len=16, batch_size=4)
    large = LMBatches(ids, seq_len=16, batch_size=4)
    assert small.ids.dtype == np.uint16 and large.ids.dtype == np.uint32
    x, y = large.sample(torch.Generator().manual_seed(3))
    assert x.dtype == torch.int64 and x.shape == y.shape == (4, 16) and torch.equal(x[:, 1:], y[:, :-1])
    text_windows = np.lib.stride_tricks.sliding_window_view(ids, 17)
    for row in torch.cat([x, y[:, -1:]], dim=1).numpy():
        assert (text_windows == row).all(axis=1).any(), "each row is a window of the text"


def _epoch_starts(batches, generator, n_batches: int) -> list[int]:
    """The first token of each window drawn (the ids are their own positions)."""
    return [s for _ in range(n_batches) for s in batches.sample(generator)[0][:, 0].tolist()]


def test_each_epoch_trains_on_every_window_once_in_a_new_order():
    from xuxie.data import LMBatches

    n, seq_len = 10_003, 16
    batches = LMBatches(np.arange(n), seq_len=seq_len, batch_size=8)
    drawn = _epoch_starts(batches, torch.Generator().manual_seed(0), 400)  # five epochs and more
    offsets, seen = [], 0
    while seen + 700 <= len(drawn):
        offset = drawn[seen] % seq_len
        epoch = list(range(offset, n - seq_len, seq_len))
        visited = drawn[seen:seen + len(epoch)]
        assert sorted(visited) == epoch, "every window of the epoch once, at one offset"
        assert visited != epoch, "in a random order"
        offsets.append(offset)
        seen += len(epoch)
    assert len(offsets) >= 4 and len(set(offsets)) > 1, "each epoch cuts the text at its own offset"


def test_window_order_resumes_from_its_state_and_spans_epochs_on_a_tiny_text():
    from xuxie.data import LMBatches

    for n in (5_000, 40):  # 40 tokens: one or two windows of 16 an epoch, fewer than a batch
        first = LMBatches(np.arange(n), seq_len=16, batch_size=8)
        generator = torch.Generator().manual_seed(1)
        _epoch_starts(first, generator, 30)
        state, rng = first.state_dict(), generator.get_state()
        expected = _epoch_starts(first, generator, 60)  # across epoch boundaries

        resumed = LMBatches(np.arange(n), seq_len=16, batch_size=8)
        resumed.load_state_dict(state)
        assert _epoch_starts(resumed, torch.Generator().set_state(rng), 60) == expected
        assert all(0 <= s <= n - 17 for s in expected)


def test_final_figures_describe_the_saved_weights(tmp_path, shakespeare_text):
    """A run whose last evaluation is worse than its best saves the best weights as the model;
    its final figures must score those weights (and say which step they are from), not the last."""
    from xuxie import TextGenerator

    # 8k characters, 30 epochs of them: the model learns them by heart and gets worse on the rest
    tg = TextGenerator.train(shakespeare_text[:8000], out=tmp_path / "m", steps=300, seq_len=32, batch_size=24,
                             lr=1e-2, eval_interval=30, preview_length=0, progress=False, model_options={"hidden_size": 256})
    r = tg.config["results"]
    records = [json.loads(line) for line in (tmp_path / "m" / "log.jsonl").read_text().splitlines()]
    last = [e for e in records if "val_loss" in e and e.get("event") != "end"][-1]  # the last evaluation
    assert r["best_step"] < r["steps"] == last["step"], r  # the premise: the last weights are not the best
    assert r["final_val_step"] == r["best_step"]
    # the whole (small) validation split is every evaluation's: the final fp32 figure is the best's
    assert abs(r["final_val_loss"] - r["best_val_loss"]) < 0.02, r
    assert last["val_loss"] > r["final_val_loss"] + 0.05, (last, r)
