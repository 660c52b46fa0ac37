"""The front door: every user mistake below is one `error:` line and exit code 2, from the dry run and from the
real run alike, and the real run stops before it reads any data or writes anything (the README's
troubleshooting table lists the same cases)."""

import os
import subprocess
import sys

import pytest

from ldae_jax import cli, experiment
from ldae_jax.data import datasets

import helpers
from test_data import needs_debian_files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = "--config=configs/quickstart.py:tiny"

# (name, arguments after --workdir, the start of the one line printed after 'error: ')
MISTAKES = [
    ("objective that means nothing", [QUICK, "--config.objective.target=eps"],
     "objective.target='eps' predicts the latent noise: it needs objective.output='latent'"),
    ("d larger than the patch", [QUICK, "--config.tokenizer.d=60"],
     "tokenizer.d=60 must be in [1, D] for patches of 7x7x1 (D = 49)"),
    ("misspelled probe mode", [QUICK, "--config.probe.mode=cahced"], "probe.mode='cahced' is not one of cached, paper"),
    ("ImageNet not prepared", ["--config=configs/imagenet.py"], "imagenet2012 is not prepared in"),
    ("config file not found", ["--config=configs/quickstrat.py"], "config file 'configs/quickstrat.py' not found"),
    ("config file with a syntax error", ["--config=SYNTAX"], "config file SYNTAX has a syntax error at line 2"),
    ("typo in a field", [QUICK, "--config.train.batchsize=3"],
     "unknown config field 'train.batchsize' (did you mean train.batch_size?)"),
    ("a field's old name", [QUICK, "--config.pca.d=8"], "config field 'pca.d' was renamed: use tokenizer.d"),
    ("no checkpoint kept", [QUICK, "--config.train.keep_checkpoints=0"],
     "train.keep_checkpoints=0 is out of range: it must be in [1, inf)"),
    ("negative steps", [QUICK, "--config.train.total_steps=-5"], "train.total_steps=-5 is out of range"),
    ("a boolean field given a word", [QUICK, "--config.probe.noisy=maybe"],
     "probe.noisy='maybe': expected a boolean"),
    ("a boolean variant given a word", ["--config=configs/quickstart.py:tiny=maybe"],
     "configs/quickstart.py:tiny=maybe: config argument tiny='maybe': expected a boolean"),
    ("an unknown variant", ["--config=configs/quickstart.py:tiniest"],
     "configs/quickstart.py:tiniest: unknown config argument 'tiniest'; known: tiny"),
    ("an integer field given a fraction", [QUICK, "--config.train.total_steps=1.5"],
     "train.total_steps='1.5': expected an integer"),
    ("batch not divisible by the devices", [QUICK, "--config.mesh.data=-1", "--config.train.batch_size=60"],
     "train.batch_size 60 is not divisible by the 8 devices"),
    ("mesh that does not fit the devices", [QUICK, "--config.mesh.data=-1", "--config.mesh.fsdp=3"],
     "mesh.fsdp=3 does not divide the 8 devices available"),
    ("image not divisible into patches", [QUICK, "--config.tokenizer.patch_size=5"],
     "data.image_size=28 is not divisible by tokenizer.patch_size=5"),
    ("probed block past the network", [QUICK, "--config.probe.block=9"],
     "probe.block=9 is past the network's last block (2)"),
    ("unknown tokenizer", [QUICK, "--config.tokenizer.kind=vqgan"], "tokenizer.kind='vqgan' is unknown"),
    ("pixel tokenizer with d below D", [QUICK, "--config.tokenizer.kind=pixel"],
     "tokenizer.kind='pixel' keeps every pixel of a patch: tokenizer.d must be D = 7x7x1 = 49, got 16"),
    ("unknown dataset", [QUICK, "--config.data.name=mnist"], "Unknown dataset 'mnist'; known datasets:"),
    ("a split that does not exist", [QUICK, "--config.data.eval_split=val"], "Bad split 'val' for fashion_mnist_local"),
    ("the VGG16 file missing", ["--config=configs/ladder/rows.py:row=t1.row1,scale=tiny"],
     "tokenizer.conv_vae.perceptual_weight > 0 needs VGG16 weights"),
    ("FID without Inception weights", [QUICK, "--mode=fid"], "FID needs Inception-v3 weights"),
    ("fine-tuning from a missing file", [QUICK, "--mode=finetune", "--config.finetune.init=/nowhere.safetensors"],
     "finetune.init='/nowhere.safetensors' does not exist"),
    ("probe before pre-training", [QUICK, "--mode=probe"], "WORKDIR/checkpoints holds no checkpoint: pre-train first"),
    ("unknown mode", [QUICK, "--mode=everything"], "argument --mode: invalid choice: 'everything'"),
    ("learned variance on the wrong schedule", [QUICK, "--config.objective.input=latent",
                                                "--config.objective.output=latent", "--config.objective.target=eps",
                                                "--config.objective.learn_sigma=true"],
     "objective.learn_sigma (DiT's learned variance) needs"),
]


