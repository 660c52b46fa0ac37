"""bench/train_step.py: the JAX half runs at a tiny size and reports positive numbers; the FLOP count is right."""

import importlib.util
import os

import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")


def _load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", os.path.join(BENCH, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_flops_match_a_hand_count():
    # N=4 tokens, W=8, 1 block, MLP 16, in 3, out 5, adaLN hidden 2 from a t embedding of 4, 4 chunks.
    parts = _load("flops").forward_flops_per_example(
        num_tokens=4, in_dim=3, out_dim=5, width=8, depth=1, mlp_ratio=2.0, cond_hidden_ratio=0.25, t_freq_dim=4)
    hand = {
        "qkv": 2 * 4 * 8 * 24,  # 1536
        "attention": 2 * (4 * 4 * 8) * 2,  # q k^T and p v: 512
        "proj": 2 * 4 * 8 * 8,  # 512
        "mlp": 2 * (4 * 8 * 16) * 2,  # 2048
        "adaln": 2 * (4 * 2 + 2 * 32),  # 144
        "embed": 2 * 4 * 3 * 8,  # 192
        "head": 2 * 4 * 8 * 5 + 2 * (4 * 2 + 2 * 16),  # 320 + 80
    }
    assert parts == hand
    assert sum(hand.values()) == 5344


def test_jax_half_runs_tiny_and_reports(monkeypatch):
    monkeypatch.chdir(os.path.dirname(BENCH))
    result = _load("train_step").main([
        "--config", "configs/quickstart.py:tiny", "--set", "train.batch_size=8", "--set", "mesh.data=1",
        "--warmup", "1", "--steps", "2", "--repeats", "2", "--skip_torch", "--peak_flops", "1e11"])
    jax_res = result["jax"]
    for key in ("sec_per_step", "images_per_s", "mfu", "build_and_compile_s"):
        assert jax_res[key] > 0, key
    assert result["flops"]["model_per_step"] > 0 and result["peak_flops"] == pytest.approx(1e11)
    assert result["shapes"]["num_tokens"] == 16 and result["shapes"]["in_dim"] == 49
    assert "torch" not in result and result["date"] and result["device"]


@pytest.mark.slow
def test_rounds_alternate_with_the_pytorch_worker(monkeypatch):
    """Both halves at a tiny size (needs .venv-torch, from launch/test_torch.sh): one ratio per round."""
    monkeypatch.chdir(os.path.dirname(BENCH))
    if not os.path.exists(".venv-torch/bin/python"):
        pytest.skip(".venv-torch missing: bash launch/test_torch.sh creates it")
    result = _load("train_step").main([
        "--config", "configs/quickstart.py:tiny", "--set", "train.batch_size=8", "--set", "mesh.data=1",
        "--warmup", "1", "--steps", "2", "--repeats", "3", "--torch_modes", "eager", "--peak_flops", "1e11"])
    eager = result["torch"]["eager"]
    assert len(eager["repeats"]) == 3 and eager["sec_per_step"] > 0 and eager["final_loss"] > 0
    rounds = result["round_ratios_jax_over_torch_eager"]
    assert len(rounds) == 3 and all(r > 0 for r in rounds)
    assert min(rounds) <= result["ratio_jax_over_torch_eager"] <= max(rounds)


@pytest.mark.slow
def test_gpu_loss_check_compares_bf16_with_a_float32_cpu_child(tmp_path, monkeypatch):
    """bench/gpu.py's correctness half, here with both sides on the CPU: bf16 and float32 first steps agree."""
    monkeypatch.chdir(os.path.dirname(BENCH))
    result = _load("gpu").main(["--skip_speed", "--models", "B", "--check_config", "configs/quickstart.py:tiny",
                                "--batch", "8", "--out_dir", str(tmp_path)])
    check = result["loss_check"]
    assert "error" not in check, check.get("error")
    assert check["ok"], check
    assert 0 < check["relative_difference"]["grad_norm"] <= check["tolerance"]  # really two precisions, close
    assert len(list(tmp_path.glob("*.json"))) == 1
