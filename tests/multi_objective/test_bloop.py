"""Bloop / dynamic barrier / PCGrad-EMA (arXiv:2402.02998) against a NumPy port of
apple/ml-bloop and their defining properties."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optkit
from tests import helpers

FIX = helpers.fixture("multi_objective_bloop.npz")
SIZES = {"a": 5, "b": 6}  # the fixture's flat vectors, split into a tree


def _tree(rows):
  """(2, 11) or (11,) flat rows -> a tree with leaves a (.., 5), b (.., 2, 3)."""
  rows = jnp.asarray(rows, jnp.float32)
  lead = rows.shape[:-1]
  return {"a": rows[..., :5], "b": rows[..., 5:].reshape(lead + (2, 3))}


def _flat(tree):
  return np.concatenate([np.asarray(tree["a"]).reshape(-1), np.asarray(tree["b"]).reshape(-1)])


def _run(tx, main, aux):
  params = _tree(np.zeros(11))
  state = tx.init(params)
  update = jax.jit(tx.update)
  out = []
  for g, ga in zip(main, aux):
    d, state = update(_tree(np.stack([g, ga])), state, params)
    out.append(_flat(d))
  return np.stack(out), state


def _vdot(a, b):
  return sum(float(jnp.vdot(x, y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("init", ["grad", "zeros"])
@pytest.mark.parametrize("lbda,ema", [(0.1, 0.1), (0.5, 0.3)])
def test_bloop_and_barrier_match_reference_port(init, lbda, ema):
  data = np.load(FIX)
  tag = f"{init}_{lbda}_{ema}"
  got, _ = _run(optkit.bloop(lbda, ema, init=init), data["main"], data["aux"])
  np.testing.assert_allclose(got, data[f"d_bloop_{tag}"], rtol=1e-5, atol=1e-5)
  got_b, _ = _run(optkit.dynamic_barrier(lbda, ema, init=init), data["main"], data["aux"])
  np.testing.assert_allclose(got_b, data[f"d_barrier_{tag}"], rtol=1e-5, atol=1e-5)


def test_barrier_is_active_in_the_fixture():
  # Makes the comparison above informative: the clipping changes some steps.
  data = np.load(FIX)
  diff = np.abs(data["d_bloop_grad_0.5_0.3"] - data["d_barrier_grad_0.5_0.3"]).max(axis=1)
  assert (diff > 1e-2).sum() >= 2 and (diff < 1e-12).sum() >= 1


@pytest.mark.parametrize("rescale", [False, True])
def test_pcgrad_ema_matches_reference_port(rescale):
  data = np.load(FIX)
  got, _ = _run(optkit.pcgrad_ema(0.5, 0.3, init="zeros", rescale=rescale),
                data["main"], data["aux"])
  np.testing.assert_allclose(got, data[f"d_pcgrad_zeros_{rescale}"], rtol=1e-5, atol=1e-5)


def test_hand_computed_two_steps():
  # Step 1 (init 'grad'): m = g1 = [1, 0]; ratio = 2 / 1 -> pi = [0, 1].
  # Step 2: m = [1, 0] + 0.5·([0, 2] - [1, 0]) = [0.5, 1]; g_aux = [1, 1]:
  # ratio = 1.5 / 1.25 = 1.2, pi = [1, 1] - 1.2·[0.5, 1] = [0.4, -0.2].
  tx = optkit.bloop(lbda=0.5, ema=0.5, eps=0.0 + 1e-30)
  p = jnp.zeros(2)
  s = tx.init(p)
  d1, s = tx.update(jnp.array([[1.0, 0.0], [2.0, 1.0]]), s, p)
  np.testing.assert_allclose(d1, [1.0, 0.5], rtol=1e-6)
  d2, s = tx.update(jnp.array([[0.0, 2.0], [1.0, 1.0]]), s, p)
  np.testing.assert_allclose(s.main_ema, [0.5, 1.0], rtol=1e-6)
  np.testing.assert_allclose(d2, [0.2, 1.9], rtol=1e-6)


@pytest.mark.parametrize("factory", [optkit.bloop, optkit.dynamic_barrier])
def test_lambda_zero_gives_main_gradient(factory):
  g = [helpers.random_tree(i) for i in range(3)]
  aux = [helpers.random_tree(10 + i, scale=5.0) for i in range(3)]
  tx = factory(lbda=0.0)
  p = helpers.random_tree(99)
  s = tx.init(p)
  for gi, ai in zip(g, aux):
    d, s = tx.update(jax.tree.map(lambda x, y: jnp.stack([x, y]), gi, ai), s, p)
    for x, y in zip(jax.tree.leaves(d), jax.tree.leaves(gi)):
      np.testing.assert_array_equal(x, y)


def test_projection_is_orthogonal_to_ema_with_negative_control():
  """<π, m> = 0 for Bloop (π = (d - g)/λ); the plain sum g + λ g_aux fails it."""
  lbda = 0.3
  tx = optkit.bloop(lbda=lbda, ema=0.2)
  p = helpers.random_tree(0)
  s = tx.init(p)
  base = helpers.random_tree(1)  # a direction shared by every step
  for i in range(5):
    g = jax.tree.map(lambda b, x: b + 0.3 * x, base, helpers.random_tree(100 + i))
    ga = jax.tree.map(lambda b, x: 1.5 * b + x, base, helpers.random_tree(200 + i))
    d, s = tx.update(jax.tree.map(lambda x, y: jnp.stack([x, y]), g, ga), s, p)
    pi = jax.tree.map(lambda a, b: (a - b) / lbda, d, g)
    m_norm = np.sqrt(_vdot(s.main_ema, s.main_ema))
    assert abs(_vdot(pi, s.main_ema)) / (m_norm * np.sqrt(_vdot(pi, pi))) < 1e-5
    # Negative control: the raw auxiliary gradient is not orthogonal to m.
    assert abs(_vdot(ga, s.main_ema)) / (m_norm * np.sqrt(_vdot(ga, ga))) > 0.3


def test_parallel_aux_is_removed():
  g = helpers.random_tree(3)
  tx = optkit.bloop(lbda=0.7)
  p = helpers.random_tree(4)
  d, _ = tx.update(jax.tree.map(lambda x: jnp.stack([x, -2.5 * x]), g), tx.init(p), p)
  for x, y in zip(jax.tree.leaves(d), jax.tree.leaves(g)):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_pcgrad_ema_keeps_non_conflicting_gradients():
  # Aligned rows: no projection, d = g + λ g_aux (negative control for the min(·, 0)).
  g = jnp.array([[1.0, 0.5], [2.0, 1.5]])
  tx = optkit.pcgrad_ema(lbda=0.5)
  d, _ = tx.update(g, tx.init(jnp.zeros(2)))
  np.testing.assert_allclose(d, g[0] + 0.5 * g[1], rtol=1e-6)


def test_rescale_divides_by_one_plus_lambda():
  g = jnp.array([[1.0, -0.5], [-1.0, 2.0]])
  p = jnp.zeros(2)
  for factory in (optkit.bloop, optkit.dynamic_barrier, optkit.pcgrad_ema):
    a, _ = factory(0.25, rescale=True).update(g, factory(0.25).init(p), p)
    b, _ = factory(0.25).update(g, factory(0.25).init(p), p)
    np.testing.assert_allclose(a, b / 1.25, rtol=1e-6)


def test_bad_hyperparameters_and_inputs_raise():
  with pytest.raises(ValueError, match="bloop"):
    optkit.bloop(lbda=-1.0)
  with pytest.raises(ValueError, match="dynamic_barrier"):
    optkit.dynamic_barrier(ema=1.5)
  with pytest.raises(ValueError, match="pcgrad_ema"):
    optkit.pcgrad_ema(init="random")
  with pytest.raises(ValueError, match="bloop"):
    optkit.bloop(eps=0.0)
  tx = optkit.bloop()
  with pytest.raises(ValueError, match="bloop.*size 2"):
    tx.update(jnp.ones((3, 4)), tx.init(jnp.zeros(4)))
