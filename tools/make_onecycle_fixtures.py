"""Regenerates tests/fixtures/reference/schedules_onecycle.npz from PyTorch.

Runs ``torch.optim.lr_scheduler.OneCycleLR`` on a one-parameter SGD (with
momentum, so ``cycle_momentum`` is exercised) and records the learning rate
and momentum at every step t = 0 .. T.

Convention map (see optkit/schedules/onecycle.py): optkit's schedule over T
steps with pct_start = a equals PyTorch's over ``total_steps = T + 1`` with
``pct_start = (a T + 1) / (T + 1)``; the linear shape is PyTorch's
``three_phase=True, anneal_strategy='linear'`` (which needs pct_final = 2a),
the cosine shape its default two-phase ``anneal_strategy='cos'``.

Run with the reference environment:  python tools/make_onecycle_fixtures.py
Each case stores ``<case>/lr``, ``<case>/momentum`` (float64, shape (T + 1,))
and ``<case>/config`` = [T, peak, a, b, div, final_div, max_m, min_m],
``<case>/shape``.
"""

import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tools import _fixtures  # noqa: E402

# name: (shape, T, peak, a, b, div, final_div, max_m, min_m)
CASES = {
    "linear_paper": ("linear", 100, 1.0, 0.45, 0.9, 10.0, 100.0, 0.95, 0.85),
    "linear_fastai": ("linear", 40, 0.3, 0.25, 0.5, 25.0, 1e4, 0.9, 0.8),
    "cosine_fastai": ("cosine", 100, 0.5, 0.3, 1.0, 25.0, 1e4, 0.95, 0.85),
    "cosine_short": ("cosine", 40, 1.0, 0.45, 1.0, 10.0, 100.0, 0.9, 0.8),
}


def run(shape, T, peak, a, b, div, fdiv, max_m, min_m):
  p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
  opt = torch.optim.SGD([p], lr=peak, momentum=max_m)
  total = T + 1
  sched = torch.optim.lr_scheduler.OneCycleLR(
      opt, max_lr=peak, total_steps=total, pct_start=(a * T + 1) / total,
      anneal_strategy="linear" if shape == "linear" else "cos",
      cycle_momentum=True, base_momentum=min_m, max_momentum=max_m,
      div_factor=div, final_div_factor=fdiv, three_phase=(shape == "linear"))
  lrs, moms = [], []
  for t in range(total):
    lrs.append(opt.param_groups[0]["lr"])
    moms.append(opt.param_groups[0]["momentum"])
    opt.step()
    if t < total - 1:
      sched.step()
  return np.asarray(lrs, np.float64), np.asarray(moms, np.float64)


def main():
  out = _fixtures.output_dir()
  arrays = {"torch_version": np.asarray(torch.__version__)}
  for name, cfg in CASES.items():
    shape, *nums = cfg
    lr, mom = run(shape, *nums)
    arrays[f"{name}/lr"] = lr
    arrays[f"{name}/momentum"] = mom
    arrays[f"{name}/config"] = np.asarray(nums, np.float64)
    arrays[f"{name}/shape"] = np.asarray(shape)
  _fixtures.save(out, "schedules_onecycle.npz", arrays)


if __name__ == "__main__":
  main()
