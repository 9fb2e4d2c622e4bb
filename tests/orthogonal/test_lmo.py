"""What makes the LMO (non-Euclidean trust-region) methods themselves.

* equality with optax.contrib.muon's Muon branch (Nesterov, bias-corrected
  momentum, Newton-Schulz, sqrt(max(1, fan_out/fan_in)) shape factor) to 1e-6;
* pytorch_optimizer's Muon (Nesterov, no bias correction, decoupled decay;
  fixture made by tools/make_lmo_fixtures.py) to 1e-5 over 30 steps;
* the l_inf LMO is Signum (optax.signum: sign of the EMA), exactly;
* ||lmo(m)|| = 1 in the oracle's norm (exact for SVD, sign and l2; within the
  Newton-Schulz band [0.68, 1.2] otherwise), and NS vs exact U V^T;
* the constrained view of weight decay: iterates stay in ||x|| <= 1/lambda;
  coupled decay (added to the gradient before the LMO) leaves the ball;
* a hand-computed first step, the momentum options against a NumPy
  re-derivation, reductions to sign_descent / spectral_descent at b1 = 0;
* leaves by rank (matrix, dimension numbers, 0-D/1-D fallback) and errors.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest

import optkit
from tests import helpers

SHAPES = {"w": (4, 3), "v": (3, 5), "k": (3, 3, 2, 4)}


def _run(tx, grads, params=None):
  return [u for u, _ in helpers.run_open_loop(tx, params or grads[0], grads)]


def _shape_factor():
  """optax.contrib.muon's width factor sqrt(max(1, fan_out / fan_in)) (Flax view)."""
  def scale(u):
    fan_in, fan_out = int(np.prod(u.shape[:-1])), u.shape[-1]
    return u * np.sqrt(max(1.0, fan_out / fan_in))
  return optax.stateless(lambda u, p=None: jax.tree.map(scale, u))


def test_spectral_lmo_equals_optax_muon():
  grads = helpers.gradient_sequence(4, seed=3, shapes=SHAPES)
  params = helpers.random_tree(9, shapes=SHAPES)
  dims = {"w": optax.contrib.MuonDimensionNumbers(),
          "v": optax.contrib.MuonDimensionNumbers(),
          "k": optax.contrib.MuonDimensionNumbers(reduction_axis=(0, 1, 2), output_axis=3)}
  ref = optax.contrib.muon(0.1, beta=0.95, muon_weight_dimension_numbers=dims)
  ours = optax.chain(
      optkit.scale_by_lmo(optkit.lmo_spectral(eps=1e-8), b1=0.95, nesterov=True,
                          bias_correction=True),
      _shape_factor(), optax.scale_by_learning_rate(0.1))
  ref_out = _run(ref, grads, params)
  for a, b in zip(_run(ours, grads, params), ref_out):
    for k in SHAPES:
      np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-6)
  # Negative control: without the bias correction the Nesterov mix differs
  # (from step 2 on; at step 1 both are proportional to g_1).
  other = optax.chain(optkit.scale_by_lmo(optkit.lmo_spectral(eps=1e-8), 0.95, True, False),
                      _shape_factor(), optax.scale_by_learning_rate(0.1))
  a, b = _run(other, grads, params)[-1], ref_out[-1]
  assert np.max(np.abs(a["w"] - b["w"])) > 1e-3


def test_sign_lmo_is_signum():
  grads = helpers.gradient_sequence(8, seed=1)
  ours = optkit.lmo_optimizer(0.01, "sign", b1=0.9)
  ref = optax.signum(0.01, beta=0.9)
  for a, b in zip(_run(ours, grads), _run(ref, grads)):
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])


