"""Frechet distance between two feature distributions (FID when the features are Inception-v3 pool features).

FID = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)). The matrix square root is taken as
tr((S1 S2)^(1/2)) = sum sqrt(eig(A S2 A)) with A = S1^(1/2), which is symmetric PSD, so the eigenvalues
are real and no complex round-off appears (unlike a general sqrtm of the non-symmetric S1 S2). float64 on host.
The Inception-v3 network that FID needs is not part of this package yet (its weights cannot be downloaded
here); `frechet_distance` takes features from any extractor.
"""

from __future__ import annotations

import numpy as np


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """features [n, k] -> (mean [k], covariance [k, k]) in float64 (unbiased, n - 1)."""
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need features [n >= 2, k], got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or inf")
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """The Frechet distance between N(mu1, cov1) and N(mu2, cov2)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape or cov1.shape != mu1.shape * 2:
        raise ValueError(f"shapes differ: mu {mu1.shape} / {mu2.shape}, cov {cov1.shape} / {cov2.shape}")
    a = _sqrt_psd(cov1)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(a @ cov2 @ a), 0.0, None)).sum()
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2.0 * cross)


def fid_from_features(features_a: np.ndarray, features_b: np.ndarray) -> float:
    return frechet_distance(*statistics(features_a), *statistics(features_b))
