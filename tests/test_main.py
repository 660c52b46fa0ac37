"""The whole program: pretrain -> probe -> figure on real Fashion-MNIST and on mock CIFAR-10, and the
one-line errors a user sees for mistakes they can fix."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from configs import quickstart
from ldae_jax import main as main_lib
from ldae_jax.errors import UserError
from ldae_jax.tokenizers.pca import PCAMismatchError

from test_data import fm_builder, needs_debian_files  # noqa: F401 (a fixture)
from helpers import set_fields

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny(**overrides):
    config = quickstart.get_config("tiny")
    config.mesh.data = 1
    return set_fields(config, **overrides)


def check_outputs(workdir, num_results=3):
    with open(os.path.join(workdir, "probe.json")) as f:
        probe = json.load(f)
    assert len(probe["results"]) == num_results
    for r in probe["results"].values():
        assert 0.0 <= r["test_top1"] <= 100.0
    for name in ("config.json", "pca.npz", "metrics.jsonl", "denoising.png"):
        assert os.path.exists(os.path.join(workdir, name)), name
    picture = np.asarray(Image.open(os.path.join(workdir, "denoising.png")).convert("L"), np.float32)
    assert picture.std() > 10  # not blank
    return probe


def tensorboard_tags(workdir) -> dict:
    """{'scalars', 'images': the tags written in workdir's event files, 'hparams': whether hparams were}."""
    import glob

    import tensorflow as tf

    out = {"scalars": set(), "images": set(), "hparams": False}
    for path in glob.glob(os.path.join(workdir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                plugin = value.metadata.plugin_data.plugin_name
                if plugin == "hparams":
                    out["hparams"] = True
                elif plugin == "images" or value.HasField("image"):
                    out["images"].add(value.tag)
                else:
                    out["scalars"].add(value.tag)
    return out


@needs_debian_files
def test_quickstart_tiny_end_to_end_on_fashion_mnist(tmp_path):
    workdir = str(tmp_path / "run")
    out = main_lib.run(tiny(knn__every_steps=8), workdir)  # kNN at steps 8 and 16 (logged alone) and 20 (the end)
    probe = check_outputs(workdir)
    assert probe["step"] == 20 and out["pretrain"]["step"] == 20
    assert probe["results"]["pixels"]["test_top1"] > 50  # raw Fashion-MNIST pixels are linearly informative
    # Where the time went: every stage and the phases inside them, adding up to no more than the command.
    timed = json.loads((tmp_path / "run" / "timings.json").read_text())
    phases = {p["phase"]: p["seconds"] for p in timed["phases"]}
    for name in ("set-up (dataset, mesh, model)", "tokenizer", "tokenizer / sampling patches", "pretrain",
                 "pretrain / compiling the train step", "pretrain / waiting for the next batch", "probe",
                 "probe / l-DAE: features", "probe / pixels: linear head", "figure"):
        assert name in phases, name
    assert phases["pretrain / compiling the train step"] > 0
    assert "pretrain / kNN evaluation" in phases and "probe / l-DAE: kNN" in phases
    # kNN: in training (metrics.jsonl, a line of its own between log steps), after it for every candidate
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], "loss" in r) for r in records if "knn_top1" in r] == [(8, False), (16, False), (20, True)]
    assert all(0 <= r["knn_top1"] <= 100 for r in records if "knn_top1" in r)
    assert all(0 <= r["knn_top1"] <= 100 and r["knn_examples"] == [2048, 500] for r in probe["results"].values())
    assert probe["results"]["pixels"]["knn_top1"] > 50
    # TensorBoard: the loss and kNN, the hyper-parameters, the probe's results and the denoising figure
    tags = tensorboard_tags(workdir)
    for tag in ("loss", "knn_top1", "probe/l-DAE/linear_top1", "probe/pixels/knn_top1", "denoising"):
        assert tag in tags["scalars"] | tags["images"], (tag, tags)
    assert "denoising" in tags["images"] and tags["hparams"]
    top = sum(s for p, s in phases.items() if " / " not in p)
    assert 0.5 * timed["total_s"] < top <= timed["total_s"]
    # The probe alone, rerun from the workdir's own config.json, reproduces the same numbers.
    from ldae_jax import config_lib

    again = main_lib.run(config_lib.load_config(workdir), workdir, mode="probe")["probe"]
    assert again["results"]["l-DAE"]["test_top1"] == probe["results"]["l-DAE"]["test_top1"]
    # A PCA file that does not match the config is refused, naming the field.
    with pytest.raises(PCAMismatchError, match="d"):
        main_lib.run(tiny(tokenizer__d=8), workdir, mode="probe")


@pytest.mark.slow
def test_pretrain_and_probe_on_mock_cifar10(tmp_path, mock_root):
    config = tiny(
        data__name="cifar10", data__data_dir=mock_root, data__image_size=32, data__train_split="train",
        data__eval_split="test", tokenizer__patch_size=8, train__batch_size=8, train__total_steps=4,
        train__log_every=2, probe__feature_batch_size=8, probe__batch_size=16, tokenizer__num_patches=500,
    )
    config.mesh.data = -1  # all 8 fake devices, one image each
    workdir = str(tmp_path / "run")
    main_lib.run(config, workdir)
    probe = check_outputs(workdir)
    assert probe["results"]["pixels"]["feature_dim"] == 32 * 32 * 3


