"""Continual-learning metrics against accuracy matrices worked out by hand."""
import math
import warnings

import numpy as np
import pytest

from lifelong.evaluation import metrics as M

NAN = float("nan")

# Three tasks, three rounds. Row 0 = before training, row t = after round t;
# task i is learned in round i + 1 (the diagonal a[i+1, i]).
A = np.array(
    [
        [0.2, 0.1, 0.3],  # before training
        [0.9, 0.2, 0.25],  # after round 1 (task 0 learned)
        [0.7, 0.8, 0.4],  # after round 2 (task 1 learned)
        [0.6, 0.7, 0.9],  # after round 3 (task 2 learned)
    ]
)


def test_average_accuracy_per_round():
    # A_1 = 0.9 (task 0 only); A_2 = (0.7 + 0.8) / 2 = 0.75; A_3 = (0.6 + 0.7 + 0.9) / 3 = 0.7333...
    assert math.isnan(M.average_accuracy_at(A, 0))
    assert M.average_accuracy_at(A, 1) == pytest.approx(0.9)
    assert M.average_accuracy_at(A, 2) == pytest.approx(0.75)
    assert M.average_accuracy(A) == pytest.approx(2.2 / 3)
    np.testing.assert_allclose(M.per_round("avg_acc", A), [NAN, 0.9, 0.75, 2.2 / 3], equal_nan=True)


def test_forgetting_bwt_fwt_relative_gain_by_hand():
    # Forgetting: task 0: max(a[0,0], a[1,0], a[2,0]) - a[3,0] = 0.9 - 0.6 = 0.3;
    #             task 1: max(a[0,1], a[1,1], a[2,1]) - a[3,1] = 0.8 - 0.7 = 0.1  ->  F = 0.2
    assert M.forgetting(A) == pytest.approx(0.2)
    # BWT: (a[3,0] - a[1,0] + a[3,1] - a[2,1]) / 2 = (-0.3 - 0.1) / 2 = -0.2
    assert M.backward_transfer(A) == pytest.approx(-0.2)
    # FWT: (a[1,1] - a[0,1] + a[2,2] - a[0,2]) / 2 = (0.1 + 0.1) / 2 = 0.1
    assert M.forward_transfer(A) == pytest.approx(0.1)
    # Relative gain on pooled accuracy vs reference final row (1.0, 0.8, 0.9):
    # (0.6 + 0.7 + 0.9) / (1.0 + 0.8 + 0.9) * 100 = 2.2 / 2.7 * 100 = 81.48...
    ref = np.array([1.0, 0.8, 0.9])
    assert M.relative_gain(A, ref) == pytest.approx(2200 / 27)
    # A whole reference matrix: its last row is used.
    assert M.relative_gain(A, np.vstack([np.zeros(3), ref])) == pytest.approx(2200 / 27)
    assert math.isnan(M.relative_gain(A))  # no reference
    # Per round: round 2 forgets task 0 by 0.9 - 0.7 = 0.2; BWT after round 2 = 0.7 - 0.9 = -0.2.
    np.testing.assert_allclose(M.per_round("forgetting", A), [NAN, NAN, 0.2, 0.2], equal_nan=True)
    np.testing.assert_allclose(M.per_round("bwt", A), [NAN, NAN, -0.2, -0.2], equal_nan=True)


def test_learning_accuracy_is_the_diagonal_by_hand():
    # a[1, 0] = 0.9, a[2, 1] = 0.8, a[3, 2] = 0.9 -> LA = 2.6 / 3
    np.testing.assert_allclose(M.diagonal(A), [0.9, 0.8, 0.9])
    assert M.learning_accuracy(A) == pytest.approx(2.6 / 3)
    # After round 2 only tasks 0 and 1 were learned: (0.9 + 0.8) / 2; round 1: 0.9.
    np.testing.assert_allclose(M.per_round("learning_acc", A), [NAN, 0.9, 0.85, 2.6 / 3], equal_nan=True)
    # More tasks than rounds (a run in progress) and a cell not evaluated.
    part = A[:3].copy()
    part[2, 1] = NAN
    assert M.learning_accuracy(part) == pytest.approx(0.9)
    # A run that trains once at the end has no diagonal but its last cell: undefined, not 0.9.
    end_only = np.array([[0.0, 0.0, 0.0], [NAN, NAN, NAN], [NAN, NAN, NAN], [0.8, 0.7, 0.9]])
    assert math.isnan(M.learning_accuracy(end_only))


