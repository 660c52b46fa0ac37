"""The models' linear layer: float32 parameters, products in the compute dtype, sums always in float32.

In bfloat16, `nnx.Linear` asks for a bfloat16 result, and so do the two products of its gradient. XLA:CPU
multiplies bfloat16 at its native (AMX/AVX512_BF16) speed only when it sums into float32: a 4096 x 128 x 512
product ran at 626 GFLOP/s into float32, 146 into bfloat16 and 196 in plain float32 on one 2-core Xeon
(bench/README.md). `Dense` therefore accumulates in float32 in the forward product and in both gradient
products, where GPUs and TPUs do the same in their matrix units, and returns float32 on a CPU (which has no
bfloat16 arithmetic for the elementwise work between the products) or the compute dtype on an accelerator (half
the memory traffic there). In float32 it is exactly `nnx.Linear`; the parameters are the same either way.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def matmul(x: jax.Array, w: jax.Array, dtype) -> jax.Array:
    """x [..., i] @ w [i, o] with both cast to `dtype` and the sums in float32: float32 [..., o]."""
    return jnp.matmul(x.astype(dtype), w.astype(dtype), preferred_element_type=jnp.float32)


def _matmul_fwd(x, w, dtype):
    return matmul(x, w, dtype), (x, w)


def _matmul_bwd(dtype, saved, g):
    x, w = saved
    g = g.astype(dtype)
    dx = jnp.matmul(g, w.astype(dtype).T, preferred_element_type=jnp.float32)
    dw = jnp.matmul(x.reshape(-1, x.shape[-1]).astype(dtype).T, g.reshape(-1, g.shape[-1]),
                    preferred_element_type=jnp.float32)
    return dx.astype(x.dtype), dw.astype(w.dtype)


matmul.defvjp(_matmul_fwd, _matmul_bwd)


def activation_dtype(dtype, backend: str | None = None):
    """What the activations between the products are kept in: float32 on a CPU, else the compute dtype."""
    if jnp.dtype(dtype) == jnp.float32 or (backend or jax.default_backend()) == "cpu":
        return jnp.float32
    return jnp.dtype(dtype)


class Dense(nnx.Linear):
    """`nnx.Linear` (same parameters, same initialisation) whose bfloat16 products sum in float32."""

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.dtype is None or jnp.dtype(self.dtype) == jnp.float32:
            return super().__call__(x)
        y = matmul(x, self.kernel[...], self.dtype) + self.bias[...]
        return y.astype(activation_dtype(self.dtype))


def linear(din: int, dout: int, rngs: nnx.Rngs, dtype, zero: bool = False) -> Dense:
    """A Dense layer with xavier-uniform (or, with `zero`, zero) kernel init and a zero bias."""
    init = nnx.initializers.zeros_init() if zero else nnx.initializers.xavier_uniform()
    return Dense(din, dout, kernel_init=init, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)