def test_b1_zero_reduces_to_steepest_descent():
  shapes = {"w": (4, 3), "b": (3,)}
  grads = helpers.gradient_sequence(3, seed=2, shapes=shapes)
  pairs = [(optkit.lmo_optimizer(0.1, "sign", b1=0.0), optkit.sign_descent(0.1)),
           (optkit.lmo_optimizer(0.1, optkit.lmo_spectral(method="svd"), b1=0.0),
            optkit.spectral_descent(0.1, method="svd"))]
  for ours, ref in pairs:
    for a, b in zip(_run(ours, grads), _run(ref, grads)):
      for k in shapes:
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-6)


def test_hand_computed_first_step():
  # m_1 = (1 - b1) g; lmo_l2 direction g / ||g||; decay 0.5 p; lr 0.1.
  opt = optkit.lmo_optimizer(0.1, "l2", b1=0.9, weight_decay=0.5)
  p = jnp.array([1.0, 2.0])
  g = jnp.array([3.0, -4.0])
  u, _ = opt.update(g, opt.init(p), p)
  np.testing.assert_allclose(u, [-0.1 * (0.6 + 0.5), -0.1 * (-0.8 + 1.0)], rtol=1e-6)


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("bias_correction", [False, True])
def test_momentum_options_match_numpy(nesterov, bias_correction):
  b1 = 0.8
  grads = [np.asarray(helpers.random_tree(i + 1)["a"], np.float64) for i in range(4)]
  tx = optkit.scale_by_lmo("l2", b1=b1, nesterov=nesterov, bias_correction=bias_correction)
  outs = _run(tx, [jnp.asarray(g, jnp.float32) for g in grads])
  m = np.zeros(5)
  for t, (g, u) in enumerate(zip(grads, outs), start=1):
    m = b1 * m + (1 - b1) * g
    if nesterov and bias_correction:
      x = b1 * m / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1 ** t)
    elif nesterov:
      x = b1 * m + (1 - b1) * g
    else:
      x = m / (1 - b1 ** t) if bias_correction else m
    np.testing.assert_allclose(u, x / np.linalg.norm(x), rtol=1e-5, atol=1e-6)


def _spectral_norm(x):
  return float(np.linalg.norm(np.asarray(x, np.float64), 2))


def test_lmo_outputs_have_unit_norm():
  g = helpers.random_tree(5, shapes={"m": (6, 4), "v": (7,)})
  svd = jax.jit(optkit.lmo_spectral(method="svd"))
  ns = jax.jit(optkit.lmo_spectral())
  assert abs(_spectral_norm(svd(g["m"])) - 1.0) < 1e-5
  assert abs(float(optkit.lmo_spectral().norm(svd(g["m"]))) - 1.0) < 1e-5
  # Newton-Schulz: every singular value in the quintic iteration's band.
  s = np.linalg.svd(np.asarray(ns(g["m"]), np.float64), compute_uv=False)
  assert np.all((s > 0.68) & (s < 1.21)), s
  for v in (g["m"], g["v"]):
    assert abs(float(np.linalg.norm(np.asarray(optkit.lmo_l2(v)))) - 1.0) < 1e-6
    assert float(np.max(np.abs(optkit.lmo_sign(v)))) == 1.0
  # The oracle minimizes <m, d>: <m, lmo(m)> = -(dual norm) < 0.
  np.testing.assert_allclose(float(jnp.sum(g["m"] * svd(g["m"]))),
                             -np.linalg.svd(np.asarray(g["m"]), compute_uv=False).sum(),
                             rtol=1e-5)
  # Zero input: finite (zero) output.
  assert float(jnp.abs(optkit.lmo_l2(jnp.zeros(3))).max()) == 0.0


