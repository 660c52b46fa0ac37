"""Patch layout and the patch-wise PCA tokenizer against numpy closed forms."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ldae_jax.tokenizers import pca as pca_lib
from ldae_jax.tokenizers.patches import patchify, unpatchify

P, C = 2, 3
D = P * P * C


def _data(n=4000, seed=0):
    """Correlated patch vectors [n, D] with a non-zero mean and well-separated eigenvalues."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(D, D)))[0]
    scales = np.geomspace(3.0, 0.05, D)
    return (rng.normal(size=(n, D)) * scales) @ basis + rng.normal(size=D)


def _fit(x, d=D, whiten=False):
    acc = pca_lib.CovarianceAccumulator(D)
    acc.update(x)
    return pca_lib.fit(acc, patch_size=P, channels=C, d=d, whiten=whiten)


@pytest.fixture(scope="module")
def data():
    return _data()


# ---------------------------------------------------------------- patches

@pytest.mark.parametrize("xp", [np, jnp])
def test_patchify_layout_and_round_trip(xp):
    images = xp.asarray(np.random.default_rng(0).normal(size=(2, 4, 6, C)).astype(np.float32))
    patches = patchify(images, P)
    assert patches.shape == (2, 6, D)
    # Patch (row 1, col 2) is index 1 * 3 + 2, flattened as (p, p, C).
    np.testing.assert_array_equal(patches[1, 5], np.asarray(images)[1, 2:4, 4:6, :].reshape(-1))
    np.testing.assert_array_equal(unpatchify(patches, P, 4, 6, C), images)


def test_patchify_rejects_indivisible_size():
    with pytest.raises(ValueError, match="not divisible by patch_size"):
        patchify(np.zeros((1, 5, 4, C)), P)
    with pytest.raises(ValueError, match="unpatchify expects"):
        unpatchify(np.zeros((1, 5, D)), P, 4, 4, C)


# ---------------------------------------------------------------- fitting

def test_basis_matches_numpy_eigh(data):
    pca = _fit(data)
    ref_vals, ref_vecs = np.linalg.eigh(np.cov(data, rowvar=False))
    ref_vals, ref_vecs = ref_vals[::-1], ref_vecs[:, ::-1]
    np.testing.assert_allclose(pca.eigenvalues, ref_vals, rtol=1e-5)
    np.testing.assert_allclose(pca.mean, data.mean(0), rtol=1e-5, atol=1e-6)
    for k in (1, 4, D):  # same subspaces: compare projectors
        np.testing.assert_allclose(pca.components[:k].T @ pca.components[:k], ref_vecs[:, :k] @ ref_vecs[:, :k].T,
                                   atol=1e-5)
    # Largest singular values of the centred data agree too.
    sv = np.linalg.svd(data - data.mean(0), compute_uv=False)
    np.testing.assert_allclose(pca.eigenvalues, sv**2 / (len(data) - 1), rtol=1e-5)


def test_components_orthonormal_sorted_and_sign_fixed(data):
    pca = _fit(data)
    np.testing.assert_allclose(pca.components @ pca.components.T, np.eye(D), atol=1e-6)
    assert np.all(np.diff(pca.eigenvalues) <= 0)
    pivots = pca.components[np.arange(D), np.argmax(np.abs(pca.components), axis=1)]
    assert np.all(pivots > 0)


def test_streaming_accumulator_equals_one_shot(data):
    acc = pca_lib.CovarianceAccumulator(D)
    for chunk in np.array_split(data, 7):
        acc.update(chunk)
    mean, cov = acc.finalize()
    np.testing.assert_allclose(mean, data.mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cov, np.cov(data, rowvar=False), rtol=1e-10, atol=1e-12)