def test_forgetting_uses_the_best_accuracy_not_the_learned_one():
    # Task 0 keeps improving after it was learned (0.5 -> 0.9), then drops to 0.6:
    # forgetting counts the drop from the best, 0.9 - 0.6 = 0.3, while BWT sees 0.6 - 0.5 = +0.1.
    # Task 1: learned 0.6, then 0.4 -> forgetting 0.2, BWT -0.2.
    a = np.array(
        [
            [0.0, 0.0, 0.0],
            [0.5, 0.1, 0.1],
            [0.9, 0.6, 0.2],
            [0.6, 0.4, 0.8],
        ]
    )
    assert M.forgetting(a) == pytest.approx((0.3 + 0.2) / 2)
    assert M.backward_transfer(a) == pytest.approx((0.1 - 0.2) / 2)
    # Row 0 counts (docs/design.md): a skill the base model had (1.0) and lost is forgotten,
    # task 0: 1.0 - 0.6 = 0.4, task 1 still 0.2 -> 0.3 (rows 1..R-1 only would give 0.25).
    b = a.copy()
    b[0, 0] = 1.0
    assert M.forgetting(b) == pytest.approx(0.3)
    # So do rows before a task arrived: task 1 at 0.8 after round 1, learned at 0.6 in round 2,
    # 0.4 now -> 0.8 - 0.4 = 0.4 (task 0: 0.3) -> 0.35.
    c = a.copy()
    c[1, 1] = 0.8
    assert M.forgetting(c) == pytest.approx(0.35)
    # The task learned in the last round is never counted, whatever row 0 says.
    d = a.copy()
    d[0, 2] = 1.0
    assert M.forgetting(d) == pytest.approx(0.25)


def test_gem_definitions_in_their_own_notation():
    """Lopez-Paz & Ranzato (2017), eqs. for BWT and FWT, with 1-based R_{j,i} and b_i.

    T = 4 tasks. R[j][i] = test accuracy on task i after learning task j; b[i] at random init.
    """
    T = 4
    b = {1: 0.25, 2: 0.10, 3: 0.50, 4: 0.20}
    R = {
        1: {1: 0.80, 2: 0.30, 3: 0.50, 4: 0.20},
        2: {1: 0.60, 2: 0.90, 3: 0.55, 4: 0.40},
        3: {1: 0.50, 2: 0.70, 3: 0.95, 4: 0.30},
        4: {1: 0.40, 2: 0.80, 3: 0.85, 4: 0.70},
    }
    # BWT = 1/(T-1) sum_{i=1}^{T-1} R_{T,i} - R_{i,i}
    #     = ((0.40 - 0.80) + (0.80 - 0.90) + (0.85 - 0.95)) / 3 = (-0.4 - 0.1 - 0.1) / 3 = -0.2
    # FWT = 1/(T-1) sum_{i=2}^{T} R_{i-1,i} - b_i
    #     = ((0.30 - 0.10) + (0.55 - 0.50) + (0.30 - 0.20)) / 3 = (0.2 + 0.05 + 0.1) / 3 = 0.11666...
    # ACC = 1/T sum_i R_{T,i} = (0.4 + 0.8 + 0.85 + 0.7) / 4 = 0.6875
    a = np.array([[b[i] for i in range(1, T + 1)]] + [[R[j][i] for i in range(1, T + 1)] for j in range(1, T + 1)])
    assert a.shape == (T + 1, T)
    assert M.backward_transfer(a) == pytest.approx(-0.2)
    assert M.forward_transfer(a) == pytest.approx(0.35 / 3)
    assert M.average_accuracy(a) == pytest.approx(0.6875)
    # Forgetting (every earlier row, b_i included): task 1: max(0.25, 0.8, 0.6, 0.5) - 0.4 = 0.4;
    # task 2: max(0.1, 0.3, 0.9, 0.7) - 0.8 = 0.1; task 3: max(0.5, 0.5, 0.55, 0.95) - 0.85 = 0.1 -> 0.2
    assert M.forgetting(a) == pytest.approx(0.2)


