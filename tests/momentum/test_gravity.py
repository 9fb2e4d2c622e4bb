"""What makes Gravity Gravity (arXiv:2101.09192); the contract suite covers the rest."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optkit.momentum import gravity, scale_by_gravity
from tests import helpers

FIXTURE = helpers.fixture("momentum_gravity.npz")


def _zeta(g):
  g = np.asarray(g, np.float64)
  return g / (1.0 + (g * np.max(np.abs(g))) ** 2)


def _with_v(state, v):
  """The test hook: the initial velocity is plain state (first chain element)."""
  if isinstance(state, tuple) and not hasattr(state, "_fields"):
    return (state[0]._replace(v=v),) + tuple(state[1:])
  return state._replace(v=v)


# ---------------------------------------------------------------- first step


def test_hand_computed_first_step():
  lr, alpha, beta, wd = 0.1, 0.01, 0.9, 0.5
  opt = gravity(lr, alpha, beta, weight_decay=wd)
  p = jnp.array([1.0, -1.0, 2.0])
  g = jnp.array([0.3, -2.0, 0.0])
  v0 = jnp.array([0.05, -0.02, 0.1])
  state = _with_v(opt.init(p), v0)
  u, s = opt.update(g, state, p)
  b1 = (beta + 1) / 3
  gmax = 2.0
  zeta = np.array([0.3 / (1 + (0.3 * gmax) ** 2), -2.0 / (1 + (2.0 * gmax) ** 2), 0.0])
  v1 = b1 * np.asarray(v0) + (1 - b1) * zeta
  np.testing.assert_allclose(s[0].v, v1, rtol=1e-6)
  np.testing.assert_allclose(u, -lr * (v1 + wd * np.asarray(p)), rtol=1e-6, atol=1e-8)


def test_beta_t_sequence():
  """beta_t = (beta t + 1)/(t + 2), read off v_t with a constant gradient and V_0 = 0:
  beta_t = (zeta - v_t) / (zeta - v_{t-1})."""
  beta = 0.6
  with jax.enable_x64(True):
    tx = scale_by_gravity(alpha=0.0, beta=beta)
    g = jnp.array([0.7], jnp.float64)
    state = tx.init(g)
    zeta = _zeta(g)[0]
    v_prev, got = 0.0, []
    for _ in range(3):
      v, state = tx.update(g, state)
      got.append((zeta - float(v[0])) / (zeta - v_prev))
      v_prev = float(v[0])
  np.testing.assert_allclose(got, [(beta + 1) / 3, (2 * beta + 1) / 4, (3 * beta + 1) / 5],
                             rtol=1e-12)
  # Negative control: a plain EMA with weight beta would give [0.6, 0.6, 0.6].
  assert not np.allclose(got, [beta] * 3, rtol=1e-3)


# ---------------------------------------------------------------- reference


@pytest.mark.parametrize("config", ["paper", "fast"])
@pytest.mark.parametrize("problem", ["quadratic", "logreg"])
def test_matches_pytorch_optimizer_trajectory(config, problem):
  """pytorch_optimizer 4.1.0 Gravity, float64, V_0 injected; tolerance 1e-10 abs."""
  data = np.load(FIXTURE)
  kwargs = json.loads(str(data["configs"]))[config]
  pre = f"{config}__{problem}__"
  with jax.enable_x64(True):
    d = {k.split("__", 1)[1]: jnp.asarray(data[k]) for k in data.files
         if k.startswith(problem + "__")}

    def loss(p):
      if problem == "quadratic":
        return (0.5 * jnp.sum(d["A"] * (p["w"] - d["W_star"]) ** 2)
                + 0.5 * jnp.sum(d["d"] * (p["b"] - d["b_star"]) ** 2))
      logits = d["X"] @ p["w"] + p["b"]
      return jnp.mean(jax.nn.logsumexp(logits, axis=1)
                      - jnp.take_along_axis(logits, d["y"][:, None].astype(jnp.int32), 1)[:, 0])

    opt = gravity(kwargs["lr"], kwargs["alpha"], kwargs["beta"])
    params = {"w": d["w0"], "b": d["b0"]}
    state = _with_v(opt.init(params), {"w": jnp.asarray(data[pre + "v0_w"]),
                                       "b": jnp.asarray(data[pre + "v0_b"])})
    step = jax.jit(lambda p, s: opt.update(jax.grad(loss)(p), s, p))
    ws, bs = [], []
    for _ in range(int(data["steps"])):
      u, state = step(params, state)
      params = optax.apply_updates(params, u)
      ws.append(np.asarray(params["w"]))
      bs.append(np.asarray(params["b"]))
  np.testing.assert_allclose(np.stack(ws), data[pre + "w"], rtol=0, atol=1e-10)
  np.testing.assert_allclose(np.stack(bs), data[pre + "b"], rtol=0, atol=1e-10)
  # The trajectory is not trivial: the params moved well beyond the tolerance.
  assert np.max(np.abs(data[pre + "w"][-1] - data[problem + "__w0"])) > 1e-3


# ---------------------------------------------------------------- defining property


def test_large_gradients_saturate_negative_control_momentum():
  """zeta = g / (1 + (g max|g|)^2): multiplying a large gradient by 100 SHRINKS the
  velocity increment (|zeta| <= 1 / (2 max|g|)); momentum SGD's grows 100-fold."""
  g = jnp.array([3.0, -1.0, 0.5, 2.0])
  grav = scale_by_gravity(alpha=0.0)
  mom = optax.trace(decay=0.9)
  v1, _ = grav.update(g, grav.init(g))
  v100, _ = grav.update(100 * g, grav.init(g))
  assert float(jnp.max(jnp.abs(v100))) < float(jnp.max(jnp.abs(v1)))
  b1 = (0.9 + 1) / 3
  assert float(jnp.max(jnp.abs(v100))) <= (1 - b1) / (2 * 300.0) * (1 + 1e-6)
  m1, _ = mom.update(g, mom.init(g))
  m100, _ = mom.update(100 * g, mom.init(g))
  np.testing.assert_allclose(m100, 100 * m1, rtol=1e-6)  # the plain method scales up


