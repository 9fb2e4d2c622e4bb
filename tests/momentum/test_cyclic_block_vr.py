"""What makes cyclic block VR itself (arXiv:2212.05331).

Problem from the paper's setting (composite finite sum): Lasso,
(1/2N)||A x - b||^2 + lam ||x||_1, N = 40 rows, x split into three blocks,
minibatches of 8 rows, large-batch refresh on all rows.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optkit.momentum import cyclic_block_vr

N, D, LAM, K, BS = 40, 6, 0.05, 300, 8
BLOCKS = {"a": "a", "b": "b", "c": "c"}
SLICES = {"a": slice(0, 2), "b": slice(2, 4), "c": slice(4, 6)}


def _problem():
  rng = np.random.default_rng(0)
  a = rng.standard_normal((N, D))
  x_true = np.array([1.5, 0.0, -2.0, 0.0, 0.3, 0.0])
  b = a @ x_true + 0.1 * rng.standard_normal(N)
  idx = np.stack([rng.choice(N, BS, replace=False) for _ in range(K)])
  return a, b, idx


def _soft(x, t):
  return jnp.sign(x) * jnp.maximum(jnp.abs(x) - LAM * t, 0.0)


def _value_fn(p, batch):
  a, b = batch
  x = jnp.concatenate([p["a"], p["b"], p["c"]])
  return 0.5 * jnp.mean((a @ x - b) ** 2)


def _lasso_cd(a, b, sweeps=3000):
  """Exact coordinate minimization (float64)."""
  x = np.zeros(D)
  col = np.sum(a ** 2, axis=0) / N
  for _ in range(sweeps):
    for i in range(D):
      r = b - a @ x + a[:, i] * x[i]
      rho = a[:, i] @ r / N
      x[i] = np.sign(rho) * max(abs(rho) - LAM, 0.0) / col[i]
  return x


def _split(x):
  return {k: jnp.asarray(x[s]) for k, s in SLICES.items()}


def _join(p):
  return np.concatenate([np.asarray(p[k]) for k in ("a", "b", "c")])


def _etas(a, scale):
  return {k: scale / np.linalg.eigvalsh(a[:, s].T @ a[:, s] / N).max() for k, s in SLICES.items()}


def test_converges_to_the_lasso_solution():
  a, b, idx = _problem()
  x_cd = _lasso_cd(a, b)
  with jax.enable_x64(True):
    batches = (jnp.asarray(a[idx]), jnp.asarray(b[idx]))
    full = (jnp.asarray(a), jnp.asarray(b))
    x = cyclic_block_vr(_value_fn, _split(np.zeros(D)), BLOCKS, batches, _etas(a, 0.5),
                        prox=_soft, q=5, refresh_batch=full)
    np.testing.assert_allclose(_join(x), x_cd, atol=1e-6)
    assert np.sum(_join(x) == 0.0) == np.sum(x_cd == 0.0) > 0  # exact zeros
    # Negative control: cyclic prox-SGD (no recursion, minibatch gradient only).
    grad = jax.grad(_value_fn)
    etas = _etas(a, 0.5)

    def sgd(x, batch):
      for key in ("a", "b", "c"):
        x = {**x, key: _soft(x[key] - etas[key] * grad(x, batch)[key], etas[key])}
      return x, None

    x_sgd, _ = jax.jit(lambda x: jax.lax.scan(sgd, x, batches))(_split(np.zeros(D)))
    assert np.max(np.abs(_join(x_sgd) - x_cd)) > 1e-3


def test_one_block_is_prox_spider():
  a, b, idx = _problem()
  eta, q = 0.2, 4
  with jax.enable_x64(True):
    batches = (jnp.asarray(a[idx[:40]]), jnp.asarray(b[idx[:40]]))
    full = (jnp.asarray(a), jnp.asarray(b))
    x = cyclic_block_vr(_value_fn, _split(np.zeros(D)), {"a": 0, "b": 0, "c": 0}, batches,
                        eta, prox=_soft, q=q, refresh_batch=full)
  # prox-SPIDER in NumPy float64.
  grad = lambda x, rows: a[rows].T @ (a[rows] @ x - b[rows]) / len(rows)
  soft = lambda x, t: np.sign(x) * np.maximum(np.abs(x) - LAM * t, 0.0)
  xs, x_prev, v = np.zeros(D), np.zeros(D), np.zeros(D)
  for k in range(40):
    v = grad(xs, np.arange(N)) if k % q == 0 else v + grad(xs, idx[k]) - grad(x_prev, idx[k])
    x_prev = xs
    xs = soft(xs - eta * v, eta)
  np.testing.assert_allclose(_join(x), xs, rtol=1e-12, atol=1e-12)


def test_full_refresh_every_step_is_cyclic_block_prox_gradient():
  """q = 1 and B = all rows: exact cyclic (Gauss-Seidel) block prox-gradient;
  the gradient of block j sees blocks < j already moved. Negative control: the
  Jacobi (simultaneous) update differs."""
  a, b, idx = _problem()
  etas = _etas(a, 1.0)
  with jax.enable_x64(True):
    batches = (jnp.asarray(a[idx[:5]]), jnp.asarray(b[idx[:5]]))
    full = (jnp.asarray(a), jnp.asarray(b))
    x = _join(cyclic_block_vr(_value_fn, _split(np.zeros(D)), BLOCKS, batches, etas,
                              prox=_soft, q=1, refresh_batch=full))
  soft = lambda x, t: np.sign(x) * np.maximum(np.abs(x) - LAM * t, 0.0)
  gs, jac = np.zeros(D), np.zeros(D)
  for _ in range(5):
    for key, s in SLICES.items():
      gs[s] = soft(gs[s] - etas[key] * (a.T @ (a @ gs - b) / N)[s], etas[key])
    g = a.T @ (a @ jac - b) / N
    jac = np.concatenate([soft(jac[s] - etas[k] * g[s], etas[k]) for k, s in SLICES.items()])
  np.testing.assert_allclose(x, gs, rtol=1e-12, atol=1e-12)
  assert np.max(np.abs(x - jac)) > 1e-3


def test_float32_jit_and_dtypes():
  a, b, idx = _problem()
  batches = (jnp.asarray(a[idx[:20]], jnp.float32), jnp.asarray(b[idx[:20]], jnp.float32))
  p0 = {k: jnp.zeros(2, jnp.bfloat16 if k == "c" else jnp.float32) for k in SLICES}
  run = lambda p: cyclic_block_vr(_value_fn, p, BLOCKS, batches, 0.1, q=3)
  x = jax.jit(run)(p0)
  assert x["c"].dtype == jnp.bfloat16 and x["a"].dtype == jnp.float32
  np.testing.assert_allclose(_join(x).astype(np.float32), _join(run(p0)).astype(np.float32),
                             rtol=1e-5, atol=1e-6)


def test_bad_arguments_raise():
  a, b, idx = _problem()
  batches = (jnp.asarray(a[idx[:3]]), jnp.asarray(b[idx[:3]]))
  p0 = _split(np.zeros(D))
  with pytest.raises(ValueError, match="cyclic_block_vr.*learning_rate"):
    cyclic_block_vr(_value_fn, p0, BLOCKS, batches, -0.1)
  with pytest.raises(ValueError, match="cyclic_block_vr.*learning_rate"):
    cyclic_block_vr(_value_fn, p0, BLOCKS, batches, {"a": 0.1, "b": 0.1})
  with pytest.raises(ValueError, match="cyclic_block_vr.*q"):
    cyclic_block_vr(_value_fn, p0, BLOCKS, batches, 0.1, q=0)
  with pytest.raises(ValueError, match="cyclic_block_vr.*blocks"):
    cyclic_block_vr(_value_fn, p0, {"a": 0, "b": 1}, batches, 0.1)
