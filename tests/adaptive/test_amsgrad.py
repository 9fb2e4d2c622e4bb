"""What makes AMSGrad and AdamNC themselves (arXiv:1904.09237); the contract
suite covers the rest."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optkit.adaptive import adam, adamnc, amsgrad, scale_by_adam, scale_by_adamnc, \
    scale_by_amsgrad
from tests.adaptive.test_adam import _assert_runs_equal, _grads, _run, _tree, \
    replay_torch_fixture

# ---------------------------------------------------------------- optax (catalog test 1)


@pytest.mark.parametrize("kwargs", [
    {},
    {"b1": 0.8, "b2": 0.95, "eps": 1e-6, "eps_root": 1e-8},
    {"bias_correction_mu": False, "bias_correction_nu": False},
    {"mu_dtype": jnp.bfloat16},
], ids=["defaults", "betas_eps", "paper_no_correction", "bf16_mu"])
def test_amsgrad_equals_optax_amsgrad_bitwise_for_100_steps(kwargs):
  params, grads = _tree(42), _grads(100)
  mine = _run(amsgrad(3e-2, **kwargs), params, grads)
  ref = _run(optax.amsgrad(3e-2, **kwargs), params, grads)
  _assert_runs_equal(mine, ref, state_index=0)


def test_direction_and_decay_equal_optax():
  params, grads = _tree(1), _grads(20, seed=3)
  _assert_runs_equal(_run(scale_by_amsgrad(0.85, 0.95), params, grads),
                     _run(optax.scale_by_amsgrad(0.85, 0.95), params, grads))
  ref = optax.chain(optax.scale_by_amsgrad(), optax.add_decayed_weights(0.1),
                    optax.scale_by_learning_rate(1e-2))
  _assert_runs_equal(_run(amsgrad(1e-2, weight_decay=0.1), params, grads),
                     _run(ref, params, grads))


# ---------------------------------------------------------------- order of max and correction


def _numpy_amsgrad(grads, b1, b2, eps, max_first):
  m = v = vmax = 0.0
  out = []
  for t, g in enumerate(grads, start=1):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    if max_first:  # torch: max of raw v, then correct
      vmax = np.maximum(vmax, v)
      vhat = vmax / (1 - b2 ** t)
    else:  # optax: max of corrected v
      vmax = np.maximum(vmax, v / (1 - b2 ** t))
      vhat = vmax
    out.append((m / (1 - b1 ** t)) / (np.sqrt(vhat) + eps))
  return out


@pytest.mark.parametrize("max_first", [False, True], ids=["optax_order", "torch_order"])
def test_matches_float64_numpy_rederivation(max_first):
  rng = np.random.default_rng(5)
  grads = [rng.standard_normal(7) * 2.0 ** (-(t % 9)) for t in range(30)]
  expected = _numpy_amsgrad(grads, 0.9, 0.9, 1e-3, max_first)
  other = _numpy_amsgrad(grads, 0.9, 0.9, 1e-3, not max_first)
  tx = scale_by_amsgrad(0.9, 0.9, 1e-3, max_before_bias_correction=max_first)
  state = tx.init(jnp.zeros(7))
  differs = False
  for g, e, o in zip(grads, expected, other):
    u, state = tx.update(jnp.asarray(g, jnp.float32), state)
    np.testing.assert_allclose(u, e, rtol=2e-5, atol=1e-6)
    differs |= not np.allclose(u, o, rtol=1e-3)
  assert differs  # negative control: the two orders are different algorithms here


def test_orders_agree_without_nu_bias_correction():
  params, grads = _tree(9), _grads(20, seed=6)
  a = _run(scale_by_amsgrad(bias_correction_nu=False), params, grads)
  b = _run(scale_by_amsgrad(bias_correction_nu=False, max_before_bias_correction=True),
           params, grads)
  _assert_runs_equal(a, b)


# ---------------------------------------------------------------- defining property


def test_effective_step_is_non_increasing_and_adam_is_not():
  """Catalog test 2: eta / sqrt(v_hat) never grows (v_hat = nu_max never
  decreases). Negative control: Adam's bias-corrected v does decrease, so its
  effective step grows."""
  grads = [_tree(i, scale=4.0 * 0.7 ** i) for i in range(25)]  # shrinking gradients
  b2 = 0.9
  for torch_order in (False, True):
    outs = _run(scale_by_amsgrad(b2=b2, max_before_bias_correction=torch_order),
                _tree(0), grads)
    # optax order: nu_max is v_hat; torch order: nu_max is the raw max (v_hat is
    # it over 1 - b2^t, whose step size eta/sqrt(v_hat) the paper does not bound).
    maxes = [np.concatenate([np.ravel(x) for x in jax.tree.leaves(s.nu_max)])
             for _, s in outs]
    for t, (a, b) in enumerate(zip(maxes, maxes[1:]), start=2):
      assert np.all(b >= a), f"nu_max decreased at step {t} (torch_order={torch_order})"
  outs = _run(scale_by_adam(b2=b2), _tree(0), grads)
  vhats = [np.concatenate([np.ravel(x) / (1 - b2 ** t) for x in jax.tree.leaves(s.nu)])
           for t, (_, s) in enumerate(outs, start=1)]
  assert any(np.any(b < a) for a, b in zip(vhats, vhats[1:]))


def _counterexample(tx, steps=3000, c=1010.0):
  """Reddi et al., Thm. 1: f_t(x) = C x if t mod 3 == 1 else -x on [-1, 1];
  the minimizer of the average loss is x = -1."""
  def body(carry, t):
    x, s = carry
    g = jnp.where(t % 3 == 0, c, -1.0) * jnp.ones_like(x)
    u, s = tx.update(g, s, x)
    x = jnp.clip(optax.apply_updates(x, u), -1.0, 1.0)  # projection onto [-1, 1]
    return (x, s), x

  x0 = jnp.zeros((1,))
  (x, _), _ = jax.jit(lambda x: jax.lax.scan(body, (x, tx.init(x)), jnp.arange(steps)))(x0)
  return float(x[0])


def test_reddi_counterexample_amsgrad_goes_to_minus_one_adam_to_plus_one():
  """Catalog test 3, with the theorem's b1 = 0, b2 = 1/(1 + C^2) and the paper's
  alpha_t = alpha / sqrt(t)."""
  c = 1010.0
  b2 = 1.0 / (1.0 + c * c)
  lr = lambda count: 0.5 / jnp.sqrt(count + 1.0)
  assert _counterexample(amsgrad(lr, b1=0.0, b2=b2), c=c) == pytest.approx(-1.0, abs=1e-3)
  assert _counterexample(adam(lr, b1=0.0, b2=b2), c=c) == pytest.approx(1.0, abs=1e-3)


def test_reproduces_torch_adam_amsgrad():
  """40 steps of torch.optim.Adam(amsgrad=True), b2 = 0.9, float32, every step,
  to rtol 1e-5 and atol 1e-5, with the PyTorch order (max of raw v). Negative
  control: optax's order (max of corrected v) leaves the trajectory by > 1e-3."""
  make = lambda order: (lambda hp: amsgrad(hp["lr"], b1=hp["b1"], b2=hp["b2"], eps=hp["eps"],
                                           max_before_bias_correction=order))
  for prefix in ("quadratic", "logreg"):
    replay_torch_fixture("amsgrad", prefix, make(True), rtol=1e-5, atol=1e-5)
  assert replay_torch_fixture("amsgrad", "quadratic", make(False), None, None) > 1e-3


