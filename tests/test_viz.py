"""The figures of `python -m ldae_jax.viz`: each drawn from a tiny run or a fake ladder root and not blank; what
cannot be drawn from a workdir is skipped with its reason under --figures=all and a one-line error by name."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from configs import quickstart
from ldae_jax.ladder import rows as rows_lib
from ldae_jax import modes
from ldae_jax.errors import UserError
from ldae_jax.tokenizers import patch_ae
from ldae_jax.viz import figures

from test_data import needs_debian_files
from helpers import set_fields

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_FIGURES = {"schedules", "filters", "noise", "denoising", "curves"}
LADDER_FIGURES = {"schedules", "latent_dim", "ladder"}


def tiny_config(**overrides):
    config = quickstart.get_config("tiny")
    config.mesh.data = 1
    config.train.update(total_steps=4, log_every=2, checkpoint_every=4)
    return set_fields(config, **overrides)


def assert_not_blank(path):
    picture = np.asarray(Image.open(path).convert("RGB"), np.float32)
    assert picture.shape[0] > 100 and picture.shape[1] > 100, path
    assert picture.std() > 10, path
    assert len(np.unique(picture.reshape(-1, 3), axis=0)) > 2, path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A 4-step pre-training (PCA, checkpoint, metrics), plus a made-up fine-tuning log for the curves."""
    workdir = str(tmp_path_factory.mktemp("viz") / "run")
    modes.run(tiny_config(), workdir, "pretrain")
    os.makedirs(os.path.join(workdir, "finetune"))
    with open(os.path.join(workdir, "finetune", "metrics.jsonl"), "w") as f:
        for step in (2, 4):
            f.write(json.dumps({"step": step, "loss": 2.0 / step, "lr": 1e-3 * step, "images_per_s": 100.0}) + "\n")
    with open(os.path.join(workdir, "finetune.json"), "w") as f:
        json.dump({"step": 4, "top1": {"final": 40.0, "ema": 30.0}}, f)
    return workdir


@needs_debian_files
def test_every_run_figure_from_a_tiny_run(tiny_run, tmp_path):
    out = figures.draw(tiny_run, "all", str(tmp_path / "figs"), log=lambda line: None)
    assert set(out["written"]) == RUN_FIGURES
    assert set(out["skipped"]) == {"latent_dim", "ladder"}
    assert "ladder root" in out["skipped"]["ladder"]
    for path in out["written"].values():
        assert_not_blank(path)
    assert not [f for f in os.listdir(tmp_path / "figs") if f.endswith(".tmp")]
    # The default folder is WORKDIR/figures.
    assert figures.draw(tiny_run, "schedules", log=lambda line: None)["written"]["schedules"] == \
        os.path.join(tiny_run, "figures", "schedules.png")


def test_schedules_need_no_workdir(tmp_path):
    out = figures.draw(None, "all", str(tmp_path), log=lambda line: None)
    assert list(out["written"]) == ["schedules"]
    assert_not_blank(out["written"]["schedules"])
    with pytest.raises(UserError, match="needs a single run"):
        figures.draw(None, "denoising", str(tmp_path))
    with pytest.raises(UserError, match="--out_dir"):
        figures.draw(None, "schedules")


def _fake_run(workdir, **overrides):
    os.makedirs(workdir)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(tiny_config(**overrides).to_json())
    return workdir


def test_filters_of_a_patch_ae_and_the_kinds_without_a_basis(tmp_path):
    workdir = _fake_run(str(tmp_path / "ae"), tokenizer__kind="patch_ae")
    rng = np.random.default_rng(0)
    ae = patch_ae.PatchAE(mean=np.zeros(49, np.float32), encoder=rng.normal(size=(49, 16)).astype(np.float32),
                          decoder=rng.normal(size=(16, 49)).astype(np.float32), scale=np.float32(1.0), patch_size=7,
                          channels=1, d=16, variational=False)
    patch_ae.save(ae, os.path.join(workdir, "patch_ae.npz"))
    assert_not_blank(figures.draw(workdir, "filters", str(tmp_path), log=lambda line: None)["written"]["filters"])
    pixel = _fake_run(str(tmp_path / "pixel"), tokenizer__kind="pixel")
    with pytest.raises(UserError, match="no patch basis"):
        figures.draw(pixel, "filters", str(tmp_path))
    with pytest.raises(UserError, match="has no pca.npz"):
        figures.draw(_fake_run(str(tmp_path / "empty")), "filters", str(tmp_path))


def _probe_file(path, top1):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"step": 3, "results": {"l-DAE": {"test_top1": top1, "epoch_losses": [1.0, 0.5]}}}, f)


