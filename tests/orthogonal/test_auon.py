"""What makes AuON / Hybrid-AuON what they are (arXiv:2509.24320).

References and tolerances:
* tests/fixtures/reference/orthogonal_auon.npz: a float64 torch port of the
  released ryyzn9/AuON ``AuON`` / ``HybridAuON`` step (tools/make_auon_fixtures.py),
  10 open-loop steps, 4 configurations: optkit in float64 to 1e-10, in float32
  to 1e-5 (relative);
* a float64 NumPy re-derivation (here) of Hybrid-AuON on a 4-D kernel viewed as
  (kh*kw*in, out): 1e-10;
* the catalog's items: r - 1 < 1e-5 on a 512x512 gradient (the brake is nearly
  inactive, so AuON ~ Nesterov momentum), and a zero gradient gives only the
  weight decay.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from optkit.orthogonal.auon import cosh_brake
from tests import helpers

NS = (3.4445, -4.7750, 2.0315)


def _run(tx, p0, grads):
  """Open loop: feeds ``grads``; returns the params after each step."""
  params, state = p0, tx.init(p0)
  update = jax.jit(tx.update)
  out = []
  for g in grads:
    u, state = update(g, state, params)
    params = optax.apply_updates(params, u)
    out.append(params)
  return out


def _factory(cfg):
  kw = dict(learning_rate=cfg["lr"], beta=cfg["momentum"], gamma=cfg["gamma"],
            weight_decay=cfg["weight_decay"])
  if cfg["hybrid"]:
    return optkit.hybrid_auon(ns_steps=cfg["ns_steps"], **kw)
  return optkit.auon(**kw)


def _fixture():
  data = np.load(helpers.fixture("orthogonal_auon.npz"))
  configs = json.loads(str(data["configs"]))
  keys = sorted(k.split("__")[1] for k in data.files if k.startswith("p0__"))
  p0 = {k: data[f"p0__{k}"] for k in keys}
  grads = [{k: data[f"grad{t}__{k}"] for k in keys} for t in range(int(data["steps"]))]
  return data, configs, keys, p0, grads


@pytest.mark.parametrize("name", ["auon_default", "auon_wd_gamma", "hybrid_default",
                                  "hybrid_one_step"])
def test_matches_released_code_port(name):
  data, configs, keys, p0, grads = _fixture()
  cfg = configs[name]
  with jax.enable_x64(True):
    traj = _run(_factory(cfg), jax.tree.map(jnp.asarray, p0),
                [jax.tree.map(jnp.asarray, g) for g in grads])
    for t, p in enumerate(traj):
      for k in keys:
        np.testing.assert_allclose(np.asarray(p[k]), data[f"{name}__step{t}__{k}"],
                                   rtol=1e-10, atol=1e-10)
  f32 = lambda tree: jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), tree)
  traj = _run(_factory(cfg), f32(p0), [f32(g) for g in grads])
  for k in keys:
    np.testing.assert_allclose(np.asarray(traj[-1][k]), data[f"{name}__step9__{k}"],
                               rtol=1e-5, atol=1e-5)


def _np_ns(x, steps):
  tall = x.shape[0] > x.shape[1]
  if tall:
    x = x.T
  x = x / (np.linalg.norm(x) + 1e-7)
  for _ in range(steps):
    a = x @ x.T
    x = NS[0] * x + (NS[1] * a + NS[2] * a @ a) @ x
  return x.T if tall else x


def test_float64_rederivation_of_hybrid_on_a_conv_kernel():
  rng = np.random.default_rng(3)
  beta, gamma = 0.9, 1.5
  shapes = {"k": (3, 3, 2, 4), "b": (5,)}
  grads = [{k: rng.standard_normal(s) for k, s in shapes.items()} for _ in range(4)]
  with jax.enable_x64(True):
    tx = optkit.scale_by_auon(beta, gamma, hybrid=True)
    state = tx.init(jax.tree.map(jnp.asarray, grads[0]))
    m = {k: np.zeros(s) for k, s in shapes.items()}
    for g in grads:
      d, state = tx.update(jax.tree.map(jnp.asarray, g), state)
      for k in shapes:
        m[k] = beta * m[k] + (1 - beta) * g[k]
        big = (1 - beta) * g[k] + beta * m[k]
        if big.ndim >= 2:
          big = _np_ns(big.reshape(-1, big.shape[-1]), 5).reshape(big.shape)
        ghat = big / (np.linalg.norm(big) + 1e-7)
        expected = big / (np.sqrt(np.mean(np.cosh(gamma * ghat) ** 2)) + 1e-8)
        np.testing.assert_allclose(np.asarray(d[k]), expected, rtol=1e-10, atol=1e-12)


def test_brake_is_nearly_inactive_on_a_large_layer():
  g = jnp.asarray(np.random.default_rng(0).standard_normal((512, 512)), jnp.float32)
  r = float(cosh_brake(g, 1.5))
  assert 0.0 < r - 1.0 < 1e-5, r
  # So one step from zero momentum is (1 - beta^2) g to within 1e-5: Nesterov momentum.
  tx = optkit.scale_by_auon(beta=0.95)
  d, _ = tx.update(g, tx.init(g))
  np.testing.assert_allclose(np.asarray(d), (1 - 0.95**2) * np.asarray(g), rtol=1e-5)


def test_brake_bounds_spiky_updates_and_plain_momentum_does_not():
  """Defining property: the step is ||G|| / r with r >= 1, and r is large when the
  update is concentrated on a few entries. Negative control: Nesterov momentum
  (optax.sgd) passes such a spike through unchanged."""
  rng = np.random.default_rng(1)
  g = rng.standard_normal((4, 4)) * 0.01
  g[1, 2] = 5.0
  g = jnp.asarray(g, jnp.float32)
  tx = optkit.scale_by_auon(beta=0.0)
  d, _ = tx.update(g, tx.init(g))
  ratio = float(jnp.linalg.norm(d) / jnp.linalg.norm(g))
  expected = 1.0 / np.sqrt((np.cosh(1.5) ** 2 + 15.0) / 16.0)  # one entry carries the norm
  assert ratio == pytest.approx(expected, rel=1e-3)
  assert ratio < 0.9
  sgd = optax.sgd(1.0, momentum=0.0, nesterov=True)
  u, _ = sgd.update(g, sgd.init(g))
  assert float(jnp.linalg.norm(u) / jnp.linalg.norm(g)) == pytest.approx(1.0)
  # Random spread-out updates are never braked by more than r <= cosh(gamma).
  for seed in range(5):
    x = jnp.asarray(np.random.default_rng(seed).standard_normal((6, 5)), jnp.float32)
    assert 1.0 <= float(cosh_brake(x, 1.5)) <= np.cosh(1.5)


def test_hybrid_update_is_near_semi_orthogonal_and_plain_auon_is_not():
  g = jnp.asarray(np.random.default_rng(2).standard_normal((16, 8))
                  * np.logspace(0, 2, 8), jnp.float32)
  hyb = optkit.scale_by_auon(beta=0.0, hybrid=True)
  d, _ = hyb.update(g, hyb.init(g))
  s = np.linalg.svd(np.asarray(d), compute_uv=False)
  assert s.max() / s.min() < 2.0, s          # Newton-Schulz band, one common brake
  plain = optkit.scale_by_auon(beta=0.0)
  d, _ = plain.update(g, plain.init(g))
  s = np.linalg.svd(np.asarray(d), compute_uv=False)
  assert s.max() / s.min() > 20.0, s         # the gradient's conditioning is kept


def _dot_count(tx, g):
  jaxpr = jax.make_jaxpr(lambda g, s: tx.update(g, s))(g, tx.init(g))
  return str(jaxpr).count("dot_general")


def test_plain_auon_is_linear_time_hybrid_is_not():
  """AuON has no matrix product (elementwise work plus two reductions per leaf)."""
  g = {"w": jnp.ones((8, 6)), "b": jnp.ones((3,))}
  assert _dot_count(optkit.scale_by_auon(), g) == 0
  assert _dot_count(optkit.scale_by_auon(hybrid=True), g) > 0


def test_zero_gradient_leaf_gets_only_weight_decay():
  p = {"w": jnp.asarray(np.random.default_rng(4).standard_normal((3, 4)), jnp.float32),
       "b": jnp.array([1.0, -2.0])}
  for opt in (optkit.auon(0.2, weight_decay=0.1), optkit.hybrid_auon(0.2, weight_decay=0.1)):
    u, state = opt.update(jax.tree.map(jnp.zeros_like, p), opt.init(p), p)
    for k in p:
      np.testing.assert_allclose(np.asarray(u[k]), -0.2 * 0.1 * np.asarray(p[k]), rtol=1e-6)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state))


@pytest.mark.parametrize("factory,name", [(optkit.auon, "auon"),
                                          (optkit.hybrid_auon, "hybrid_auon")])
def test_bad_hyperparameters_raise(factory, name):
  for bad in (dict(learning_rate=-1.0), dict(learning_rate=0.1, beta=1.0),
              dict(learning_rate=0.1, gamma=0.0), dict(learning_rate=0.1, weight_decay=-1.0)):
    with pytest.raises(ValueError, match=name):
      factory(**bad)
  if name == "hybrid_auon":
    with pytest.raises(ValueError, match="hybrid_auon.*ns_steps"):
      factory(0.1, ns_steps=0)


def test_bad_dimension_numbers_name_the_leaf():
  opt = optkit.hybrid_auon(0.1, dimension_numbers=((0, 1), (1,)))
  with pytest.raises(ValueError, match=r"hybrid_auon.*\['k'\]"):
    opt.init({"k": jnp.zeros((2, 3, 4)), "b": jnp.zeros((3,))})
