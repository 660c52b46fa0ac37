"""Test-wide setup: 8 fake CPU devices (set before JAX is imported), TFDS kept off the network and home, and one
compilation cache for the session."""

import atexit
import os
import shutil
import tempfile

_SESSION_DIR = tempfile.mkdtemp(prefix="ldae_tests_")
atexit.register(shutil.rmtree, _SESSION_DIR, ignore_errors=True)
# TFDS reads TFDS_DATA_DIR once, at import: point it at a fresh directory before anything imports TFDS, so no
# test touches ~/tensorflow_datasets (and nothing is ever downloaded: the data comes from Debian or mocks).
os.environ["TFDS_DATA_DIR"] = os.path.join(_SESSION_DIR, "tfds")
os.makedirs(os.environ["TFDS_DATA_DIR"])
# JAX's persistent compilation cache, fresh each session and inherited by the processes tests start: the many
# tiny runs (resumes, SIGTERM, two processes) compile the same train step again and again. Only compiles over
# JAX's default 1 s are written. Measured: tests/test_durability.py + test_train.py 298 -> 211 s; two in-process
# tests, runs alternated: 126 -> 118 s. A test still compiles everything it runs the first time it runs it.
os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.join(_SESSION_DIR, "jax_cache")
os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402


@pytest.fixture
def mock_root(tmp_path):
    """Metadata-only cifar10 / imagenet2012 (40 examples a split), so mock_data has real split sizes."""
    for name, splits in [("cifar10", ("train", "test")), ("imagenet2012", ("train", "validation"))]:
        builder = tfds.builder(name, data_dir=str(tmp_path))
        builder.info.set_splits(tfds.core.SplitDict([tfds.core.SplitInfo(
            name=split, shard_lengths=[40], num_bytes=0, filename_template=tfds.core.ShardedFileTemplate(
                data_dir=builder.data_path, dataset_name=name, split=split, filetype_suffix="tfrecord"))
            for split in splits]))
        os.makedirs(builder.data_dir)
        builder.info.write_to_directory(builder.data_dir)
    with tfds.testing.mock_data(num_examples=40, data_dir=str(tmp_path)):
        yield str(tmp_path)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long checks, run with `pytest -m slow`")
    config.addinivalue_line("markers", "docs: the README's commands (dry runs), the Colab notebook and the wheel install, "
                                       "`pytest -m docs` (CI)")
