"""The ladder: every row's config at every scale, the runner end to end on tiny rows, the report's verdicts,
and the errors a user sees for an unknown row or a tokenizer file of another config."""

import os

import numpy as np
import pytest

from ldae_jax import modes
from ldae_jax.errors import UserError
from ldae_jax.ladder import report as ladder_report, rows as rows_lib, runs as ladder
from ldae_jax.tokenizers import perceptual, registry
from ldae_jax.train import checkpoint

from test_data import needs_debian_files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The runner end to end on rows not run elsewhere: l-DAE, a probe-only row sharing its run, the conv VAE with its
# adversarial loss. The slow test runs every row.
REPRESENTATIVE = ["t3.step5", "a.t20.noisy", "t1.row3"]
SAME_AS_PARENT = {"t2.pca.d32", "w.plain.d32", "a.t10.clean", "t4.ldae",
                  "t4.mae.time"}  # other names for their parent row's run (t4.mae.time: at paper scale only)
ANOTHER_METHOD = {"t4.mae"}  # MAE against l-DAE: the objective, its tokenizer, decoder and probe step all change


def identity(config):
    """What makes a row's result: its pre-training fingerprint and its probe settings."""
    return checkpoint.config_fingerprint(config) | {f"probe.{k}": v for k, v in config.probe.items()}


