"""Regenerates tests/fixtures/reference/orthogonal_lmo_muon.npz.

Runs pytorch_optimizer's ``Muon`` (CPU, one ``use_muon=True`` group) for 30
closed-loop steps on a weighted quadratic of one torch-layout weight
``W`` of shape (out, in) = (3, 5), and records the parameter trajectory, the
problem data and the hyperparameters. ``tests/orthogonal/test_lmo.py`` replays
it with ``optkit.lmo_optimizer(lr, lmo_spectral(), b1=momentum,
weight_decay=wd, nesterov=True)`` on ``W^T`` (optkit's (in, out) layout).

What pytorch_optimizer computes (read from pytorch_optimizer 4.x
``optimizer/muon``): ``p *= 1 - lr * wd`` (decoupled decay, before the step),
``buf = lerp(buf, g, 1 - momentum)``, ``u = lerp(g, buf, momentum)``
(Nesterov, no bias correction), ``p -= lr * sqrt(max(1, out / in)) * NS5(u)``.
With out = 3 < in = 5 the shape factor is 1, so the step is exactly the
trust-region form ``(1 - lr wd) W + lr lmo(m)`` of the paper.

Its Newton-Schulz runs in bfloat16 by default (``dtype`` argument of
``zero_power_via_newton_schulz_5``, not exposed by ``Muon``); this script binds
that argument to float32 so that the fixture checks the algorithm, not
bfloat16 rounding. Nothing else is changed.

Run with the reference environment (``--out DIR`` writes elsewhere):
  /work/refvenv/bin/python tools/make_lmo_fixtures.py
"""

from __future__ import annotations

import functools
import importlib.metadata

import numpy as np
import pytorch_optimizer
import pytorch_optimizer.optimizer.muon.base as muon_base
import torch

try:
  from tools import _fixtures
except ImportError:  # run as a script: tools/ itself is on sys.path
  import _fixtures

STEPS = 30
FILENAME = "orthogonal_lmo_muon.npz"
HPARAMS = {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.5, "ns_steps": 5}


def main(argv=None):
  out_dir = _fixtures.output_dir(argv)
  muon_base.zero_power_via_newton_schulz_5 = functools.partial(
      muon_base.zero_power_via_newton_schulz_5, dtype=torch.float32)
  rng = np.random.default_rng(0)
  a = rng.uniform(0.5, 3.0, (3, 5)).astype(np.float32)       # curvature
  w_star = (2.0 * rng.standard_normal((3, 5))).astype(np.float32)
  w0 = (0.3 * rng.standard_normal((3, 5))).astype(np.float32)
  w = torch.nn.Parameter(torch.from_numpy(w0.copy()))
  opt = pytorch_optimizer.Muon(
      [dict(params=[w], use_muon=True)], lr=HPARAMS["lr"], momentum=HPARAMS["momentum"],
      weight_decay=HPARAMS["weight_decay"], nesterov=True, ns_steps=HPARAMS["ns_steps"],
      foreach=False)
  traj = []
  for _ in range(STEPS):
    opt.zero_grad()
    loss = 0.5 * (torch.from_numpy(a) * (w - torch.from_numpy(w_star)) ** 2).sum()
    loss.backward()
    opt.step()
    traj.append(w.detach().numpy().copy())
  arrays = {"A": a, "W_star": w_star, "W0": w0, "trajectory": np.stack(traj),
            "version": np.asarray(importlib.metadata.version("pytorch_optimizer"))}
  arrays.update({k: np.asarray(v) for k, v in HPARAMS.items()})
  _fixtures.save(out_dir, FILENAME, arrays)


if __name__ == "__main__":
  main()
