"""What makes EF21 EF21 (arXiv:2402.10774); the contract suite covers the rest."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optkit.momentum import (
    ef21,
    identity_compressor,
    rand_k,
    scale_by_ef21,
    top_k,
)

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _np_top_k(x, k):
  flat = x.ravel()
  out = np.zeros_like(flat)
  if k >= flat.size:
    return x.copy()
  idx = np.argsort(-np.abs(flat), kind="stable")[:k]
  out[idx] = flat[idx]
  return out.reshape(x.shape)


def _np_ef21(grads, k, weights=None):
  """float64 n-worker EF21 / EF21-W simulation. grads: list over steps of dicts of
  (n, ...) arrays. Returns the list of aggregated estimates g^t."""
  n = next(iter(grads[0].values())).shape[0]
  w = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, np.float64)
  g_loc = {key: np.zeros(v.shape) for key, v in grads[0].items()}
  g = {key: np.zeros(v.shape[1:]) for key, v in grads[0].items()}
  outs = []
  for step in grads:
    for key, v in step.items():
      for i in range(n):
        c = _np_top_k(v[i] / (n * w[i]) - g_loc[key][i], k)
        g_loc[key][i] += c
        g[key] += w[i] * c
    outs.append({key: val.copy() for key, val in g.items()})
  return outs


def _worker_grads(steps, n, seed=0):
  rng = np.random.default_rng(seed)
  return [{"a": rng.standard_normal((n, 6)), "b": rng.standard_normal((n, 2, 3))}
          for _ in range(steps)]


# ---------------------------------------------------------------- first steps


def test_hand_computed_first_two_steps():
  tx = ef21(0.5, top_k(2))
  p = {"x": jnp.array([1.0, -4.0, 2.0, 0.5]), "s": jnp.array(3.0)}
  g = {"x": jnp.array([1.0, -4.0, 2.0, 0.5]), "s": jnp.array(3.0)}
  s = tx.init(p)
  u, s = tx.update(g, s, p)
  np.testing.assert_allclose(u["x"], -0.5 * np.array([0.0, -4.0, 2.0, 0.0]))
  np.testing.assert_allclose(u["s"], -0.5 * 3.0)       # a scalar leaf is sent whole
  g2 = {"x": jnp.array([1.5, -4.0, 2.0, 0.5]), "s": jnp.array(1.0)}
  u, s = tx.update(g2, s, p)
  # residual [1.5, 0, 0, 0.5]: top-2 keeps both non-zeros.
  np.testing.assert_allclose(u["x"], -0.5 * np.array([1.5, -4.0, 2.0, 0.5]))
  np.testing.assert_allclose(u["s"], -0.5)


# ---------------------------------------------------------------- reductions


def test_identity_compressor_is_the_gradient_and_the_mean_gradient():
  grads = _worker_grads(4, 3, seed=1)
  tx = scale_by_ef21(identity_compressor())
  s = tx.init({"a": jnp.zeros(6), "b": jnp.zeros((2, 3))})
  for step in grads:
    g = {k: jnp.asarray(v[0], jnp.float32) for k, v in step.items()}
    u, s = tx.update(g, s)
    for k in g:
      np.testing.assert_allclose(u[k], g[k], rtol=1e-6)
  # n = 3 workers (vmap with a named axis): the output is the mean gradient.
  txw = scale_by_ef21(identity_compressor(), axis_name="w")
  params = {"a": jnp.zeros((3, 6)), "b": jnp.zeros((3, 2, 3))}
  sw = jax.vmap(txw.init)(params)
  upd = jax.vmap(txw.update, axis_name="w")
  for step in grads:
    g = {k: jnp.asarray(v, jnp.float32) for k, v in step.items()}
    u, sw = upd(g, sw)
    for k in g:
      np.testing.assert_allclose(u[k], np.broadcast_to(step[k].mean(0), step[k].shape),
                                 rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- defining property


def test_error_feedback_converges_at_a_fixed_point_negative_control():
  """Test (2): with top-k at a fixed gradient, ||g - grad f|| shrinks to 0 (each step
  sends the k largest residual entries). Negative control: compressing the gradient
  itself (no error feedback) keeps the same error forever."""
  rng = np.random.default_rng(3)
  grad = jnp.asarray(rng.standard_normal(20), jnp.float32)
  tx = scale_by_ef21(top_k(3))
  s = tx.init(grad)
  errs = []
  for _ in range(8):
    u, s = tx.update(grad, s)
    errs.append(float(jnp.linalg.norm(u - grad)))
  assert all(b < a or a == 0.0 for a, b in zip(errs, errs[1:])), errs
  assert errs[-1] == 0.0                                 # 20 entries, 3 per step: 7 steps
  plain = float(jnp.linalg.norm(top_k(3)(grad) - grad))
  assert plain > 0.5 * float(jnp.linalg.norm(grad))
  np.testing.assert_allclose(errs[0], plain, rtol=1e-6)  # step 1 is the same


@pytest.mark.parametrize("weights", [None, (0.1, 0.2, 0.3, 0.4)], ids=["ef21", "ef21_w"])
def test_psum_version_equals_simulated_workers(weights):
  """Test (3): the axis_name form (vmap over 4 named workers) equals a float64 NumPy
  simulation of 4 EF21 (EF21-W) workers and a server; tolerance 1e-5 (float32)."""
  n, k = 4, 2
  grads = _worker_grads(6, n, seed=4)
  ref = _np_ef21(grads, k, weights)
  tx = scale_by_ef21(top_k(k), axis_name="w", weights=weights)
  params = {"a": jnp.zeros((n, 6)), "b": jnp.zeros((n, 2, 3))}
  s = jax.vmap(tx.init)(params)
  upd = jax.jit(jax.vmap(tx.update, axis_name="w"))
  for step, r in zip(grads, ref):
    u, s = upd({key: jnp.asarray(v, jnp.float32) for key, v in step.items()}, s)
    for key in r:
      for i in range(n):                                 # every worker holds the same g
        np.testing.assert_allclose(u[key][i], r[key], rtol=1e-5, atol=1e-5)
  # EF21-W's g tracks the mean gradient too: with the identity compressor it is exact.
  txi = scale_by_ef21(identity_compressor(), axis_name="w", weights=weights)
  si = jax.vmap(txi.init)(params)
  ui, _ = jax.vmap(txi.update, axis_name="w")(
      {key: jnp.asarray(v, jnp.float32) for key, v in grads[0].items()}, si)
  np.testing.assert_allclose(ui["a"][0], grads[0]["a"].mean(0), rtol=1e-5, atol=1e-6)


def test_shard_map_on_four_devices_equals_simulation():
  """The multi-worker form under jax.shard_map on 4 (host) devices, in a subprocess."""
  code = textwrap.dedent("""
      import numpy as np, jax, jax.numpy as jnp
      from jax.sharding import PartitionSpec as P
      import optkit
      from tests.momentum.test_ef21 import _np_ef21, _worker_grads
      assert jax.device_count() == 4, jax.devices()
      n, k = 4, 2
      grads = _worker_grads(5, n, seed=7)
      ref = _np_ef21(grads, k)
      tx = optkit.scale_by_ef21(optkit.top_k(k), axis_name="w")
      mesh = jax.make_mesh((4,), ("w",))
      params = {"a": jnp.zeros((n, 6)), "b": jnp.zeros((n, 2, 3))}
      shard = lambda t: jax.device_put(t, jax.sharding.NamedSharding(mesh, P("w")))
      state = shard(jax.vmap(tx.init)(params))
      def local(g, s):
        sq = lambda t: jax.tree.map(lambda x: x[0], t)
        ex = lambda t: jax.tree.map(lambda x: x[None], t)
        u, s = tx.update(sq(g), sq(s))
        return ex(u), ex(s)
      step = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(P("w"), P("w")),
                                   out_specs=(P("w"), P("w"))))
      for g, r in zip(grads, ref):
        u, state = step(shard({key: jnp.asarray(v, jnp.float32) for key, v in g.items()}), state)
        for key in r:
          np.testing.assert_allclose(np.asarray(u[key]), np.broadcast_to(r[key], u[key].shape),
                                     rtol=1e-5, atol=1e-5)
      print("SHARD_MAP_OK")
  """)
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             JAX_PLATFORMS="cpu", PYTHONPATH=_REPO)
  out = subprocess.run([sys.executable, "-c", code], env=env, cwd=_REPO,
                       capture_output=True, text=True, timeout=300)
  assert "SHARD_MAP_OK" in out.stdout, out.stderr[-3000:]


# ---------------------------------------------------------------- compressors


def test_compressors_keep_the_right_entries():
  x = jnp.asarray(np.random.default_rng(5).standard_normal(50), jnp.float32)
  np.testing.assert_array_equal(top_k(4)(x), _np_top_k(np.asarray(x), 4))
  assert int(jnp.sum(top_k(fraction=0.1)(x) != 0)) == 5
  c1 = rand_k(7)(x, jax.random.key(0))
  c2 = rand_k(7)(x, jax.random.key(1))
  assert int(jnp.sum(c1 != 0)) == 7
  kept = np.asarray(c1) != 0
  np.testing.assert_array_equal(np.asarray(c1)[kept], np.asarray(x)[kept])  # not rescaled
  assert not np.array_equal(np.asarray(c1) != 0, np.asarray(c2) != 0)


def test_rand_k_workers_draw_independently_and_seed_reproduces():
  tx = scale_by_ef21(rand_k(2), axis_name="w", seed=3)
  g = jnp.ones((2, 10))                     # identical gradients on both workers
  s = jax.vmap(tx.init)(jnp.zeros((2, 10)))
  _, s1 = jax.vmap(tx.update, axis_name="w")(g, s)
  assert not np.array_equal(s1.g_local[0] != 0, s1.g_local[1] != 0)
  _, s2 = jax.vmap(tx.update, axis_name="w")(g, s)
  np.testing.assert_array_equal(s1.g_local, s2.g_local)


def test_errors_name_the_algorithm():
  with pytest.raises(ValueError, match="ef21.*learning_rate"):
    ef21(-0.1)
  with pytest.raises(ValueError, match="ef21.*axis_name"):
    scale_by_ef21(top_k(1), weights=(0.5, 0.5))
  with pytest.raises(ValueError, match="ef21.*weights"):
    scale_by_ef21(top_k(1), axis_name="w", weights=(0.5, 0.6))
  with pytest.raises(ValueError, match="ef21.*compressor"):
    scale_by_ef21(lambda x: x)
  with pytest.raises(ValueError, match="ef21 top_k.*k"):
    top_k(0)
  with pytest.raises(ValueError, match="ef21 rand_k"):
    rand_k(2, fraction=0.5)
  tx = scale_by_ef21(top_k(1))
  with pytest.raises(ValueError, match="ef21"):
    tx.update({"a": jnp.ones(2)}, tx.init({"b": jnp.ones(2)}))