@pytest.fixture
def fake_ladder(tmp_path):
    """A tiny-scale ladder root made of probe files only, with the report `--launch=report` writes from them."""
    from ldae_jax.ladder import report, runs

    root = tmp_path / "ladder"
    values = {"t3.step0": 70.0, "t2.pca.d8": 65.0, "t2.pca.d16": 68.0, "t2.ae.d16": 67.0, "f5.pixel.r64": 60.0,
              "f5.pixel.r256": 50.0, "t3.step1": 66.0, "t3.step5": 69.0}
    for seed in (0, 1):
        for row, top1 in values.items():
            _probe_file(str(root / row / f"seed{seed}" / "probe.json"), top1 + seed)
    planned = runs.plan(rows_lib.select("t1.*,t2.*,t3.*,f5.*"), "tiny", [0, 1], check=False)
    report.write(runs.gather(planned, str(root)), str(root / "ladder_tiny.md"), scale="tiny", command="test")
    return str(root)


def test_ladder_figures_from_the_report_table(fake_ladder, tmp_path):
    out = figures.draw(fake_ladder, "all", str(tmp_path), log=lambda line: None)
    assert set(out["written"]) == LADDER_FIGURES
    assert "single run" in out["skipped"]["denoising"]
    for path in out["written"].values():
        assert_not_blank(path)
    from ldae_jax.viz import workdir

    lad = workdir.read_ladder(fake_ladder)
    rows = {r["row"]: r for r in lad.rows}
    assert lad.scale == "tiny"
    assert rows["t2.pca.d32"]["results"] == [70.0, 71.0]  # t3.step0's run, as the ladder report reads it
    assert rows["t2.vae.d8"]["results"] == []
    # Row facts come from each row's config, not its name: Figure 5's pixel rows at 256 px keep d = D = 768.
    assert (rows["f5.pixel.r256"]["kind"], rows["f5.pixel.r256"]["paper_d"]) == ("pixel", 768)
    assert rows["t2.ae.d16"]["kind"] == "patch_ae" and rows["t3.step1"]["trajectory"] == 8


def test_a_folder_that_is_neither_a_run_nor_a_ladder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="neither a run"):
        figures.draw(str(tmp_path), "all")  # the command lines' one-line errors: tests/test_front_door.py


def test_the_schedules_legend_says_what_each_curve_is():
    """The left panel plots the signal fraction, which falls for every schedule: no legend entry may say gamma = 1
    beside it; the schedules without input scaling say so, and the run's own schedule is named as this run's."""
    import matplotlib.pyplot as plt

    from ldae_jax import diffusion
    from ldae_jax.viz import schedules

    fig = schedules.draw_schedules(highlight=diffusion.get_schedule("sigma_linear", sigma_max=2.0))
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    left = fig.axes[0]
    plt.close(fig)
    assert len(texts) == 5 and texts[-1] == "this run: σ linear to 2, no input scaling (l-DAE)", texts
    assert "signal fraction" in left.get_ylabel()
    for name, text in zip(diffusion.SCHEDULES, texts):
        assert "γ = 1" not in text and "gamma = 1" not in text, text
        assert ("no input scaling" in text) == (not diffusion.get_schedule(name).variance_preserving), text
    assert texts[2] == "σ linear to √2, no input scaling (l-DAE)"
    assert texts[3].startswith("single level σ = √(1/3)")


def test_the_ladder_chart_keeps_its_labels_in_the_figure_and_one_scale_in_both_panels():
    from ldae_jax.viz import ladder_chart

    table = [{"row": f"t3.step{i}", "change": "+ remove input scaling (sigma linear to sqrt 2) and more words",
              "paper": paper, "trajectory": 7 + i, "results": results, "ci": ci}
             for i, (paper, results, ci) in enumerate([(65.1, [79.1, 78.9, 79.2], 0.3), (62.4, [75.9], None),
                                                       (None, [74.5, 74.0], 1.2)])]
    fig = ladder_chart.draw(table, "small")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = [t for t in fig.axes[0].get_yticklabels() if t.get_text()]
    widths = [ax.get_xlim()[1] - ax.get_xlim()[0] for ax in fig.axes]
    lows = [ax.get_xlim()[0] for ax in fig.axes]
    texts = [t.get_text() for t in fig.axes[1].texts]
    import matplotlib.pyplot as plt

    plt.close(fig)
    assert len(labels) == 3 and all(t.get_window_extent(renderer).x0 >= 0 for t in labels)  # none cut at the left
    assert widths[0] == pytest.approx(widths[1])  # a point of accuracy is as long in both panels
    assert lows[0] < 62.4 < 65.1 < lows[1] < 74.0  # each panel its own range
    assert "79.1 (n=3)" in texts and "75.9 (n=1)" in texts
    assert any("n/a" in t.get_text() for t in fig.axes[0].texts)
    assert ladder_chart.draw([{**table[0], "results": []}], "small") is None