@pytest.fixture
def syntax_error_config(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("def get_config(arg=''):\n    return (\n")
    return str(path)


@needs_debian_files
@pytest.mark.parametrize("name,args,says", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_a_mistake_is_one_line_before_any_data_is_read(name, args, says, tmp_path, capsys, monkeypatch,
                                                       syntax_error_config):
    args = [a.replace("SYNTAX", syntax_error_config) for a in args]
    workdir = tmp_path / "run"
    says = says.replace("SYNTAX", syntax_error_config).replace("WORKDIR", str(workdir))
    for dry in (True, False):
        if not dry:  # the real run must stop in the check: reading data or building the run is a failure here
            monkeypatch.setattr(experiment.Experiment, "__init__", lambda *a, **k: pytest.fail("the run started"))
            monkeypatch.setattr(datasets, "open_dataset", lambda *a, **k: pytest.fail("data was opened"))
        code, out, err = helpers.call_main([f"--workdir={workdir}", *args, *(["--dry_run", "--devices=8"] if dry else [])],
                               capsys)
        assert (code, err.count("\n"), out) == (2, 1, ""), (dry, code, out, err)
        assert err.startswith(f"error: {says}"), (dry, err)
        assert not workdir.exists()


@needs_debian_files
def test_the_dry_run_prints_the_plan(tmp_path, capsys):
    code, out, err = helpers.call_main([f"--workdir={tmp_path}", "--config=configs/quickstart.py", "--dry_run", "--devices=8",
                            "--config.train.batch_size=512"], capsys)
    assert code == 0 and err == ""
    for line in ("16 tokens of d=16 of D=49 (7x7 patches)", "width 128, 3 + 3 blocks, 4 heads, 1.37M parameters",
                 "1200 steps (10.2 epochs), global batch 512 = 64 per device on 8 device(s)", "peak lr 2.00e-03",
                 "MiB per device for parameters + AdamW state", "probe -> probe.json", "figure -> denoising.png",
                 "nothing was read or written", "28 px; held in host memory (45 MiB per host)"):
        assert line in out, (line, out)
    assert os.listdir(tmp_path) == []
    code, out, _ = helpers.call_main([f"--workdir={tmp_path}", "--config=configs/quickstart.py", "--dry_run",
                          "--config.data.in_memory_mb=0", "--config.model.dtype=float32"], capsys)
    assert code == 0 and "28 px; streamed through tf.data" in out and "1.37M parameters, float32 compute\n" in out


def test_the_dry_run_of_a_pod_job_checks_its_devices_not_these(tmp_path, capsys):
    """launch.py's check of a v3-256 job: 256 devices on 32 hosts, data in the pod's bucket."""
    args = [f"--workdir=gs://bucket/run", "--config=configs/imagenet.py", "--dry_run", "--remote",
            "--devices=256", "--hosts=32"]
    code, out, err = helpers.call_main(args, capsys)
    assert code == 0, err
    assert "1281167 train" in out and "global batch 2048 = 8 per device on 256 device(s)" in out
    assert "256 px; streamed through tf.data" in out
    code, out, err = helpers.call_main([*args, "--config.train.batch_size=2000"], capsys)
    assert code == 2 and err.startswith("error: train.batch_size 2000 is not divisible by the 256 devices")


def test_a_command_prints_one_error_line_and_nothing_before_it(tmp_path):
    """As its own process, from another directory: a config path relative to the checkout still resolves, and no
    library prints a banner before the error (TensorFlow, absl). Every entry point imports the package first,
    which keeps the banners off (ldae_jax/__init__.py); the other commands' lines are checked in process below."""
    proc = subprocess.run([sys.executable, "-m", "ldae_jax.main", "--config=configs/quickstrat.py", "--workdir=w"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and proc.stderr.count("\n") == 1, proc.stdout + proc.stderr
    assert proc.stderr.startswith("error: config file 'configs/quickstrat.py' not found"), proc.stderr


def test_the_other_commands_mistakes(capsys, tmp_path):
    import importlib.util

    from ldae_jax.data import prepared
    from ldae_jax.ladder import __main__ as ladder_main
    from ldae_jax.viz import __main__ as viz_main

    spec = importlib.util.spec_from_file_location("launch_cli", os.path.join(REPO, "launch", "launch.py"))
    launch = sys.modules.setdefault("launch_cli", importlib.util.module_from_spec(spec))  # dataclasses look there
    spec.loader.exec_module(launch)
    ladder, viz, prepare = ((lambda m: lambda argv: cli.run(m.main, argv))(m) for m in (ladder_main, viz_main, prepared))
    tpu = ["tpu", "run", "--name=x", "--zone=z", "--accelerator-type=v4-64", "--workdir=gs://b/w"]
    for run, argv, says in [
        (ladder, ["--rows=t9.*", "--workdir=w"], "unknown ladder row(s) ['t9.*']"),
        (ladder, ["--seeds=a,b"], "--seeds='a,b': expected comma-separated integers"),
        (ladder, ["--scale=huge"], "argument --scale: invalid choice: 'huge'"),
        (viz, ["--figures=bogus", "--out_dir=w"], "unknown figure(s) ['bogus']"),
        (viz, [f"--workdir={tmp_path / 'missing'}"], f"workdir '{tmp_path / 'missing'}' does not exist"),
        (prepare, ["--dataset=mnist", "--out_dir=w"], "Unknown dataset 'mnist'"),
        (launch.main, ["local", "--workdir=w", "--num-processes=0"], "argument --num-processes: expected a positive"),
        (launch.main, ["tpu", "run", "--name=x", "--zone=z", "--workdir=gs://b/w"], "tpu run: give --accelerator-type"),
        # launch.py's check of the config, here, before anything starts: the path, and the slice's 32 devices
        (launch.main, [*tpu, "--config=configs/quickstrat.py"], "config file 'configs/quickstrat.py' not found"),
        (launch.main, [*tpu, "--config=configs/quickstart.py", "--", "--config.train.batch_size=100"],
         "train.batch_size 100 is not divisible by the 32 devices (8 processes)"),  # a v4-64: 8 hosts x 4 chips
    ]:
        with pytest.raises(SystemExit) as stop:
            run(argv)
        out = capsys.readouterr()
        assert stop.value.code == 2 and out.out == "" and out.err.count("\n") == 1, (argv, out)
        assert out.err.startswith(f"error: {says}"), out.err


@needs_debian_files
def test_missing_dataset_files_are_found_by_the_check(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LDAE_FASHION_MNIST_DIR", str(tmp_path / "nothing"))
    for dry in (["--dry_run"], []):
        code, out, err = helpers.call_main([f"--workdir={tmp_path / 'run'}", QUICK, f"--config.data.data_dir={tmp_path}/tfds",
                                *dry], capsys)
        assert code == 2 and out == "" and err.startswith("error: Fashion-MNIST files"), err
        assert "apt-get update && apt-get install -y dataset-fashion-mnist" in err


@needs_debian_files
def test_a_tokenizer_file_fitted_for_another_config_is_refused_before_compute(tmp_path, capsys, monkeypatch):
    import numpy as np

    from ldae_jax.tokenizers import pca as pca_lib

    workdir = tmp_path / "run"
    workdir.mkdir()
    a = np.random.default_rng(0).normal(size=(49, 49))
    pca_lib.save(pca_lib.fit((np.zeros(49), a @ a.T), patch_size=7, channels=1, d=8, whiten=False),
                 str(workdir / "pca.npz"))
    monkeypatch.setattr(datasets, "open_dataset", lambda *a, **k: pytest.fail("data was opened"))
    for dry in (["--dry_run"], []):
        code, out, err = helpers.call_main([f"--workdir={workdir}", QUICK, "--mode=pretrain", *dry], capsys)
        assert code == 2 and out == "", (out, err)
        assert err.startswith(f"error: PCA basis {workdir}/pca.npz: d is 8 in the file but the config expects 16")


@needs_debian_files
def test_the_dry_run_describes_another_job_only_consistently(tmp_path, capsys):
    init = tmp_path / "encoder.safetensors"
    init.write_bytes(b"")  # the check looks for the file; fine-tuning from it needs no pre-training checkpoint
    base = [f"--workdir={tmp_path / 'run'}", QUICK, "--dry_run"]
    code, out, err = helpers.call_main([*base, "--mode=finetune", f"--config.finetune.init={init}"], capsys)
    assert code == 0, err
    for extra, says in [(["--hosts=2"], "--hosts goes with --devices"),
                        (["--devices=8", "--hosts=3"], "8 devices cannot be split evenly over 3 hosts"),
                        (["--devices=8", "--hosts=8", "--config.train.batch_size=8", "--config.mesh.data=-1",
                          "--config.probe.t=1000"], "probe.t=1000 is not a step of the noise schedule")]:
        code, out, err = helpers.call_main([*base, *extra], capsys)
        assert (code, out) == (2, "") and err.startswith(f"error: {says}"), err
    code, out, err = helpers.call_main([f"--workdir={tmp_path / 'run'}", QUICK, "--devices=8"], capsys)
    assert code == 2 and err.startswith("error: --devices, --hosts and --remote describe another job for --dry_run")
