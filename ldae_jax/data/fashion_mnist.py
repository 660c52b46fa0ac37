"""A TFDS builder for Fashion-MNIST that reads the Debian package's local IDX files.

Why not the stock `fashion_mnist` builder: it downloads, and it rejects the Debian files by checksum (they were
re-gzipped; the pixels are identical). This builder never downloads and never writes outside its `data_dir`.

Where the four IDX files come from (`resolve_source_dir`): the `source_dir` argument, else $LDAE_FASHION_MNIST_DIR,
else the Debian package's /usr/share/datasets/fashion-mnist. Without apt-get, with internet:
    python -m ldae_jax.data.fashion_mnist --download DIR
writes them from TFDS's stock `fashion_mnist` builder into DIR (the published contents, in their original order,
checked by sha256), then `export LDAE_FASHION_MNIST_DIR=DIR`. The prepared copy remembers which files it was made
from and is remade when they change: see `prepared_builder`.
"""
from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import io
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from etils import epath

from ldae_jax import cli
from ldae_jax.data import tf_setup  # noqa: F401  (hides GPUs from TensorFlow)
from ldae_jax.errors import DataError, first_line

DEFAULT_SOURCE_DIR = "/usr/share/datasets/fashion-mnist"
SOURCE_DIR_ENV = "LDAE_FASHION_MNIST_DIR"
LABEL_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
# split -> (images file, labels file, number of examples)
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60_000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10_000),
}
_IDX_UBYTE = {1: 0x00000801, 3: 0x00000803}  # magic number of an unsigned-byte IDX file, by number of dims
# sha256 of the published files' uncompressed contents (the Debian package's and the zalandoresearch originals'
# .gz files differ, their contents do not): what `--download` must produce.
CONTENT_SHA256 = {
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
# Beside the prepared copy's TFRecords: the source files it was made from (see `prepared_builder`).
RECORD_FILE = "source.json"
_RECORD_VERSION = 1


def resolve_source_dir(source_dir: str | None = None) -> str:
    """The argument, else $LDAE_FASHION_MNIST_DIR, else the Debian install location."""
    return source_dir or os.environ.get(SOURCE_DIR_ENV) or DEFAULT_SOURCE_DIR


def _source_origin(source_dir: str | None) -> str:
    """Which of `resolve_source_dir`'s three rules chose the directory, for the console."""
    if source_dir:
        return "the source_dir argument"
    return f"${SOURCE_DIR_ENV}" if os.environ.get(SOURCE_DIR_ENV) else "the Debian default"


def _file_names() -> list[str]:
    return [name for files in FILES.values() for name in files[:2]]


def read_idx(path: str, ndim: int) -> np.ndarray:
    """Reads a gzipped unsigned-byte IDX file with `ndim` dims; a bad header or size is a DataError."""
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path} is not a readable gzip file ({e}); reinstall dataset-fashion-mnist.") from e
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is too short for an IDX header; reinstall dataset-fashion-mnist.")
    magic = int.from_bytes(data[:4], "big")
    if magic != _IDX_UBYTE[ndim]:
        raise DataError(f"{path} has IDX magic {magic:#010x}, expected {_IDX_UBYTE[ndim]:#010x}; "
                        "wrong or corrupt file, reinstall dataset-fashion-mnist.")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if len(data) - header != int(np.prod(shape)):
        raise DataError(f"{path} holds {len(data) - header} bytes after its header, but the header says "
                        f"{shape}; the file is truncated or corrupt, reinstall dataset-fashion-mnist.")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def idx_bytes(array: np.ndarray) -> bytes:
    """The (uncompressed) unsigned-byte IDX file of a uint8 array with 1 or 3 dims: `read_idx`'s inverse."""
    array = np.ascontiguousarray(array, np.uint8)
    header = _IDX_UBYTE[array.ndim].to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def read_split(source_dir: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 [n, 28, 28, 1] and labels uint8 [n] of one split, checked against the known sizes."""
    images_file, labels_file, n = FILES[split]
    images = read_idx(os.path.join(source_dir, images_file), ndim=3)
    labels = read_idx(os.path.join(source_dir, labels_file), ndim=1)
    if images.shape != (n, 28, 28) or labels.shape != (n,):
        raise DataError(f"{split} files in {source_dir} hold images {images.shape} and labels {labels.shape}, "
                        f"expected ({n}, 28, 28) and ({n},); reinstall dataset-fashion-mnist.")
    if labels.max() >= len(LABEL_NAMES):
        raise DataError(f"{os.path.join(source_dir, labels_file)} has label {labels.max()} > 9; "
                        "reinstall dataset-fashion-mnist.")
    return images[..., None], labels


def _missing(source_dir: str) -> list[str]:
    return [name for name in _file_names() if not os.path.isfile(os.path.join(source_dir, name))]


def check_source_dir(source_dir: str) -> None:
    """Fails with the fix (apt-get, the env var, or the TFDS download) when any of the 4 files is missing."""
    missing = _missing(source_dir)
    if missing:
        raise DataError(f"Fashion-MNIST files {missing} not found in {source_dir}: run "
                        f"`apt-get update && apt-get install -y dataset-fashion-mnist`, or set {SOURCE_DIR_ENV} "
                        "to the directory holding the 4 .gz IDX files (without apt-get, with internet: "
                        "`python -m ldae_jax.data.fashion_mnist --download DIR` writes them into DIR from TFDS).")


def split_sizes(source_dir: str) -> dict[str, int]:
    """{split: examples} from the image files' IDX headers (16 bytes each), for a check before any data is read."""
    check_source_dir(source_dir)
    sizes = {}
    for split, (images_file, _, _) in FILES.items():
        path = os.path.join(source_dir, images_file)
        try:
            with gzip.open(path, "rb") as f:
                header = f.read(8)
        except (OSError, EOFError) as e:
            raise DataError(f"{path} is not a readable gzip file ({e}); reinstall dataset-fashion-mnist.") from e
        if len(header) < 8 or int.from_bytes(header[:4], "big") != _IDX_UBYTE[3]:
            raise DataError(f"{path} is not an IDX image file; wrong or corrupt file, reinstall dataset-fashion-mnist.")
        sizes[split] = int.from_bytes(header[4:8], "big")
    return sizes


class FashionMnistLocal(tfds.core.GeneratorBasedBuilder):
    """Fashion-MNIST (60k train / 10k test, 28x28x1, 10 classes) from local IDX files; `fashion_mnist_local`."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Read from the Debian package dataset-fashion-mnist."}

    def __init__(self, *, source_dir: str | None = None, **kwargs):
        self.source_dir = resolve_source_dir(source_dir)
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="Fashion-MNIST (Xiao et al., 2017), read from the local IDX files.",
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(28, 28, 1)),
                "label": tfds.features.ClassLabel(names=LABEL_NAMES),
            }),
            supervised_keys=("image", "label"),
            homepage="https://github.com/zalandoresearch/fashion-mnist",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing is downloaded
        check_source_dir(self.source_dir)
        # Read (and so validate) both splits before TFDS writes anything.
        arrays = {split: read_split(self.source_dir, split) for split in FILES}
        return {split: self._generate_examples(*arrays[split]) for split in FILES}

    def _generate_examples(self, images: np.ndarray, labels: np.ndarray) -> Iterator[tuple[int, dict]]:
        # The same PNG bytes TFDS would write, encoded in one graph call: TFDS encodes each array with its own
        # eager op, which was over half of the preparation time.
        for i, (png, label) in enumerate(zip(_encode_png(images), labels)):
            yield i, {"image": png, "label": int(label)}


@tf.function(autograph=False)
def _encode_png_graph(images):
    return tf.map_fn(tf.io.encode_png, images, fn_output_signature=tf.string)


def _encode_png(images: np.ndarray) -> np.ndarray:
    """PNG bytes of each uint8 [h, w, c] image, as TFDS's Image feature encodes them (identical bytes)."""
    return _encode_png_graph(tf.constant(images)).numpy()


@contextlib.contextmanager
def _lock(path: str):
    """An exclusive file lock, so processes sharing a data_dir prepare it once (not for remote paths)."""
    if "://" in path:
        yield
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# ------------------------------------------------------------------------- the prepared copy's source record


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _file_entry(path: str, recorded: dict | None) -> dict | None:
    """{path, size, mtime_ns, ctime_ns, sha256} of a file (None when it is gone). The hash is taken from `recorded`
    when the path and stat match it, so an unchanged source costs one stat per file; the stat is taken before
    hashing, so a file written meanwhile is hashed again next time. ctime catches a replacement that kept mtime."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    entry = {"path": path, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns}
    if recorded and recorded.get("sha256") and all(recorded.get(k) == v for k, v in entry.items()):
        return dict(recorded)
    return {**entry, "sha256": _sha256(path)}


def source_record(source_dir: str, recorded: dict | None = None) -> dict:
    """The record of the source files in `source_dir` (absolute paths, sizes, times, sha256); hashes of files whose
    path and stat are those of `recorded` are reused rather than computed. A missing file is `null`."""
    directory = os.path.abspath(source_dir)
    previous = recorded.get("files", {}) if recorded and recorded.get("source_dir") == directory else {}
    return {"version": _RECORD_VERSION, "source_dir": directory,
            "files": {name: _file_entry(os.path.join(directory, name), previous.get(name)) for name in _file_names()}}


def _record_path(builder: tfds.core.DatasetBuilder) -> epath.Path:
    return builder.data_path / RECORD_FILE


def read_record(builder: tfds.core.DatasetBuilder) -> dict | None:
    """The source record of `builder`'s prepared copy; None when there is none (or it is unreadable)."""
    try:
        record = json.loads(_record_path(builder).read_text())
    except (OSError, ValueError):
        return None
    ok = (isinstance(record, dict) and record.get("version") == _RECORD_VERSION
          and isinstance(record.get("files"), dict) and isinstance(record.get("source_dir"), str))
    return record if ok else None


def _write_record(path: epath.Path, record: dict) -> None:
    """Writes the record whole or not at all: a local file through a rename, a remote object in one upload."""
    text = json.dumps(record, indent=1, sort_keys=True) + "\n"
    if "://" in os.fspath(path):
        path.write_text(text)
        return
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _compare(record: dict | None, source_dir: str) -> tuple[str, str, dict | None]:
    """(verdict, reason, current record) of a prepared copy's `record` against the source chosen now:
    'use' (same files), 'keep' (same directory, some files gone, none changed), 'remake' or 'refuse' (changed, and
    the four files are, or are not, all there to remake it from)."""
    directory = os.path.abspath(source_dir)
    if record is None:
        reason, current = "it has no record of its source files (a copy made before ldae_jax kept one)", None
    elif record["source_dir"] != directory:
        reason, current = f"it was made from {record['source_dir']}", None
    else:
        current = source_record(directory, record)
        recorded = record["files"]
        gone = [name for name, entry in current["files"].items() if entry is None]
        changed = [name for name, entry in current["files"].items() if entry is not None
                   and entry["sha256"] != (recorded.get(name) or {}).get("sha256")]
        if not changed:
            return ("keep", f"{', '.join(gone)} gone from {directory}", current) if gone else ("use", "", current)
        reason = f"{', '.join(changed)} in {directory} changed since it was made"
    return ("refuse" if _missing(directory) else "remake"), reason, current


def check_prepared(builder: FashionMnistLocal, origin: str = "") -> None:
    """The check before compute: a DataError where `prepared_builder` would refuse the prepared copy (it can be
    neither used nor remade); nothing is written or remade here."""
    if _compare(read_record(builder), builder.source_dir)[0] == "refuse":
        _settle(builder, origin or _source_origin(None))  # raises the DataError, with its reasons


def _settle(builder: FashionMnistLocal, origin: str) -> bool:
    """True when `builder`'s prepared copy may be used for its source as chosen now (see `prepared_builder`);
    False when it must be remade (after saying so); a DataError when it can be neither used nor remade."""
    record = read_record(builder)
    verdict, reason, current = _compare(record, builder.source_dir)
    directory = os.path.abspath(builder.source_dir)
    if verdict == "use":
        if current != record:  # a file's stat changed, not its contents: keep the next check at one stat a file
            with contextlib.suppress(OSError):
                _write_record(_record_path(builder), current)
        return True
    if verdict == "keep":
        print(f"warning: Fashion-MNIST: {reason}, the source of the prepared copy in {builder.data_dir}; using that "
              f"copy (its files' sha256 are in {_record_path(builder)}).", file=sys.stderr, flush=True)
        return True
    if verdict == "refuse":
        recorded = record["source_dir"] if record else None
        hint = (f"If {recorded} still holds the files it was made from, set {SOURCE_DIR_ENV}={recorded} to use the "
                "copy. " if recorded and recorded != directory else "")
        raise DataError(f"The prepared Fashion-MNIST copy in {builder.data_dir} is not of the source chosen now, "
                        f"{directory} ({origin}): {reason}; and it cannot be remade, since {_missing(directory)} are "
                        f"not in {directory}. {hint}Put the 4 .gz IDX files there, or set {SOURCE_DIR_ENV} to a "
                        "directory holding them (`python -m ldae_jax.data.fashion_mnist --download DIR` writes them "
                        "from TFDS, with internet).")
    print(f"Fashion-MNIST: remaking the prepared copy in {builder.data_dir} from {directory} ({origin}): {reason}.",
          flush=True)
    return False


def _staging_prefix(builder: tfds.core.DatasetBuilder) -> str:
    return f".{builder.name}.staging-"


def _prepare(data_dir: str | None, source_dir: str) -> None:
    """Prepares the copy from `source_dir` so that no interrupted (re)make is ever trusted: its record is written
    last, and a copy without one is remade on next use. A first copy is TFDS's own preparation (it renames a
    finished folder into place); a copy that replaces another is prepared aside, then the old copy's record goes,
    and the new copy moves in with renames (atomic on a local disk: readers never see a half copy)."""
    target = FashionMnistLocal(data_dir=data_dir, source_dir=source_dir)
    record = source_record(source_dir)  # hashed before the files are read: a file written meanwhile is remade
    config = tfds.download.DownloadConfig(try_download_gcs=False)
    path = target.data_path
    first = not path.exists()  # a remake has said why, in one line, before
    if first:
        print(f"Fashion-MNIST: preparing a TFDS copy of {source_dir} in {target.data_dir_root} (once, about 10 s) ...",
              end=" ", flush=True)
    began = time.perf_counter()
    if first:
        with _quiet_tfds():
            target.download_and_prepare(download_config=config)
    else:
        staging = epath.Path(target.data_dir_root) / f"{_staging_prefix(target)}{uuid.uuid4().hex}"
        try:
            staged = FashionMnistLocal(data_dir=os.fspath(staging), source_dir=source_dir)
            with _quiet_tfds():
                staged.download_and_prepare(download_config=config)
            _record_path(target).unlink(missing_ok=True)
            path.rename(staging / "replaced")
            staged.data_path.rename(path)
        finally:
            staging.rmtree(missing_ok=True)
    _write_record(_record_path(target), record)
    if first:
        print(f"{time.perf_counter() - began:.1f}s", flush=True)


@contextlib.contextmanager
def _quiet_tfds():
    """TFDS's preparation without its lines and bars ('Downloading and preparing dataset Unknown size ...': there
    is no download, and the line above says what happens); an error still raises."""
    tfds.display_progress_bar(False)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        tfds.display_progress_bar(True)


def prepared_builder(data_dir: str | None = None, source_dir: str | None = None) -> FashionMnistLocal:
    """The builder, prepared in `data_dir` from the source chosen now (`resolve_source_dir`): made on first use
    (about 9 s on 2 cores) and remade whenever that source is not the one the copy was made from.

    The copy keeps a record of its source, `source.json` beside its TFRecords: the directory and each file's
    absolute path, size, mtime, ctime and sha256. Every call compares the chosen source with it, at the cost of a
    stat per file (about 0.1 ms); a file is hashed again (about 0.1 s for all four) only when its stat differs.
      - Same directory, same contents: the copy is used (a stat-only change just refreshes the record).
      - Another directory, a file with other contents, or no record (a copy made before records were kept): the
        copy is remade from the chosen source, with one console line naming that source and why. The new copy is
        prepared aside and renamed into place, its record written last (`_prepare`): an interrupted remake leaves
        the old copy, or a copy without a record, or none; the next use remakes it, never trusts it.
      - Cannot be remade because files are missing. If the chosen source is the directory the copy was made from
        and the files still there are unchanged (the package was removed, a data_dir was copied to another machine),
        the copy is used, with one `warning:` line naming that directory: nothing asked for other data. Otherwise
        (another directory, or a changed file beside a missing one) it is a DataError, one `error:` line at the
        command line, naming the recorded source: the copy is not the data asked for, so it is not used.
    """
    origin = _source_origin(source_dir)
    builder = FashionMnistLocal(data_dir=data_dir, source_dir=source_dir)
    if builder.is_prepared():
        if _settle(builder, origin):  # says why when it is not
            return builder
    else:
        check_source_dir(builder.source_dir)
    root = os.fspath(builder.data_dir_root)
    with _lock(os.path.join(root, f".{builder.name}.lock")):
        # Look again: another process may have (re)made it while this one waited for the lock.
        builder = FashionMnistLocal(data_dir=data_dir, source_dir=source_dir)
        if builder.is_prepared() and _compare(read_record(builder), builder.source_dir)[0] == "use":
            return builder
        if "://" not in root:  # staging folders left by a killed process (none is in use: this one holds the lock)
            for stale in epath.Path(root).glob(f"{_staging_prefix(builder)}*"):
                stale.rmtree(missing_ok=True)
        _prepare(data_dir, builder.source_dir)
    return FashionMnistLocal(data_dir=data_dir, source_dir=source_dir)


# ---------------------------------------------------------------------------- the IDX files from TFDS's builder


def _original_order(builder: tfds.core.DatasetBuilder, split: str, n: int) -> np.ndarray:
    """order[p] = the index in the original files of the p-th example TFDS stored. TFDS stores a split sorted by an
    md5 of (split name, example key); the MNIST-style builders' keys are the examples' original indices."""
    if builder.info.disable_shuffling:
        return np.arange(n)
    from tensorflow_datasets.core import hashing  # TFDS's own shuffling hash (its docs: changing it is a new version)
    hasher = hashing.Hasher(split)
    return np.array(sorted(range(n), key=hasher.hash_key))


def write_idx_files(builder: tfds.core.DatasetBuilder, out_dir: str, *, check_contents: bool = True) -> list[str]:
    """Writes the 4 gzipped IDX files of a prepared Fashion-MNIST builder's train and test splits into `out_dir`,
    in the original files' order; with `check_contents`, only when their contents are the published ones."""
    contents = {}
    for split, (images_file, labels_file, _) in FILES.items():
        ds = builder.as_dataset(split=split, shuffle_files=False,
                                read_config=tfds.ReadConfig(interleave_cycle_length=1))  # in stored order
        batches = list(tfds.as_numpy(ds.batch(10_000)))
        data = {key: np.concatenate([b[key] for b in batches]) for key in ("image", "label")}
        order = _original_order(builder, split, len(data["label"]))
        images, labels = np.empty_like(data["image"]), np.empty_like(data["label"])
        images[order], labels[order] = data["image"], data["label"]  # the p-th stored example back at order[p]
        contents[images_file] = idx_bytes(images[..., 0])
        contents[labels_file] = idx_bytes(labels.astype(np.uint8))
    if check_contents:
        wrong = [name for name, data in contents.items() if hashlib.sha256(data).hexdigest() != CONTENT_SHA256[name]]
        if wrong:
            raise DataError(f"TFDS's {builder.name} gave contents for {wrong} that are not the published "
                            "Fashion-MNIST's (sha256 differs); nothing written.")
    os.makedirs(out_dir, exist_ok=True)
    written = {}
    for name, data in contents.items():  # every file complete under a temporary name first, then all renamed
        tmp = os.path.join(out_dir, f".{name}.tmp-{uuid.uuid4().hex}")
        with open(tmp, "wb") as f:
            f.write(gzip.compress(data, compresslevel=6, mtime=0))
        written[name] = tmp
    for name, tmp in written.items():
        os.replace(tmp, os.path.join(out_dir, name))
    return [os.path.join(out_dir, name) for name in contents]


def has_published_files(out_dir: str) -> bool:
    """Whether `out_dir` holds the 4 files with the published contents."""
    for name, digest in CONTENT_SHA256.items():
        h = hashlib.sha256()
        try:
            with gzip.open(os.path.join(out_dir, name), "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        except (OSError, EOFError):
            return False
        if h.hexdigest() != digest:
            return False
    return True


def download(out_dir: str, *, tfds_data_dir: str | None = None, check_contents: bool = True) -> list[str]:
    """The 4 IDX files written into `out_dir` from TFDS's stock `fashion_mnist` (downloaded and prepared in
    `tfds_data_dir`, TFDS's default when None: it needs internet the first time)."""
    builder = tfds.builder("fashion_mnist", data_dir=tfds_data_dir)
    try:
        builder.download_and_prepare()
    except Exception as e:  # a network or server failure: one line saying so, not a traceback
        raise DataError(f"TFDS could not download fashion_mnist into {builder.data_dir_root} ({type(e).__name__}: "
                        f"{first_line(e)}); this needs internet. Or put the 4 .gz IDX files in a directory and set "
                        f"{SOURCE_DIR_ENV} to it.") from e
    return write_idx_files(builder, out_dir, check_contents=check_contents)


def parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(prog="python -m ldae_jax.data.fashion_mnist",
                           description="Writes the 4 Fashion-MNIST IDX files from TFDS's stock fashion_mnist builder "
                                       f"(internet needed), for {SOURCE_DIR_ENV} where apt-get is not available.")
    p.add_argument("--download", metavar="DIR", required=True, help="directory to write the 4 .gz IDX files into")
    p.add_argument("--tfds_data_dir", default="", help="where TFDS keeps its fashion_mnist; '' = TFDS default")
    return p


def main(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    out_dir = os.path.abspath(args.download)
    if has_published_files(out_dir):
        print(f"{out_dir} already holds the 4 Fashion-MNIST IDX files.")
    else:
        download(out_dir, tfds_data_dir=args.tfds_data_dir or None)
        print(f"Wrote the 4 Fashion-MNIST IDX files (the published contents) into {out_dir}.")
    print(f"Use them with: export {SOURCE_DIR_ENV}={out_dir}")


if __name__ == "__main__":
    cli.run(main)
