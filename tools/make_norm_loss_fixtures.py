"""Reference values of Ranger21's norm-loss step (pytorch_optimizer 4.1.0) for
tests/constraints/test_norm_loss.py.

Run with the reference venv: /work/refvenv/bin/python tools/make_norm_loss_fixtures.py
Writes tests/fixtures/reference/constraints_norm_loss.npz: for params of shapes
(), (3,), (4, 3), (2, 3, 5), (4, 2, 3, 3) (PyTorch layouts), the Ranger21 step
p * (1 - lr * 2 lambda (1 - 1 / (unit_norm(p) + eps))) computed with
pytorch_optimizer's own ``unit_norm``, in float64.
"""

import os

import numpy as np
import torch
from pytorch_optimizer.optimizer.utils.gradient import unit_norm

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "reference",
                   "constraints_norm_loss.npz")
SHAPES = {"s": (), "v": (3,), "m": (4, 3), "t": (2, 3, 5), "k": (4, 2, 3, 3)}
LR, LAM, EPS = 0.1, 0.05, 1e-8


def main():
  rng = np.random.default_rng(0)
  out = {"lr": LR, "lam": LAM, "eps": EPS}
  for name, shape in SHAPES.items():
    p = rng.standard_normal(shape)
    tp = torch.tensor(p, dtype=torch.float64)
    correction = 2.0 * LAM * (1.0 - 1.0 / unit_norm(tp).add_(EPS))
    new = tp.mul(1.0 - LR * correction)
    out[f"{name}_p"] = p
    out[f"{name}_new"] = new.numpy()
  np.savez(OUT, **out)
  print("wrote", os.path.abspath(OUT))


if __name__ == "__main__":
  main()
