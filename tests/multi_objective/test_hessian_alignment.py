"""Hessian alignment penalty (arXiv:2308.11778): torch-autograd fixture of the
official HGP form, analytic quadratic cases, Hutchinson, and the stop-gradient centers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optkit
from tests import helpers

FIX = helpers.fixture("multi_objective_hessian_alignment.npz")
RNG = np.random.default_rng(1)
D, E = 3, 3
_M = [RNG.standard_normal((D, D)) for _ in range(E)]
A = [m @ m.T / D + 0.3 * np.eye(D) for m in _M]
C = [RNG.standard_normal(D) for _ in range(E)]


def _quad_losses(a_list=A, c_list=C):
  def losses(theta):
    return jnp.stack([0.5 * (theta - c) @ jnp.asarray(a) @ (theta - c)
                      for a, c in zip(a_list, c_list)])
  return losses


def test_matches_torch_reference_penalty_and_gradient():
  """Value and d(mean risk + penalty)/d(all params) vs torch autograd of the official
  HGP form (float64, head = W2, b2): rtol 1e-9."""
  d = np.load(FIX)
  with jax.enable_x64(True):
    xs = [jnp.asarray(d[f"x_{e}"]) for e in range(3)]
    ys = [jnp.asarray(d[f"y_{e}"]) for e in range(3)]
    params = {k: jnp.asarray(d[k]) for k in ("W1", "b1", "W2", "b2")}

    def losses(p):
      out = []
      for x, y in zip(xs, ys):
        logits = jnp.tanh(x @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]
        out.append(jnp.mean(jax.nn.logsumexp(logits, axis=1)
                            - jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0]))
      return jnp.stack(out)

    head = {"W1": False, "b1": False, "W2": True, "b2": True}
    alpha, beta = float(d["alpha"]), float(d["beta"])

    def total(p):
      return jnp.mean(losses(p)) + optkit.hessian_alignment_penalty(
          losses, p, alpha, beta, head_filter=head)

    pen, grads = jax.jit(jax.value_and_grad(total))(params)
    np.testing.assert_allclose(pen - jnp.mean(losses(params)), d["penalty"], rtol=1e-9)
    for k in params:
      np.testing.assert_allclose(grads[k], d[f"grad_{k}"], rtol=1e-9, atol=1e-12)


def test_hgp_on_quadratics_matches_analytic_expression():
  """g_e = A_e(θ - c_e), H_e g_e = A_e² (θ - c_e), center H̄ḡ = mean(A)·mean(g)."""
  with jax.enable_x64(True):
    theta = jnp.asarray(RNG.standard_normal(D))
    alpha, beta = 0.4, 1.3
    g = [a @ (np.asarray(theta) - c) for a, c in zip(A, C)]
    hg = [a @ gi for a, gi in zip(A, g)]
    g_bar = np.mean(g, axis=0)
    center = np.mean(A, axis=0) @ g_bar
    expected = np.mean([alpha * np.sum((h - center) ** 2) + beta * np.sum((gi - g_bar) ** 2)
                        for h, gi in zip(hg, g)])
    pen_fn = lambda t: optkit.hessian_alignment_penalty(_quad_losses(), t, alpha, beta)
    got, got_grad = jax.jit(jax.value_and_grad(pen_fn))(theta)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # Gradient with the centers held fixed (stop_gradient), as in the official code:
    # (2/E) Σ_e [α A_e²(A_e g_e - center) + β A_e (g_e - ḡ)].
    expected_grad = np.mean([2 * alpha * a @ a @ (h - center) + 2 * beta * a @ (gi - g_bar)
                             for a, h, gi in zip(A, hg, g)], axis=0)
    np.testing.assert_allclose(got_grad, expected_grad, rtol=1e-10)
    # Negative control: differentiating through the centers gives another gradient.
    def no_stop(t):
      gs = [jnp.asarray(a) @ (t - c) for a, c in zip(A, C)]
      gb = sum(gs) / E
      cen = jnp.asarray(np.mean(A, axis=0)) @ gb
      return sum(alpha * jnp.sum((jnp.asarray(a) @ gi - cen) ** 2)
                 + beta * jnp.sum((gi - gb) ** 2) for a, gi in zip(A, gs)) / E
    assert np.abs(jax.grad(no_stop)(theta) - expected_grad).max() > 1e-3


@pytest.mark.parametrize("method", ["hgp", "hutchinson"])
def test_identical_domains_give_zero_penalty(method):
  with jax.enable_x64(True):
    theta = jnp.asarray(RNG.standard_normal(D))
    same = _quad_losses([A[0]] * E, [C[0]] * E)
    pen_fn = jax.jit(lambda t, k: (
        optkit.hessian_alignment_penalty(same, t, 1.0, 1.0, method, key=k, num_samples=4),
        optkit.hessian_alignment_penalty(_quad_losses(), t, 1.0, 1.0, method, key=k,
                                         num_samples=4)))
    pen, pen2 = pen_fn(theta, jax.random.key(0))
    assert float(pen) == pytest.approx(0.0, abs=1e-20)
    # Negative control: different domains are penalized.
    assert float(pen2) > 1e-2


def test_hutchinson_is_exact_for_diagonal_hessians():
  """Rademacher probes give diag(H) exactly when H is diagonal (any draw)."""
  with jax.enable_x64(True):
    diags = [np.abs(RNG.standard_normal(D)) + 0.1 for _ in range(E)]
    theta = jnp.asarray(RNG.standard_normal(D))
    losses = _quad_losses([np.diag(v) for v in diags], C)
    alpha, beta = 0.5, 0.2
    g = [v * (np.asarray(theta) - c) for v, c in zip(diags, C)]
    g_bar = np.mean(g, axis=0)
    d_bar = np.mean(diags, axis=0)
    expected = np.mean([alpha * np.sum((v - d_bar) ** 2) + beta * np.sum((gi - g_bar) ** 2)
                        for v, gi in zip(diags, g)])
    got = optkit.hessian_alignment_penalty(losses, theta, alpha, beta, "hutchinson",
                                           key=jax.random.key(3), num_samples=2)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_hutchinson_converges_to_exact_diagonal_term():
  """Non-diagonal Hessians: the Hessian term tends to Σ||diag(A_e) - diag(Ā)||²/E
  (the HGP value differs: negative control)."""
  with jax.enable_x64(True):
    theta = jnp.asarray(RNG.standard_normal(D))
    d_bar = np.mean([np.diag(a) for a in A], axis=0)
    exact = np.mean([np.sum((np.diag(a) - d_bar) ** 2) for a in A])
    hutch = jax.jit(lambda t, k: optkit.hessian_alignment_penalty(
        _quad_losses(), t, 1.0, 0.0, "hutchinson", key=k, num_samples=1000))
    est = hutch(theta, jax.random.key(1))
    assert abs(float(est) - exact) < 0.1 * exact
    hgp = optkit.hessian_alignment_penalty(_quad_losses(), theta, 1.0, 0.0, "hgp")
    assert abs(float(hgp) - exact) > 0.1 * exact
    # Same key, same value.
    again = hutch(theta, jax.random.key(1))
    assert float(again) == float(est)


def test_head_filter_restricts_alignment():
  with jax.enable_x64(True):
    params = {"body": jnp.asarray(RNG.standard_normal(2)), "head": jnp.asarray(RNG.standard_normal(2))}

    def losses(p):  # domains differ only through the body parameter's loss
      return jnp.stack([jnp.sum(p["head"] ** 2) + e * jnp.sum(p["body"] ** 2)
                        for e in range(1, 4)])

    full = optkit.hessian_alignment_penalty(losses, params, 1.0, 1.0)
    head_only = optkit.hessian_alignment_penalty(losses, params, 1.0, 1.0,
                                                 head_filter={"body": False, "head": True})
    assert float(full) > 1e-2
    assert float(head_only) == pytest.approx(0.0, abs=1e-20)
    via_fn = optkit.hessian_alignment_penalty(
        losses, params, 1.0, 1.0, head_filter=lambda p: {"body": False, "head": True})
    assert float(via_fn) == float(head_only)


def test_jittable_in_float32():
  losses = _quad_losses()
  pen = jax.jit(lambda t: optkit.hessian_alignment_penalty(losses, t, 0.1, 0.1))
  t = jnp.ones(D, jnp.float32)
  assert pen(t).dtype == jnp.float32 and np.isfinite(float(pen(t)))


def test_bad_arguments_raise():
  losses = _quad_losses()
  t = jnp.ones(D)
  with pytest.raises(ValueError, match="hessian_alignment_penalty"):
    optkit.hessian_alignment_penalty(losses, t, -1.0, 1.0)
  with pytest.raises(ValueError, match="hessian_alignment_penalty.*method"):
    optkit.hessian_alignment_penalty(losses, t, 1.0, 1.0, method="exact")
  with pytest.raises(ValueError, match="hessian_alignment_penalty.*key"):
    optkit.hessian_alignment_penalty(losses, t, 1.0, 1.0, method="hutchinson")
  with pytest.raises(ValueError, match="hessian_alignment_penalty.*vector"):
    optkit.hessian_alignment_penalty(lambda p: jnp.sum(p), t, 1.0, 1.0)
  with pytest.raises(ValueError, match="hessian_alignment_penalty.*head_filter"):
    optkit.hessian_alignment_penalty(losses, t, 1.0, 1.0, head_filter=False)