@pytest.fixture(scope="module")
def vgg16_file(tmp_path_factory):
    """Random VGG16 weights in the expected file format (the real ones cannot be downloaded here)."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("vgg") / "vgg16.npz"
    np.savez(path, **{k: (rng.normal(size=shape) * 0.05).astype(np.float32)
                      for k, shape in perceptual.expected_shapes().items()})
    return str(path)


@pytest.mark.parametrize("scale", rows_lib.SCALES)
def test_every_row_builds_checks_and_is_a_few_fields_from_its_parent(scale, vgg16_file):
    for name, row in rows_lib.ROWS.items():
        config = rows_lib.get_config(f"row={name},scale={scale}")
        if config.tokenizer.conv_vae.perceptual_weight > 0:  # needs the user's VGG16 file, and says so
            with pytest.raises(UserError, match="needs VGG16 weights, which cannot be downloaded"):
                registry.check(config, channels=3)
            config = rows_lib.get_config(f"row={name},scale={scale},vgg16={vgg16_file}")
        # The one check before compute; the datasets of the paper and cifar scales by their known sizes.
        modes.check(config, "pretrain_probe", local=scale in ("small", "tiny"))
        if row.parent:
            parent = identity(rows_lib.get_config(f"row={row.parent},scale={scale}"))
            changed = {k for k, v in identity(config).items() if parent.get(k) != v}
            assert len(changed) <= (10 if name in ANOTHER_METHOD else 4), (name, changed)
            assert changed or name in SAME_AS_PARENT, name


def test_paper_scale_is_the_paper_setting():
    c = rows_lib.get_config("row=t3.step0,scale=paper")
    assert (c.data.name, c.data.image_size, c.data.augment) == ("imagenet2012", 256, "center_crop")
    assert (c.model.size, c.train.num_epochs, c.train.batch_size) == ("half_L", 400.0, 2048)
    assert (c.tokenizer.patch_size, c.tokenizer.d, c.objective.target, c.noise.schedule) == (16, 32, "eps", "linear_gamma_sq")
    pixel = rows_lib.get_config("row=f5.pixel.r64,scale=paper")
    assert (pixel.data.image_size, pixel.tokenizer.patch_size, pixel.tokenizer.d) == (64, 4, 48)  # 256 tokens of d = 48
    lda = rows_lib.get_config("row=t3.step5,scale=paper")
    assert (lda.objective.input, lda.objective.output, lda.objective.target, lda.noise.schedule) == (
        "image", "image", "original", "sigma_linear")


def test_unknown_rows_are_clear_errors():
    with pytest.raises(UserError, match="unknown ladder row.*t9.x.*known rows: t3.step0"):
        rows_lib.select("t3.step0,t9.x")
    assert rows_lib.select("t3.step[45]") == ["t3.step4", "t3.step5"]  # the command line: tests/test_front_door.py


def test_print_mode_gives_one_command_per_distinct_run(capsys):
    planned = ladder.plan(["t3.step0", "t2.pca.d32", "t3.step1", "a.t20.noisy"], "paper", [0, 1], local=False)
    assert [p.run_key for p in planned if p.row == "t2.pca.d32"] == ["t3.step0/seed0", "t3.step0/seed1"]
    assert [p.run_key for p in planned if p.row == "a.t20.noisy"] == ["t3.step5/seed0", "t3.step5/seed1"]
    ladder.print_commands(planned, "gs://bucket/ladder", "paper")
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 8  # per seed: t3.step0, t3.step1, t3.step5 (the probe row's run), the probe row
    assert lines[0] == ("python -m ldae_jax.main --config=configs/ladder/rows.py:row=t3.step0,scale=paper,seed=0 "
                        "--workdir=gs://bucket/ladder/t3.step0/seed0 --mode=pretrain_probe")
    assert lines[2].startswith("python -m ldae_jax.main --config=configs/ladder/rows.py:row=t3.step5,")
    assert lines[3].endswith("t3.step5/seed0 --mode=probe --probe_file=probe_a.t20.noisy.json")


def seeds(*linear, knn=None):
    """{seed: result} as runs.gather gives it."""
    return {s: {"linear": v, "knn": (knn or linear)[s]} for s, v in enumerate(linear)}


def test_report_verdicts_follow_the_intervals(tmp_path):
    results = {"t3.step0": seeds(80.0, 80.4, 79.9), "t1.ddpm": seeds(78.0, 78.3, 77.8),  # +2.07, tight: reproduces
               "t1.cls": seeds(80.1, 79.5, 80.9),  # step0 - cls = -0.1, +0.9, -1.0: undecided
               "t3.step5": seeds(79.0, 79.2, 79.1), "t3.single": seeds(80.0, 80.1, 80.3),  # -1.03, tight: opposite
               "t2.pca.d32": seeds(80.0, 80.4, 79.9), "t2.ae.d32": seeds(79.5), "w.plain.d16": seeds(75.0, knn=[70.0]), "w.whiten.d16": seeds(74.0)}
    lines = {line["claim"]: line for line in ladder_report.claims(results)}
    assert lines["the linear gamma^2 schedule beats DDPM's (patch PCA)"]["verdict"] == "reproduces"
    assert lines["class conditioning hurts (patch PCA)"]["verdict"] == "undecided at this scale"
    assert lines["multi-level noise beats a single level"]["verdict"] == "opposite"
    ae = lines["PCA is as good as a trained patch AE (not 1 point worse)"]
    assert ae["verdict"] == "undecided (n=1: no interval)" and ae["diff"].paired and ae["diff"].n == 1
    diff = lines["the linear gamma^2 schedule beats DDPM's (patch PCA)"]["diff"]
    assert diff.paired and diff.n == 3 and diff.mean == pytest.approx(2.0667, abs=1e-3)
    # kNN is read on its own numbers
    knn = {line["claim"]: line for line in ladder_report.claims(results, "knn")}
    assert knn["unwhitened beats whitened PCA, d=16"]["diff"].mean == pytest.approx(-4.0)
    text = ladder_report.write(results, str(tmp_path / "r.md"), scale="small", command="cmd")
    assert "| t3.step0 | patch-wise PCA" in text and "80.10 ± 0.66" in text  # mean ± t(0.975, 2) * sd / sqrt(3)
    assert "+2.07 [+1.92, +2.21] (n=3, paired) | reproduces" in text
    assert (tmp_path / "r.png").stat().st_size > 10_000


def test_budgets_multiply_the_steps_and_have_their_own_runs():
    one, four = (rows_lib.get_config(f"row=t3.step5,scale=small,budget={b}") for b in (1, 4))
    assert (one.train.total_steps, four.train.total_steps) == (600, 2400)
    assert four.train.warmup_epochs == one.train.warmup_epochs and four.knn.every_steps == one.knn.every_steps
    planned = ladder.plan(["t3.step5", "a.t20.clean"], "small", [1], check=False, budget=4)
    assert [(p.run_key, p.probe_file) for p in planned] == [("t3.step5/x4/seed1", "probe.json"),
                                                            ("t3.step5/x4/seed1", "probe_a.t20.clean.json")]
    assert [ladder.cost(p) for p in planned] == pytest.approx([0.3 + 0.7 * 4, 0.3])
    with pytest.raises(UserError, match="budget must be a whole multiple"):
        rows_lib.get_config("row=t3.step5,budget=0")
    with pytest.raises(UserError, match="trains by epochs"):
        rows_lib.get_config("row=t3.step5,scale=paper,budget=4")


@needs_debian_files
@pytest.mark.slow
def test_runner_runs_representative_rows_and_reports(tmp_path):
    planned = ladder.plan(REPRESENTATIVE, "tiny", [0])
    ladder.run_local(planned, str(tmp_path))
    results = ladder.gather(planned, str(tmp_path))
    assert all(len(v) == 1 and 0 <= v[0]["linear"] <= 100 and 0 <= v[0]["knn"] <= 100 for v in results.values())
    assert set(results["t3.step5"][0]["baselines"]) == {"pixels", "random_init"}  # the l-DAE row probes both
    assert os.path.exists(tmp_path / "t3.step5" / "seed0" / "probe_a.t20.noisy.json")  # shares t3.step5's run
    assert os.path.exists(tmp_path / "t1.row3" / "seed0" / "conv_vae.npz")
    text = ladder_report.write(results, str(tmp_path / "ladder.md"), scale="tiny", command="test")
    assert all(f"| {row} |" in text for row in REPRESENTATIVE)
    # A second invocation finds every run done and computes nothing.
    ladder.run_local(planned, str(tmp_path))


@pytest.mark.slow
@needs_debian_files
def test_rows_with_the_same_tokenizer_recipe_share_one_trained_tokenizer(tmp_path, capsys):
    planned = ladder.plan(["t1.row4", "t1.row5"], "tiny", [0])  # differ in the schedule only
    ladder.run_local(planned, str(tmp_path))
    first = (tmp_path / "t1.row4" / "seed0" / "conv_vae.npz").read_bytes()
    assert (tmp_path / "t1.row5" / "seed0" / "conv_vae.npz").read_bytes() == first
    assert "Reusing the tokenizer" in capsys.readouterr().out


@needs_debian_files
def test_a_tokenizer_file_of_another_config_is_refused(tmp_path):
    config = rows_lib.get_config("row=t2.ae.d16,scale=tiny")
    modes.run(config, str(tmp_path), "tokenizer")
    config.tokenizer.d = 8
    with pytest.raises(UserError, match="d is 4 in the file but the config expects 8. Delete .*patch_ae.npz so it"):
        modes.run(config, str(tmp_path), "tokenizer")


@pytest.mark.slow
@needs_debian_files
def test_every_row_runs_a_few_steps(tmp_path, vgg16_file):
    planned = ladder.plan(list(rows_lib.ROWS), "tiny", [0], vgg16_file)
    ladder.run_local(planned, str(tmp_path))
    assert all(ladder.gather(planned, str(tmp_path)).values())


@pytest.mark.slow
@needs_debian_files
def test_samples_figure_of_a_class_conditional_row(tmp_path):
    from PIL import Image

    config = rows_lib.get_config("row=t1.cls,scale=tiny")
    modes.run(config, str(tmp_path), "pretrain")
    out = modes.run(config, str(tmp_path), "samples")
    picture = np.asarray(Image.open(out["samples"]).convert("L"), np.float32)
    assert picture.shape[0] > 100 and picture.std() > 5


def test_fid_needs_the_inception_weights_before_any_compute(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        ladder.plan(["t1.row5"], "tiny", [0], inception=str(tmp_path / "missing.npz"))
    with pytest.raises(UserError, match="FID needs Inception-v3 weights"):
        modes.run(rows_lib.get_config("row=t1.row5,scale=tiny"), str(tmp_path), "fid")


@pytest.mark.slow
@needs_debian_files
def test_runner_measures_fid_with_user_inception_weights(tmp_path, capsys):
    """Random Inception weights stand in for the user's file: the number is meaningless, the plumbing is not."""
    from ldae_jax.evaluate import inception

    weights = str(tmp_path / "inception.npz")
    np.savez(weights, **inception.random_params(0), **{"fc.weight": np.zeros((2, 2048), np.float32)})
    planned = ladder.plan(["t1.sigma"], "tiny", [0], inception=weights)
    ladder.run_local(planned, str(tmp_path))
    fids = ladder.gather_fid(planned, str(tmp_path))
    assert len(fids["t1.sigma"]) == 1 and np.isfinite(fids["t1.sigma"][0]) and fids["t1.sigma"][0] > 0
    text = ladder_report.write(ladder.gather(planned, str(tmp_path)), str(tmp_path / "r.md"), scale="tiny",
                               command="test", fids=fids)
    assert "paper FID-50K" in text and f"{fids['t1.sigma'][0]:.1f} |" in text
    ladder.print_commands(planned, str(tmp_path), "tiny", inception=weights)
    assert capsys.readouterr().out.strip().splitlines()[-1].endswith("--mode=fid")


@pytest.mark.slow
def test_cifar_scale_runs_a_row_on_mock_cifar10(tmp_path, mock_root):
    """scale=cifar: the small recipe on CIFAR-10's geometry (32 px RGB, 16 tokens of D = 192), a few steps."""
    config = rows_lib.get_config("row=t2.pca.d16,scale=cifar")
    assert (config.data.name, config.data.image_size, config.tokenizer.patch_size, config.tokenizer.d) == ("cifar10", 32, 8, 4)
    pixel = rows_lib.get_config("row=f5.pixel.r128,scale=cifar")
    assert (pixel.data.image_size, pixel.tokenizer.patch_size, pixel.tokenizer.d) == (16, 4, 48)
    config.data.data_dir = mock_root
    config.tokenizer.num_patches = 500
    config.train.update(batch_size=8, total_steps=2, log_every=1, checkpoint_every=2)
    config.probe.update(epochs=1, batch_size=16, feature_batch_size=8)
    result = modes.run(config, str(tmp_path / "run"), "pretrain_probe")
    assert 0 <= result["probe"]["results"]["l-DAE"]["test_top1"] <= 100
