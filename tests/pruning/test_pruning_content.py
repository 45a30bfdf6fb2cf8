"""prune.features content (image thumbnail + idf-weighted words) and prune.thin dataset (removals
past the duplicates shared over datasets by size), docs/design.md step 8."""
import math
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from lifelong.pruning.content import content_features, words
from lifelong.pruning.partition import partition
from lifelong.pruning.semdedup import PruneConfig, semdedup


def sample(question, answer, image=None):
    return SimpleNamespace(conversation=[{"role": "user", "content": question},
                                        {"role": "assistant", "content": answer}], image=image)


def pattern(seed, side=64):
    """A blocky random RGB picture (8 px blocks), as a PIL image."""
    blocks = np.random.default_rng(seed).integers(0, 255, (side // 8, side // 8, 3), dtype=np.uint8)
    return Image.fromarray(np.kron(blocks, np.ones((8, 8, 1), dtype=np.uint8)))


def shifted(image, px):
    return Image.fromarray(np.roll(np.asarray(image), px, axis=1))


def cos(x, i, j):
    return float(np.dot(x[i], x[j]))


def test_text_rows_are_the_idf_weighted_word_counts_worked_out_by_hand():
    texts = [("Which is the bigger number: 490 or 368?", "490"),
             ("Of 490 and 368, which number is larger?", "490"),
             ("Which is the bigger number: 12 or 77?", "77")]
    samples = [sample(q, a) for q, a in texts]
    x = content_features(samples, lambda d: None, buckets=2 ** 20)  # no hash collisions among these words
    # By hand: tf-idf over the three texts, (1 + ln tf) * (ln((1 + 3) / (1 + df)) + 1), cosine of the vectors.
    bags = [Counter(f"{q} {a}".lower().replace("?", " ").replace(":", " ").replace(",", " ").split())
            for q, a in texts]
    df = Counter(w for b in bags for w in b)
    vec = [{w: (1 + math.log(c)) * (math.log(4 / (1 + df[w])) + 1) for w, c in b.items()} for b in bags]

    def hand(a, b):
        dot = sum(v * vec[b].get(w, 0.0) for w, v in vec[a].items())
        return dot / math.sqrt(sum(v * v for v in vec[a].values()) * sum(v * v for v in vec[b].values()))

    for i, j in [(0, 1), (0, 2), (1, 2)]:
        assert cos(x, i, j) == pytest.approx(hand(i, j), abs=1e-5)
    # The reworded copy shares the numbers and the answer, which weigh most: it is nearer than the
    # record that shares the template.
    assert cos(x, 0, 1) > cos(x, 0, 2)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)


def test_a_shifted_copy_is_near_one_and_another_picture_of_the_same_question_is_not():
    images = {"a": pattern(1), "a_shift": shifted(pattern(1), 1), "b": pattern(2)}
    q = "<image>\nWhat digit is shown in the image?"
    samples = [sample(q, "3", "a"), sample(q, "3", "a_shift"), sample(q, "3", "b"), sample(q, "3", None)]
    x = content_features(samples, images.__getitem__)
    assert words(samples[0]) == ["what", "digit", "is", "shown", "in", "the", "image", "3"]
    assert cos(x, 0, 1) > 0.98  # same words, picture moved by a pixel
    assert cos(x, 0, 2) < 0.8  # same words, another picture: half of the row differs
    # An image sample against a text-only one with the same words: only the text half is shared.
    assert cos(x, 0, 3) == pytest.approx(2 ** -0.5, abs=1e-5)


def test_a_uniform_grey_image_counts_as_no_image():
    images = {"flat": Image.new("RGB", (32, 32), (128, 128, 128))}
    x = content_features([sample("<image>\nred?", "yes", "flat"), sample("red?", "yes")], images.__getitem__)
    assert cos(x, 0, 1) == pytest.approx(1.0, abs=1e-6)


def test_content_rows_go_to_a_file_when_asked(tmp_path):
    samples = [sample(f"question {i}", str(i)) for i in range(5)]
    x = content_features(samples, lambda d: None, chunk=2, out=tmp_path / "c.npy")
    assert isinstance(x, np.memmap) and x.shape == (5, 3 * 16 * 16 + 512)
    np.testing.assert_array_equal(x, content_features(samples, lambda d: None))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npy"]


def spread(n, d, rng):
    """n random unit rows in d dims: pairwise cosines near 0, far below any duplicate threshold."""
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def run(x, groups, cap, thin, epsilon=0.02):
    cfg = PruneConfig(cap=cap, features="content", thin=thin, epsilon=epsilon)
    cl = partition(x, cfg.cluster)
    return semdedup(x, cl.labels, cl.centroids, cfg, groups)


def test_thinning_by_dataset_takes_each_dataset_in_proportion_to_its_size():
    rng = np.random.default_rng(0)
    x = spread(160, 64, rng)
    groups = np.repeat([0, 1, 2], [100, 50, 10])
    # 32 of 160 out, nothing redundant: shares 20, 10, 2.
    res = run(x, groups, cap=128, thin="dataset")
    assert np.bincount(groups[res.index], minlength=3).tolist() == [20, 10, 2]
    assert set(res.reason) == {"semdedup_thin"}
    # Plant a copy in the small dataset: it goes first, then 31 over kept sizes 100, 50, 9 (of 159):
    # shares 19.50, 9.75, 1.755 -> floors 19, 9, 1 and the two largest remainders (1.755, 9.75) get one more.
    x[159] = x[150]
    res = run(x, groups, cap=128, thin="dataset")
    assert np.bincount(groups[res.index], minlength=3).tolist() == [19, 10, 3]
    dup = res.reason == "semdedup_duplicate"
    assert dup.sum() == 1 and set(res.index[dup]) | set(res.duplicate_of[dup]) == {150, 159}


def test_thinning_by_dataset_does_not_empty_a_templated_dataset_as_thinning_by_cluster_does():
    """The failure the content row fixes: a dataset whose records all resemble one another (one
    template, cos ~0.9, no copies) is where 'most similar first' takes everything from."""
    rng = np.random.default_rng(1)
    base = spread(1, 64, rng)[0]
    templated = base + 0.35 * spread(100, 64, rng)
    templated /= np.linalg.norm(templated, axis=1, keepdims=True)
    x = np.concatenate([templated, spread(100, 64, rng)]).astype(np.float32)
    sims = templated @ templated.T
    np.fill_diagonal(sims, 0)
    assert 0.8 < sims.max() < 0.98  # alike, but none a duplicate
    groups = np.repeat([0, 1], 100)
    by_cluster = np.bincount(groups[run(x, groups, cap=150, thin="cluster").index], minlength=2)
    by_dataset = np.bincount(groups[run(x, groups, cap=150, thin="dataset").index], minlength=2)
    assert by_cluster[0] >= 45  # the partition is one cluster; its most similar rows are all templated
    assert by_dataset.tolist() == [25, 25]


def test_thinning_by_dataset_needs_the_datasets():
    x = spread(10, 8, np.random.default_rng(0))
    with pytest.raises(ValueError, match="needs each sample's dataset"):
        run(x, None, cap=5, thin="dataset")
    with pytest.raises(ValueError, match="prune.thin must be"):
        PruneConfig(thin="task")
    with pytest.raises(ValueError, match="prune.features must be"):
        PruneConfig(features="clip")
