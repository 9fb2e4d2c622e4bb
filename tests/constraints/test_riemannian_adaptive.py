"""Riemannian Adam / AMSGrad / AdaGrad (Bécigneul & Ganea, arXiv:1810.00760)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optkit.constraints import riemannian_adaptive as ra
from tests import helpers


def _run(opt, loss, x, steps, jit=True):
  state = opt.init(x)

  def step(x, state):
    u, state = opt.update(jax.grad(loss)(x), state, x)
    return optax.apply_updates(x, u), state

  step = jax.jit(step) if jit else step
  traj = [x]
  for _ in range(steps):
    x, state = step(x, state)
    traj.append(x)
  return jnp.stack(traj)


def test_euclidean_per_coordinate_is_amsgrad_without_bias_correction():
  params = helpers.random_tree(0)
  grads = helpers.gradient_sequence(6, seed=1)
  for ams in (False, True):
    ours = ra.riemannian_adam(0.1, amsgrad=ams)
    ref = (optax.amsgrad(0.1, bias_correction_mu=False, bias_correction_nu=False) if ams
           else optax.adam(0.1, nesterov=False))
    if not ams:  # optax.adam always bias-corrects: compare the bias-corrected form
      ours = ra.riemannian_adam(0.1, bias_correction=True)
    a = helpers.run_open_loop(ours, params, grads)
    b = helpers.run_open_loop(ref, params, grads)
    for (ua, _), (ub, _) in zip(a, b):
      for x, y in zip(jax.tree.leaves(ua), jax.tree.leaves(ub)):
        np.testing.assert_allclose(x, y, rtol=2e-5, atol=1e-7)


def test_one_second_moment_scalar_per_component():
  x = ra.sphere().proj(jnp.ones((5, 3)))
  state = ra.riemannian_adam(0.1, ra.sphere()).init(x)
  assert state.nu.shape == (5,) and state.mu.shape == (5, 3)
  state = ra.riemannian_adam(0.1, ra.stiefel()).init(jnp.eye(4, 2))
  assert state.nu.shape == ()


def test_adagrad_first_step_by_hand():
  # Poincare ball: g_R = (1 - ||x||^2)^2 / 4 g_E, ||g_R||_x = lambda_x ||g_R||, one v per row.
  ball = ra.poincare_ball()
  x = jnp.array([[0.5, 0.0]])
  g = jnp.array([[0.0, 2.0]])
  opt = ra.riemannian_adagrad(0.1, ball, eps=1e-12)
  u, state = opt.update(g, opt.init(x), x)
  lam = 2.0 / (1 - 0.25)
  rg = (1 - 0.25) ** 2 / 4 * 2.0
  np.testing.assert_allclose(state.nu, [(lam * rg) ** 2], rtol=1e-6)
  expected = ball.expmap(x, -0.1 * jnp.array([[0.0, rg]]) / (lam * rg))
  np.testing.assert_allclose(x + u, expected, rtol=1e-6, atol=1e-7)


def test_sphere_iterates_stay_on_sphere_while_adam_leaves_it():
  rng = np.random.default_rng(0)
  m = rng.standard_normal((6, 6))
  b = jnp.asarray(m + m.T, jnp.float32)
  loss = lambda x: jnp.sum((x @ b) * x)
  x0 = ra.sphere().proj(jnp.asarray(rng.standard_normal((3, 6)), jnp.float32))
  traj = _run(ra.riemannian_adam(0.05, ra.sphere()), loss, x0, 200)
  norms = jnp.linalg.norm(traj, axis=-1)
  assert float(jnp.max(jnp.abs(norms - 1))) < 1e-5
  # converges to the smallest eigenvector: Rayleigh quotient -> lambda_min
  lam_min = float(np.linalg.eigvalsh(np.asarray(b))[0])
  np.testing.assert_allclose(jnp.sum((traj[-1] @ b) * traj[-1], -1), lam_min, atol=1e-2)
  # negative control: Euclidean Adam leaves the sphere
  eucl = jnp.linalg.norm(_run(optax.adam(0.05), loss, x0, 200), axis=-1)
  assert float(jnp.max(jnp.abs(eucl - 1))) > 0.1


def test_poincare_iterates_stay_inside_ball_while_adam_leaves_it():
  target = jnp.array([[3.0, 0.0], [0.0, -2.0]])     # outside the unit ball
  loss = lambda x: 0.5 * jnp.sum((x - target) ** 2)
  x0 = jnp.array([[0.1, 0.2], [-0.3, 0.1]])
  for opt in (ra.riemannian_adam(0.1, ra.poincare_ball()),
              ra.riemannian_amsgrad(0.1, ra.poincare_ball()),
              ra.riemannian_adagrad(0.5, ra.poincare_ball())):
    traj = _run(opt, loss, x0, 200)
    assert float(jnp.max(jnp.linalg.norm(traj, axis=-1))) < 1.0
    assert bool(jnp.all(jnp.isfinite(traj)))
  eucl = _run(optax.adam(0.1), loss, x0, 200)
  assert float(jnp.max(jnp.linalg.norm(eucl, axis=-1))) > 1.5


def test_stiefel_iterates_stay_orthonormal():
  rng = np.random.default_rng(1)
  a = jnp.asarray(rng.standard_normal((5, 5)), jnp.float32)
  a = a + a.T
  loss = lambda x: jnp.trace(x.T @ a @ x)
  x0 = ra.stiefel().proj(jnp.asarray(rng.standard_normal((5, 2)), jnp.float32))
  traj = _run(ra.riemannian_adam(0.05, ra.stiefel()), loss, x0, 100)
  gram = jnp.einsum("tij,tik->tjk", traj, traj)
  assert float(jnp.max(jnp.abs(gram - jnp.eye(2)))) < 1e-5
  assert float(loss(traj[-1])) < float(loss(traj[0])) - 1.0
  eucl = _run(optax.adam(0.05), loss, x0, 100)
  assert float(jnp.max(jnp.abs(eucl[-1].T @ eucl[-1] - jnp.eye(2)))) > 0.1


@pytest.mark.parametrize("manifold", [ra.poincare_ball(1.0), ra.poincare_ball(0.5), ra.sphere()])
def test_parallel_transport_preserves_riemannian_norm_and_follows_geodesic(manifold):
  with jax.enable_x64(True):
    k = jax.random.split(jax.random.key(0), 3)
    x = manifold.proj(0.2 * jax.random.normal(k[0], (6, 4), jnp.float64))
    u = manifold.egrad2rgrad(x, 0.5 * jax.random.normal(k[1], (6, 4), jnp.float64))
    v = manifold.egrad2rgrad(x, jax.random.normal(k[2], (6, 4), jnp.float64))
    y = manifold.expmap(x, u)
    pv = manifold.transp(x, u, v)
    np.testing.assert_allclose(manifold.inner(y, pv, pv), manifold.inner(x, v, v), rtol=1e-10)
    # the geodesic's velocity is transported into its velocity at t = 1
    vel = jax.jvp(lambda t: manifold.expmap(x, t * u), (1.0,), (1.0,))[1]
    np.testing.assert_allclose(manifold.transp(x, u, u), vel, atol=1e-10)
    # negative control: the untransported vector is no tangent vector of the same
    # length at y (the ball's metric changes; on the sphere v leaves T_y)
    if isinstance(manifold, ra.Sphere):
      assert float(jnp.max(jnp.abs(jnp.sum(y * v, -1)))) > 1e-3
    else:
      assert float(jnp.max(jnp.abs(manifold.inner(y, v, v) - manifold.inner(x, v, v)))) > 1e-3


def test_matches_geoopt_fixture():
  """geoopt 0.5.1 RiemannianAdam (bias-corrected), float64, 25 steps: rtol 1e-9."""
  data = np.load(helpers.fixture("constraints_riemannian_adam.npz"))
  lr = float(data["lr"])
  with jax.enable_x64(True):
    a, b = jnp.asarray(data["a"]), jnp.asarray(data["b"])
    ball_loss = lambda x: 0.5 * jnp.sum((x - a) ** 2)
    sph_loss = lambda x: jnp.einsum("ij,jk,ik->", x, b, x)
    for tag, ams in (("adam", False), ("amsgrad", True)):
      cases = ((ra.poincare_ball(1.0), ball_loss, "x_ball", "ball"),
               (ra.sphere("projection"), sph_loss, "x_sph", "sphere"))
      for manifold, loss, x0, name in cases:
        opt = ra.riemannian_adam(lr, manifold, amsgrad=ams, bias_correction=True)
        traj = _run(opt, loss, jnp.asarray(data[x0]), 25)
        np.testing.assert_allclose(traj, data[f"{name}_{tag}"], rtol=1e-9, atol=1e-11,
                                   err_msg=f"{name} {tag}")
    # negative control: the paper's parallel transport on the sphere differs from
    # geoopt's projection transport, and omitting the bias correction differs more.
    traj = _run(ra.riemannian_adam(lr, ra.sphere(), bias_correction=True), sph_loss,
                jnp.asarray(data["x_sph"]), 25)
    assert np.max(np.abs(traj - data["sphere_adam"])) > 1e-9
    traj = _run(ra.riemannian_adam(lr, ra.poincare_ball()), ball_loss,
                jnp.asarray(data["x_ball"]), 25)
    assert np.max(np.abs(traj - data["ball_adam"])) > 1e-3


def test_bad_hyperparameters_and_manifolds_raise():
  with pytest.raises(ValueError, match="riemannian_adam"):
    ra.riemannian_adam(0.1, b1=1.5)
  with pytest.raises(ValueError, match="riemannian_amsgrad"):
    ra.riemannian_amsgrad(-1.0)
  with pytest.raises(ValueError, match="riemannian_adagrad"):
    ra.riemannian_adagrad(0.1, eps=0.0)
  with pytest.raises(ValueError, match="poincare_ball"):
    ra.poincare_ball(0.0)
  opt = ra.riemannian_adam(0.1, ra.sphere())
  with pytest.raises(ValueError, match="riemannian_adam"):
    opt.init({"c": jnp.zeros(())})   # a scalar is no point of a sphere
  opt = ra.riemannian_adam(0.1, {"a": ra.sphere(), "b": "nope"})
  with pytest.raises(ValueError, match="riemannian_adam"):
    opt.init({"a": jnp.ones((2, 3)), "b": jnp.ones(3)})
  with pytest.raises(ValueError, match="riemannian_adam"):
    opt = ra.riemannian_adam(0.1)
    opt.update(jnp.ones(3), opt.init(jnp.ones(3)), None)


def test_tree_of_manifolds_prefix():
  params = {"emb": ra.poincare_ball().proj(0.1 * jnp.ones((4, 2))), "w": jnp.ones(3)}
  opt = ra.riemannian_adam(0.1, {"emb": ra.poincare_ball(), "w": ra.euclidean()})
  u, state = opt.update({"emb": jnp.ones((4, 2)), "w": jnp.ones(3)}, opt.init(params), params)
  assert state.nu["emb"].shape == (4,) and state.nu["w"].shape == (3,)
  # Euclidean leaf: first step of Adam without bias correction = -lr g / (sqrt(0.001) |g| + eps)
  np.testing.assert_allclose(u["w"], -0.1 * 0.1 / (np.sqrt(0.001) + 1e-8), rtol=1e-5)
