"""Per-op overhead: a 10-element elementwise op through minigrad.Tensor (the cost of Python, the
graph node and the C call), next to the same op in numpy and PyTorch (when installed).

    python bench/overhead.py [--repeats 7] [--number 20000]
"""

from __future__ import annotations

import argparse
import timeit


import numpy as np  # noqa: E402

import minigrad as mg  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--number", type=int, default=20000)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    a_np, b_np = rng.random(10, dtype=np.float32), rng.random(10, dtype=np.float32)
    a, b = mg.Tensor(a_np), mg.Tensor(b_np)
    ag = mg.Tensor(a_np.copy(), requires_grad=True)
    cases = {
        "a + b": (lambda: a + b, lambda: a_np + b_np),
        "a * b (records graph)": (lambda: ag * b, lambda: a_np * b_np),
        "a + 1.0": (lambda: a + 1.0, lambda: a_np + np.float32(1.0)),
        "a.exp()": (lambda: a.exp(), lambda: np.exp(a_np)),
        "a.sum()": (lambda: a.sum(), lambda: a_np.sum()),
    }
    torch_cases = {}
    try:
        import torch

        torch.set_num_threads(1)
        ta, tb = torch.from_numpy(a_np), torch.from_numpy(b_np)
        tg = torch.from_numpy(a_np.copy()).requires_grad_()
        torch_cases = {"a + b": lambda: ta + tb, "a * b (records graph)": lambda: tg * tb,
                       "a + 1.0": lambda: ta + 1.0, "a.exp()": lambda: ta.exp(), "a.sum()": lambda: ta.sum()}  # fmt: skip
    except ImportError:
        pass

    def us(fn) -> float:
        return min(timeit.repeat(fn, number=args.number, repeat=args.repeats)) / args.number * 1e6

    print(f"10-element float32 ops, best of {args.repeats} x {args.number} calls, microseconds per op")
    header = f"{'op':24s} {'minigrad':>9s} {'numpy':>7s} {'torch':>7s} {'mg/np':>7s} {'mg/torch':>9s}"
    print(header)
    for name, (ours, ref) in cases.items():
        t_ours, t_np = us(ours), us(ref)
        t_torch = us(torch_cases[name]) if name in torch_cases else float("nan")
        print(f"{name:24s} {t_ours:9.2f} {t_np:7.2f} {t_torch:7.2f} {t_ours / t_np:7.1f} {t_ours / t_torch:9.2f}")


if __name__ == "__main__":
    main()
