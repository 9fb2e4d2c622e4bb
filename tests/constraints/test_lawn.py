"""lawn: Logit Attenuating Weight Normalization (Gupta et al. 2021)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import importlib

import optkit

# the package attribute `lawn` is the function; the module is this:
lawn_lib = importlib.import_module("optkit.constraints.lawn")


def _problem(seed=0):
  rng = np.random.default_rng(seed)
  params = {"w": jnp.asarray(rng.standard_normal((5, 4)), jnp.float32),
            "k": jnp.asarray(rng.standard_normal((3, 3, 2, 2)), jnp.float32),
            "b": jnp.asarray(rng.standard_normal(4), jnp.float32)}
  target = jax.tree.map(lambda p: 3.0 * jnp.ones_like(p), params)   # far: norms grow
  loss = lambda p: sum(0.5 * jnp.sum((p[k] - target[k]) ** 2) for k in p)
  return params, loss


def _run(tx, params, loss, steps):
  state = tx.init(params)
  step = jax.jit(lambda p, s: tx.update(jax.grad(loss)(p), s, p))
  out = []
  for _ in range(steps):
    u, state = step(params, state)
    params = optax.apply_updates(params, u)
    out.append((params, u))
  return out, state


@pytest.mark.parametrize("inner", [optax.sgd(0.05), optax.adam(0.05)], ids=["sgd", "adam"])
def test_after_switch_masked_leaves_keep_the_recorded_norm(inner):
  params, loss = _problem()
  switch = 4
  tx = optkit.lawn(inner, switch_step=switch)
  traj, state = _run(tx, params, loss, 12)
  # norms at the switch are those of the params the switch step receives
  recorded = {k: float(jnp.linalg.norm(traj[switch - 1][0][k])) for k in ("w", "k")}
  for k in ("w", "k"):
    assert float(state.norms[k]) == pytest.approx(recorded[k], rel=1e-6)
    for t in range(switch, 12):
      assert float(jnp.linalg.norm(traj[t][0][k])) == pytest.approx(recorded[k], rel=1e-6)
  # phase 1 is the inner optimizer: the norms grow there (the negative control
  # below shows they keep growing without LAWN)
  ref, _ = _run(inner, params, loss, 12)
  for t in range(switch):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
                 traj[t][0], ref[t][0])
  for k in ("w", "k"):
    assert float(jnp.linalg.norm(ref[-1][0][k])) > 1.05 * recorded[k]
  # the unmasked bias gets exactly the inner update at every step
  inner_state = inner.init(params)
  p = params
  for t in range(12):
    g = jax.grad(loss)(p)
    u_in, inner_state = inner.update(g, inner_state, p)
    # same computation, jitted vs eager: equal to float32 rounding
    np.testing.assert_allclose(traj[t][1]["b"], u_in["b"], rtol=1e-6, atol=1e-9)
    p = traj[t][0]


def test_radial_part_removed_and_projection_equals_optax():
  w = jnp.array([[3.0, 4.0]])
  d = jnp.array([[0.6, 0.8]]) * 2.0 + jnp.array([[-0.8, 0.6]]) * 0.5   # radial + tangential
  tx = optkit.lawn(optax.identity(), switch_step=0)
  u, _ = tx.update({"w": d}, tx.init({"w": w}), {"w": w})
  expected = optax.projections.projection_l2_sphere(w + jnp.array([[-0.8, 0.6]]) * 0.5, 5.0)
  np.testing.assert_allclose(w + u["w"], expected, rtol=1e-6)
  # without radial removal the radial part is projected away only by the norm
  tx = optkit.lawn(optax.identity(), switch_step=0, project_updates=False)
  u, _ = tx.update({"w": d}, tx.init({"w": w}), {"w": w})
  np.testing.assert_allclose(w + u["w"], optax.projections.projection_l2_sphere(w + d, 5.0),
                             rtol=1e-6)
  np.testing.assert_allclose(lawn_lib.project_to_norm(w + d, 5.0),
                             optax.projections.projection_l2_sphere(w + d, 5.0), rtol=1e-6)


def test_zero_norm_leaf_is_finite_and_custom_mask():
  params = {"w": jnp.zeros((2, 2)), "v": jnp.array([1.0, 1.0])}
  tx = optkit.lawn(optax.sgd(0.1), switch_step=0, mask={"w": True, "v": True})
  u, s = tx.update({"w": jnp.ones((2, 2)), "v": jnp.array([1.0, -1.0])}, tx.init(params), params)
  assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves((u, s)))
  new_v = params["v"] + u["v"]
  assert float(jnp.linalg.norm(new_v)) == pytest.approx(np.sqrt(2.0), rel=1e-6)


def test_bad_arguments_and_missing_params():
  with pytest.raises(ValueError, match="lawn.*switch_step"):
    optkit.lawn(optax.sgd(0.1), switch_step=-1)
  with pytest.raises(TypeError, match="lawn.*inner"):
    optkit.lawn(lambda g: g)
  tx = optkit.lawn(optax.sgd(0.1))
  p = {"w": jnp.ones((2, 2))}
  with pytest.raises(ValueError, match="lawn.*params"):
    tx.update(p, tx.init(p))
