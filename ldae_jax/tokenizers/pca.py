"""Patch-wise PCA tokenizer (docs/paper_notes.md 2.3-2.4, 3.3): fit, encode, decode, the l-DAE loss kernel, save/load.

The basis is fitted once on the host from a float64 streaming covariance of joint-RGB patch vectors
(layout from `tokenizers.patches`, D = p * p * C), then used inside the jitted train step. The full D x D
basis is always kept, because the l-DAE loss (Eq. 4) weights the residual outside the top-d subspace too.
Mean-centring is always on; whitening the latents is the `whiten` flag (docs/paper_notes.md 3.3 leaves it open).

Shape names: D = patch dimension p*p*C, d = kept latent dimension, n = number of patches.
"""
from __future__ import annotations

import dataclasses
from typing import Union

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath

from ldae_jax.errors import UserError
from ldae_jax.tokenizers import files
from ldae_jax.tokenizers.patches import patchify, unpatchify

# Whitening divides by sqrt(eigenvalue + eps) with eps = WHITEN_EPS_REL * largest eigenvalue: a direction with
# (near-)zero variance is then amplified at most 1/sqrt(WHITEN_EPS_REL) = 1000x relative to the top one,
# instead of dividing by ~0. It is applied identically in encode and decode, so the round trip stays exact.
WHITEN_EPS_REL = 1e-6

# Eigenvalues of a PSD covariance may come out of eigh slightly negative from round-off; anything below this
# (relative to the largest) means the covariance was not a covariance, which is a bug worth stopping for.
_NEG_EIG_TOL_REL = 1e-9

_FORMAT = "ldae_jax.patch_pca.v1"

# Rows per float32 product in `CovarianceAccumulator.update`: float32 sums stay short (the float64 sums across
# chunks carry the rest), while each product is large enough to run at full BLAS speed with little per-chunk work.
_F32_CHUNK = 32768
_NOT_FINITE = "patches contain NaN or inf; check the image preprocessing"
_ARRAY_FIELDS = ("mean", "components", "eigenvalues")
_META_FIELDS = ("patch_size", "channels", "d", "whiten")


class PCAMismatchError(UserError):
    """A saved PCA basis does not match the config, or its content hash does not match its arrays (a ValueError)."""

    def __init__(self, message: str, field: str, file_value: object, expected: object):
        super().__init__(message)
        self.field = field
        self.file_value = file_value
        self.expected = expected


@dataclasses.dataclass(frozen=True, eq=False)
class PatchPCA:
    """A fitted patch PCA; a pytree (arrays are leaves, ints/bools are static) so it can be passed to jit.

    mean: [D]; components: [D, D], rows orthonormal principal directions by decreasing eigenvalue, sign-fixed so
    each row's largest-|entry| is positive; eigenvalues: [D] descending; d: latent dims kept (1 <= d <= D).
    """

    mean: np.ndarray | jax.Array
    components: np.ndarray | jax.Array
    eigenvalues: np.ndarray | jax.Array
    patch_size: int
    channels: int
    d: int
    whiten: bool

    def __post_init__(self):
        # jax may rebuild the node with placeholder leaves (no .shape) inside transformations; only check real ones.
        if not all(hasattr(getattr(self, f), "shape") for f in _ARRAY_FIELDS):
            return
        dim = self.dim
        _check_d(self.d, dim)
        for name, shape in (("mean", (dim,)), ("components", (dim, dim)), ("eigenvalues", (dim,))):
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"PatchPCA.{name} has shape {got}, expected {shape} for patch_size "
                                 f"{self.patch_size} and {self.channels} channels (D = {dim})")

    @property
    def dim(self) -> int:
        """D = patch_size * patch_size * channels."""
        return self.patch_size * self.patch_size * self.channels

    def encode(self, patches) -> jax.Array:
        """Patches [..., D] -> latents [..., d]: z = (x - mean) V_d^T, divided by sqrt(eig + eps) if whiten."""
        _check_last_dim(patches, self.dim, "patches")
        z = (patches - jnp.asarray(self.mean)) @ jnp.asarray(self.components)[: self.d].T
        return z / _whiten_scale(self) if self.whiten else z

    def decode(self, z) -> jax.Array:
        """Latents [..., d] -> patches [..., D]: the inverse of `encode` on the top-d affine subspace."""
        _check_last_dim(z, self.d, "latents")
        if self.whiten:
            z = z * _whiten_scale(self)
        return z @ jnp.asarray(self.components)[: self.d] + jnp.asarray(self.mean)

    def image_latents(self, images) -> jax.Array:
        """images [B, H, W, C] in [-1, 1] -> latent tokens [B, N, d]."""
        return self.encode(patchify(images, self.patch_size))

    def latent_images(self, z, height: int, width: int) -> jax.Array:
        """latent tokens [B, N, d] -> images [B, H, W, C]."""
        return unpatchify(self.decode(z), self.patch_size, height, width, self.channels)

    def project(self, e) -> jax.Array:
        """Residual [..., D] -> its coordinates [..., d] in the top-d basis (no mean, no whitening): V_d e."""
        _check_last_dim(e, self.dim, "residual")
        return e @ jnp.asarray(self.components)[: self.d].T

    def weighted_residual_sq(self, e, w_res: float) -> jax.Array:
        """Residual [..., D] -> [...]: sum_i w_i (V e)_i^2 with w_i = 1 for i <= d, w_res otherwise (Eq. 4).

        Because V is orthonormal, |V e|^2 = |e|^2, so this is |P_d e|^2 + w_res (|e|^2 - |P_d e|^2) and only the
        d x D top block of V is needed (docs/paper_notes.md 2.3; DESIGN "Loss with the residual").
        """
        if isinstance(w_res, (int, float)) and not 0.0 <= w_res:
            raise ValueError(f"w_res must be >= 0, got {w_res}")
        in_top = jnp.sum(jnp.square(self.project(e)), axis=-1)
        total = jnp.sum(jnp.square(e), axis=-1)
        return in_top + w_res * (total - in_top)

    def content_hash(self) -> str:
        """sha256 of the float32 array bytes plus patch_size, channels, d and whiten (`files.content_hash`)."""
        meta = {"format": _FORMAT, "patch_size": int(self.patch_size), "channels": int(self.channels),
                "d": int(self.d), "whiten": bool(self.whiten)}
        return files.content_hash(meta, {name: getattr(self, name) for name in _ARRAY_FIELDS})