def test_nan_cells_are_left_out_without_warnings():
    a = A.copy()
    a[2, 0] = NAN  # task 0 not evaluated after round 2
    a[3, 1] = NAN  # task 1 not evaluated after round 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # A_2 = 0.8 (only task 1); A_3 = (0.6 + 0.9) / 2 = 0.75
        assert M.average_accuracy_at(a, 2) == pytest.approx(0.8)
        assert M.average_accuracy(a) == pytest.approx(0.75)
        # Task 0's best is still a[1,0] = 0.9 -> 0.3; task 1 has no final value -> left out.
        assert M.forgetting(a) == pytest.approx(0.3)
        assert M.backward_transfer(a) == pytest.approx(-0.3)
        assert M.forward_transfer(a) == pytest.approx(0.1)
        allnan = np.full((4, 3), NAN)
        assert all(math.isnan(v) for v in M.compute_all(allnan, np.ones(3)).values())
        # A reference of 0 still counts; a NaN drops the task from both sums: (0.6 + 0.9) / (0 + 0.9).
        assert M.relative_gain(A, np.array([0.0, NAN, 0.9])) == pytest.approx(1.5 / 0.9 * 100)
        assert math.isnan(M.relative_gain(A, np.array([0.0, NAN, 0.0])))  # nothing to compare with


def test_run_in_progress_uses_the_last_row():
    part = A[:3]  # rounds 0..2 of 3 tasks
    assert M.average_accuracy(part) == pytest.approx(0.75)
    assert M.forgetting(part) == pytest.approx(0.2)
    assert M.backward_transfer(part) == pytest.approx(-0.2)
    # Task 2 has not arrived, but its accuracy after round 2 already measures forward transfer.
    assert M.forward_transfer(part) == pytest.approx(0.1)
    # Only tasks 0 and 1 seen: (0.7 / 1.0 + 0.8 / 0.8) / 2 * 100 = 85
    assert M.relative_gain(part, np.array([1.0, 0.8, 0.9])) == pytest.approx(1.5 / 1.8 * 100)  # seen: tasks 0, 1
    only_before = A[:1]
    assert all(math.isnan(v) for v in M.compute_all(only_before, np.ones(3)).values())
    nothing = np.zeros((0, 3))  # not even row 0 evaluated yet
    assert all(math.isnan(v) for v in M.compute_all(nothing, np.ones(3)).values())


@pytest.mark.parametrize("name", sorted(M.METRICS))
def test_every_registered_metric_contract(name):
    met = M.METRICS[name]
    ref = np.array([1.0, 0.8, 0.9])
    v = met.fn(A, ref)
    assert isinstance(v, float) and math.isfinite(v)
    series = M.per_round(name, A, ref)
    assert series.shape == (A.shape[0],)
    assert math.isnan(series[0])  # nothing learned before round 1
    assert series[-1] == pytest.approx(v)
    assert met.description


def test_register_and_summary():
    with pytest.raises(ValueError):
        M.register("bwt")(lambda a, reference=None: 0.0)
    s = M.summary(A)
    assert s["final"]["relative_gain"] is None
    assert s["per_round"]["avg_acc"][0] is None
    assert s["final"]["bwt"] == pytest.approx(-0.2)
    with pytest.raises(ValueError):
        M.average_accuracy(np.zeros(3))


def test_forgetting_is_undefined_for_a_run_that_trains_once_at_the_end():
    # multitask: row 0 (base) and the final row evaluated, nothing in between. Counting row 0 as the
    # "best before" would call the whole final accuracy negative forgetting (0 - 0.8 = -0.8).
    a = np.array([[0.0, 0.0, 0.0], [NAN, NAN, NAN], [NAN, NAN, NAN], [0.8, 0.7, 0.9]])
    assert math.isnan(M.forgetting(a))
    # One intermediate evaluation of task 0 is enough to measure its forgetting: max(0.0, 0.6) - 0.5.
    a[1, 0] = 0.6
    a[3, 0] = 0.5
    assert M.forgetting(a) == pytest.approx(0.1)
