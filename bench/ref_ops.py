#!/usr/bin/python3
"""PyTorch reference timings for the nn ops of tensor/ (joined with bench_ops by bench/run.sh).

Prints `ref <name> <ms>`: the best time of several runs, after warm-up, of one autograd
forward + backward of the op on the shapes bench/bench_ops.c uses, with
torch.set_num_threads(--threads). Inputs and upstream gradients are prepared beforehand.
"""
import argparse
import math
import os
import time

# Short-spin, then passive, OpenMP waiting unless the caller chose otherwise, as bench/run.sh sets for
# both sides (see there why). Must be set before torch loads libgomp.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("GOMP_SPINCOUNT", "10000")

import torch  # noqa: E402
import torch.nn.functional as F

CONFIGS = {
    # name: (B, T, D, H, MLP hidden, vocab); cross-entropy runs over B*48 text rows.
    "nano": (32, 176, 128, 4, 512, 2048),
    "small": (8, 308, 384, 6, 1536, 8192),
}


CLOCK = time.perf_counter


def best_ms(fn, warmup=3, min_runs=10, min_total=1.0, max_runs=300):
    """Best of at least min_runs runs and about min_total seconds of runs."""
    for _ in range(warmup):
        fn()
    best, spent, runs = math.inf, 0.0, 0
    while runs < max_runs and (runs < min_runs or spent < min_total):
        t0 = CLOCK()
        fn()
        t = CLOCK() - t0
        best, spent, runs = min(best, t), spent + t, runs + 1
    return best * 1e3


def bench_layernorm(B, T, D):
    x = torch.randn(B * T, D, requires_grad=True)
    w = torch.randn(D, requires_grad=True)
    b = torch.randn(D, requires_grad=True)
    gy = torch.randn(B * T, D)

    def run():
        x.grad = w.grad = b.grad = None
        F.layer_norm(x, (D,), w, b, 1e-5).backward(gy)
    return best_ms(run)


def bench_softmax(B, T, H):
    # Softmax over attention-score rows: [B*H*T, T].
    x = torch.randn(B * H * T, T, requires_grad=True)
    gy = torch.randn(B * H * T, T)

    def run():
        x.grad = None
        torch.softmax(x, dim=-1).backward(gy)
    return best_ms(run)


def bench_gelu(B, T, M):
    x = torch.randn(B * T, M, requires_grad=True)
    gy = torch.randn(B * T, M)

    def run():
        x.grad = None
        F.gelu(x, approximate="tanh").backward(gy)
    return best_ms(run)


def attention(qkv, H):
    # The natural PyTorch 1.13 formulation: split heads, q·kᵀ·scale, causal mask,
    # softmax, ·v, merge heads.
    B, T, D3 = qkv.shape
    D = D3 // 3
    hd = D // H
    q, k, v = qkv.split(D, dim=2)
    q = q.view(B, T, H, hd).transpose(1, 2)
    k = k.view(B, T, H, hd).transpose(1, 2)
    v = v.view(B, T, H, hd).transpose(1, 2)
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    att = att.masked_fill(~mask, float("-inf"))
    att = torch.softmax(att, dim=-1)
    y = att @ v
    return y.transpose(1, 2).contiguous().view(B, T, D)


def bench_attention(B, T, D, H):
    qkv = torch.randn(B, T, 3 * D, requires_grad=True)
    gy = torch.randn(B, T, D)

    def run():
        qkv.grad = None
        attention(qkv, H).backward(gy)
    return best_ms(run)


def bench_cross_entropy(B, V):
    N = B * 48
    logits = torch.randn(N, V, requires_grad=True)
    targets = torch.randint(0, V, (N,))
    targets[::7] = -100  # some ignored rows, as padding in a batch

    def run():
        logits.grad = None
        F.cross_entropy(logits, targets, ignore_index=-100).backward()
    return best_ms(run)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", default="", help="run only names containing this")
    ap.add_argument("--cpu", action="store_true",
                    help="process CPU time instead of wall time (profiling on a loaded machine)")
    args = ap.parse_args()
    if args.cpu:
        global CLOCK
        CLOCK = time.process_time
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    for cfg, (B, T, D, H, M, V) in CONFIGS.items():
        runs = [
            (f"layernorm_{cfg}", lambda: bench_layernorm(B, T, D)),
            (f"softmax_{cfg}", lambda: bench_softmax(B, T, H)),
            (f"gelu_{cfg}", lambda: bench_gelu(B, T, M)),
            (f"attention_{cfg}", lambda: bench_attention(B, T, D, H)),
            (f"cross_entropy_{cfg}", lambda: bench_cross_entropy(B, V)),
        ]
        for name, fn in runs:
            if args.only in name:
                print(f"ref {name} {fn():.4f}", flush=True)


if __name__ == "__main__":
    main()
