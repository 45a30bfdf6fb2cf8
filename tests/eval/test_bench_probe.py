"""eval/bench_probe.py: the scene probe and its decoders agree with the generator's answers."""
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]

from eval import bench_probe  # noqa: E402
from eval.learnlib import build_pool  # noqa: E402

from lifelong.data.stream.config import StreamConfig  # noqa: E402
from lifelong.data.stream.generators.scenes import relation_of  # noqa: E402
from lifelong.models.align import cell_of  # noqa: E402


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    return build_pool(tmp_path_factory.mktemp("probe"), ["spatial", "counting"], StreamConfig(), seed=0)


def test_cells_and_their_relation_follow_the_image_grid():
    size, grid = 64, 2
    assert [cell_of(x, y, grid, size) for x, y in ((5, 5), (40, 5), (5, 40), (63, 63))] == [0, 1, 2, 3]
    # The relation of two cells is the generator's relation of their centres.
    centre = {c: ((c % grid + 0.5) * size / grid, (c // grid + 0.5) * size / grid) for c in range(grid * grid)}
    for a in range(4):
        for b in range(4):
            if a != b and relation_of(*centre[a], *centre[b]) is not None:
                assert bench_probe.relation_of_cells(a, b, grid) == relation_of(*centre[a], *centre[b])


def _best_at_2x2(task, samples):
    """The accuracy of a perfect reading of a 2x2 grid. Counting: 1 (one shape per quarter). Spatial:
    two objects in diagonal cells differ along both axes, so the cells cannot tell which axis
    dominates; the decoder says left/right there and misses the above/below ones."""
    if task == "counting":
        return 1.0
    missed = 0
    for s in samples:
        a, b = s.provenance["objects"]
        diagonal = (a["cx"] < 32) != (b["cx"] < 32) and (a["cy"] < 32) != (b["cy"] < 32)
        missed += diagonal and s.provenance["relation"] in ("above", "below")
    assert 0 < missed < 0.2 * len(samples)
    return 1 - missed / len(samples)


def _tokens_from_truth(samples, colors, grid, rng, informative: bool):
    """Image tokens that carry the scene (labels + noise) or, shuffled across samples, do not."""
    y = bench_probe.scene_labels(samples, colors, grid, 64)
    if not informative:
        y = y[rng.permutation(len(y))]
    return y + rng.normal(0, 0.2, y.shape)


@pytest.mark.parametrize("task", ["spatial", "counting"])
def test_a_probe_of_tokens_that_carry_the_scene_answers_every_question(pool, task):
    rng = np.random.default_rng(0)
    train = pool.samples(task=task)
    test = pool.samples(status=None, split="test", task=task)
    colors = sorted({o["color"] for s in train + test for o in s.provenance["objects"]})
    refs = [s.provenance["true_answer"] for s in test]
    for informative in (True, False):
        x_train = _tokens_from_truth(train, colors, 2, rng, informative)
        x_test = _tokens_from_truth(test, colors, 2, rng, informative)
        probs = bench_probe.fit_probes(x_train, bench_probe.scene_labels(train, colors, 2, 64), x_test)
        answers = bench_probe.decode(task, test, probs, colors, 2)
        acc = np.mean([a == r for a, r in zip(answers, refs)])
        if informative:
            assert acc == pytest.approx(_best_at_2x2(task, test))
        else:
            assert acc < 0.6  # tokens unrelated to the scene: about chance (4 relations; counts 1-4)