def test_newton_schulz_lmo_close_to_exact_svd():
  g = np.asarray(helpers.random_tree(7, shapes={"m": (8, 5)})["m"], np.float64)
  u, _, vt = np.linalg.svd(g, full_matrices=False)
  exact = -u @ vt
  np.testing.assert_allclose(optkit.lmo_spectral(method="svd")(jnp.asarray(g, jnp.float32)),
                             exact, atol=1e-5)
  ns = np.asarray(optkit.lmo_spectral()(jnp.asarray(g, jnp.float32)), np.float64)
  # Same singular vectors as U V^T (U^T NS V is diagonal), values in the NS band.
  core = -(u.T @ ns @ vt.T)
  assert np.max(np.abs(core - np.diag(np.diag(core)))) < 1e-4
  assert np.all((np.diag(core) > 0.68) & (np.diag(core) < 1.21))
  assert _spectral_norm(ns - exact) < 0.32


def _ball_run(lmo, decay_first: bool, steps=300, lam=0.5, lr=0.05):
  """Quadratic pulling towards a point of norm 10/lam, start at 0."""
  c = jnp.asarray(helpers.random_tree(11, shapes={"x": (5, 4)})["x"])
  norm = (lmo.norm if isinstance(lmo, optkit.LMO) else optkit.lmo_spectral(method="svd").norm)
  c = c * (10.0 / lam) / norm(c)
  loss = lambda p: 0.5 * jnp.sum((p["x"] - c) ** 2)
  if decay_first:  # coupled: lambda x added to the gradient the LMO sees
    opt = optax.chain(optax.add_decayed_weights(lam), optkit.scale_by_lmo(lmo, b1=0.9),
                      optax.scale_by_learning_rate(lr))
  else:
    opt = optkit.lmo_optimizer(lr, lmo, b1=0.9, weight_decay=lam)
  out = helpers.run_closed_loop(opt, loss, {"x": jnp.zeros((5, 4))}, steps)
  return np.array([float(norm(p["x"])) for p, _, _ in out])


@pytest.mark.parametrize("name", ["spectral", "sign", "l2"])
def test_weight_decay_keeps_iterates_in_the_ball(name):
  lam = 0.5
  lmo = {"spectral": optkit.lmo_spectral(method="svd"), "sign": optkit.lmo_sign,
         "l2": optkit.lmo_l2}[name]
  norms = _ball_run(lmo, decay_first=False, lam=lam)
  assert norms.max() <= 1 / lam + 1e-4, norms.max()
  assert norms[-1] > 0.9 / lam          # the constraint is active
  # Negative control: coupled decay settles at c / (1 + lam), far outside.
  coupled = _ball_run(lmo, decay_first=True, lam=lam)
  assert coupled.max() > 1.5 / lam, coupled.max()


def test_leaves_by_rank():
  rng = np.random.default_rng(0)
  k = jnp.asarray(rng.standard_normal((3, 3, 2, 4)), jnp.float32)
  svd = jax.jit(optkit.lmo_spectral(method="svd"))

  def exact(m):
    u, _, vt = np.linalg.svd(np.asarray(m, np.float64), full_matrices=False)
    return -u @ vt

  # Default view of a conv kernel: (kh*kw*in, out).
  np.testing.assert_allclose(svd(k), exact(k.reshape(18, 4)).reshape(k.shape), atol=1e-5)
  # PyTorch layout (out, in, kh, kw) via dimension numbers.
  kt = jnp.transpose(k, (3, 2, 0, 1))
  lmo = jax.jit(optkit.lmo_spectral(method="svd", dimension_numbers=((1, 2, 3), (0,))))
  want = exact(kt.reshape(4, 18).T).T.reshape(kt.shape)
  np.testing.assert_allclose(lmo(kt), want, atol=1e-5)
  # 0-D / 1-D fallback: l2 (default) or sign.
  v = jnp.array([3.0, -4.0])
  np.testing.assert_allclose(svd(v), [-0.6, 0.8], atol=1e-6)
  np.testing.assert_allclose(optkit.lmo_spectral(fallback="sign")(v), [-1.0, 1.0])
  np.testing.assert_allclose(svd(jnp.array(-2.0)), 1.0)


