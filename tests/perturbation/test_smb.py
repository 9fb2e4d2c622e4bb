"""Tests of Stochastic Model Building (optkit.perturbation.smb).

What makes SMB SMB: the SGD trial step is kept exactly when it passes the
Armijo test on the batch; otherwise the step is replaced by the per-tensor
model step built from the gradients at x and at the trial point, which (unlike
SGD at the same lr) keeps descending when lr is too large. Checked against a
float64 NumPy re-derivation and against trajectories of the authors' code
(sibirbil/SMB, fixture made by tools/make_smb_fixtures.py).
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from tests import helpers

NAME = "smb"


# ----- float64 NumPy re-derivation of the rule (catalog + official code) ----


def _np_model_step(s, g, gt, eta):
  s, g, gt = (np.ravel(v) for v in (s, g, gt))
  y = gt - g
  ys, ss, yy = s @ y, s @ s, y @ y
  yg, gg, sg = y @ g, g @ g, s @ g
  sigma = 0.5 * (np.sqrt(ss) * (np.sqrt(yy) + np.sqrt(gg) / eta) - ys)
  theta = (ys + 2 * sigma) ** 2 - ss * yy
  cg = -ss / (2 * sigma)
  cs = cg / theta * (-(ys + 2 * sigma) * yg + yy * sg)
  cy = cg / theta * (-(ys + 2 * sigma) * sg + ss * yg)
  return cs * s + cg * g + cy * y


def _np_smb(f, grad, params, steps, lr, eta=0.99, c=0.1, window=None,
            gamma=0.05, beta=0.9, lr_max=20.0):
  """Returns the list of params after each step and the model-step flags."""
  p = {k: np.array(v, np.float64) for k, v in params.items()}
  traj, flags, window_flags = [], [], []
  for _ in range(steps):
    g = grad(p)
    gnorm = np.sqrt(sum(np.sum(v ** 2) for v in g.values()))
    s = {k: -lr * g[k] for k in p}
    xt = {k: p[k] + s[k] for k in p}
    model = gnorm >= 1e-8 and f(xt) > f(p) - c * lr * gnorm ** 2
    if model:
      gt = grad(xt)
      p = {k: p[k] + _np_model_step(s[k], g[k], gt[k], eta).reshape(
          p[k].shape) for k in p}
    else:
      p = xt
    flags.append(int(model))
    window_flags.append(int(model))
    if window is not None and len(window_flags) >= window:
      if sum(window_flags) / len(window_flags) > gamma:
        lr *= beta
      elif lr / beta <= lr_max:
        lr /= beta
      window_flags = []
    traj.append(p)
  return traj, flags


def _tanh_problem(x, y, xp=jnp):
  def loss(p):
    r = xp.tanh(x @ p["w"] + p["b"]) - y
    return 0.5 * xp.mean(xp.sum(r ** 2, axis=1))
  return loss


def _np_tanh_grad(x, y):
  def grad(p):
    z = np.tanh(x @ p["w"] + p["b"])
    dz = (z - y) * (1 - z ** 2) / x.shape[0]
    return {"b": dz.sum(axis=0), "w": x.T @ dz}
  return grad


def _run(tx, loss, params, steps):
  """Closed loop in one jitted scan: params after each step, final state, and
  the per-step ``model_step`` flag and autoschedule factor (beta = 0.9)."""
  def body(carry, _):
    p, s = carry
    u, s = tx.update(jax.grad(loss)(p), s, p, value_fn=loss)
    p = optax.apply_updates(p, u)
    return (p, s), (p, s[0].model_step, s[0].lr_exponent)

  (_, state), (ps, flags, exponents) = jax.jit(
      lambda p: jax.lax.scan(body, (p, tx.init(p)), None, length=steps))(params)
  return ps, state, np.asarray(flags), 0.9 ** np.asarray(exponents)


def test_registry_record():
  rec = optkit.registry.get(NAME)
  assert rec.kind == "optimizer" and rec.direction is optkit.scale_by_smb
  assert rec.extra_args == ("value_fn",)


def test_accepted_trial_step_is_exactly_sgd():
  # Small lr on a smooth problem: Armijo holds at every step, so SMB is SGD.
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(6, 3)), jnp.float32)
  y = jnp.asarray(rng.normal(size=(6, 2)), jnp.float32)
  params = {"b": jnp.zeros(2), "w": jnp.asarray(rng.normal(size=(3, 2)),
                                                jnp.float32)}
  loss = _tanh_problem(x, y)
  ps, _, flags, _ = _run(optkit.smb(0.05), loss, params, 10)
  assert flags.sum() == 0
  p = params
  for t in range(10):
    p = jax.tree.map(lambda a, g: a - 0.05 * g, p, jax.grad(loss)(p))
    chex.assert_trees_all_close(jax.tree.map(lambda v, t=t: v[t], ps), p,
                                rtol=1e-6, atol=1e-7)


def test_hand_computed_model_step_on_a_quadratic():
  # f = 0.5 x^T A x with lr = 1 > 2/lambda_max: the trial step fails Armijo.
  a = np.diag([1.0, 4.0])
  x0 = np.array([1.0, 1.0])
  lr = 1.0
  g = a @ x0
  s = -lr * g
  gt = a @ (x0 + s)
  f = lambda v: 0.5 * v @ a @ v
  assert f(x0 + s) > f(x0) - 0.1 * lr * g @ g  # Armijo fails
  expected = x0 + _np_model_step(s, g, gt, 0.99)
  with jax.enable_x64(True):
    loss = lambda v: 0.5 * v @ jnp.asarray(a) @ v
    p = jnp.asarray(x0)
    tx = optkit.smb(lr)
    u, state = tx.update(jax.grad(loss)(p), tx.init(p), p, value_fn=loss)
    np.testing.assert_allclose(p + u, expected, rtol=1e-12)
    assert int(state[0].model_step) == 1
  # The model step descends where the trial step did not.
  assert f(expected) < f(x0) < f(x0 + s)


@pytest.mark.parametrize("window", [None, 4])
def test_matches_numpy_rederivation_in_float64(window):
  rng = np.random.default_rng(3)
  x, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
  params = {"b": 0.5 * rng.normal(size=(2,)), "w": 1.5 * rng.normal(size=(3, 2))}
  lr, steps = 3.7, 16
  ref, ref_flags = _np_smb(_tanh_problem(x, y, np), _np_tanh_grad(x, y), params,
                           steps, lr, window=window)
  assert 0 < sum(ref_flags) < steps  # both branches
  tx = optkit.smb(lr, autoschedule=window is not None,
                  n_batches_per_epoch=window or 500)
  with jax.enable_x64(True):
    loss = _tanh_problem(jnp.asarray(x), jnp.asarray(y))
    ps, _, flags, _ = _run(tx, loss, jax.tree.map(jnp.asarray, params), steps)
    np.testing.assert_array_equal(flags, ref_flags)
    for t in range(steps):
      for k in params:
        np.testing.assert_allclose(np.asarray(ps[k][t]), ref[t][k],
                                   rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cfg", ["plain", "auto"])
def test_matches_authors_code_fixture(cfg):
  # Fixture: the official SMB class (sibirbil/SMB source/smbsolve/smb.py) in
  # torch float64; tolerance rtol 1e-9, atol 1e-11.
  data = np.load(helpers.fixture("perturbation_smb.npz"))
  lr, eta, c, window = data[f"hparams__{cfg}"]
  ref_w, ref_b = data[f"{cfg}__w"], data[f"{cfg}__b"]
  ref_flags, ref_lr = data[f"{cfg}__model_step"], data[f"{cfg}__lr"]
  steps = ref_w.shape[0] - 1
  auto = cfg == "auto"
  with jax.enable_x64(True):
    loss = _tanh_problem(jnp.asarray(data["x"]), jnp.asarray(data["y"]))
    tx = optkit.smb(float(lr), float(eta), float(c), autoschedule=auto,
                    n_batches_per_epoch=int(window))
    ps, _, flags, factors = _run(tx, loss, {"b": jnp.asarray(ref_b[0]),
                                            "w": jnp.asarray(ref_w[0])}, steps)
    np.testing.assert_allclose(np.asarray(ps["w"]), ref_w[1:], rtol=1e-9,
                               atol=1e-11)
    np.testing.assert_allclose(np.asarray(ps["b"]), ref_b[1:], rtol=1e-9,
                               atol=1e-11)
  known = ref_flags >= 0
  np.testing.assert_array_equal(flags[known], ref_flags[known])
  assert flags.sum() > 0  # model steps are exercised
  np.testing.assert_allclose(lr * factors, ref_lr, rtol=1e-12)
  if auto:  # the autoschedule both grew and shrank lr
    assert ref_lr.max() > lr and np.any(np.diff(ref_lr) < 0)
  # Negative control: plain SGD at the same lr leaves the reference path.
  p = {"b": ref_b[0], "w": ref_w[0]}
  grad = _np_tanh_grad(data["x"], data["y"])
  for _ in range(steps):
    p = {k: v - lr * grad(p)[k] for k, v in p.items()}
  assert np.max(np.abs(p["w"] - ref_w[-1])) > 1e-2


def test_beats_sgd_on_a_quadratic_at_the_same_large_lr():
  # lr = 0.25 > 2 / lambda_max = 0.2: SGD diverges along the stiff direction;
  # SMB's model steps keep descending (negative control: SGD).
  a = jnp.asarray(np.diag([1.0, 10.0, 3.0]), jnp.float32)
  loss = lambda v: 0.5 * v @ a @ v
  x0 = jnp.array([1.0, 1.0, -1.0])
  lr = 0.25
  ps, _, flags, _ = _run(optkit.smb(lr), loss, x0, 60)
  f_smb = float(loss(ps[-1]))
  p = x0
  for _ in range(60):
    p = p - lr * jax.grad(loss)(p)
  f_sgd = float(loss(p))
  assert flags.sum() > 0
  assert f_smb < 1e-3 * float(loss(x0)), f_smb
  assert f_sgd > float(loss(x0)), f_sgd


def test_value_extra_argument_is_used_for_f_x():
  loss = lambda v: jnp.sum(v ** 2)
  p = jnp.array([3.0, 4.0])
  tx = optkit.smb(0.1)
  g = jax.grad(loss)(p)
  u1, _ = tx.update(g, tx.init(p), p, value_fn=loss)
  u2, _ = tx.update(g, tx.init(p), p, value_fn=loss, value=loss(p))
  chex.assert_trees_all_equal(u1, u2)
  # A (wrong) huge value makes Armijo pass: the trial step is taken even
  # with lr = 2 (where it fails with the true value).
  tx2 = optkit.smb(2.0)
  u4, s4 = tx2.update(g, tx2.init(p), p, value_fn=loss, value=1e6)
  u5, s5 = tx2.update(g, tx2.init(p), p, value_fn=loss)
  np.testing.assert_allclose(u4, -2.0 * g)
  assert int(s4[0].model_step) == 0 and int(s5[0].model_step) == 1
  assert not np.allclose(u5, u4)


def test_tensor_with_zero_gradient_stays_put_and_finite():
  # The official formulas give 0/0 for a tensor whose gradient is zero while
  # the model step is taken; optkit keeps its trial step (zero).
  loss = lambda p: 0.5 * 10.0 * jnp.sum(p["a"] ** 2) + 0.0 * jnp.sum(p["z"])
  p = {"a": jnp.array([1.0, -1.0]), "z": jnp.ones(3)}
  tx = optkit.smb(1.0)
  u, state = jax.jit(lambda q: tx.update(jax.grad(loss)(q), tx.init(q), q,
                                         value_fn=loss))(p)
  assert int(state[0].model_step) == 1
  chex.assert_tree_all_finite(u)
  np.testing.assert_array_equal(u["z"], np.zeros(3))
  assert float(loss(optax.apply_updates(p, u))) < float(loss(p))


def test_schedule_is_evaluated_at_count():
  loss = lambda v: jnp.sum(v ** 2)
  p = jnp.array([3.0, 4.0])
  tx = optkit.smb(lambda t: 0.1 / (1.0 + t))
  s = tx.init(p)
  u0, s = tx.update(jax.grad(loss)(p), s, p, value_fn=loss)
  u1, s = tx.update(jax.grad(loss)(p), s, p, value_fn=loss)
  np.testing.assert_allclose(u0, -0.1 * 2 * p, rtol=1e-6)
  np.testing.assert_allclose(u1, -0.05 * 2 * p, rtol=1e-6)


@pytest.mark.parametrize("kwargs,arg", [
    ({"learning_rate": -1.0}, "learning_rate"),
    ({"learning_rate": 0.1, "eta": 0.0}, "eta"),
    ({"learning_rate": 0.1, "eta": 1.5}, "eta"),
    ({"learning_rate": 0.1, "c": 0.0}, "c"),
    ({"learning_rate": 0.1, "c": 1.0}, "c"),
    ({"learning_rate": 0.1, "beta": 1.0}, "beta"),
    ({"learning_rate": 0.1, "gamma": 2.0}, "gamma"),
    ({"learning_rate": 0.1, "lr_max": 0.0}, "lr_max"),
    ({"learning_rate": 0.1, "n_batches_per_epoch": 0}, "n_batches_per_epoch"),
])
def test_bad_hyperparameters_raise(kwargs, arg):
  with pytest.raises(ValueError, match=f"{NAME}.*{arg}"):
    optkit.smb(**kwargs)


def test_missing_value_fn_and_params_raise():
  p = {"w": jnp.ones(3)}
  tx = optkit.smb(0.1)
  state = tx.init(p)
  with pytest.raises(ValueError, match=f"{NAME}.*value_fn"):
    tx.update(p, state, p)
  with pytest.raises(ValueError, match=f"{NAME}.*params"):
    tx.update(p, state, None, value_fn=lambda q: jnp.sum(q["w"]))