jax.tree_util.register_dataclass(PatchPCA, data_fields=list(_ARRAY_FIELDS), meta_fields=list(_META_FIELDS))


def _check_d(d: int, dim: int) -> None:
    if not 1 <= d <= dim:
        raise ValueError(f"latent dimension d must be in [1, D={dim}], got d={d}")


def _check_last_dim(x, size: int, what: str) -> None:
    if x.shape[-1:] != (size,):
        raise ValueError(f"{what} must have last dimension {size}, got shape {tuple(x.shape)}")


# ---------------------------------------------------------------- encode / decode / loss kernel (jit-safe)

def _whiten_scale(pca: PatchPCA) -> jax.Array:
    """[d] standard deviations the top-d latents are divided by when whitening."""
    eig = jnp.asarray(pca.eigenvalues)
    return jnp.sqrt(eig[: pca.d] + WHITEN_EPS_REL * eig[0])


def explained_variance(pca: PatchPCA) -> float:
    """Fraction of the total patch variance captured by the top-d components (host-side report)."""
    eig = np.asarray(pca.eigenvalues, np.float64)
    return float(eig[: pca.d].sum() / eig.sum())


# ---------------------------------------------------------------- fitting (host-side numpy, float64)

class CovarianceAccumulator:
    """Streaming float64 patch statistics: count, sum [D] and sum of outer products [D, D].

    Raw sums (not running means) so per-host accumulators combine by plain addition (`merge`, or summing the
    three fields across hosts). float64 keeps the `outer/n - mean mean^T` cancellation negligible for pixels in
    [-1, 1]. float32 patches (what `pca_fit` passes) are multiplied in float32 in shifted chunks and summed in
    float64; any other dtype is converted to float64 first.
    """

    def __init__(self, dim: int):
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim = dim
        self.count = 0
        self.total = np.zeros((dim,), np.float64)
        self.outer = np.zeros((dim, dim), np.float64)

    def update(self, patches: np.ndarray) -> None:
        """Adds patches [n, D]: float32 ones by the fast path below, anything else converted to float64."""
        x = np.asarray(patches)
        if x.dtype != np.float32:
            x = x.astype(np.float64, copy=False)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"update expects patches [n, {self.dim}], got shape {x.shape}")
        if x.dtype == np.float64:
            if not np.isfinite(x).all():
                raise ValueError(_NOT_FINITE)
            self.total += x.sum(axis=0)
            self.outer += x.T @ x
        else:
            buffer = np.empty((min(_F32_CHUNK, x.shape[0]), self.dim), np.float32)  # reused: no page faults a chunk
            for start in range(0, x.shape[0], _F32_CHUNK):
                self._update_float32(x[start:start + _F32_CHUNK], buffer)
        self.count += x.shape[0]

    def _update_float32(self, x: np.ndarray, buffer: np.ndarray) -> None:
        """float32 patches: a float32 product of the chunk shifted by its mean, then float64 sums.

        Why: the float32 product runs at about twice the float64 speed and needs no float64 copy of the patches
        (bench/pca_fit.py). Shifting by the chunk mean s first keeps the float32 rounding relative to the
        variance rather than to mean^2; the raw sums are then rebuilt exactly in float64 from
        sum x x^T = Y^T Y + s y^T + y s^T + n s s^T, with Y = x - s and y = sum of Y's rows.
        """
        shift = x[:256].mean(axis=0, dtype=np.float64).astype(np.float32)  # near the mean is enough
        y = np.subtract(x, shift, out=buffer[:x.shape[0]])
        gram = y.T @ y
        # y's column sums by BLAS gemv (float32; 8 ms a chunk against 22 for numpy's float64 sum): y's mean is
        # near 0, and the sums enter the covariance only through y y^T / n, the part of order mean^2.
        y_sum = (np.ones((1, len(y)), np.float32) @ y)[0].astype(np.float64)
        s, n = shift.astype(np.float64), x.shape[0]
        # A NaN or inf anywhere in x makes its column's diagonal entry or sum non-finite: no separate pass needed.
        if not (np.isfinite(np.diagonal(gram)).all() and np.isfinite(y_sum).all()):
            raise ValueError(_NOT_FINITE)
        self.total += y_sum + n * s
        self.outer += gram + (np.outer(s, y_sum) + np.outer(y_sum, s) + n * np.outer(s, s))

    def merge(self, other: "CovarianceAccumulator") -> "CovarianceAccumulator":
        """Adds `other`'s statistics into this one (e.g. another host's) and returns self."""
        if other.dim != self.dim:
            raise ValueError(f"cannot merge accumulators of dim {self.dim} and {other.dim}")
        self.count += other.count
        self.total += other.total
        self.outer += other.outer
        return self

    def finalize(self) -> tuple[np.ndarray, np.ndarray]:
        """-> (mean [D], cov [D, D]) in float64; cov is the unbiased sample covariance (divides by n - 1)."""
        if self.count < 2:
            raise ValueError(f"need at least 2 patches to estimate a covariance, got {self.count}")
        mean = self.total / self.count
        cov = (self.outer - self.count * np.outer(mean, mean)) / (self.count - 1)
        return mean, (cov + cov.T) / 2


