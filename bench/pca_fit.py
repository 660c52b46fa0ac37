"""Patch-PCA fit: our float64-sum covariance (`tokenizers.pca`) against scikit-learn's covariance_eigh PCA (issue 6).

    bash bench/setup_bench.sh      # once: .venv-bench with a pinned scikit-learn (not a project dependency)
    .venv/bin/python bench/pca_fit.py --num_patches 1000000 --dim 768 --d 32
    .venv/bin/python bench/pca_fit.py --num_patches 1000000 --source fashion_mnist   # real 7x7 patches, D = 49

Both sides fit the same float32 patches [n, D] (passed to sklearn's process as a .npy in a temp dir; load time is
not counted). Ours = `CovarianceAccumulator.update` + `pca.fit` (float32 input takes its chunked float32-product
path; `ours_f64` is the float64 path the accumulator takes for any other dtype, i.e. the code before the float32
path). sklearn = `PCA(n_components=d, svd_solver="covariance_eigh").fit` on the float32 array, and on a float64
copy as the accuracy reference. Subspace error of bases A, B (rows orthonormal, top d):
||A^T A - B^T B||_F / sqrt(d), which is sqrt(2) x the RMS sine of the principal angles (0 = same subspace).
Both use all cores (BLAS threads). The two fits take turns, one of each per round (sklearn's in a fresh process
that loads the .npy, then times one fit), and the speedup is the median of the per-round ratios: on a shared
machine whose speed drifts by 2x within minutes, back-to-back blocks of repeats disagreed by that much.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_PYTHON = os.path.join(ROOT, ".venv-bench", "bin", "python")

# Runs in .venv-bench: argv = patches.npy, d, dtypes ("f32" or "f32,f64"), out dir. Prints JSON (one fit per dtype,
# seconds), writes the d x D components and the explained variances.
SKLEARN_SCRIPT = """
import json, sys, time
import numpy as np, sklearn
from sklearn.decomposition import PCA
path, d, dtypes, out = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(","), sys.argv[4]
x32 = np.load(path)
res = {"sklearn_version": sklearn.__version__}
for name in dtypes:
    x = x32 if name == "f32" else x32.astype(np.float64)
    t = time.perf_counter()
    pca = PCA(n_components=d, svd_solver="covariance_eigh").fit(x)
    res[name + "_s"] = time.perf_counter() - t
    np.save(f"{out}/sk_{name}.npy", pca.components_)
    np.save(f"{out}/sk_{name}_eig.npy", pca.explained_variance_)
print(json.dumps(res))
"""


def synthetic_patches(n: int, dim: int, seed: int = 0, alpha: float = 1.5) -> np.ndarray:
    """float32 [n, dim]: Gaussian patches with eigenvalues ~ k^-alpha (image patch spectra decay like a power law),
    a random rotation and a non-zero mean, scaled to a pixel std of about 0.5 in [-1, 1] units."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(dim, dim)))[0].astype(np.float32)
    scales = np.arange(1, dim + 1, dtype=np.float64) ** (-alpha / 2)
    scales = (scales * 0.5 * np.sqrt(dim / np.sum(scales**2))).astype(np.float32)
    mean = (-0.2 + 0.05 * rng.normal(size=dim)).astype(np.float32)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 65536):
        z = rng.standard_normal((min(65536, n - start), dim), dtype=np.float32) * scales
        out[start:start + len(z)] = z @ basis + mean
    return out


def fashion_mnist_patches(n: int, seed: int = 0, patch_size: int = 7) -> np.ndarray:
    """float32 [n, 49]: grid-aligned 7x7 patches of the embedded Fashion-MNIST train images, as the quickstart fits."""
    from ldae_jax.data import pipeline, sources
    from ldae_jax.tokenizers import pca as pca_lib

    builder = sources.get_source("fashion_mnist_local", None)
    import tensorflow_datasets as tfds

    images = tfds.as_numpy(builder.as_dataset(split="train", batch_size=-1))["image"]
    images = pipeline.normalize_images(images)  # uint8 -> float32 in [-1, 1]
    return pca_lib.sample_patches(images, patch_size, n, np.random.default_rng(seed)).astype(np.float32)