# ---------------------------------------------------------------- AdamNC


def _numpy_adamnc(grads, b1, eps, correct):
  m = 0.0
  sq = 0.0
  out = []
  for t, g in enumerate(grads, start=1):
    m = b1 * m + (1 - b1) * g
    sq = sq + g * g
    v = sq / t
    m_eff = m / (1 - b1 ** t) if correct else m
    out.append((m_eff / (np.sqrt(v) + eps), v))
  return out


@pytest.mark.parametrize("correct", [True, False])
def test_adamnc_matches_float64_numpy(correct):
  rng = np.random.default_rng(2)
  grads = [rng.standard_normal(6) * (1 + 5 * (t % 7 == 0)) for t in range(40)]
  tx = scale_by_adamnc(0.9, 1e-4, bias_correction_mu=correct)
  state = tx.init(jnp.zeros(6))
  for g, (e, v) in zip(grads, _numpy_adamnc(grads, 0.9, 1e-4, correct)):
    u, state = tx.update(jnp.asarray(g, jnp.float32), state)
    np.testing.assert_allclose(state.nu, v, rtol=1e-5)  # v_t = mean of g_i^2
    np.testing.assert_allclose(u, e, rtol=2e-5, atol=1e-6)


def test_adamnc_with_paper_schedule_is_adagrad_and_steps_never_grow():
  """b1 = 0, alpha_t = alpha/sqrt(t): u_t = alpha g_t / sqrt(sum g_i^2) (AdaGrad),
  so alpha_t/sqrt(v_t) is non-increasing without a max. Negative control: Adam
  (constant b2) with the same schedule has a growing effective step."""
  alpha = 0.3
  lr = lambda count: alpha / jnp.sqrt(count + 1.0)
  grads = [_tree(i, scale=3.0 * 0.6 ** i) for i in range(20)]
  p = jax.tree.map(jnp.zeros_like, grads[0])
  opt = adamnc(lr, b1=0.0, eps=0.0)
  state = opt.init(p)
  sq = jax.tree.map(jnp.zeros_like, p)
  prev_eff = None
  for t, g in enumerate(grads, start=1):
    u, state = opt.update(g, state, p)
    sq = jax.tree.map(lambda a, b: a + b * b, sq, g)
    for uu, gg, ss in zip(jax.tree.leaves(u), jax.tree.leaves(g), jax.tree.leaves(sq)):
      np.testing.assert_allclose(uu, -alpha * gg / np.sqrt(ss), rtol=1e-5, atol=1e-7)
    eff = np.concatenate([np.ravel(alpha / np.sqrt(t) / np.sqrt(v))
                          for v in jax.tree.leaves(state[0].nu)])
    if prev_eff is not None:
      assert np.all(eff <= prev_eff * (1 + 1e-6))
    prev_eff = eff
  b2 = 0.9
  outs = _run(scale_by_adam(b1=0.0, b2=b2), p, grads)
  effs = [np.concatenate([np.ravel(alpha / np.sqrt(t) / np.sqrt(v / (1 - b2 ** t)))
                          for v in jax.tree.leaves(s.nu)])
          for t, (_, s) in enumerate(outs, start=1)]
  assert any(np.any(b > a * 1.01) for a, b in zip(effs, effs[1:]))


