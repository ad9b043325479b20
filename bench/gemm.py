"""Benchmark minigrad's C GEMM against numpy (OpenBLAS) and, if importable, PyTorch.

    python bench/gemm.py [--threads N] [--repeats R] [--rounds Q] [--dtype f32|f64|both]
                         [--so PATH] [--only NAME]

Prints one table per dtype: GFLOP/s of the raw kernel (cffi call with cached pointers), of
`minigrad.Tensor @ minigrad.Tensor`, of numpy and of torch, and the ratios ours / numpy (and
ours / torch). Each number is the median of R timed runs after a warm-up, spread over Q rounds;
every run rotates among several random input buffers (> L2 in total) so no operand sits in cache
unfairly. The (rounds) column is the lowest and highest ours / numpy of the single rounds: on a
shared machine it shows how much of a difference is drift. Each result is checked against numpy
before it is timed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time


# (name, m, n, k, trans_a, trans_b): the VAE GEMMs (batch 128, 784-400-20) forward and backward,
# plus a square one
SHAPES = [
    ("fc1 fwd X@W1^T", 128, 400, 784, 0, 1),
    ("mu/logvar fwd", 128, 20, 400, 0, 1),
    ("fc3 fwd", 128, 400, 20, 0, 1),
    ("fc4 fwd", 128, 784, 400, 0, 1),
    ("fc4 dX=dY@W4", 128, 400, 784, 0, 0),
    ("fc3 dX", 128, 20, 400, 0, 0),
    ("mu dX", 128, 400, 20, 0, 0),
    ("fc1 dX (unused)", 128, 784, 400, 0, 0),
    ("fc1 dW=dY^T@X", 400, 784, 128, 1, 0),
    ("mu dW", 20, 400, 128, 1, 0),
    ("fc3 dW", 400, 20, 128, 1, 0),
    ("fc4 dW", 784, 400, 128, 1, 0),
    ("square 1024", 1024, 1024, 1024, 0, 0),
]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--dtype", choices=["f32", "f64", "both"], default="both")
    p.add_argument("--so", help="load the kernels from this .so instead of minigrad._kernels")
    p.add_argument("--only", help="substring filter on the shape names")
    p.add_argument("--rounds", type=int, default=3,
                   help="blocks per library; the repeats are spread over them, and the ours/np\n"
                        "ratio of each round (medians within the round) gives the printed range")
    return p.parse_args()


args = parse_args()
# BLAS thread pools read these at load time: set them before numpy (or torch) is imported.
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)

import numpy as np  # noqa: E402



def load_kernels():
    if args.so:
        spec = importlib.util.spec_from_file_location("minigrad._kernels", args.so)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod.ffi, mod.lib
    from minigrad._kernels import ffi, lib

    return ffi, lib


ffi, lib = load_kernels()
lib.mg_set_num_threads(args.threads)

try:
    import minigrad

    Tensor = minigrad.Tensor
    tensor_err = None
except Exception as e:  # the engine is written concurrently; report why the column is empty
    Tensor = None
    tensor_err = f"{type(e).__name__}: {e}"

try:
    import torch

    torch.set_num_threads(args.threads)
except Exception:
    torch = None


def median_times(fns: dict, repeats: int, nbuf: int, rounds: int) -> dict:
    """Median seconds per call of each fn(i), and the median of each round.

    Implementations are timed in blocks (a few rounds of: pause, 300 ms warm-up, samples), not interleaved
    call by call: OpenBLAS's idle worker keeps spinning (sched_yield) for ~0.1 s after each call,
    and on a 2-core machine that spinning thread halves the speed of whatever runs next. The pause
    lets the previous library's threads go to sleep. One sample = `inner` calls over rotating
    buffers, at least ~2 ms, so tiny GEMMs are not dominated by timer resolution."""
    inner = {}
    for name, fn in fns.items():
        for i in range(2 * nbuf):  # warm-up: page in every buffer, spin up thread pools
            fn(i % nbuf)
        t0 = time.perf_counter()
        for i in range(nbuf):
            fn(i)
        per = (time.perf_counter() - t0) / nbuf
        inner[name] = max(1, int(2e-3 / max(per, 1e-7)))
    samples = {name: [] for name in fns}
    per_round = max(1, (repeats + rounds - 1) // rounds)
    by_round = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            time.sleep(0.25)
            # Warm up for 300 ms, not a few calls: after an idle gap this VM's scheduler first
            # packs both OpenMP threads onto one vCPU (sched_vcpu_pack) and the first 20-100
            # calls run at one-thread speed or worse; after that, both libraries' 2-thread
            # throughput still climbs for another ~100-150 ms (measured per 50 calls of
            # 128x784x400: ours 156-166 -> 170-174 GFLOP/s, OpenBLAS 163-168 -> 170-172; NOTES.md
            # T). A training loop runs back to back, so the steady state is what is timed.
            t_end = time.perf_counter() + 0.3
            i = 0
            while i < nbuf or time.perf_counter() < t_end:
                fn(i % nbuf)
                i += 1
            n_in = inner[name]
            for r in range(per_round):
                t0 = time.perf_counter()
                for j in range(n_in):
                    fn((r + j) % nbuf)
                samples[name].append((time.perf_counter() - t0) / n_in)
            by_round[name].append(float(np.median(samples[name][-per_round:])))
    return {name: (float(np.median(v)), by_round[name]) for name, v in samples.items()}


def bench_shape(dtype, m, n, k, ta, tb):
    rng = np.random.default_rng(0)
    bytes_per = (m * k + k * n + m * n) * np.dtype(dtype).itemsize
    nbuf = int(max(3, min(16, 4e6 // bytes_per + 1)))  # rotate through > L2 worth of operands
    As = [rng.standard_normal((k, m) if ta else (m, k)).astype(dtype) for _ in range(nbuf)]
    Bs = [rng.standard_normal((n, k) if tb else (k, n)).astype(dtype) for _ in range(nbuf)]
    Cs = [np.empty((m, n), dtype) for _ in range(nbuf)]
    ctype = "float *" if dtype == np.float32 else "double *"
    pa = [ffi.cast(ctype, x.ctypes.data) for x in As]
    pb = [ffi.cast(ctype, x.ctypes.data) for x in Bs]
    pc = [ffi.cast(ctype, x.ctypes.data) for x in Cs]
    gemm = lib.mg_gemm_f32 if dtype == np.float32 else lib.mg_gemm_f64
    lda, ldb = As[0].shape[1], Bs[0].shape[1]
    opa = [x.T if ta else x for x in As]
    opb = [x.T if tb else x for x in Bs]
    flop = 2.0 * m * n * k
    tol = 1e-4 if dtype == np.float32 else 1e-11
    row = {}

    def ours(i):
        gemm(ta, tb, m, n, k, 1.0, pa[i], lda, pb[i], ldb, 0.0, pc[i], n)

    for i in range(nbuf):
        ours(i)
        ref = opa[i].astype(np.float64) @ opb[i].astype(np.float64)
        scale = np.abs(opa[i]).astype(np.float64) @ np.abs(opb[i]).astype(np.float64)
        if not (np.abs(Cs[i] - ref) <= tol * scale + 1e-30).all():
            raise SystemExit(f"WRONG RESULT from mg_gemm for {m}x{n}x{k} ta={ta} tb={tb}")
    fns = {"ours": ours}

    def npy(i):
        np.matmul(opa[i], opb[i], out=Cs[i])

    fns["numpy"] = npy

    if Tensor is not None:
        try:
            TA = [Tensor(x) for x in opa]
            TB = [Tensor(x) for x in opb]
            got = (TA[0] @ TB[0]).data
            if not np.allclose(got, opa[0] @ opb[0], rtol=1e-3, atol=1e-3):
                row["tensor"] = "wrong"
            else:
                fns["tensor"] = lambda i: TA[i] @ TB[i]
        except Exception as e:
            row["tensor"] = f"n/a ({type(e).__name__})"
    else:
        row["tensor"] = "n/a"

    if torch is not None:
        tA = [torch.from_numpy(x) for x in opa]
        tB = [torch.from_numpy(x) for x in opb]
        fns["torch"] = lambda i: torch.matmul(tA[i], tB[i])
    for name, (t, rounds) in median_times(fns, args.repeats, nbuf, args.rounds).items():
        row[name] = flop / t / 1e9
        row[name + " rounds"] = rounds
    # ours / numpy in each round (the two blocks of a round are seconds apart): their range shows
    # how far the machine's drift moves the ratio in this run
    row["np range"] = [tn / to for to, tn in zip(row["ours rounds"], row["numpy rounds"])]
    return row


def fmt(x):
    return f"{x:8.1f}" if isinstance(x, float) else f"{x:>8}"


def main():
    print(f"mg_gemm_path: {ffi.string(lib.mg_gemm_path()).decode()}")
    print(f"build flags:  {ffi.string(lib.mg_build_flags()).decode()}")
    print(f"threads: {args.threads} (ours: mg_set_num_threads; OpenBLAS: env), repeats: {args.repeats}")
    if tensor_err:
        print(f"Tensor column n/a: import minigrad failed: {tensor_err}")
    # global warm-up: the first shape timed otherwise pays for thread-pool start-up, page faults
    # and the CPU clock ramp (it measured ~20% low in early runs)
    w = np.random.default_rng(1).standard_normal((512, 512)).astype(np.float32)
    wout = np.empty_like(w)
    pw, pout = ffi.cast("float *", w.ctypes.data), ffi.cast("float *", wout.ctypes.data)
    t_end = time.perf_counter() + 1.0
    while time.perf_counter() < t_end:
        lib.mg_gemm_f32(0, 1, 512, 512, 512, 1.0, pw, 512, pw, 512, 0.0, pout, 512)
        np.matmul(w, w, out=wout)
    time.sleep(0.3)
    dtypes = {"f32": [np.float32], "f64": [np.float64], "both": [np.float32, np.float64]}[args.dtype]
    for dtype in dtypes:
        print(f"\n{np.dtype(dtype).name}, GFLOP/s (median)")
        head = (f"{'shape':<17} {'m x n x k':>16} {'op':>4} {'ours':>8} {'Tensor':>8} {'numpy':>8} {'ours/np':>8}"
                f" {'(rounds)':>10}")
        if torch is not None:
            head += f" {'torch':>8} {'ours/pt':>8}"
        print(head)
        ratios = []
        for name, m, n, k, ta, tb in SHAPES:
            if args.only and args.only not in name:
                continue
            r = bench_shape(dtype, m, n, k, ta, tb)
            ops = ("T" if ta else "N") + ("T" if tb else "N")
            ratio = r["ours"] / r["numpy"]
            ratios.append(ratio)
            line = (f"{name:<17} {f'{m}x{n}x{k}':>16} {ops:>4} {fmt(r['ours'])} {fmt(r['tensor'])}"
                    f" {fmt(r['numpy'])} {ratio:8.2f} {min(r['np range']):5.2f}-{max(r['np range']):4.2f}")
            if torch is not None:
                line += f" {fmt(r['torch'])} {r['ours'] / r['torch']:8.2f}"
            print(line, flush=True)
        if ratios:
            print(f"{'geomean ours/np':<17} {'':>16} {'':>4} {'':>8} {'':>8} {'':>8} "
                  f"{float(np.exp(np.mean(np.log(ratios)))):8.2f}")
            print(f"(rounds): ours/np within each of the {args.rounds} rounds, lowest-highest")


if __name__ == "__main__":
    main()
