"""DoG, L-DoG and polynomial-decay averaging: what makes them DoG.

References: optax.contrib.dog (equality, float32, rtol 1e-5) and the authors'
PyTorch package (dog-optimizer 1.0.3, fixture
tests/fixtures/reference/parameter_free_dog.npz made by
tools/make_dog_fixtures.py, float64 trajectories compared in float64 to
rtol 1e-9 / atol 1e-12).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from optax import contrib as optax_contrib

import optkit
from optkit.bench import problems
from tests import helpers

SHAPES = {"a": (5,), "b": (2, 3), "c": ()}


def _norm(tree):
  return float(np.sqrt(sum(np.sum(np.asarray(x, np.float64) ** 2) for x in jax.tree.leaves(tree))))


def test_hand_computed_first_two_steps():
  reps_rel, eps = 1e-3, 1e-8
  x0 = helpers.random_tree(0, shapes=SHAPES)
  g0, g1 = helpers.gradient_sequence(2, seed=3, shapes=SHAPES)
  tx = optkit.dog(reps_rel=reps_rel, eps=eps)
  s = tx.init(x0)
  u0, s = tx.update(g0, s, x0)
  r_eps = reps_rel * (1 + _norm(x0))
  eta0 = r_eps / np.sqrt(_norm(g0) ** 2 + eps)
  for k in SHAPES:
    np.testing.assert_allclose(u0[k], -eta0 * np.asarray(g0[k]), rtol=1e-5)
  x1 = optax.apply_updates(x0, u0)
  u1, _ = tx.update(g1, s, x1)
  dist = _norm(jax.tree.map(lambda a, b: np.asarray(a, np.float64) - np.asarray(b), x1, x0))
  eta1 = max(r_eps, dist) / np.sqrt(_norm(g0) ** 2 + _norm(g1) ** 2 + eps)
  for k in SHAPES:
    np.testing.assert_allclose(u1[k], -eta1 * np.asarray(g1[k]), rtol=1e-5)


def test_l_dog_is_per_leaf():
  reps_rel, eps = 1e-3, 1e-8
  x0 = helpers.random_tree(1, shapes=SHAPES)
  g0 = helpers.random_tree(2, scale=3.0, shapes=SHAPES)
  tx = optkit.l_dog(reps_rel=reps_rel, eps=eps)
  u0, _ = tx.update(g0, tx.init(x0), x0)
  etas = []
  for k in SHAPES:
    eta = reps_rel * (1 + _norm(x0[k])) / np.sqrt(_norm(g0[k]) ** 2 + eps)
    np.testing.assert_allclose(u0[k], -eta * np.asarray(g0[k]), rtol=1e-5)
    etas.append(eta)
  assert max(etas) / min(etas) > 1.5  # the leaves do get different step sizes


def test_equals_optax_contrib_dog_for_20_steps():
  x0 = helpers.random_tree(4, shapes=SHAPES)
  grads = helpers.gradient_sequence(20, seed=5, decay=0.1, shapes=SHAPES)
  cases = [
      (optkit.dog(reps_rel=1e-3), optax_contrib.dog(init_step=("heuristic", 1e-3))),
      (optkit.dog(reps_rel=1e-3, weight_decay=0.1),
       optax_contrib.dog(init_step=("heuristic", 1e-3), weight_decay=0.1)),
      (optkit.dog(init_eta=0.02), optax_contrib.dog(init_step=("learning_rate", 0.02))),
      (optkit.dog(0.5, reps_rel=1e-2, eps=1e-4), optax_contrib.dog(0.5, ("heuristic", 1e-2), 1e-4)),
  ]
  for ours, ref in cases:
    out_ours = helpers.run_open_loop(ours, x0, grads)
    out_ref = helpers.run_open_loop(ref, x0, grads)
    for (u, _), (v, _) in zip(out_ours, out_ref):
      for k in SHAPES:
        np.testing.assert_allclose(u[k], v[k], rtol=1e-5, atol=1e-9)


def test_l_dog_with_one_leaf_equals_dog():
  x0 = {"w": helpers.random_tree(6, shapes={"w": (4, 3)})["w"]}
  loss = lambda p: jnp.sum(jnp.cos(p["w"]) + 0.1 * p["w"] ** 2)
  a = helpers.run_closed_loop(optkit.l_dog(reps_rel=1e-3), loss, x0, 30)
  b = helpers.run_closed_loop(optkit.dog(reps_rel=1e-3), loss, x0, 30)
  for (pa, _, _), (pb, _, _) in zip(a, b):
    np.testing.assert_allclose(pa["w"], pb["w"], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("case,problem,tx", [
    ("dog", "quadratic", lambda: optkit.dog(reps_rel=1e-4)),
    ("dog", "logreg", lambda: optkit.dog(reps_rel=1e-4)),
    ("dog_wd", "quadratic", lambda: optkit.dog(reps_rel=1e-4, weight_decay=0.05)),
    ("dog_init_eta", "quadratic", lambda: optkit.dog(init_eta=0.05)),
    ("ldog", "logreg", lambda: optkit.l_dog(reps_rel=1e-4)),
])
def test_matches_the_authors_pytorch_dog(case, problem, tx):
  data = np.load(helpers.fixture("parameter_free_dog.npz"))
  with jax.enable_x64(True):
    traj = helpers.fixture_trajectory(data, f"{case}__{problem}__traj__")
    loss = helpers.fixture_loss(data, problem)
    worst = helpers.replay_trajectory(tx(), loss, traj, rtol=1e-9, atol=1e-12, label=case)
  assert worst < 1e-9


def test_averaging_matches_the_authors_averager():
  data = np.load(helpers.fixture("parameter_free_dog.npz"))
  with jax.enable_x64(True):
    traj = helpers.fixture_trajectory(data, "dog__quadratic__traj__")
    loss = helpers.fixture_loss(data, "quadratic")
    tx = optax.chain(optkit.dog(reps_rel=1e-4), optkit.polynomial_decay_averaging(gamma=8.0))
    out = helpers.run_closed_loop(tx, loss, {"x": jnp.asarray(traj["x"][0])}, 60)
    avg = np.stack([np.asarray(optkit.polynomial_decay_averaged_params(s)["x"]) for _, s, _ in out])
  np.testing.assert_allclose(avg, data["avg__quadratic__traj__x"][1:], rtol=1e-9, atol=1e-12)


def _averaged(gamma, iterates):
  tx = optkit.polynomial_decay_averaging(gamma=gamma)
  x = jnp.zeros_like(iterates[0])
  s = tx.init(x)
  for it in iterates:
    _, s = tx.update(it - x, s, x)  # the update that moves x to the next iterate
    x = it
  return np.asarray(optkit.polynomial_decay_averaged_params(s))


def test_averaging_weights():
  rng = np.random.default_rng(0)
  iterates = [jnp.asarray(rng.standard_normal(4), jnp.float32) for _ in range(7)]
  stacked = np.stack([np.asarray(x, np.float64) for x in iterates])
  # gamma = 0: the uniform average of x_1..x_t.
  np.testing.assert_allclose(_averaged(0.0, iterates), stacked.mean(0), rtol=1e-5, atol=1e-6)
  # gamma -> infinity: the last iterate.
  np.testing.assert_allclose(_averaged(1e9, iterates), stacked[-1], rtol=1e-5, atol=1e-6)
  # gamma = 8: the weights sum to 1 (a constant sequence averages to itself) and
  # equal the recursion's closed form w_{t,k} = w_k prod_{j>k} (1 - w_j).
  const = [jnp.full((4,), 2.5, jnp.float32)] * 7
  np.testing.assert_allclose(_averaged(8.0, const), 2.5, rtol=1e-6)
  w = np.array([(1 + 8.0) / (t + 8.0) for t in range(1, 8)])
  weights = np.array([w[k] * np.prod(1 - w[k + 1:]) for k in range(7)])
  assert abs(weights.sum() - 1.0) < 1e-12
  np.testing.assert_allclose(_averaged(8.0, iterates), weights @ stacked, rtol=1e-5, atol=1e-6)
  # and it is neither the uniform average nor the last iterate (the test can fail).
  assert not np.allclose(weights @ stacked, stacked.mean(0), atol=1e-3)


def test_scale_invariance_and_sgd_negative_control():
  """Multiplying the loss by c leaves DoG's trajectory unchanged; SGD's changes."""
  prob = problems.quadratic
  x0 = prob.init(jnp.float32)
  runs = {}
  for c in (1.0, 100.0):
    loss = lambda p, c=c: c * prob.loss(p)
    runs[("dog", c)] = helpers.run_closed_loop(optkit.dog(reps_rel=1e-4, eps=1e-30), loss, x0, 40)[-1][0]
    runs[("sgd", c)] = helpers.run_closed_loop(optax.sgd(1e-3), loss, x0, 40)[-1][0]
  for k in x0:
    np.testing.assert_allclose(runs[("dog", 1.0)][k], runs[("dog", 100.0)][k], rtol=2e-4, atol=2e-5)
  assert not all(np.allclose(runs[("sgd", 1.0)][k], runs[("sgd", 100.0)][k], atol=1e-2) for k in x0)


def test_insensitive_to_reps_rel_while_sgd_with_the_same_step_sizes_is_not():
  """DoG reaches a small loss from r_eps over four orders of magnitude; SGD run
  with DoG's first step sizes (the same numbers as constant learning rates)
  does not. (reps_rel = 1e-8 is below float32's resolution of x_0 = 1: the
  first step rounds away and DoG never moves; see the module docstring.)"""
  prob = problems.ill_conditioned_quadratic
  x0 = prob.init(jnp.float32)
  start = float(prob.loss(x0))
  g0 = jax.grad(prob.loss)(x0)
  dog_final, sgd_final = [], []
  for reps_rel in (1e-6, 1e-4, 1e-2):
    out = helpers.run_closed_loop(optkit.dog(reps_rel=reps_rel), prob.loss, x0, 400)
    dog_final.append(float(prob.loss(out[-1][0])))
    eta0 = reps_rel * (1 + _norm(x0)) / _norm(g0)
    out = helpers.run_closed_loop(optax.sgd(eta0), prob.loss, x0, 400)
    sgd_final.append(float(prob.loss(out[-1][0])))
  assert max(dog_final) < 1e-3 * start, dog_final
  assert max(sgd_final) > 0.5 * start, sgd_final  # tiny constant steps: no progress


def test_statistics_are_float32_for_bf16_params():
  x0 = jax.tree.map(lambda x: x.astype(jnp.bfloat16), helpers.random_tree(8, shapes=SHAPES))
  for tx, field in ((optkit.scale_by_dog(), "max_dist"), (optkit.scale_by_l_dog(), "max_dist")):
    s = tx.init(x0)
    u, s = tx.update(x0, s, x0)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(getattr(s, field)))
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(s.sum_sq_norm_grads))
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(u))


@pytest.mark.parametrize("make,name", [
    (lambda: optkit.dog(reps_rel=0.0), "dog"),
    (lambda: optkit.dog(reps_rel=-1e-6), "dog"),
    (lambda: optkit.dog(eps=0.0), "dog"),
    (lambda: optkit.dog(init_eta=-1.0), "dog"),
    (lambda: optkit.dog(weight_decay=-0.1), "dog"),
    (lambda: optkit.dog(learning_rate=-1.0), "dog"),
    (lambda: optkit.scale_by_l_dog(reps_rel=0.0), "l_dog"),
    (lambda: optkit.l_dog(eps=-1.0), "l_dog"),
    (lambda: optkit.polynomial_decay_averaging(gamma=-1.0), "polynomial_decay_averaging"),
])
def test_bad_hyperparameters_raise(make, name):
  with pytest.raises(ValueError, match=name):
    make()


def test_missing_params_raise():
  x0 = helpers.random_tree(0, shapes=SHAPES)
  for tx, name in ((optkit.scale_by_dog(), "dog"), (optkit.scale_by_l_dog(), "l_dog"),
                   (optkit.polynomial_decay_averaging(), "polynomial_decay_averaging")):
    with pytest.raises(ValueError, match=name):
      tx.update(x0, tx.init(x0), None)
  with pytest.raises(ValueError, match="polynomial_decay_averaging"):
    optkit.polynomial_decay_averaged_params(optkit.dog().init(x0))