# ---------------------------------------------------------------- dtypes, validation


def test_bf16_params_keep_bf16_updates_and_f32_statistics():
  p = {"w": jnp.ones((3,), jnp.bfloat16)}
  g = {"w": jnp.array([1.0, -2.0, 0.5], jnp.bfloat16)}
  for opt in (amsgrad(1e-2, mu_dtype=jnp.float32),
              amsgrad(1e-2, max_before_bias_correction=True), adamnc(1e-2)):
    state = opt.init(p)
    for _ in range(3):
      u, state = opt.update(g, state, p)
      assert u["w"].dtype == jnp.bfloat16
      assert state[0].nu["w"].dtype == jnp.float32
  ref = optax.amsgrad(1e-2)
  _, s = ref.update(g, ref.init(p), p)
  assert s[0].nu_max["w"].dtype == jnp.bfloat16  # optax keeps bf16 statistics


@pytest.mark.parametrize("factory,kwargs,match", [
    (amsgrad, {"learning_rate": -1.0}, "amsgrad: `learning_rate`"),
    (amsgrad, {"learning_rate": 1e-3, "b1": 1.0}, "amsgrad: `b1`"),
    (amsgrad, {"learning_rate": 1e-3, "b2": 2.0}, "amsgrad: `b2`"),
    (amsgrad, {"learning_rate": 1e-3, "eps_root": -1.0}, "amsgrad: `eps_root`"),
    (amsgrad, {"learning_rate": 1e-3, "weight_decay": -1.0}, "amsgrad: `weight_decay`"),
    (adamnc, {"learning_rate": -1.0}, "adamnc: `learning_rate`"),
    (adamnc, {"learning_rate": 1e-3, "b1": -0.5}, "adamnc: `b1`"),
    (adamnc, {"learning_rate": 1e-3, "eps": -1.0}, "adamnc: `eps`"),
])
def test_bad_hyperparameters_raise(factory, kwargs, match):
  with pytest.raises(ValueError, match=match):
    factory(**kwargs)


@pytest.mark.parametrize("tx,name", [(scale_by_amsgrad(), "amsgrad"),
                                     (scale_by_amsgrad(max_before_bias_correction=True),
                                      "amsgrad"),
                                     (scale_by_adamnc(), "adamnc")])
def test_mismatched_tree_raises(tx, name):
  state = tx.init({"a": jnp.zeros(2), "b": jnp.zeros(3)})
  with pytest.raises(ValueError, match=name):
    tx.update({"a": jnp.zeros(2)}, state)