def test_merge_equals_union(data):
    a, b, union = (pca_lib.CovarianceAccumulator(D) for _ in range(3))
    a.update(data[:1000])
    b.update(data[1000:])
    union.update(data)
    a.merge(b)
    assert a.count == union.count
    for got, want in zip(a.finalize(), union.finalize()):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_bad_inputs_fail_early(data):
    acc = pca_lib.CovarianceAccumulator(D)
    with pytest.raises(ValueError, match="update expects"):
        acc.update(np.zeros((3, D + 1)))
    with pytest.raises(ValueError, match="NaN"):
        acc.update(np.full((3, D), np.nan))
    with pytest.raises(ValueError, match="at least 2"):
        acc.finalize()
    acc.update(data)
    for d in (0, D + 1):
        with pytest.raises(ValueError, match=r"d must be in \[1, D=12\]"):
            pca_lib.fit(acc, patch_size=P, channels=C, d=d, whiten=False)
    with pytest.raises(ValueError, match="expected"):
        pca_lib.fit(acc, patch_size=4, channels=C, d=2, whiten=False)


def test_sample_patches_are_grid_aligned_patches():
    rng = np.random.default_rng(1)
    images = rng.normal(size=(3, 4, 6, C))
    samples = pca_lib.sample_patches(images, P, 50, np.random.default_rng(2))
    assert samples.shape == (50, D)
    grid = patchify(images, P).reshape(-1, D)
    for s in samples:
        assert np.any(np.all(grid == s, axis=1))
    again = pca_lib.sample_patches(images, P, 50, np.random.default_rng(2))
    np.testing.assert_array_equal(samples, again)
    with pytest.raises(ValueError, match="float images"):
        pca_lib.sample_patches(images.astype(np.uint8), P, 5, rng)
    with pytest.raises(ValueError, match="not divisible"):
        pca_lib.sample_patches(images, 4, 5, rng)


# ---------------------------------------------------------------- encode / decode / loss kernel

@pytest.mark.parametrize("whiten", [False, True])
def test_round_trip_exact_at_full_dimension(data, whiten):
    pca = _fit(data, d=D, whiten=whiten)
    x = data[:100].astype(np.float32)
    z = pca.encode(x)
    assert z.shape == (100, D)
    np.testing.assert_allclose(pca.decode(z), x, atol=1e-4)
    if whiten:  # whitened latents have unit variance, up to the documented eps
        eig = pca.eigenvalues.astype(np.float64)
        expected = eig / (eig + pca_lib.WHITEN_EPS_REL * eig[0])
        np.testing.assert_allclose(np.var(pca.encode(data.astype(np.float32)), axis=0, ddof=1), expected,
                                   rtol=1e-4)


@pytest.mark.parametrize("whiten", [False, True])
def test_encode_decode_is_affine_projection(data, whiten):
    d = 4
    pca = _fit(data, d=d, whiten=whiten)
    x = data[:64]
    z = pca.encode(x.astype(np.float32))
    assert z.shape == (64, d)
    vd = np.asarray(pca.components[:d], np.float64)
    mean = np.asarray(pca.mean, np.float64)
    expected = mean + (x - mean) @ vd.T @ vd
    np.testing.assert_allclose(pca.decode(z), expected, atol=1e-4)
    np.testing.assert_allclose(pca.project((x - mean).astype(np.float32)), (x - mean) @ vd.T, atol=1e-4)


def test_encode_rejects_wrong_dim(data):
    pca = _fit(data, d=4)
    with pytest.raises(ValueError, match="last dimension 12"):
        pca.encode(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="last dimension 4"):
        pca.decode(np.zeros((2, 5)))


def test_residual_weighted_sq_matches_full_basis(data):
    d, w_res = 5, 0.1
    pca = _fit(data, d=d)
    e = np.random.default_rng(3).normal(size=(2, 7, D)).astype(np.float32)
    w = np.where(np.arange(D) < d, 1.0, w_res)
    explicit = np.sum(w * np.square(e @ np.asarray(pca.components, np.float64).T), axis=-1)
    got = pca.weighted_residual_sq(e, w_res)
    assert got.shape == (2, 7)
    np.testing.assert_allclose(got, explicit, rtol=1e-5)


def test_pca_is_a_pytree_usable_in_jit(data):
    pca = _fit(data, d=3, whiten=True)
    leaves = jax.tree_util.tree_leaves(pca)
    assert len(leaves) == 3
    x = data[:8].astype(np.float32)
    jitted = jax.jit(lambda p, v: p.decode(p.encode(v)))(pca, x)
    np.testing.assert_allclose(jitted, pca.decode(pca.encode(x)), atol=1e-5)


