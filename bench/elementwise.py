"""Memory-bound kernels of a VAE step, ours (raw C backend) vs numpy vs PyTorch (when installed),
on the step's shapes: unary/binary elementwise, reductions, fused bias+relu, BCE-with-logits
forward and backward, and the Adam update over all 652,824 parameters. Prints times, the
bandwidth each reaches (bytes it must move / time), and ratios.

    python bench/elementwise.py [--threads 2] [--repeats 9]
"""

from __future__ import annotations

import argparse
import os
import time

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--threads", type=int, default=os.cpu_count())
p.add_argument("--repeats", type=int, default=9)
args = p.parse_args()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MINIGRAD_NUM_THREADS"):
    os.environ[var] = str(args.threads)

import numpy as np  # noqa: E402

from minigrad.backend import c_backend as C  # noqa: E402
from minigrad.backend import numpy_backend as N  # noqa: E402

try:
    import torch
    import torch.nn.functional as TF

    torch.set_num_threads(args.threads)
except ImportError:
    torch = None

rng = np.random.default_rng(0)
B, D, H = 128, 784, 400


def rand(*shape):
    return rng.standard_normal(shape, dtype=np.float32)


def timed(fn, inner: int = 20) -> float:
    fn()
    samples = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner)
    return float(np.median(samples))


def adam_case():
    sizes = [H * D, H, 20 * H, 20, 20 * H, 20, H * 20, H, D * H, D]
    ps = [rand(n) for n in sizes]
    gs = [rand(n) for n in sizes]
    ms = [np.zeros(n, np.float32) for n in sizes]
    vs = [np.zeros(n, np.float32) for n in sizes]
    n_total = sum(sizes)

    steps = [5] * len(sizes)

    def ours():
        C.adam_step(ps, gs, ms, vs, steps, 1e-3, 0.9, 0.999, 1e-8, 0.0)

    def ref():
        N.adam_step(ps, gs, ms, vs, steps, 1e-3, 0.9, 0.999, 1e-8, 0.0)

    torch_fn = None
    if torch is not None:
        tp = [torch.from_numpy(x.copy()) for x in ps]
        for t, g in zip(tp, gs):
            t.grad = torch.from_numpy(g.copy())
        opt = torch.optim.Adam(tp, lr=1e-3)
        torch_fn = opt.step
    return ours, ref, torch_fn, 4 * n_total * 7  # read p g m v, write p m v


def torch_bce_and_grad(tx, tt):
    """PyTorch's loss and its gradient with respect to the logits (one forward + backward)."""
    leaf = tx.detach().requires_grad_()
    TF.binary_cross_entropy_with_logits(leaf, tt, reduction="sum").backward()
    return leaf.grad


def cases():
    x, y, z = rand(B, D), rand(B, D), rand(B, D)
    t01 = rng.random((B, D), dtype=np.float32)
    bias = rand(D)
    tx, ty, tt, tb = (torch.from_numpy(a) for a in (x, y, t01, bias)) if torch else (None,) * 4
    yield "add (128x784)", lambda: C.binary("add", x, y), lambda: x + y, (lambda: tx + ty) if torch else None, 12 * B * D
    yield "relu (128x784)", lambda: C.unary("relu", x), lambda: np.maximum(x, 0), (lambda: torch.relu(tx)) if torch else None, 8 * B * D
    yield "sum over batch (128x784)", lambda: C.reduce("sum", x, (0,), False), lambda: x.sum(0), (lambda: tx.sum(0)) if torch else None, 4 * B * D
    yield "bias+relu (128x784)", lambda: C._kernel("mg_bias_act", z.dtype)(C._ACT["relu"], B, D, C._ptr(z), C._ptr(bias)), lambda: np.maximum(z + bias, 0), (lambda: torch.relu(tx + tb)) if torch else None, 8 * B * D
    yield ("bce fwd sum (128x784)", lambda: C.bce_with_logits(x, t01, "sum"), lambda: N.bce_with_logits(x, t01, "sum"),
           (lambda: TF.binary_cross_entropy_with_logits(tx, tt, reduction="sum")) if torch else None, 8 * B * D)  # fmt: skip
    yield ("bce fwd sum + grad", lambda: C.bce_with_logits(x, t01, "sum", with_grad=True),
           lambda: N.bce_with_logits(x, t01, "sum", with_grad=True),
           (lambda: torch_bce_and_grad(tx, tt)) if torch else None, 12 * B * D)  # fmt: skip
    yield ("adam, all 652,824 params",) + adam_case()


def main() -> None:
    print(f"{args.threads} thread(s); median of {args.repeats}; GB/s = bytes the kernel must move / time")
    print(f"{'kernel':26s} {'ours us':>9s} {'numpy us':>9s} {'torch us':>9s} {'ours GB/s':>10s} {'np/ours':>8s} {'torch/ours':>10s}")
    for name, ours, ref, tfn, nbytes in cases():
        t_ours, t_ref = timed(ours), timed(ref)
        t_torch = timed(tfn) if tfn else float("nan")
        print(f"{name:26s} {t_ours * 1e6:9.1f} {t_ref * 1e6:9.1f} {t_torch * 1e6:9.1f} {nbytes / t_ours / 1e9:10.1f} "
              f"{t_ref / t_ours:8.2f} {t_torch / t_ours:10.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
