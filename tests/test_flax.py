"""optkit inside Flax training loops: nnx.Optimizer with value_fn, linen TrainState."""

import flax.linen as linen
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from flax.training import train_state

import optkit
import optkit.flax


def _data():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((64, 4)).astype(np.float32)
  y = np.sin(x @ rng.standard_normal((4, 1))).astype(np.float32)
  return jnp.asarray(x), jnp.asarray(y)


class MLP(nnx.Module):

  def __init__(self, rngs):
    self.l1 = nnx.Linear(4, 16, rngs=rngs)
    self.l2 = nnx.Linear(16, 1, rngs=rngs)
    self.calls = nnx.Variable(jnp.array(0))  # non-Param state must be kept, not optimized

  def __call__(self, x):
    return self.l2(jnp.tanh(self.l1(x)))


def test_nnx_value_fn_matches_model_loss():
  x, y = _data()
  model = MLP(nnx.Rngs(0))
  loss_fn = lambda m: jnp.mean((m(x) - y) ** 2)
  vf = optkit.flax.nnx_value_fn(model, loss_fn)
  params = nnx.as_pure(nnx.state(model, nnx.Param))
  np.testing.assert_allclose(vf(params), loss_fn(model), rtol=1e-6)
  shifted = jax.tree.map(lambda p: p + 0.1, params)
  assert abs(float(vf(shifted)) - float(loss_fn(model))) > 1e-4


def test_nnx_optimizer_trains_with_adahessian_and_value_fn():
  x, y = _data()
  model = MLP(nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, optkit.adahessian(learning_rate=0.05), wrt=nnx.Param)

  @nnx.jit
  def train_step(model, optimizer):
    loss_fn = lambda m: jnp.mean((m(x) - y) ** 2)
    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads, value_fn=optkit.flax.nnx_value_fn(model, loss_fn))
    return loss

  losses = [float(train_step(model, optimizer)) for _ in range(150)]
  assert np.all(np.isfinite(losses))
  assert losses[-1] < 0.3 * losses[0], (losses[0], losses[-1])


def test_nnx_optimizer_without_value_fn_raises_clearly():
  x, y = _data()
  model = MLP(nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, optkit.adahessian(learning_rate=0.05), wrt=nnx.Param)
  grads = nnx.grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
  try:
    optimizer.update(model, grads)
  except ValueError as e:
    assert "adahessian" in str(e) and "value_fn" in str(e)
  else:
    raise AssertionError("missing value_fn did not raise")


class LinenMLP(linen.Module):

  @linen.compact
  def __call__(self, x):
    return linen.Dense(1)(jnp.tanh(linen.Dense(16)(x)))


def test_linen_train_state_with_lion_k():
  x, y = _data()
  model = LinenMLP()
  params = model.init(jax.random.key(0), x)["params"]
  state = train_state.TrainState.create(apply_fn=model.apply, params=params,
                                        tx=optkit.lion_k(learning_rate=3e-3))

  @jax.jit
  def train_step(state):
    loss_fn = lambda p: jnp.mean((state.apply_fn({"params": p}, x) - y) ** 2)
    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    return state.apply_gradients(grads=grads), loss

  losses = []
  for _ in range(200):
    state, loss = train_step(state)
    losses.append(float(loss))
  assert losses[-1] < 0.3 * losses[0], (losses[0], losses[-1])
  assert int(state.step) == 200


def test_linen_apply_gradients_forwards_value_fn():
  x, y = _data()
  model = LinenMLP()
  params = model.init(jax.random.key(0), x)["params"]
  tx = optkit.adversarial_model_perturbation(optax.sgd(0.1), epsilon=0.05)
  state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)
  loss = lambda out: jnp.mean((out - y) ** 2)
  value_fn = optkit.flax.linen_value_fn(model.apply, loss, x)
  grads = jax.grad(value_fn)(state.params)
  new = jax.jit(lambda s, g: optkit.flax.apply_gradients(s, g, value_fn=value_fn))(state, grads)
  assert int(new.step) == 1
  assert float(value_fn(new.params)) < float(value_fn(state.params))
