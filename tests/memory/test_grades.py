"""GradES (freeze_converged): converged matrices are frozen for good."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit

SHAPES = {"w": (3, 4), "v": (2, 3), "b": (3,)}


def _grads(t):
  """'w' converges (zero gradient up to t = 5, large again after); 'v' keeps a
  unit gradient; the vector 'b' has zero gradient throughout."""
  w = jnp.zeros((3, 4)) if t < 6 else jnp.full((3, 4), 5.0)
  return {"w": w, "v": jnp.ones((2, 3)), "b": jnp.zeros(3)}


def _run(tx, steps, grads=_grads):
  params = {k: jnp.ones(s) for k, s in SHAPES.items()}
  state = tx.init(params)
  update = jax.jit(tx.update)
  out = []
  for t in range(steps):
    u, state = update(grads(t), state, params)
    params = optax.apply_updates(params, u)
    out.append((u, state, params))
  return out


def test_converged_leaf_freezes_after_grace_and_stays_frozen():
  tx = optkit.freeze_converged(optax.sgd(0.1), total_steps=10, tau=1e-3, grace_fraction=0.2)
  out = _run(tx, 9)
  frozen_w = [bool(s.frozen["w"]) for _, s, _ in out]
  # Grace period alpha T = 2 steps: no freezing at t = 0, 1 although g = 0.
  assert frozen_w == [False, False, True, True, True, True, True, True, True]
  # Stays frozen when its gradient grows again (t >= 6): zero updates.
  for u, _, _ in out[6:]:
    np.testing.assert_array_equal(u["w"], np.zeros((3, 4)))
  # Negative controls: a matrix still changing, and a vector (not monitored).
  assert not any(bool(s.frozen["v"]) for _, s, _ in out)
  assert not any(bool(s.frozen["b"]) for _, s, _ in out)
  np.testing.assert_allclose(out[-1][0]["v"], -0.1 * np.ones((2, 3)))
  # Without the wrapper the same leaf moves at t >= 6.
  plain = _run(optax.sgd(0.1), 9)
  assert np.all(np.asarray(plain[-1][0]["w"]) != 0.0)


def test_frozen_leaf_keeps_its_inner_state():
  tx = optkit.freeze_converged(optax.adam(0.1), total_steps=10, tau=1e-3, grace_fraction=0.2)
  out = _run(tx, 9)
  mu = lambda s: s.inner_state[0].mu
  # Adam's moments of 'w' stop at their value when frozen (t = 2), even though
  # 'w' gets a large gradient from t = 6; 'v' keeps updating; count advances.
  for _, s, _ in out[2:]:
    np.testing.assert_array_equal(mu(s)["w"], mu(out[1][1])["w"])
  assert not np.allclose(mu(out[-1][1])["v"], mu(out[4][1])["v"])
  assert int(out[-1][1].inner_state[0].count) == 9
  assert float(optkit.frozen_fraction(out[-1][1])) == pytest.approx(1 / 3)


def test_grad_change_metric_freezes_a_constant_gradient_and_grad_l1_does_not():
  const = lambda t: {"w": jnp.full((3, 4), 2.0), "v": jnp.full((2, 3), float(t)),
                     "b": jnp.zeros(3)}
  kw = dict(total_steps=10, tau=1e-3, grace_fraction=0.0)
  change = _run(optkit.freeze_converged(optax.sgd(0.1), metric="grad_change_l1", **kw), 4, const)
  plain = _run(optkit.freeze_converged(optax.sgd(0.1), **kw), 4, const)
  # No previous gradient at t = 0: nothing measured (metric inf), nothing frozen.
  assert [bool(s.frozen["w"]) for _, s, _ in change] == [False, True, True, True]
  assert not any(bool(s.frozen["v"]) for _, s, _ in change)
  assert not any(bool(s.frozen["w"]) for _, s, _ in plain)
  np.testing.assert_allclose(change[1][1].metric["v"], 6.0)   # ||1 - 0||_1 over 6 entries


def test_update_metric_reads_the_weight_change_and_needs_params():
  tx = optkit.freeze_converged(optax.sgd(0.1), metric="update_l1", total_steps=10,
                               tau=1e-3, grace_fraction=0.0)
  out = _run(tx, 3)
  # W_1 - W_0 = -0.1 * g_0: 'w' did not move (g = 0), 'v' moved 0.1 per entry.
  assert [bool(s.frozen["w"]) for _, s, _ in out] == [False, True, True]
  np.testing.assert_allclose(out[1][1].metric["v"], 0.6, rtol=1e-6)
  params = {k: jnp.ones(s) for k, s in SHAPES.items()}
  with pytest.raises(ValueError, match="freeze_converged.*params"):
    tx.update(_grads(0), tx.init(params))


def test_check_every_mean_reduction_and_explicit_mask():
  g = lambda t: {"w": jnp.full((3, 4), 0.01), "v": jnp.ones((2, 3)), "b": jnp.zeros(3)}
  kw = dict(total_steps=10, grace_fraction=0.0)
  # Raw L1 of 'w' is 0.12 > tau = 0.05; its mean 0.01 < tau.
  summed = _run(optkit.freeze_converged(optax.sgd(0.1), tau=0.05, **kw), 2, g)
  mean = _run(optkit.freeze_converged(optax.sgd(0.1), tau=0.05, reduction="mean", **kw), 2, g)
  assert not bool(summed[-1][1].frozen["w"]) and bool(mean[0][1].frozen["w"])
  # check_every = 3: the rule only runs at t = 0, 3, ...
  every = _run(optkit.freeze_converged(optax.sgd(0.1), tau=0.05, reduction="mean",
                                       check_every=3, total_steps=10, grace_fraction=0.1), 4, g)
  assert [bool(s.frozen["w"]) for _, s, _ in every] == [False, False, False, True]
  # An explicit mask monitors the vector too (and not 'w').
  mask = {"w": False, "v": False, "b": True}
  masked = _run(optkit.freeze_converged(optax.sgd(0.1), tau=0.05, mask=mask, **kw), 1, g)
  assert bool(masked[0][1].frozen["b"]) and not bool(masked[0][1].frozen["w"])


@pytest.mark.parametrize("kwargs", [
    {"tau": -1.0}, {"grace_fraction": 1.5}, {"total_steps": 0}, {"check_every": 0},
    {"metric": "loss"}, {"reduction": "max"},
])
def test_bad_hyperparameters_raise(kwargs):
  kwargs = {"inner": optax.sgd(0.1), "total_steps": 10, **kwargs}
  with pytest.raises(ValueError, match="freeze_converged"):
    optkit.freeze_converged(**kwargs)


def test_bad_mask_and_tree_name_the_problem():
  params = {k: jnp.ones(s) for k, s in SHAPES.items()}
  tx = optkit.freeze_converged(optax.sgd(0.1), total_steps=10, mask={"w": True})
  with pytest.raises(ValueError, match="freeze_converged.*mask"):
    tx.update(_grads(0), tx.init(params), params)
  tx = optkit.freeze_converged(optax.sgd(0.1), total_steps=10,
                               mask={"w": True, "v": 1.0, "b": False})
  with pytest.raises(ValueError, match=r"freeze_converged.*mask.*\['v'\]"):
    tx.update(_grads(0), tx.init(params), params)