def test_user_mistakes_are_clear_errors(tmp_path):
    with pytest.raises(UserError, match="unknown config field 'train.batchsize'.*train.batch_size"):
        config = tiny()
        config.unlock()
        config.train.batchsize = 3
        main_lib.run(config, str(tmp_path / "a"))
    with pytest.raises(UserError, match="train.batch_size 60 is not divisible by the 8 devices"):
        main_lib.run(tiny(train__batch_size=60, mesh__data=-1), str(tmp_path / "b"))
    with pytest.raises(UserError, match="cannot write to ./proc/ldae_cannot_write_here."):
        main_lib.run(tiny(), "/proc/ldae_cannot_write_here")
    with pytest.raises(UserError, match="noise.schedule"):
        main_lib.run(tiny(noise__schedule="cosine"), str(tmp_path / "c"))


@pytest.mark.parametrize("name,arg", [("quickstart", ""), ("quickstart", "tiny"), ("fashion_mnist", ""),
                                      ("fashion_mnist", "d=8")])
def test_every_config_passes_the_check_and_builds(name, arg):
    from ldae_jax import config_lib, modes

    config = config_lib.load_file(f"configs/{name}.py{':' + arg if arg else ''}")
    plan = modes.check(config, "all", local=False)
    assert plan.num_params > 0 and plan.total_steps == config.train.total_steps


# What libraries print at start-up or on their own when nothing is wrong: TensorFlow's and XLA's C++ logging
# (glog/absl format 'W0000 00:00:...', absl's 'before absl::InitializeLog'), oneDNN's line, Python absl's and
# TensorFlow's 'WARNING:absl:' / 'INFO:tensorflow:' (orbax logs through absl).
BANNER = re.compile(r"absl::InitializeLog|^[IWEF]\d{4} |oneDNN|TF_ENABLE_ONEDNN_OPTS|cpu_feature_guard|"
                    r"This TensorFlow binary|^(INFO|WARNING|ERROR):(absl|tensorflow|root)|orbax|Unable to register",
                    re.MULTILINE)


@needs_debian_files
def test_a_run_prints_only_its_own_lines_and_the_block_probe_json_has(tmp_path, fm_builder):  # noqa: F811
    """As a user runs it without launch/env.sh (no TF_CPP_MIN_LOG_LEVEL): no library banner on either stream, and
    the console's probe table names the block probe.json records (counted from 1: the encoder's last of 2)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS", "XLA_FLAGS")}
    workdir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "ldae_jax.main", "--config=configs/quickstart.py:tiny", f"--workdir={workdir}",
         "--mode=pretrain_probe", "--config.train.total_steps=4", "--config.train.log_every=2",
         "--config.train.checkpoint_every=4", "--config.knn.every_steps=0", "--config.probe.epochs=1",
         "--config.probe.baselines=", "--config.model.encoder_depth=2"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for stream in (proc.stdout, proc.stderr):
        assert not BANNER.search(stream), stream
    assert all(line.startswith("note: ") for line in proc.stderr.splitlines()), proc.stderr  # the host-malloc hint
    assert proc.stdout.startswith("PCA: sampling 5000 patches of 7x7 from train[:2048] ...\nPCA: fitted on 5000 "
                                  "patches"), proc.stdout
    for line in ("Compiling the train step ... ", "step 2/4 (50%)", "  train features: 2048 x 32 in ",
                 "  test features: 500 x 32 in ", "  linear head: 1 epochs, last loss "):
        assert line in proc.stdout, (line, proc.stdout)
    probe = json.loads((workdir / "probe.json").read_text())
    shown = re.search(r"^\| l-DAE, step 4, t=10 clean, block (\d+) \|", proc.stdout, re.MULTILINE)
    assert shown and int(shown.group(1)) == probe["protocol"]["block"] == 2, proc.stdout
    # The console's progress lines are not metrics: metrics.jsonl holds the log steps' numbers only.
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["step"] for r in records] == [2, 4]
    assert all(isinstance(v, (int, float)) for r in records for v in r.values())


@pytest.mark.slow
@needs_debian_files
def test_two_process_run_of_the_whole_program(tmp_path):
    """launch.py local: 2 processes x 4 CPU devices run pretrain -> probe -> figure as one multi-host job."""
    workdir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "launch/launch.py", "local", "--num-processes=2", "--devices-per-process=4",
         "--config=configs/quickstart.py:tiny", f"--workdir={workdir}"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    probe = check_outputs(str(workdir))
    assert probe["step"] == 20
    log = (workdir / "logs" / "process_0.log").read_text()
    assert "Joined 2 processes, 8 devices (4 local)" in log
    assert "Probing" not in (workdir / "logs" / "process_1.log").read_text()  # only host 0 prints