def test_explained_variance(data):
    assert pca_lib.explained_variance(_fit(data, d=D)) == pytest.approx(1.0)
    pca = _fit(data, d=3)
    assert pca_lib.explained_variance(pca) == pytest.approx(pca.eigenvalues[:3].sum() / pca.eigenvalues.sum())


# ---------------------------------------------------------------- save / load

CONFIG = dict(patch_size=P, channels=C, d=4, whiten=True)


@pytest.fixture
def saved(tmp_path, data):
    pca = _fit(data, d=4, whiten=True)
    path = str(tmp_path / "pca.npz")
    pca_lib.save(pca, path)
    return pca, path


def test_save_load_round_trip(saved):
    pca, path = saved
    loaded = pca_lib.load(path, **CONFIG)
    for f in ("mean", "components", "eigenvalues"):
        np.testing.assert_array_equal(getattr(loaded, f), getattr(pca, f))
    assert (loaded.patch_size, loaded.channels, loaded.d, loaded.whiten) == (P, C, 4, True)
    assert loaded.content_hash() == pca.content_hash()
    assert len(pca.content_hash()) == 64


def test_npz_has_no_object_arrays(saved):
    _, path = saved
    with np.load(path, allow_pickle=False) as npz:
        assert all(npz[k].dtype.kind != "O" for k in npz.files)
        assert str(npz["content_hash"]) == saved[0].content_hash()


@pytest.mark.parametrize("field,value", [("patch_size", 4), ("channels", 1), ("d", 5), ("whiten", False)])
def test_load_mismatch_names_field(saved, field, value):
    _, path = saved
    with pytest.raises(pca_lib.PCAMismatchError, match=field) as info:
        pca_lib.load(path, **{**CONFIG, field: value})
    assert isinstance(info.value, ValueError)
    assert info.value.field == field
    assert info.value.expected == value
    assert "delete" in str(info.value)


def test_load_detects_tampered_array(saved):
    pca, path = saved
    tampered = dataclasses.replace(pca, mean=pca.mean + np.float32(1e-3))
    with np.load(path, allow_pickle=False) as npz:
        contents = {k: npz[k] for k in npz.files}
    contents["mean"] = tampered.mean
    np.savez(path, **contents)
    with pytest.raises(pca_lib.PCAMismatchError, match="content_hash") as info:
        pca_lib.load(path, **CONFIG)
    assert info.value.field == "content_hash"


def test_load_other_d_and_whiten_when_unchecked(saved):
    pca, path = saved
    loaded = pca_lib.load(path, patch_size=P, channels=C, d=7, whiten=False, check_d_whiten=False)
    assert (loaded.d, loaded.whiten) == (7, False)
    np.testing.assert_array_equal(loaded.components, pca.components)
    with pytest.raises(pca_lib.PCAMismatchError, match="patch_size"):
        pca_lib.load(path, patch_size=4, channels=C, d=7, whiten=False, check_d_whiten=False)


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        pca_lib.load(str(tmp_path / "nope.npz"), **CONFIG)


def test_float32_patches_take_the_fast_path_to_the_same_basis(data):
    """float32 input: chunked float32 products with float64 sums (pca._F32_CHUNK) give the float64 basis."""
    shifted = data + 5.0  # a large mean: the chunk shift must keep float32 rounding off the covariance
    x32 = shifted.astype(np.float32)
    ref = _fit(x32.astype(np.float64))
    acc = pca_lib.CovarianceAccumulator(D)
    for chunk in np.array_split(x32, 3):
        acc.update(chunk)
    fast = pca_lib.fit(acc, patch_size=P, channels=C, d=D, whiten=False)
    np.testing.assert_allclose(fast.eigenvalues, ref.eigenvalues, rtol=1e-4)
    np.testing.assert_allclose(fast.mean, ref.mean, rtol=1e-6)
    for k in (1, 4):
        np.testing.assert_allclose(fast.components[:k].T @ fast.components[:k], ref.components[:k].T @ ref.components[:k],
                                   atol=1e-5)
    bad = x32.copy()
    bad[7, 3] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        pca_lib.CovarianceAccumulator(D).update(bad)