def sample_patches(images: np.ndarray, patch_size: int, num: int, rng: np.random.Generator) -> np.ndarray:
    """Images [B, H, W, C] float -> num random patches [num, p*p*C], layout as `patches.patchify`.

    Each patch picks a uniformly random image and a uniformly random cell of the patch grid (with replacement).
    Grid-aligned positions, because those are exactly the patches the tokenizer sees during training.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"sample_patches expects images [B, H, W, C], got shape {images.shape}")
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"sample_patches expects float images (scaled to [-1, 1]), got dtype {images.dtype}")
    if num < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    b, h, w, c = images.shape
    p = patch_size
    if p < 1 or h % p or w % p:
        raise ValueError(f"image size {h}x{w} is not divisible by patch_size {p}")
    img = rng.integers(b, size=num)
    rows = rng.integers(h // p, size=num)[:, None] * p + np.arange(p)  # [num, p]
    cols = rng.integers(w // p, size=num)[:, None] * p + np.arange(p)  # [num, p]
    out = images[img[:, None, None], rows[:, :, None], cols[:, None, :]]  # [num, p, p, C]
    return out.reshape(num, p * p * c)


def fit(stats: Union[CovarianceAccumulator, tuple[np.ndarray, np.ndarray]], *, patch_size: int, channels: int,
        d: int, whiten: bool) -> PatchPCA:
    """Eigendecomposes a patch covariance (float64 `np.linalg.eigh`) into a PatchPCA with the full D basis."""
    mean, cov = stats.finalize() if isinstance(stats, CovarianceAccumulator) else stats
    mean, cov = np.asarray(mean, np.float64), np.asarray(cov, np.float64)
    dim = patch_size * patch_size * channels
    if mean.shape != (dim,) or cov.shape != (dim, dim):
        raise ValueError(f"statistics have mean {mean.shape} and cov {cov.shape}, expected ({dim},) and "
                         f"({dim}, {dim}) for patch_size {patch_size} and {channels} channels")
    _check_d(d, dim)
    if not (np.isfinite(mean).all() and np.isfinite(cov).all()):
        raise ValueError("patch statistics contain NaN or inf")
    eigenvalues, vectors = np.linalg.eigh((cov + cov.T) / 2)
    eigenvalues, components = eigenvalues[::-1], vectors[:, ::-1].T  # rows, by decreasing eigenvalue
    top = max(eigenvalues[0], 0.0)
    if top <= 0 or eigenvalues[-1] < -_NEG_EIG_TOL_REL * top:
        raise ValueError(f"covariance is not positive semi-definite with non-zero variance "
                         f"(eigenvalues from {eigenvalues[-1]:.3g} to {eigenvalues[0]:.3g})")
    eigenvalues = np.maximum(eigenvalues, 0.0)  # round-off only, per the check above
    # Deterministic sign: each direction's largest-|entry| is positive (first such entry on ties).
    pivot = components[np.arange(dim), np.argmax(np.abs(components), axis=1)]
    components = components * np.where(pivot < 0, -1.0, 1.0)[:, None]
    return PatchPCA(mean=mean.astype(np.float32), components=components.astype(np.float32),
                    eigenvalues=eigenvalues.astype(np.float32), patch_size=int(patch_size),
                    channels=int(channels), d=int(d), whiten=bool(whiten))


# ---------------------------------------------------------------- save / load with checks

def save(pca: PatchPCA, path: str) -> None:
    """Writes the basis to `path` as a pickle-free .npz (atomically: a temp file, then rename)."""
    meta = {"patch_size": np.int64(pca.patch_size), "channels": np.int64(pca.channels), "d": np.int64(pca.d),
            "whiten": np.bool_(pca.whiten)}
    files.save_npz(path, {name: getattr(pca, name) for name in _ARRAY_FIELDS},
                   {**meta, "content_hash": np.str_(pca.content_hash()), "format": np.str_(_FORMAT)})


def _mismatch(path: str, field: str, file_value: object, expected: object) -> PCAMismatchError:
    return PCAMismatchError(
        f"PCA basis {path}: {field} is {file_value!r} in the file but the config expects {expected!r}. "
        f"The file was fitted for another setup: delete {path} so it is refitted, or change the config to match.",
        field, file_value, expected)


def load(path: str, *, patch_size: int, channels: int, d: int, whiten: bool,
         check_d_whiten: bool = True) -> PatchPCA:
    """Reads a basis written by `save`, checking it against the config and its own content hash.

    The stored basis is the full D x D one, so with `check_d_whiten=False` a file fitted for one (d, whiten) is
    reused with the requested d and whiten (the returned PatchPCA, and its content_hash, use the requested ones).
    Raises FileNotFoundError if missing and PCAMismatchError on any disagreement.
    """
    if not epath.Path(path).is_file():
        raise FileNotFoundError(f"PCA basis {path} does not exist; fit it first (tokenizers.pca.fit then save)")
    data = files.read_npz(path, remake="delete it: the tokenizer stage (--mode=tokenizer, or any run) fits it again")
    required = _ARRAY_FIELDS + _META_FIELDS + ("content_hash", "format")
    missing = [k for k in required if k not in data]
    if missing:
        raise _mismatch(path, "keys", sorted(data), f"all of {list(required)} (missing {missing})")
    if str(data["format"]) != _FORMAT:
        raise _mismatch(path, "format", str(data["format"]), _FORMAT)

    stored = PatchPCA(mean=data["mean"], components=data["components"], eigenvalues=data["eigenvalues"],
                      patch_size=int(data["patch_size"]), channels=int(data["channels"]), d=int(data["d"]),
                      whiten=bool(data["whiten"]))
    recomputed = stored.content_hash()
    if str(data["content_hash"]) != recomputed:
        raise PCAMismatchError(
            f"PCA basis {path}: content_hash in the file ({str(data['content_hash'])[:16]}...) does not match the "
            f"hash recomputed from its contents ({recomputed[:16]}...); the file is corrupt or was edited. "
            f"Delete {path} so it is refitted.", "content_hash", str(data["content_hash"]), recomputed)

    expected = {"patch_size": patch_size, "channels": channels, "d": d, "whiten": whiten}
    checked = _META_FIELDS if check_d_whiten else ("patch_size", "channels")
    for field in checked:
        if getattr(stored, field) != expected[field]:
            raise _mismatch(path, field, getattr(stored, field), expected[field])
    return dataclasses.replace(stored, d=int(d), whiten=bool(whiten))