def test_max_is_per_tensor():
  """M = 1 / max|g| is taken per tensor: a huge gradient in one leaf does not
  change another leaf's step (a global max would shrink it)."""
  tx = scale_by_gravity(alpha=0.0)
  a = {"x": jnp.array([0.2, -0.4]), "y": jnp.array([0.1])}
  b = {"x": jnp.array([0.2, -0.4]), "y": jnp.array([50.0])}
  va, _ = tx.update(a, tx.init(a))
  vb, _ = tx.update(b, tx.init(b))
  np.testing.assert_allclose(va["x"], vb["x"], rtol=1e-7)
  # Negative control: with the global max (50) leaf x's zeta would be ~100x smaller.
  global_zeta = np.asarray(a["x"]) / (1 + (np.asarray(a["x"]) * 50.0) ** 2)
  assert not np.allclose(va["x"], (1 - 1.9 / 3) * global_zeta, rtol=1e-2)


def test_zero_gradient_tensor_is_finite_and_decays_velocity():
  tx = scale_by_gravity(alpha=0.0)
  g = {"x": jnp.zeros(3), "y": jnp.ones(2)}
  state = _with_v(tx.init(g), {"x": jnp.ones(3), "y": jnp.zeros(2)})
  v, _ = tx.update(g, state)
  np.testing.assert_allclose(v["x"], (1.9 / 3) * np.ones(3), rtol=1e-6)


# ---------------------------------------------------------------- initial velocity


def test_initial_velocity_distribution_and_seed():
  params = {"a": jnp.zeros((100, 100)), "b": jnp.zeros((50,), jnp.bfloat16)}
  s0 = gravity(0.05, alpha=0.02, seed=3).init(params)[0]
  v = np.asarray(s0.v["a"], np.float64).ravel()
  assert s0.v["b"].dtype == jnp.float32  # statistics in float32 for bf16 params
  np.testing.assert_allclose(v.std(), 0.02 / 0.05, rtol=0.03)
  assert abs(v.mean()) < 0.02
  same = gravity(0.05, alpha=0.02, seed=3).init(params)[0]
  other = gravity(0.05, alpha=0.02, seed=4).init(params)[0]
  np.testing.assert_array_equal(same.v["a"], s0.v["a"])
  assert not np.allclose(other.v["a"], s0.v["a"])
  # A schedule's value at step 0 sets the std.
  sched = gravity(optax.linear_schedule(0.05, 1.0, 10), alpha=0.02, seed=3).init(params)[0]
  np.testing.assert_allclose(sched.v["a"], s0.v["a"], rtol=1e-6)
  # lr = 0: V_0 = 0 instead of an infinite std.
  zero = scale_by_gravity(learning_rate_for_init=0.0).init(params)
  assert float(jnp.max(jnp.abs(zero.v["a"]))) == 0.0


def test_bad_hyperparameters_raise():
  with pytest.raises(ValueError, match="gravity"):
    gravity(-0.1)
  with pytest.raises(ValueError, match="gravity.*alpha"):
    gravity(0.1, alpha=1.5)
  with pytest.raises(ValueError, match="gravity.*beta"):
    scale_by_gravity(beta=-0.1)
  with pytest.raises(ValueError, match="gravity.*seed"):
    gravity(0.1, seed=1.5)
  with pytest.raises(ValueError, match="gravity"):
    tx = scale_by_gravity()
    tx.update({"a": jnp.ones(2)}, tx.init({"b": jnp.ones(2)}))
