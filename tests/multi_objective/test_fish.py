"""Fish (arXiv:2104.09937): reductions, the second-order expansion on quadratics
(its gradient-matching term), random domain order and inner-state handling."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit

RNG = np.random.default_rng(0)
D, S = 4, 3
_M = [RNG.standard_normal((D, D)) for _ in range(S)]
A = [m @ m.T / D + 0.5 * np.eye(D) for m in _M]  # SPD, different per domain
C = [RNG.standard_normal(D) for _ in range(S)]


def _losses(dtype=jnp.float64):
  return [lambda th, a=jnp.asarray(a, dtype), c=jnp.asarray(c, dtype):
          0.5 * (th - c) @ a @ (th - c) for a, c in zip(A, C)]


def _inner_disp(alpha, order, theta):
  """Exact θ̃ - θ for SGD steps on the quadratics, float64 NumPy."""
  t = np.array(theta, np.float64)
  for d in order:
    t = t - alpha * A[d] @ (t - C[d])
  return t - theta


def test_one_domain_meta_lr_one_is_one_inner_step():
  loss = _losses(jnp.float32)[0]
  f = optkit.fish([loss], optax.sgd(0.1), meta_lr=1.0)
  theta = jnp.ones(D, jnp.float32)
  new, _ = f.step(theta, f.init(theta))
  np.testing.assert_allclose(new, theta - 0.1 * jax.grad(loss)(theta), rtol=1e-6)


def test_meta_lr_one_is_sequential_sgd_and_meta_lr_scales():
  with jax.enable_x64(True):
    theta = jnp.asarray(RNG.standard_normal(D))
    f1 = optkit.fish(_losses(), optax.sgd(0.05), meta_lr=1.0, shuffle=False)
    new1, _ = f1.step(theta, f1.init(theta))
    np.testing.assert_allclose(new1 - theta, _inner_disp(0.05, range(S), theta), rtol=1e-12)
    f2 = optkit.fish(_losses(), optax.sgd(0.05), meta_lr=0.3, shuffle=False)
    new2, _ = f2.step(theta, f2.init(theta))
    np.testing.assert_allclose(new2 - theta, 0.3 * (new1 - theta), rtol=1e-12)
    # Not an average of per-domain steps (negative control for the sequential form).
    avg = np.mean([_inner_disp(0.05, [d], theta) for d in range(S)], axis=0) * S
    assert np.abs((new1 - theta) - avg).max() > 1e-4


def test_second_order_expansion_on_quadratics():
  """θ̃ - θ = -αΣg + α²Σ_{j<k} H_{d_k} g_{d_j} + O(α³): halving α divides the
  error by ~8; the first-order term alone (negative control) only by ~4."""
  with jax.enable_x64(True):
    theta = jnp.asarray(RNG.standard_normal(D))
    order = [2, 0, 1]
    errs, errs1 = [], []
    for alpha in (0.02, 0.01):
      exact = _inner_disp(alpha, order, np.asarray(theta))
      approx = optkit.fish_first_order_update(_losses(), theta, alpha, order=order)
      first = -alpha * sum(np.asarray(jax.grad(f)(theta)) for f in _losses())
      errs.append(np.linalg.norm(exact - np.asarray(approx)))
      errs1.append(np.linalg.norm(exact - first))
    assert 6.5 < errs[0] / errs[1] < 9.5, errs
    assert 3.5 < errs1[0] / errs1[1] < 4.5, errs1
    # The analytic α² term for quadratics: Σ_{j<k} A_{d_k} A_{d_j}(θ - c_{d_j}).
    alpha = 0.01
    g = [A[d] @ (np.asarray(theta) - C[d]) for d in range(S)]
    analytic = -alpha * sum(g) + alpha ** 2 * sum(
        A[order[k]] @ g[order[j]] for k in range(S) for j in range(k))
    approx = optkit.fish_first_order_update(_losses(), theta, alpha, order=order)
    np.testing.assert_allclose(approx, analytic, rtol=1e-12)


def test_expected_update_ascends_gradient_inner_product():
  """Averaged over all orders, the α² term is (α²/2)∇Σ_{i<j}<g_i, g_j>."""
  import itertools
  with jax.enable_x64(True):
    theta = jnp.asarray(RNG.standard_normal(D))
    alpha = 0.05
    orders = list(itertools.permutations(range(S)))
    mean = np.mean([np.asarray(optkit.fish_first_order_update(
        _losses(), theta, alpha, order=o)) for o in orders], axis=0)
    expected = optkit.fish_first_order_update(_losses(), theta, alpha, expected=True)
    np.testing.assert_allclose(mean, expected, rtol=1e-12)

    def gip(th):
      gs = [jax.grad(f)(th) for f in _losses()]
      return sum(gs[i] @ gs[j] for i in range(S) for j in range(i + 1, S))

    sum_g = sum(jax.grad(f)(theta) for f in _losses())
    np.testing.assert_allclose(expected, -alpha * sum_g + 0.5 * alpha ** 2 * jax.grad(gip)(theta),
                               rtol=1e-10)


def test_domain_order_is_random_each_step_and_seeded():
  theta = jnp.ones(D, jnp.float32)

  def outputs(f, n=8):
    state = f.init(theta)
    step = jax.jit(f.step)
    outs = []
    for _ in range(n):
      new, state = step(theta, state)  # same point, state (key) advances
      outs.append(np.asarray(new))
    return outs

  losses = _losses(jnp.float32)
  a = outputs(optkit.fish(losses, optax.sgd(0.2), seed=3))
  b = outputs(optkit.fish(losses, optax.sgd(0.2), seed=3))
  np.testing.assert_array_equal(np.stack(a), np.stack(b))
  assert len({x.tobytes() for x in a}) > 1
  fixed = outputs(optkit.fish(losses, optax.sgd(0.2), shuffle=False))
  assert len({x.tobytes() for x in fixed}) == 1


def test_inner_state_reset_or_warm_started():
  theta = jnp.ones(D, jnp.float32)
  losses = _losses(jnp.float32)
  cold = optkit.fish(losses, optax.adam(0.1), shuffle=False)
  warm = optkit.fish(losses, optax.adam(0.1), shuffle=False, warm_start=True)
  sc, sw = cold.init(theta), warm.init(theta)
  pc, sc = cold.step(theta, sc)
  pw, sw = warm.step(theta, sw)
  np.testing.assert_array_equal(pc, pw)  # first step identical
  pc2, sc = cold.step(pc, sc)
  pw2, sw = warm.step(pw, sw)
  assert int(optax.tree.get(sw.inner_state, "count")) == 2 * S
  assert int(optax.tree.get(sc.inner_state, "count")) == S
  assert not np.allclose(pc2, pw2)


def test_single_loss_with_domain_batches():
  loss = lambda th, batch: 0.5 * jnp.sum((th - batch) ** 2)
  batches = [jnp.zeros(2), jnp.full(2, 2.0)]
  f = optkit.fish(loss, optax.sgd(0.5), meta_lr=1.0, shuffle=False)
  new, _ = f.step(jnp.ones(2), f.init(jnp.ones(2)), batches)
  np.testing.assert_allclose(new, [1.25, 1.25])  # 1 -> 0.5 -> 1.25


def test_fish_trains_and_keeps_dtype():
  theta = jnp.zeros(D, jnp.bfloat16)
  f = optkit.fish(_losses(jnp.float32), optax.sgd(0.05))
  state = f.init(theta)
  step = jax.jit(f.step)
  total = lambda th: sum(l(th.astype(jnp.float32)) for l in _losses(jnp.float32))
  start = float(total(theta))
  for _ in range(100):
    theta, state = step(theta, state)
  assert theta.dtype == jnp.bfloat16
  assert float(total(theta)) < 0.8 * start


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match="fish"):
    optkit.fish(_losses(jnp.float32), optax.sgd(0.1), meta_lr=0.0)
  with pytest.raises(ValueError, match="fish"):
    optkit.fish([], optax.sgd(0.1))
  with pytest.raises(ValueError, match="fish.*batches"):
    f = optkit.fish(lambda th, b: jnp.sum(th), optax.sgd(0.1))
    f.step(jnp.ones(2), f.init(jnp.ones(2)))
  with pytest.raises(ValueError, match="fish.*order"):
    optkit.fish_first_order_update(_losses(jnp.float32), jnp.ones(D), 0.1, order=[0, 0, 1])
