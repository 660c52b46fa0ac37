"""Smoke tests of the issue-6 benchmark scripts (bench/pca_fit.py, input_pipeline.py, compile.py, xla_flags.py) at
tiny sizes.

They check that each script's core function runs and reports its fields; the numbers themselves are not judged.
"""
import os
import sys

import numpy as np
import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")
sys.path.insert(0, BENCH)

import compile as compile_bench  # noqa: E402  (bench/compile.py)
import input_pipeline  # noqa: E402
import pca_fit  # noqa: E402
import xla_flags  # noqa: E402


def test_subspace_error_definition():
    basis = np.linalg.qr(np.random.default_rng(0).normal(size=(6, 6)))[0].T
    assert pca_fit.subspace_error(basis[:2], basis[:2]) < 1e-12
    assert pca_fit.subspace_error(basis[:2], -basis[[1, 0]]) < 1e-12  # order and sign do not matter
    assert pca_fit.subspace_error(basis[:2], basis[2:4]) == pytest.approx(np.sqrt(2))  # orthogonal subspaces


def test_pca_fit_bench_fields():
    """sklearn's side runs only where bash bench/setup_bench.sh made .venv-bench."""
    res = pca_fit.bench(3000, 12, 3, repeats=1)
    assert res["ours_s"] > 0 and res["ours_f64_s"] > 0 and res["err_ours_vs_ours_f64"] < 1e-5
    if os.path.exists(pca_fit.BENCH_PYTHON):
        assert res["sklearn_f32_s"] > 0 and res["err_ours_vs_sklearn_f64"] < 1e-5
        assert res["eig_rel_err_vs_sklearn_f64"] < 1e-5 and len(res["round_speedups"]) == 1
    assert "PCA fit, 3000 synthetic patches" in pca_fit.table(res)


def test_input_pipeline_bench_fields(tmp_path):
    out = input_pipeline.measure_sources(str(tmp_path), jpegs=12, batches=1, warmup=1, batch=4, fashion_mnist=False)
    assert set(out) == {f"{src}/{mode}" for src in ("jpeg", "cache")
                        for mode in ("train_random_resized_crop", "train_center_crop", "eval")}
    assert all(v > 0 for v in out.values())


@pytest.mark.slow
def test_compile_bench_fields():
    case = compile_bench.measure_case("mini", batch=1, scan=True, remat=True, image_size=32)
    assert case["compile_s"] > 0 and case["argument_bytes"] > 0 and case["temp_bytes"] > 0
    assert "| mini | 1 | True | True |" in compile_bench.table([case])


@pytest.mark.slow
def test_xla_flags_bench_compares_each_flag_set_with_none(monkeypatch):
    """A flag set XLA rejects is reported as failed; the others get a speedup against the no-flag baseline."""
    monkeypatch.chdir(os.path.dirname(BENCH))
    res = xla_flags.main(["--config", "configs/quickstart.py:tiny", "--set", "train.batch_size=8", "--rounds", "1",
                          "--steps", "1", "--repeats", "1",
                          "--variant", "no ynn=--xla_cpu_experimental_ynn_fusion_type=",
                          "--variant", "bogus=--xla_cpu_no_such_flag=1"])
    variants = res["variants"]
    assert variants["baseline (no flags)"]["speedup"] == 1.0
    assert variants["no ynn"]["speedup"] > 0 and variants["no ynn"]["loss_rel_diff"] < 1e-3
    assert "sec_per_step" not in variants["bogus"] and "no_such_flag" in variants["bogus"]["runs"][0]["error"]


@pytest.mark.slow
def test_step_ab_times_each_variant_against_the_baseline_round_by_round():
    import step_ab

    res = step_ab.main(["--config", "configs/quickstart.py:tiny", "--set", "train.batch_size=8", "--set",
                        "model.dtype=float32", "--rounds", "2",
                        "--steps", "1", "--warmup", "0", "--variant", "bf16=model.dtype=bfloat16"])
    base, bf16 = res["variants"]["baseline"], res["variants"]["bf16"]
    assert base["speedup"] == 1.0 and len(base["round_s"]) == len(bf16["round_s"]) == 2
    assert (base["dtype"], bf16["dtype"]) == ("float32", "bfloat16") and bf16["speedup"] > 0
    assert abs(bf16["loss_after_warmup"] - base["loss_after_warmup"]) < 0.05 * base["loss_after_warmup"]
    assert res["peak_flops"]["float32"] > 0 and res["peak_flops"]["bfloat16"] > 0
    with pytest.raises(SystemExit):
        step_ab.main(["--variant", "nameonly"])