def subspace_error(a: np.ndarray, b: np.ndarray) -> float:
    """||A^T A - B^T B||_F / sqrt(d) for [d, D] orthonormal-row bases (float64)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a.T @ a - b.T @ b) / np.sqrt(a.shape[0]))


def fit_ours(x: np.ndarray, d: int):
    """(seconds, PatchPCA) of one fit from an array of patches; a float64 x takes the float64 path."""
    from ldae_jax.tokenizers import pca as pca_lib

    start = time.perf_counter()
    acc = pca_lib.CovarianceAccumulator(x.shape[1])
    acc.update(x)
    fitted = pca_lib.fit(acc, patch_size=1, channels=x.shape[1], d=d, whiten=False)
    return time.perf_counter() - start, fitted


def run_sklearn(path: str, d: int, dtypes: tuple[str, ...], python: str = BENCH_PYTHON) -> dict:
    """One sklearn fit per dtype of the patches saved at `path`: {'f32_s', 'f32' (components), 'f32_eig', ...}."""
    out = os.path.dirname(path)
    proc = subprocess.run([python, "-c", SKLEARN_SCRIPT, path, str(d), ",".join(dtypes), out],
                          capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"sklearn subprocess failed: {proc.stderr[-2000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in dtypes:
        res[name] = np.load(os.path.join(out, f"sk_{name}.npy"))
        res[name + "_eig"] = np.load(os.path.join(out, f"sk_{name}_eig.npy"))
    return res


def bench(num_patches: int, dim: int, d: int, source: str = "synthetic", repeats: int = 3,
          python: str = BENCH_PYTHON) -> dict:
    """All timings and errors as one flat dict (the JSON line)."""
    t = time.perf_counter()
    x = synthetic_patches(num_patches, dim) if source == "synthetic" else fashion_mnist_patches(num_patches)
    make_s = time.perf_counter() - t
    dim = x.shape[1]
    with_sklearn = os.path.exists(python)
    ours, rounds = [], []  # rounds: (our seconds, sklearn's seconds)
    with tempfile.TemporaryDirectory(prefix="ldae_pca_bench_") as tmp:
        path = os.path.join(tmp, "patches.npy")
        np.save(path, x)
        for r in range(repeats):  # ours, then sklearn, in turn: each ratio compares fits a few seconds apart
            ours.append(fit_ours(x, d))
            if with_sklearn:
                sk_round = run_sklearn(path, d, ("f32", "f64") if r == 0 else ("f32",), python)
                if r == 0:
                    sk = sk_round  # the components compared below, and the float64 reference
                rounds.append((ours[-1][0], sk_round["f32_s"]))
    ours_f64 = [fit_ours(x.astype(np.float64), d) for _ in range(repeats)]  # conversion is part of that path
    fitted, fitted64 = ours[0][1], ours_f64[0][1]
    res = {"bench": "pca_fit", "source": source, "num_patches": num_patches, "dim": dim, "d": d,
           "make_patches_s": make_s, "ours_s": min(s for s, _ in ours),
           "ours_f64_s": min(s for s, _ in ours_f64),
           "err_ours_vs_ours_f64": subspace_error(fitted.components[:d], fitted64.components[:d])}
    if with_sklearn:
        speedups = [theirs / mine for mine, theirs in rounds]
        res.update(sklearn_version=sk["sklearn_version"], sklearn_f32_s=min(t for _, t in rounds),
                   sklearn_f64_s=sk["f64_s"], round_speedups=speedups,
                   speedup_vs_sklearn_f32=float(np.median(speedups)),
                   speedup_f64_vs_sklearn_f32=min(t for _, t in rounds) / res["ours_f64_s"],
                   err_ours_vs_sklearn_f32=subspace_error(fitted.components[:d], sk["f32"]),
                   err_ours_vs_sklearn_f64=subspace_error(fitted.components[:d], sk["f64"]),
                   err_sklearn_f32_vs_f64=subspace_error(sk["f32"], sk["f64"]),
                   eig_rel_err_vs_sklearn_f64=float(np.max(np.abs(fitted.eigenvalues[:d] - sk["f64_eig"])
                                                           / sk["f64_eig"])))
    return res


def table(res: dict) -> str:
    rows = [f"PCA fit, {res['num_patches']} {res['source']} patches of D={res['dim']}, top d={res['d']}",
            "| fit | seconds | subspace error vs sklearn f64 |", "|---|---|---|"]
    ref = res.get("err_ours_vs_sklearn_f64")
    rows.append(f"| ours (float32 products, float64 sums) | {res['ours_s']:.2f} | "
                + (f"{ref:.1e} |" if ref is not None else "n/a |"))
    rows.append(f"| ours, float64 path (before) | {res['ours_f64_s']:.2f} | vs ours: {res['err_ours_vs_ours_f64']:.1e} |")
    if "sklearn_f32_s" in res:
        rows.append(f"| sklearn covariance_eigh, float32 | {res['sklearn_f32_s']:.2f} | {res['err_sklearn_f32_vs_f64']:.1e} |")
        rows.append(f"| sklearn covariance_eigh, float64 | {res['sklearn_f64_s']:.2f} | 0 |")
        rounds = ", ".join(f"{v:.2f}" for v in res["round_speedups"])
        rows.append(f"ours is {res['speedup_vs_sklearn_f32']:.2f}x the speed of sklearn float32, median of the rounds "
                    f"({rounds}; float64 path, best vs best: {res['speedup_f64_vs_sklearn_f32']:.2f}x)")
    else:
        rows.append("sklearn skipped: run bash bench/setup_bench.sh")
    return "\n".join(rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num_patches", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=768, help="patch dimension of synthetic patches (768 = 16x16x3)")
    p.add_argument("--d", type=int, default=32, help="kept components compared (32 for ImageNet, 16 for F-MNIST)")
    p.add_argument("--source", choices=("synthetic", "fashion_mnist"), default="synthetic")
    p.add_argument("--repeats", type=int, default=3, help="rounds; each times one fit of ours, then one of sklearn")
    args = p.parse_args(argv)
    res = bench(args.num_patches, args.dim, args.d, args.source, args.repeats)
    res["loadavg"] = os.getloadavg()[0]
    print(table(res))
    print(json.dumps(res))


if __name__ == "__main__":
    sys.exit(main())
