"""Run scalars written through accelerate's TensorBoard tracker and read back from the event files."""
import math

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lifelong.evaluation.history import RoundRecord, RunHistory
from lifelong.evaluation.trackers import Tracker, TrackerConfig, clean_scalars, flat_hparams, round_scalars


def _read(log_dir):
    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _history():
    # Values exactly representable in float32 (TensorBoard stores float32).
    h = RunHistory(run="demo", strategy="adapt_inf", tasks=["a", "b"])
    h.set_accuracy_row(0, [0.25, 0.125])
    h.set_accuracy_row(1, [0.75, 0.25])
    h.set_accuracy_row(2, [0.5, 1.0])
    h.set_round(RoundRecord(round=2, dataset="b", pool_size=1200, selected=300, pruned=40,
                            stage_seconds={"train": 12.5, "eval": 2.0}))
    return h


def test_round_scalars_by_hand():
    s = round_scalars(_history(), 2)
    # After round 2: A = (0.5 + 1.0) / 2; forgetting(a) = max(0.75) - 0.5; BWT(a) = 0.5 - 0.75;
    # FWT(b) = a[1, b] - a[0, b] = 0.25 - 0.125; LA = (a[1, a] + a[2, b]) / 2 = (0.75 + 1.0) / 2.
    assert s == {"cl/avg_acc": 0.75, "cl/forgetting": 0.25, "cl/bwt": -0.25, "cl/fwt": 0.125,
                 "cl/learning_acc": 0.875,
                 "acc/a": 0.5, "acc/b": 1.0, "pool/size": 1200, "pool/selected": 300, "pool/pruned": 40,
                 "seconds/train": 12.5, "seconds/eval": 2.0}
    s1 = round_scalars(_history(), 1)  # round 1: one task seen, nothing to forget yet, no round record
    assert s1["cl/avg_acc"] == 0.75 and s1["cl/fwt"] == 0.125
    assert math.isnan(s1["cl/forgetting"]) and math.isnan(s1["cl/bwt"]) and "pool/size" not in s1
    # Pooled: (0.5 + 1.0) / (1.0 + 0.5) = 100 % (a mean of per-task ratios would say 125 %).
    assert round_scalars(_history(), 2, reference=np.array([1.0, 0.5]))["cl/relative_gain"] == 100.0
    with pytest.raises(IndexError):
        round_scalars(_history(), 3)


def test_tensorboard_values_and_steps(tmp_path):
    tracker = Tracker(TrackerConfig(), tmp_path / "run", "demo", hparams={"train": {"lr": 0.001, "layers": [1, 2]}})
    assert tracker.log_dir == tmp_path / "run" / "metrics" / "tb" / "demo"
    tracker.log_loss([[1, 2.5], [2, 1.25]])
    logged = tracker.log({"train/loss": np.float32(0.5), "cl/forgetting": float("nan"), "skip": None,
                          "flag": True}, step=3)
    assert logged == {"train/loss": 0.5, "flag": 1}
    tracker.log_round(_history(), 1)
    tracker.log_round(_history(), 2)
    tracker.close()
    tracker.close()  # idempotent

    got = _read(tracker.log_dir)
    assert got["train/loss"] == [(1, 2.5), (2, 1.25), (3, 0.5)]
    assert got["flag"] == [(3, 1.0)]
    assert got["cl/avg_acc"] == [(1, 0.75), (2, 0.75)]
    assert got["cl/forgetting"] == [(2, 0.25)]  # NaN after round 1 is not written
    assert got["cl/bwt"] == [(2, -0.25)]
    assert got["cl/fwt"] == [(1, 0.125), (2, 0.125)]
    assert got["acc/a"] == [(1, 0.75), (2, 0.5)] and got["acc/b"] == [(1, 0.25), (2, 1.0)]
    assert got["pool/size"] == [(2, 1200.0)] and got["pool/selected"] == [(2, 300.0)]
    assert got["seconds/train"] == [(2, 12.5)] and got["seconds/eval"] == [(2, 2.0)]
    assert "skip" not in got
    with pytest.raises(RuntimeError, match="closed"):
        tracker.log({"x": 1.0}, step=4)


def test_accelerator_trackers_are_used(tmp_path):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    try:
        accelerator = Accelerator(cpu=True, log_with=["tensorboard"], project_dir=tmp_path / "acc")
        accelerator.init_trackers("shared")
        tracker = Tracker(TrackerConfig(), tmp_path / "run", "shared", accelerator=accelerator)
        assert tracker.trackers == [] and tracker.log_dir == tmp_path / "acc" / "shared"
        tracker.log({"train/loss": 0.25}, step=7)
        tracker.close()  # leaves the accelerator's trackers open
        accelerator.log({"train/loss": 0.125}, step=8)
        accelerator.end_training()
        assert _read(tmp_path / "acc" / "shared")["train/loss"] == [(7, 0.25), (8, 0.125)]
        assert not (tmp_path / "run" / "metrics" / "tb").exists()
    finally:
        AcceleratorState._reset_state(True)


def test_relative_dir_nothing_and_errors(tmp_path):
    t = Tracker(TrackerConfig(project_dir="logs"), tmp_path, "r")
    assert t.log_dir == tmp_path / "logs" / "r"
    t.log({"x": 2}, step=0)
    t.close()
    assert _read(t.log_dir)["x"] == [(0, 2.0)]

    quiet = Tracker(TrackerConfig(log_with=[]), tmp_path / "q", "r")
    quiet.log({"x": 1.0}, step=0)
    quiet.close()
    assert not (tmp_path / "q").exists()

    with pytest.raises(ValueError, match="Unsupported logging"):
        Tracker(TrackerConfig(log_with=["nonsense"]), tmp_path, "r")
    with pytest.raises(TypeError, match="'bad'"):
        clean_scalars({"bad": [1, 2]})
    assert flat_hparams({"a": {"b": 1, "c": [1]}, "d": None}) == {"a.b": 1, "a.c": "[1]", "d": "None"}
