"""Regenerates tests/fixtures/reference/multi_objective_hessian_alignment.npz.

The HGP penalty of the official DomainBed ``HGP.update`` (huawei-noah/Federated-
Learning, ``HessianAlignment/domainbed/algorithms.py``, read through the code index;
restated here in torch float64, nothing copied) on a small two-layer softmax
classifier with 3 domains, and its gradient with respect to *all* parameters
(torch autograd through the double backward), so the JAX helper's third-order
autodiff is checked by an independent autodiff system.

The official form, kept here: per domain e the head gradient g_e (classifier
params only), ``sadg_e = ||g_e||`` and Hg_e = ||g_e||·∇_head ||g_e||; for the mean
risk ḡ and H̄ḡ = ||ḡ||·∇_head ||ḡ|| (both detached); penalty =
Σ_e [α ||Hg_e - H̄ḡ||² + β ||g_e - ḡ||²] / E. The official code adds 1e-16 to the
gradient entries and norms (square-root guard); that changes nothing at float64
precision for these non-zero gradients and is omitted.

Run with the reference environment: ``python tools/make_hessian_alignment_fixtures.py``.
Arrays: ``x_e``, ``y_e`` (domain data), ``W1``, ``b1`` (body), ``W2``, ``b2`` (head),
``alpha``, ``beta``, ``penalty``, ``mean_nll``, ``grad_<name>`` (d(mean_nll +
penalty)/d<name>).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tools import _fixtures  # noqa: E402

E, N, D, H, C = 3, 8, 4, 5, 3
ALPHA, BETA = 0.3, 0.7


def main():
  out_dir = _fixtures.output_dir()
  torch.set_default_dtype(torch.float64)
  rng = np.random.default_rng(0)
  data = {}
  xs, ys = [], []
  for e in range(E):
    x = rng.standard_normal((N, D)) + 0.5 * e
    y = rng.integers(0, C, size=N)
    xs.append(torch.tensor(x))
    ys.append(torch.tensor(y))
    data[f"x_{e}"], data[f"y_{e}"] = x, y.astype(np.int32)
  init = {"W1": 0.5 * rng.standard_normal((D, H)), "b1": 0.1 * rng.standard_normal(H),
          "W2": 0.5 * rng.standard_normal((H, C)), "b2": 0.1 * rng.standard_normal(C)}
  data.update(init)
  p = {k: torch.tensor(v, requires_grad=True) for k, v in init.items()}
  head = [p["W2"], p["b2"]]

  def nll(e):
    feats = torch.tanh(xs[e] @ p["W1"] + p["b1"])
    logits = feats @ p["W2"] + p["b2"]
    return torch.nn.functional.cross_entropy(logits, ys[e])

  flat = lambda gs: torch.cat([g.flatten() for g in gs])
  nlls = [nll(e) for e in range(E)]
  train_nll = torch.stack(nlls).mean()

  mean_grad = flat(torch.autograd.grad(train_nll, head, create_graph=True))
  norm_mean = mean_grad.pow(2).sum().sqrt()
  mean_hg = norm_mean * flat(torch.autograd.grad(norm_mean, head, create_graph=True))

  penalty = 0.0
  for e in range(E):
    g = flat(torch.autograd.grad(nlls[e], head, create_graph=True))
    norm = g.pow(2).sum().sqrt()
    hg = norm * flat(torch.autograd.grad(norm, head, create_graph=True))
    penalty = penalty + ALPHA * (hg - mean_hg.detach()).pow(2).sum() \
        + BETA * (g - mean_grad.detach()).pow(2).sum()
  penalty = penalty / E
  total = train_nll + penalty
  grads = torch.autograd.grad(total, list(p.values()))
  data.update({"alpha": np.float64(ALPHA), "beta": np.float64(BETA),
               "penalty": penalty.detach().numpy(), "mean_nll": train_nll.detach().numpy()})
  for k, g in zip(p, grads):
    data[f"grad_{k}"] = g.numpy()
  _fixtures.save(out_dir, "multi_objective_hessian_alignment.npz", data)


if __name__ == "__main__":
  main()
