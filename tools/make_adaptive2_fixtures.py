"""Regenerates tests/fixtures/reference/adaptive_{adabound,adamp,diffgrad}.npz.

Runs pytorch_optimizer's AdaBound (and AMSBound), AdamP, SGDP and DiffGrad
(float32, CPU, per-parameter path: ``foreach=False``) on two small
deterministic problems and records the parameter trajectories, the problem
data and the hyperparameters. The tests tests/adaptive/test_adabound.py,
test_adamp.py and test_diffgrad.py replay them with optkit from the same start
and data (they never import torch).

Problems (parameters in PyTorch layout, output channels first):
- ``quadratic``: W (3, 4) and x (4,), loss = 0.5 mean_rows ||A W - B||^2
  + 0.5 x^T H x - b^T x. W is NOT scale-invariant (AdamP must act as AdamW).
- ``normnet``: a 3-class softmax classifier on X (32, 5) with
  h = tanh(X W1^T / ||W1_r||) (W1 (4, 5): each row scale-invariant -> AdamP's
  channel view), logits = 3 h W2^T / ||W2||_F + c (W2 (3, 4): scale-invariant
  as a whole -> layer view), c (3,) a bias (1-D: never projected).

For AdamP/SGDP the script also records, per step and matrix, which view the
reference projected (0 none, 1 channel, 2 layer; computed with
pytorch_optimizer's own cosine helper on the same inputs) and the smallest
relative distance of a cosine to its threshold, so the tests can check that
every branch was exercised and that no decision was a near tie.

Formulas read in pytorch_optimizer 4.1.0 (restated in the optkit modules):
- AdaBound: step = lr sqrt(1 - b2^t) / (1 - b1^t); denominator
  sqrt(v + 1e-15) + eps; rate clipped to [f (1 - 1/(gamma t + 1)),
  f (1 + 1/(gamma t))], f = final_lr lr / base_lr; p <- p (1 - lr wd) first.
- AdamP: inv = sqrt(1 - b2^t) / (sqrt(v) + eps); perturb = m inv (nesterov:
  (b1 m + (1 - b1) g) inv); projection; p <- p (1 - lr wd ratio);
  p <- p - lr / (1 - b1^t) perturb.
- SGDP: buf = momentum buf + (1 - dampening) g; d = momentum buf + g
  (nesterov) or buf; projection; p <- p (1 - lr wd ratio / (1 - momentum));
  p <- p - lr d.
- DiffGrad: xi = sigmoid(|g_prev - g|); step = lr sqrt(1 - b2^t) / (1 - b1^t);
  p <- p - step xi m / (sqrt(v + 1e-15) + eps); g_prev starts at 0.

Run with the reference environment:
  /work/refvenv/bin/python tools/make_adaptive2_fixtures.py
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytorch_optimizer
import torch
from pytorch_optimizer import AdaBound, AdamP, DiffGrad, SGDP
from pytorch_optimizer.optimizer.adamp import channel_view, cosine_similarity_by_view, layer_view

OUT_DIR = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "reference")


def quadratic_problem():
  rng = np.random.default_rng(20)
  a = rng.standard_normal((5, 3)).astype(np.float32)
  b_mat = rng.standard_normal((5, 4)).astype(np.float32)
  m = rng.standard_normal((4, 4)).astype(np.float32)
  h = (m @ m.T / 4 + 0.5 * np.eye(4)).astype(np.float32)
  b = rng.standard_normal(4).astype(np.float32)
  p0 = {"W": rng.standard_normal((3, 4)).astype(np.float32),
        "x": (2.0 * rng.standard_normal(4)).astype(np.float32)}

  def loss(p):
    r = torch.from_numpy(a) @ p["W"] - torch.from_numpy(b_mat)
    x = p["x"]
    quad = 0.5 * x @ (torch.from_numpy(h) @ x) - torch.from_numpy(b) @ x
    return 0.5 * torch.sum(r * r) / 5 + quad

  return {"A": a, "B": b_mat, "H": h, "b": b}, p0, loss


def normnet_problem():
  rng = np.random.default_rng(21)
  x = rng.standard_normal((32, 5)).astype(np.float32)
  w_true = rng.standard_normal((5, 3))
  y = np.argmax(x @ w_true + 0.5 * rng.standard_normal((32, 3)), axis=1).astype(np.int64)
  p0 = {"W1": rng.standard_normal((4, 5)).astype(np.float32),
        "W2": rng.standard_normal((3, 4)).astype(np.float32),
        "c": (0.1 * rng.standard_normal(3)).astype(np.float32)}

  def loss(p):
    w1, w2 = p["W1"], p["W2"]
    h = torch.tanh((torch.from_numpy(x) @ w1.T) / torch.linalg.norm(w1, dim=1))
    logits = 3.0 * (h @ w2.T) / torch.linalg.norm(w2) + p["c"]
    return torch.nn.functional.cross_entropy(logits, torch.from_numpy(y))

  return {"X": x, "y": y}, p0, loss


PROBLEMS = (("quadratic", quadratic_problem), ("normnet", normnet_problem))

# config name -> (class, constructor kwargs, steps, lr decay per step (ExponentialLR) or None)
FIXTURES = {
    "adabound": {
        "adabound_default": (AdaBound, dict(lr=1e-3), 20, None),
        "adabound_tight": (AdaBound, dict(lr=5e-2, final_lr=0.2, gamma=0.1, weight_decay=0.01),
                           30, None),
        "amsbound": (AdaBound, dict(lr=5e-2, final_lr=0.2, gamma=0.1, betas=(0.9, 0.9),
                                    ams_bound=True), 30, None),
        "adabound_sched": (AdaBound, dict(lr=5e-2, final_lr=0.2, gamma=0.1), 30, 0.9),
    },
    "adamp": {
        "adamp_raw": (AdamP, dict(lr=5e-2, weight_decay=0.1), 20, None),
        "adamp_eps0": (AdamP, dict(lr=5e-2, weight_decay=0.1, eps=0.0), 20, None),
        "adamp_nesterov": (AdamP, dict(lr=5e-2, betas=(0.8, 0.99), nesterov=True), 20, None),
        "sgdp": (SGDP, dict(lr=5e-2, momentum=0.9, weight_decay=0.1), 20, None),
        "sgdp_nesterov": (SGDP, dict(lr=5e-2, momentum=0.9, nesterov=True), 20, None),
        "sgdp_damp": (SGDP, dict(lr=5e-2, momentum=0.8, dampening=0.3, weight_decay=0.05),
                      20, None),
    },
    "diffgrad": {
        "diffgrad_default": (DiffGrad, dict(lr=1e-3), 20, None),
        "diffgrad": (DiffGrad, dict(lr=5e-2), 30, None),
        "diffgrad_wd": (DiffGrad, dict(lr=5e-2, betas=(0.8, 0.99), weight_decay=0.1), 30, None),
    },
}


def _projection_view(p, g, delta, eps):
  """0 none, 1 channel, 2 layer (pytorch_optimizer's test); and the tie margin."""
  margin = math.inf
  for code, view in ((1, channel_view), (2, layer_view)):
    cos = cosine_similarity_by_view(g, p, eps, view).max().item()
    thr = delta / math.sqrt(view(p).size()[1])
    margin = min(margin, abs(cos - thr) / thr)
    if cos < thr:
      return code, margin
  return 0, margin


def trajectory(cls, kwargs, steps, decay, p0, loss):
  params = {k: torch.tensor(v, dtype=torch.float32, requires_grad=True) for k, v in p0.items()}
  names = sorted(params)
  opt = cls([params[k] for k in names], foreach=False, **kwargs)
  sched = torch.optim.lr_scheduler.ExponentialLR(opt, decay) if decay else None
  traj = {k: [params[k].detach().numpy().copy()] for k in names}
  views = {k: [] for k in names if params[k].dim() > 1}
  margin = math.inf
  for _ in range(steps):
    opt.zero_grad()
    loss(params).backward()
    if cls in (AdamP, SGDP):
      for k in views:
        code, m = _projection_view(params[k].detach(), params[k].grad.detach(),
                                   opt.param_groups[0]["delta"], opt.param_groups[0]["eps"])
        views[k].append(code)
        margin = min(margin, m)
    opt.step()
    if sched is not None:
      sched.step()
    for k in names:
      traj[k].append(params[k].detach().numpy().copy())
  out = {f"traj__{k}": np.stack(v).astype(np.float32) for k, v in traj.items()}
  if cls in (AdamP, SGDP):
    out.update({f"view__{k}": np.asarray(v, np.int32) for k, v in views.items()})
    out["margin"] = np.asarray(margin, np.float64)
  return out


def main():
  torch.manual_seed(0)
  for fname, configs in FIXTURES.items():
    out = {"torch_version": np.asarray(torch.__version__),
           "pytorch_optimizer_version": np.asarray(pytorch_optimizer.__version__)
           if hasattr(pytorch_optimizer, "__version__") else np.asarray("4.1.0")}
    for prefix, make in PROBLEMS:
      data, p0, loss = make()
      for k, v in data.items():
        out[f"{prefix}__data__{k}"] = v
      for name, (cls, kwargs, steps, decay) in configs.items():
        for k, v in trajectory(cls, kwargs, steps, decay, p0, loss).items():
          out[f"{prefix}__{name}__{k}"] = v
    for name, (cls, kwargs, steps, decay) in configs.items():
      hp = dict(kwargs)
      betas = hp.pop("betas", None)
      if betas is not None:
        hp["b1"], hp["b2"] = betas
      if decay is not None:
        hp["lr_decay"] = decay
      for k, v in hp.items():
        out[f"hparam__{name}__{k}"] = np.asarray(v, np.float64)
    path = os.path.join(OUT_DIR, f"adaptive_{fname}.npz")
    os.makedirs(OUT_DIR, exist_ok=True)
    np.savez(path, **out)
    margins = {k: float(v) for k, v in out.items() if k.endswith("__margin")}
    views = {k: v.tolist() for k, v in out.items() if "__view__" in k}
    print(f"wrote {os.path.normpath(path)}: {len(out)} arrays")
    if margins:
      print("  smallest cosine/threshold margins:", margins)
      print("  views:", views)


if __name__ == "__main__":
  main()