def test_rank_errors_name_the_leaf():
  tx = optkit.scale_by_lmo(optkit.lmo_spectral(fallback=None))
  g = {"w": jnp.ones((3, 2)), "b": jnp.ones((2,))}
  with pytest.raises(ValueError, match=r"lmo.*\['b'\].*rank < 2"):
    tx.update(g, tx.init(g))
  tx = optkit.scale_by_lmo(optkit.lmo_spectral(dimension_numbers=((0, 1), (5,))))
  g = {"k": jnp.ones((2, 2, 3))}
  with pytest.raises(ValueError, match=r"lmo.*\['k'\].*dimension_numbers"):
    tx.update(g, tx.init(g))


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match="lmo_spectral.*ns_steps"):
    optkit.lmo_spectral(ns_steps=0)
  with pytest.raises(ValueError, match="lmo_spectral.*method"):
    optkit.lmo_spectral(method="qr")
  with pytest.raises(ValueError, match="lmo_spectral.*fallback"):
    optkit.lmo_spectral(fallback="rms")
  with pytest.raises(ValueError, match="lmo_spectral.*dimension_numbers"):
    optkit.lmo_spectral(dimension_numbers=(0,))
  with pytest.raises(ValueError, match="lmo.*`lmo`.*nuclear"):
    optkit.scale_by_lmo("nuclear")
  with pytest.raises(ValueError, match="lmo_optimizer.*lmo"):
    optkit.lmo_optimizer(0.1, 3.0)
  with pytest.raises(ValueError, match="lmo_optimizer.*b1"):
    optkit.lmo_optimizer(0.1, "sign", b1=1.5)
  with pytest.raises(ValueError, match="lmo_optimizer.*weight_decay"):
    optkit.lmo_optimizer(0.1, "sign", weight_decay=-1.0)
  with pytest.raises(ValueError, match="lmo.*nesterov"):
    optkit.scale_by_lmo("sign", nesterov=1)


def test_preset_names_and_factory_resolve():
  g = helpers.random_tree(4, shapes={"m": (4, 3)})
  a = optkit.scale_by_lmo("spectral", b1=0.0)
  b = optkit.scale_by_lmo(optkit.lmo_spectral, b1=0.0)
  c = optkit.scale_by_lmo(lambda m: -jnp.sign(m), b1=0.0)   # a custom callable
  np.testing.assert_array_equal(a.update(g, a.init(g))[0]["m"], b.update(g, b.init(g))[0]["m"])
  np.testing.assert_array_equal(c.update(g, c.init(g))[0]["m"], jnp.sign(g["m"]))


def test_matches_pytorch_optimizer_muon_fixture():
  """pytorch_optimizer 4.1.0 Muon (Newton-Schulz bound to float32 by
  tools/make_lmo_fixtures.py), torch (out, in) layout: replayed on W^T with
  Nesterov momentum, no bias correction, decoupled decay. Tolerance 1e-5
  absolute on the parameters (float32 rounding over 30 steps)."""
  data = np.load(helpers.fixture("orthogonal_lmo_muon.npz"))
  a, w_star = jnp.asarray(data["A"].T), jnp.asarray(data["W_star"].T)
  loss = lambda p: 0.5 * jnp.sum(a * (p["w"] - w_star) ** 2)

  def trajectory(nesterov):
    opt = optkit.lmo_optimizer(
        float(data["lr"]), optkit.lmo_spectral(int(data["ns_steps"])),
        b1=float(data["momentum"]), weight_decay=float(data["weight_decay"]),
        nesterov=nesterov)
    out = helpers.run_closed_loop(opt, loss, {"w": jnp.asarray(data["W0"].T)},
                                  len(data["trajectory"]))
    return np.stack([np.asarray(p["w"]).T for p, _, _ in out])

  ref = data["trajectory"]
  np.testing.assert_allclose(trajectory(True), ref, rtol=0, atol=1e-5)
  # Negative control: the paper's plain momentum (no Nesterov) differs.
  assert np.max(np.abs(trajectory(False) - ref)) > 1e-3
