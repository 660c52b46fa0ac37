"""The denoising ViT: shapes, conditioning, feature read-out and paper sizes."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from ldae_jax import schema
from ldae_jax.models import vit


def small_cfg(**kw):
    base = dict(num_tokens=16, in_dim=12, out_dim=12, width=32, encoder_depth=2, decoder_depth=1, num_heads=2)
    return vit.ModelConfig(**{**base, **kw})


def test_shapes_and_features_read_block_k():
    model = vit.DenoisingViT(small_cfg(), rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (3, 16, 12))
    t = jnp.array([0, 10, 999])
    assert model(x, t).shape == (3, 16, 12)
    feats = model.features(x, t)
    assert feats.shape == (3, 32)
    # Manual read-out of block 2 (the encoder's last): stem, two blocks, average pool.
    h, t_emb = model._stem(x, t, None)
    for block in model.blocks[:2]:
        h = block(h, t_emb)
    np.testing.assert_allclose(feats, h.mean(axis=1), rtol=1e-5, atol=1e-6)
    assert not np.allclose(model.features(x, t, 1), feats)
    with pytest.raises(ValueError, match="cannot read block 4"):
        model.features(x, t, 4)


def test_t_changes_the_output_once_conditioning_is_trained():
    model = vit.DenoisingViT(small_cfg(), rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, 16, 12))
    a = model.features(x, jnp.array([0, 0]))
    # Zero-initialised modulation: t has no effect at init; a non-zero conditioning weight makes it matter.
    np.testing.assert_allclose(a, model.features(x, jnp.array([500, 500])), atol=1e-6)
    model.blocks[0].cond.fc2.kernel[...] = jnp.ones_like(model.blocks[0].cond.fc2.kernel[...]) * 0.01
    assert not np.allclose(model.features(x, jnp.array([0, 0])), model.features(x, jnp.array([500, 500])))


def test_adaln_zero_blocks_start_as_identity():
    model = vit.DenoisingViT(small_cfg(adaln_zero=True), rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, 16, 12))
    t = jnp.array([3, 4])
    h, t_emb = model._stem(x, t, None)
    np.testing.assert_allclose(model.blocks[0](h, t_emb), h, atol=1e-6)


def test_bfloat16_compute_keeps_float32_params():
    model = vit.DenoisingViT(small_cfg(dtype="bfloat16"), rngs=nnx.Rngs(0))
    params = jax.tree.leaves(nnx.state(model, nnx.Param))
    assert all(p.dtype == jnp.float32 for p in params)
    out = model(jnp.ones((2, 16, 12)), jnp.array([1, 2]))
    assert out.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(out)))


def test_sincos_embedding_is_distinct_per_position():
    pos = vit.sincos_2d(64, 32)
    assert pos.shape == (64, 32)
    dists = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    assert np.all(dists[~np.eye(64, dtype=bool)] > 1e-3)


@pytest.mark.parametrize("size,enc_params_m",
                         [("B", 86), ("half_L", 152), pytest.param("L", 304, marks=pytest.mark.slow)])
def test_paper_sizes_build_without_allocating(size, enc_params_m):
    cfg = ml_collections.ConfigDict(dict(size=size, dtype="bfloat16"))
    mcfg = vit.model_config_from(cfg, num_tokens=256, in_dim=768, out_dim=768)
    abstract = nnx.eval_shape(lambda: vit.DenoisingViT(mcfg, rngs=nnx.Rngs(0)))
    block_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(nnx.state(abstract.blocks[0], nnx.Param)))
    cond_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(nnx.state(abstract.blocks[0].cond, nnx.Param)))
    # The encoder's Transformer weights (ViT's, without the t-conditioning MLPs) match the paper's count.
    encoder = mcfg.encoder_depth * (block_params - cond_params)
    assert abs(encoder / 1e6 - enc_params_m) / enc_params_m < 0.03
    assert mcfg.encoder_depth == mcfg.decoder_depth


def test_bad_sizes_are_clear_errors():
    with pytest.raises(ValueError, match="model.size"):
        vit.model_config_from(ml_collections.ConfigDict(dict(size="XXL", dtype="float32")), num_tokens=4, in_dim=3,
                              out_dim=3)
    with pytest.raises(ValueError, match="not divisible"):
        vit.model_config_from(
            ml_collections.ConfigDict(dict(size="mini", width=30, num_heads=4, dtype="float32")), num_tokens=4, in_dim=3,
            out_dim=3
        )


def test_remat_gives_the_same_loss_and_gradients():
    x = jax.random.normal(jax.random.key(1), (2, 16, 12))
    t = jnp.array([3, 700])
    grads = []
    for remat in (False, True):
        model = vit.DenoisingViT(small_cfg(remat=remat), rngs=nnx.Rngs(0))
        model.head.kernel[...] = jax.random.normal(jax.random.key(2), model.head.kernel[...].shape)  # not zero-init
        graphdef, params = nnx.split(model)

        def loss(p):
            return jnp.mean(nnx.merge(graphdef, p)(x, t) ** 2)

        grads.append(jax.jit(jax.grad(loss))(params))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), *grads)
    assert float(jnp.abs(grads[1]["blocks"][0]["qkv"]["kernel"][...]).max()) > 0


@pytest.mark.parametrize("remat", [False, True])
def test_scanned_layers_equal_unrolled_layers(remat):
    """The same parameters, stacked for lax.scan or kept per block, give the same outputs, features and grads."""
    x = jax.random.normal(jax.random.key(1), (2, 16, 12))
    t = jnp.array([3, 700])
    unrolled = vit.DenoisingViT(small_cfg(), rngs=nnx.Rngs(0))
    unrolled.head.kernel[...] = jax.random.normal(jax.random.key(2), unrolled.head.kernel[...].shape)
    graph_u, params_u = nnx.split(unrolled)
    params_u = params_u.to_pure_dict()
    scanned = vit.DenoisingViT(small_cfg(scan_layers=True, remat=remat), rngs=nnx.Rngs(5))
    graph_s, params_s = nnx.split(scanned)
    params_s = params_s.to_pure_dict()
    blocks = [params_u["blocks"][i] for i in range(3)]
    params_s = {**params_u, "blocks": jax.tree.map(lambda *xs: jnp.stack(xs), *blocks)}
    # Jitted: eager op-by-op execution of both models made this one of the slowest default tests (20 s).
    features = jax.jit(lambda g, p: [nnx.merge(g, p).features(x, t, k) for k in (1, 2, 3)], static_argnums=0)
    for a, b in zip(features(graph_s, params_s), features(graph_u, params_u)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    loss = lambda g, p: jnp.mean(nnx.merge(g, p)(x, t) ** 2)  # noqa: E731
    value_and_grad = jax.jit(jax.value_and_grad(loss, argnums=1), static_argnums=0)
    (loss_s, grad_s), (loss_u, grad_u) = value_and_grad(graph_s, params_s), value_and_grad(graph_u, params_u)
    np.testing.assert_allclose(loss_s, loss_u, rtol=1e-5)
    np.testing.assert_allclose(grad_s["blocks"]["qkv"]["kernel"][1], grad_u["blocks"][1]["qkv"]["kernel"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", pytest.param("bfloat16", marks=pytest.mark.slow)])
def test_einsum_attention_equals_dot_product_attention(dtype):
    """model.attention='einsum' is a layout choice only: same parameters, same outputs and gradients."""
    x = jax.random.normal(jax.random.key(1), (2, 16, 12))
    t = jnp.array([3, 700])
    grads, outs = [], []
    for attention in vit.ATTENTION:
        model = vit.DenoisingViT(small_cfg(attention=attention, dtype=dtype), rngs=nnx.Rngs(0))
        model.head.kernel[...] = jax.random.normal(jax.random.key(2), model.head.kernel[...].shape)
        graphdef, params = nnx.split(model)
        loss = lambda p, g=graphdef: jnp.mean(nnx.merge(g, p)(x, t) ** 2)  # noqa: E731
        outs.append(nnx.merge(graphdef, params)(x, t))
        grads.append(jax.jit(jax.grad(loss))(params))
    if dtype == "float32":
        np.testing.assert_allclose(outs[0], outs[1], rtol=1e-4, atol=1e-5)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), *grads)
    else:  # bfloat16 rounds at different points: compare relative to each array's size
        close = lambda a, b: float(jnp.linalg.norm(a - b)) <= 0.03 * float(jnp.linalg.norm(b)) + 1e-6  # noqa: E731
        assert close(outs[0], outs[1])
        assert all(jax.tree.leaves(jax.tree.map(close, *grads)))
    with pytest.raises(ValueError, match="model.attention"):
        vit.model_config_from(ml_collections.ConfigDict(dict(size="mini", dtype="float32", attention="flash")),
                              num_tokens=16, in_dim=12, out_dim=12)


def test_auto_dtype_is_bfloat16_where_it_is_native_and_float32_elsewhere():
    from ldae_jax.runtime import precision

    assert precision.resolve("auto", "tpu")[0] == precision.resolve("auto", "gpu")[0] == "bfloat16"
    assert precision.resolve("auto", "cpu", frozenset({"avx2", "avx512_bf16"})) == (
        "bfloat16", "auto: this CPU has AVX512_BF16")
    assert precision.resolve("auto", "cpu", frozenset({"amx_bf16"}))[0] == "bfloat16"
    dtype, why = precision.resolve("auto", "cpu", frozenset({"avx2", "avx512f"}))
    assert dtype == "float32" and "no native bfloat16" in why
    assert precision.resolve("float32", "tpu") == ("float32", "set in the config")
    # The model config never holds 'auto': it holds what this machine computes in.
    c = schema.defaults()
    c.model.update(size="mini", dtype="auto")
    cfg = vit.model_config_from(c.model, num_tokens=16, in_dim=16, out_dim=49)
    assert cfg.dtype == precision.resolve("auto")[0]


def test_dense_sums_in_float32_and_its_gradient_matches_float32():
    from ldae_jax.models import dense

    rngs = lambda: nnx.Rngs(0)  # noqa: E731
    f32, bf16 = dense.linear(64, 32, rngs(), "float32"), dense.linear(64, 32, rngs(), "bfloat16")
    plain = nnx.Linear(64, 32, kernel_init=nnx.initializers.xavier_uniform(), param_dtype=jnp.float32, rngs=rngs())
    np.testing.assert_array_equal(f32.kernel[...], plain.kernel[...])  # same parameters, same init
    x = jax.random.normal(jax.random.key(1), (4, 8, 64))
    np.testing.assert_array_equal(f32(x), plain(x))  # float32: exactly nnx.Linear
    assert bf16(x).dtype == dense.activation_dtype("bfloat16") == jnp.float32  # on a CPU
    assert dense.activation_dtype("bfloat16", "tpu") == jnp.bfloat16
    assert dense.activation_dtype("float32", "gpu") == jnp.float32

    w = f32.kernel[...]
    exact = jax.grad(lambda w, x: ((x @ w) ** 2).mean(), argnums=(0, 1))(w, x)
    mixed = jax.grad(lambda w, x: (dense.matmul(x, w, jnp.bfloat16) ** 2).mean(), argnums=(0, 1))(w, x)
    for a, b in zip(exact, mixed):
        assert b.dtype == jnp.float32
        assert float(jnp.abs(a - b).max() / jnp.abs(a).max()) < 2e-2  # bfloat16 operands, float32 sums
    # All three products (forward, input gradient, weight gradient) take bfloat16 operands and sum in float32.
    graph = str(jax.make_jaxpr(jax.grad(lambda w, x: (dense.matmul(x, w, jnp.bfloat16) ** 2).mean(),
                                        argnums=(0, 1)))(w, x))
    dots = [line for line in graph.splitlines() if "= dot_general[" in line]
    assert len(dots) == 3 and all(":f32[" in line for line in dots), dots
    assert graph.count("preferred_element_type=float32") == 3
    # Through a bfloat16 input, the input's cotangent comes back in bfloat16 (custom_vjp keeps the dtypes).
    gxh = jax.grad(lambda x: (bf16(x) ** 2).mean())(x.astype(jnp.bfloat16))
    assert gxh.dtype == jnp.bfloat16
