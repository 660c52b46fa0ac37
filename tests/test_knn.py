"""The weighted kNN classifier against a plain numpy version, and the confidence intervals and verdicts of the
ladder report against the textbook formulas."""

import numpy as np
import pytest
from scipy import stats as scipy_stats

from ldae_jax.evaluate import knn
from ldae_jax.ladder import stats


def numpy_knn(train_x, train_y, test_x, k, temperature, num_classes):
    a = train_x / np.linalg.norm(train_x, axis=1, keepdims=True)
    b = test_x / np.linalg.norm(test_x, axis=1, keepdims=True)
    sims = b @ a.T
    out = []
    for row in sims:
        nearest = np.argsort(-row)[:k]
        votes = np.zeros(num_classes)
        for j in nearest:
            votes[train_y[j]] += np.exp(row[j] / temperature)
        out.append(np.argmax(votes))
    return np.asarray(out)


@pytest.mark.parametrize("k,temperature", [(20, 0.07), (5, 1.0), (1, 0.07)])
def test_knn_matches_numpy(k, temperature):
    rng = np.random.default_rng(k)
    centres = rng.normal(size=(4, 16))
    train_y, test_y = rng.integers(0, 4, 300), rng.integers(0, 4, 70)
    train_x = centres[train_y] + 1.5 * rng.normal(size=(300, 16))
    test_x = centres[test_y] + 1.5 * rng.normal(size=(70, 16))
    expected = 100 * np.mean(numpy_knn(train_x, train_y, test_x, k, temperature, 4) == test_y)
    got = knn.knn_top1((train_x, train_y), (test_x, test_y), num_classes=4, k=k, temperature=temperature)
    assert got == pytest.approx(expected)
    assert 25 < got <= 100  # the clusters are far apart: well above chance


def test_knn_is_scale_free_and_chunks_like_one_pass(monkeypatch):
    rng = np.random.default_rng(0)
    train_x, train_y = rng.normal(size=(50, 8)), rng.integers(0, 3, 50)
    test_x, test_y = rng.normal(size=(37, 8)), rng.integers(0, 3, 37)
    whole = knn.knn_top1((train_x, train_y), (test_x, test_y), num_classes=3)
    # cosine similarity: scaling a feature vector changes nothing
    assert knn.knn_top1((train_x * 7.0, train_y), (test_x * 0.1, test_y), num_classes=3) == whole
    monkeypatch.setattr(knn, "_SIMILARITY_BYTES", 4 * 50 * 5)  # five test rows per chunk, the last one padded
    assert knn.knn_top1((train_x, train_y), (test_x, test_y), num_classes=3) == whole
    # k larger than the train set: every train example votes
    assert 0 <= knn.knn_top1((train_x[:3], train_y[:3]), (test_x, test_y), num_classes=3, k=20) <= 100


def test_subset_split_names():
    assert knn.subset_split("test", 1000) == "test[:1000]"
    assert knn.subset_split("train[:1024]", 500) == "train[:1024]"  # a slice already: taken as it is read


def test_paired_interval_is_the_one_sample_t_interval_of_the_differences():
    a, b = {0: 80.1, 1: 79.2, 2: 80.6}, {0: 79.0, 1: 78.2, 2: 79.5}  # differences 1.1, 1.0, 1.1
    diff = stats.difference(a, b, paired=True)
    d = np.array([a[s] - b[s] for s in a])
    half = scipy_stats.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3)
    low, high = d.mean() - half, d.mean() + half
    assert (diff.mean, diff.low, diff.high, diff.n, diff.paired) == pytest.approx((d.mean(), low, high, 3, True))
    assert stats.verdict(diff) == "reproduces"
    assert stats.verdict(stats.difference(b, a, paired=True)) == "opposite"


def test_unpaired_interval_is_welch():
    a, b = {0: 80.0, 1: 81.5, 2: 79.0, 3: 80.2}, {5: 79.0, 6: 79.4, 7: 78.1}
    diff = stats.difference(a, b, paired=True)  # no seed in common: unpaired
    xa, xb = np.array(list(a.values())), np.array(list(b.values()))
    va, vb = xa.var(ddof=1) / len(xa), xb.var(ddof=1) / len(xb)
    dof = (va + vb) ** 2 / (va**2 / (len(xa) - 1) + vb**2 / (len(xb) - 1))  # Welch-Satterthwaite
    half = scipy_stats.t.ppf(0.975, dof) * np.sqrt(va + vb)
    low, high = xa.mean() - xb.mean() - half, xa.mean() - xb.mean() + half
    assert not diff.paired and (diff.low, diff.high) == pytest.approx((low, high))


def test_verdicts_with_few_seeds_and_margins():
    one = stats.difference({0: 80.0}, {0: 70.0}, paired=True)
    assert one.low is None and stats.verdict(one).startswith("undecided (n=1")
    assert stats.verdict(None) == "not run"
    noisy = stats.difference({0: 80.0, 1: 78.0, 2: 81.0}, {0: 79.5, 1: 79.0, 2: 79.8}, paired=True)
    assert noisy.low < 0 < noisy.high and stats.verdict(noisy) == "undecided at this scale"
    # 'as good as' (non-inferiority by 1 point): slightly worse with a tight interval still reproduces
    close = stats.difference({0: 79.6, 1: 79.7, 2: 79.5}, {0: 80.0, 1: 80.0, 2: 80.0}, paired=True)
    assert close.high < 0 and stats.verdict(close) == "opposite" and stats.verdict(close, margin=1.0) == "reproduces"
    far = stats.difference({0: 77.0, 1: 77.1, 2: 76.9}, {0: 80.0, 1: 80.0, 2: 80.0}, paired=True)
    assert stats.verdict(far, margin=1.0) == "opposite"
    m, half = stats.mean_interval([1.0, 2.0, 3.0])
    assert m == 2.0 and half == pytest.approx(scipy_stats.t.ppf(0.975, 2) * 1.0 / np.sqrt(3))
