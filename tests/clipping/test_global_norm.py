"""What makes global / block norm clipping what it is (arXiv:1211.5063); the
contract suite covers the rest."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from tests import helpers

FIXTURE = helpers.fixture("clipping_global_norm.npz")


def _flat(tree):
  return np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree.leaves(tree)])


def _apply(tx, g, state=None):
  state = tx.init(g) if state is None else state
  return tx.update(g, state)


@pytest.mark.parametrize("scale", [0.01, 1.0, 10.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_equals_optax_and_clips_to_min_norm_keeping_direction(scale, seed):
  """Catalog tests (1)-(3): equals optax; ||out|| = min(||g||, c); cosine 1."""
  g = helpers.random_tree(seed, scale)
  c = 1.0
  out, state = _apply(optkit.clip_by_global_norm(c), g)
  ref, _ = optax.clip_by_global_norm(c).update(g, optax.EmptyState())
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), out, ref)
  n = np.linalg.norm(_flat(g))
  np.testing.assert_allclose(np.linalg.norm(_flat(out)), min(n, c), rtol=1e-6)
  cos = _flat(out) @ _flat(g) / (np.linalg.norm(_flat(out)) * n)
  np.testing.assert_allclose(cos, 1.0, rtol=1e-6)
  np.testing.assert_allclose(state.norm, n, rtol=1e-6)       # pre-clip norm kept
  for k in g:
    np.testing.assert_allclose(state.leaf_norms[k], np.linalg.norm(np.ravel(g[k])), rtol=1e-6)


def test_matches_torch_clip_grad_norm_fixture():
  """torch.nn.utils.clip_grad_norm_ scales by c / (||g|| + 1e-6) clamped at 1;
  optkit (as optax) by c / ||g||: equal to rtol 1e-5 for ||g|| >= 0.1 (the
  1e-6 offset is a relative 1e-5 at most); the total norm to 1e-6."""
  data = np.load(FIXTURE)
  cases = sorted({k.split("__")[0] for k in data.files if k.startswith("case")})
  assert len(cases) == 4
  clipped_some = False
  for case in cases:
    keys = sorted(k.split("__")[2] for k in data.files if k.startswith(case + "__grad__"))
    g = {k: jnp.asarray(data[f"{case}__grad__{k}"]) for k in keys}
    c = float(data[f"{case}__max_norm"])
    out, state = _apply(optkit.clip_by_global_norm(c), g)
    np.testing.assert_allclose(state.norm, data[f"{case}__total_norm"], rtol=1e-6)
    for k in keys:
      np.testing.assert_allclose(out[k], data[f"{case}__clipped__{k}"], rtol=1e-5, atol=1e-7)
      clipped_some |= not np.allclose(data[f"{case}__clipped__{k}"], data[f"{case}__grad__{k}"])
  assert clipped_some   # the fixture does exercise clipping


def test_schedule_threshold_follows_the_step_count():
  """Catalog test (4): c as a schedule changes with the count."""
  g = {"a": jnp.array([3.0, 4.0])}
  tx = optkit.clip_by_global_norm(lambda t: jnp.where(t < 1, 1.0, 2.0))
  u1, s = _apply(tx, g)
  u2, s = tx.update(g, s)
  np.testing.assert_allclose(np.linalg.norm(u1["a"]), 1.0, rtol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(u2["a"]), 2.0, rtol=1e-6)
  assert int(s.count) == 2


def test_zero_gradient_and_bf16():
  z = {"a": jnp.zeros(3), "b": jnp.zeros(())}
  out, _ = _apply(optkit.clip_by_global_norm(1.0), z)
  assert all(np.all(np.asarray(x) == 0) for x in jax.tree.leaves(out))
  # bf16 leaves whose squares sum past bf16's precision: the norm is formed in
  # float32, the output is bf16.
  g = {"a": jnp.full((300,), 3.0, jnp.bfloat16)}
  out, s = _apply(optkit.clip_by_global_norm(1.0), g)
  assert out["a"].dtype == jnp.bfloat16
  np.testing.assert_allclose(s.norm, 3.0 * np.sqrt(300.0), rtol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(np.asarray(out["a"], np.float32)), 1.0, rtol=1e-2)


def test_block_norm_clips_each_leaf_and_equals_optax_block_rms():
  g = helpers.random_tree(3, 2.0)
  c = 1.0
  out, _ = _apply(optkit.clip_by_block_norm(c), g)
  for k in g:
    n = np.linalg.norm(np.ravel(g[k]))
    np.testing.assert_allclose(np.linalg.norm(np.ravel(out[k])), min(n, c), rtol=1e-6)
    ref, _ = optax.clip_by_block_rms(c / np.sqrt(max(np.size(g[k]), 1))).update(
        g[k], optax.EmptyState())
    np.testing.assert_allclose(out[k], ref, rtol=1e-6)
  # Negative control: global clipping does not bound every leaf by c the same way
  # (a small leaf is shrunk too, a large one is not clipped to c alone).
  big = {"a": jnp.full((4,), 10.0), "b": jnp.full((4,), 0.1)}
  glob, _ = _apply(optkit.clip_by_global_norm(c), big)
  block, _ = _apply(optkit.clip_by_block_norm(c), big)
  np.testing.assert_allclose(block["b"], big["b"])             # under c: untouched
  assert np.linalg.norm(glob["b"]) < 0.99 * np.linalg.norm(big["b"])


@pytest.mark.parametrize("factory", [optkit.clip_by_global_norm, optkit.clip_by_block_norm])
def test_bad_threshold_raises(factory):
  with pytest.raises(ValueError, match=factory.__name__):
    factory(0.0)
  with pytest.raises(ValueError, match=factory.__name__):
    factory(-1.0)
