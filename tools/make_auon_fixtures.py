"""Regenerates tests/fixtures/reference/orthogonal_auon.npz.

A float64 torch port of the released AuON code (ryyzn9/AuON ``auon/optimizer.py``,
classes ``AuON`` and ``HybridAuON``, read at commit bba2e82; the package is not
on PyPI, so its per-parameter step is restated here op for op: decoupled decay
``p *= 1 - lr wd``, ``m.lerp_(g, 1 - momentum)``, ``G = g.lerp(m, momentum)``,
hybrid: quintic Newton-Schulz on the Frobenius-normalized ``G`` (tall matrices
transposed), skip when ``||G|| = 0``, ``G / (sqrt(mean(cosh(gamma G/(||G||+1e-7))^2))
+ 1e-8)``, ``p -= lr update``).

Open loop: a fixed sequence of random gradients (every third step one entry of
each matrix is made 30x larger, so the cosh brake is clearly active on these
small tensors) is fed for ``STEPS`` steps; the file stores the initial params,
the gradients and the params after every step, per configuration. Params are
2-D ``w`` (6, 4) (tall: transposed inside Newton-Schulz), ``v`` (3, 5) and 1-D
``b`` (4,) (brake only in the hybrid). Layout: the torch tensors as they are
(AuON is elementwise; its Newton-Schulz is transpose-equivariant).

Run with the reference environment (``--out DIR`` writes elsewhere):
  /work/refvenv/bin/python tools/make_auon_fixtures.py
"""

from __future__ import annotations

import json

import numpy as np
import torch

try:
  from tools import _fixtures
except ImportError:  # run as a script: tools/ itself is on sys.path
  import _fixtures

STEPS = 10
SHAPES = {"w": (6, 4), "v": (3, 5), "b": (4,)}
NS_COEFFS = (3.4445, -4.7750, 2.0315)
CONFIGS = {
    "auon_default": dict(hybrid=False, lr=0.24, momentum=0.95, weight_decay=0.0, gamma=1.5),
    "auon_wd_gamma": dict(hybrid=False, lr=0.05, momentum=0.8, weight_decay=0.1, gamma=3.0),
    "hybrid_default": dict(hybrid=True, lr=0.24, momentum=0.95, weight_decay=0.0, gamma=1.5,
                           ns_steps=5),
    "hybrid_one_step": dict(hybrid=True, lr=0.05, momentum=0.9, weight_decay=0.05, gamma=1.5,
                            ns_steps=1),
}


def _step(p, grad, m, cfg):
  """One released-code step on tensor ``p`` (in place), float64."""
  lr, beta, wd, gamma = cfg["lr"], cfg["momentum"], cfg["weight_decay"], cfg["gamma"]
  if wd != 0:
    p.mul_(1 - lr * wd)
  m.lerp_(grad, 1 - beta)
  big_g = grad.clone().lerp_(m, beta)
  if cfg["hybrid"] and big_g.ndim >= 2:
    x = big_g
    tall = x.size(-2) > x.size(-1)
    if tall:
      x = x.mT
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    a, b, c = NS_COEFFS
    for _ in range(cfg["ns_steps"]):
      gram = x @ x.mT
      x = a * x + (b * gram + c * (gram @ gram)) @ x
    big_g = x.mT if tall else x
  norm = big_g.norm()
  if norm == 0:
    return
  r = torch.sqrt(torch.mean(torch.cosh(big_g / (norm + 1e-7) * gamma) ** 2))
  p.add_(big_g / (r + 1e-8), alpha=-lr)


def _gradients(rng):
  grads = []
  for t in range(STEPS):
    g = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
    if t % 3 == 0:
      for k in ("w", "v"):
        g[k][0, 1] *= 30.0
    grads.append(g)
  return grads


def main(argv=None):
  out = _fixtures.output_dir(argv)
  rng = np.random.default_rng(20250924)
  p0 = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
  grads = _gradients(rng)
  arrays = {f"p0__{k}": v for k, v in p0.items()}
  for t, g in enumerate(grads):
    for k, v in g.items():
      arrays[f"grad{t}__{k}"] = v
  for name, cfg in CONFIGS.items():
    params = {k: torch.tensor(v, dtype=torch.float64) for k, v in p0.items()}
    moms = {k: torch.zeros_like(v) for k, v in params.items()}
    for t, g in enumerate(grads):
      for k in SHAPES:
        _step(params[k], torch.tensor(g[k], dtype=torch.float64), moms[k], cfg)
        arrays[f"{name}__step{t}__{k}"] = params[k].numpy().copy()
  arrays["configs"] = np.array(json.dumps(CONFIGS))
  arrays["steps"] = np.array(STEPS)
  _fixtures.save(out, "orthogonal_auon.npz", arrays)


if __name__ == "__main__":
  main()
