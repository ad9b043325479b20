"""One VAE training step (784-400-20, batch 128, BCE-with-logits sum + KL, Adam lr 1e-3 -- the
configuration of PyTorch's own VAE example): minigrad vs a hand-written numpy step vs PyTorch
(when installed), timed alternately in one process, same thread count. With --memory, each
framework also runs alone in a subprocess to report its peak RSS and RSS growth across steps.

    python bench/vae_step.py [--threads 2] [--repeats 7] [--steps 20] [--memory]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

BATCH, D, H, L = 128, 784, 400, 20


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--repeats", type=int, default=7, help="timed rounds (median reported)")
    p.add_argument("--steps", type=int, default=20, help="steps per round")
    p.add_argument("--memory", action="store_true", help="also measure peak RSS per framework")
    p.add_argument("--only", choices=["minigrad", "numpy", "torch"], help=argparse.SUPPRESS)
    return p.parse_args()


args = parse()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "MINIGRAD_NUM_THREADS"):
    os.environ[var] = str(args.threads)

import numpy as np  # noqa: E402  (thread variables must be set first)



def data(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.random((BATCH, D)) < 0.3).astype(np.float32) * rng.random((BATCH, D), dtype=np.float32)
            for _ in range(8)]  # fmt: skip


# ---------------------------------------------------------------- minigrad
def make_minigrad():
    import minigrad as mg
    from vae.loss import negative_elbo
    from vae.model import VAE

    model = VAE(D, H, L, seed=0)
    opt = mg.optim.Adam(model.parameters(), lr=1e-3)
    xs = data()

    def step(i: int) -> float:
        x = mg.Tensor(xs[i % len(xs)])
        logits, mu, logvar = model(x)
        loss, _, _ = negative_elbo(logits, x, mu, logvar)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    return step


# ---------------------------------------------------------------- hand-written numpy
def make_numpy():
    rng = np.random.default_rng(0)
    shapes = {"W1": (H, D), "b1": (H,), "W21": (L, H), "b21": (L,), "W22": (L, H), "b22": (L,),
              "W3": (H, L), "b3": (H,), "W4": (D, H), "b4": (D,)}  # fmt: skip
    P = {k: rng.uniform(-1, 1, s).astype(np.float32) / np.sqrt(s[-1] if len(s) == 2 else H) for k, s in shapes.items()}
    M = {k: np.zeros_like(v) for k, v in P.items()}
    V = {k: np.zeros_like(v) for k, v in P.items()}
    xs = data()
    noise = np.random.default_rng(1)
    t = [0]

    def step(i: int) -> float:
        x = xs[i % len(xs)]
        h = np.maximum(x @ P["W1"].T + P["b1"], 0)
        mu = h @ P["W21"].T + P["b21"]
        lv = h @ P["W22"].T + P["b22"]
        std = np.exp(0.5 * lv)
        eps = noise.standard_normal(mu.shape, dtype=np.float32)
        z = mu + std * eps
        h3 = np.maximum(z @ P["W3"].T + P["b3"], 0)
        logits = h3 @ P["W4"].T + P["b4"]
        bce = np.sum(np.maximum(logits, 0) - logits * x + np.log1p(np.exp(-np.abs(logits))))
        kl = -0.5 * np.sum(1 + lv - mu * mu - std * std)
        loss = (bce + kl) / BATCH
        g = {}
        dl = (1 / (1 + np.exp(-logits)) - x) / BATCH
        g["W4"], g["b4"] = dl.T @ h3, dl.sum(0)
        dh3 = (dl @ P["W4"]) * (h3 > 0)
        g["W3"], g["b3"] = dh3.T @ z, dh3.sum(0)
        dz = dh3 @ P["W3"]
        dmu = dz + mu / BATCH
        dlv = dz * eps * 0.5 * std + 0.5 * (std * std - 1) / BATCH
        g["W21"], g["b21"] = dmu.T @ h, dmu.sum(0)
        g["W22"], g["b22"] = dlv.T @ h, dlv.sum(0)
        dh = (dmu @ P["W21"] + dlv @ P["W22"]) * (h > 0)
        g["W1"], g["b1"] = dh.T @ x, dh.sum(0)
        t[0] += 1
        bc1, bc2 = 1 - 0.9 ** t[0], 1 - 0.999 ** t[0]
        for k in P:
            M[k] *= 0.9
            M[k] += 0.1 * g[k]
            V[k] *= 0.999
            V[k] += 0.001 * g[k] * g[k]
            P[k] -= (1e-3 / bc1) * M[k] / (np.sqrt(V[k] / bc2) + 1e-8)
        return float(loss)

    return step


# ---------------------------------------------------------------- PyTorch
def make_torch():
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    class TorchVAE(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc21, self.fc22 = torch.nn.Linear(D, H), torch.nn.Linear(H, L), torch.nn.Linear(H, L)
            self.fc3, self.fc4 = torch.nn.Linear(L, H), torch.nn.Linear(H, D)

        def forward(self, x):
            h = F.relu(self.fc1(x))
            mu, logvar = self.fc21(h), self.fc22(h)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            return self.fc4(F.relu(self.fc3(z))), mu, logvar

    model = TorchVAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xs = [torch.from_numpy(x) for x in data()]

    def step(i: int) -> float:
        x = xs[i % len(xs)]
        logits, mu, logvar = model(x)
        bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        loss = (bce + kl) / BATCH
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    return step


MAKERS = {"minigrad": make_minigrad, "numpy": make_numpy, "torch": make_torch}


def available() -> dict:
    out = {}
    for name, make in MAKERS.items():
        try:
            out[name] = make()
        except ImportError as exc:
            print(f"{name}: not available ({exc})")
    return out


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_mib() -> float:
    return _status_mib("VmRSS")


def memory_child(name: str) -> None:
    step = MAKERS[name]()
    base = rss_mib()
    for i in range(10):
        step(i)
    after10 = rss_mib()
    for i in range(10, 200):
        step(i)
    after200 = rss_mib()
    peak = _status_mib("VmHWM")  # this process's own peak (ru_maxrss would include the parent's)
    print(f"{peak:.1f} {after10:.1f} {after200:.1f} {base:.1f}")


def main() -> None:
    if args.only:
        memory_child(args.only)
        return
    steps = available()
    for name, step in steps.items():  # warm-up, and a sanity check that each one learns
        first = step(0)
        for i in range(1, 30):
            last = step(i)
        print(f"{name:9s} warm-up loss {first:8.2f} -> {last:8.2f}")
    times: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(args.repeats):
        for name, step in steps.items():  # alternate so drift hits everyone alike
            t0 = time.perf_counter()
            for i in range(args.steps):
                step(i)
            times[name].append((time.perf_counter() - t0) / args.steps * 1e3)
    med = {name: float(np.median(v)) for name, v in times.items()}
    print(f"\nVAE step 784-{H}-{L}, batch {BATCH}, float32, Adam; {args.threads} thread(s); "
          f"median of {args.repeats} rounds x {args.steps} steps")  # fmt: skip
    print(f"{'framework':10s} {'ms/step':>9s} {'min':>8s} {'max':>8s}")
    for name, v in times.items():
        print(f"{name:10s} {med[name]:9.2f} {min(v):8.2f} {max(v):8.2f}")
    for other in ("numpy", "torch"):
        if other in med:
            print(f"ratio minigrad / {other}: {med['minigrad'] / med[other]:.2f}")
    if args.memory:
        print(f"\n{'framework':10s} {'peak RSS MiB':>13s} {'RSS@10 steps':>13s} {'RSS@200 steps':>14s}")
        for name in steps:
            out = subprocess.run([sys.executable, __file__, "--threads", str(args.threads), "--only", name],
                                 capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
            peak, a10, a200, _ = map(float, out)
            print(f"{name:10s} {peak:13.1f} {a10:13.1f} {a200:14.1f}")


if __name__ == "__main__":
    main()
