#!/usr/bin/python3
"""make bench reference for bench/bench_model.c: the student of tests/ref/model.py in
PyTorch (float32, eager), the same batch formulas and thread count.

Prints (bench/run.sh joins them with the "ours" lines of bench_model):
  ref train_step_nano_b32 <ms>     forward + backward + clip_grad_norm_ + AdamW, best of N
  ref rss_nano_b32 <MB>            peak resident memory of a process that ran only that
  ref train_step_small_b8 <ms> / ref rss_small_b8 <MB>
  ref gen_tokens_nano <ms>         batch 1, prompt 8, 32 greedy new tokens, manual KV cache

Each training config runs in its own subprocess (--one CONFIG BATCH REPS) so that
ru_maxrss is that config's peak.
"""
import argparse
import os
import resource
import subprocess
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "ref"))
from model import CONFIGS, Student  # noqa: E402

REGION_SLOTS = 3
BOS, EOS, PAD = 1, 2, 0


def text_len(c):
    return min(c["max_text"], 48)


def make_bench_batch(c, B):
    """bench_model.c bench_batch, formula for formula."""
    S, T, R = c["image"], text_len(c), REGION_SLOTS
    ni = B * 3 * S * S
    images = (((np.arange(ni, dtype=np.int64) * 7919) % 2001).astype(np.float32) / np.float32(1000.0)
              - np.float32(1.0)).reshape(B, 3, S, S)
    boxes = np.zeros((B, R, 4), dtype=np.float32)
    nreg = np.zeros(B, dtype=np.int32)
    tokens = np.zeros((B, T), dtype=np.int32)
    targets = np.full((B, T), -1, dtype=np.int32)
    for i in range(B):
        nreg[i] = 1 + i % R
        for k in range(nreg[i]):
            x0 = (i * 5 + k * 11) % (S // 2)
            y0 = (i * 3 + k * 7) % (S // 2)
            boxes[i, k] = [x0, y0, x0 + S // 4 + (i + k) % (S // 4), y0 + S // 4 + (2 * i + k) % (S // 4)]
        n = T - (i % 4) * 4
        for t in range(T):
            tokens[i, t] = (BOS if t == 0 else 3 + (i * 31 + t * 17) % (c["vocab"] - 3)) if t < n else PAD
        for t in range(T):
            targets[i, t] = tokens[i, t + 1] if t + 1 < n else (EOS if t + 1 == n else -1)
    return images, boxes, nreg, tokens, targets


def optimizer(model):
    """AdamW with weight decay on Linear weights only (nn/ optim's mask)."""
    decay, no_decay = [], []
    for mod in model.modules():
        for name, p in mod.named_parameters(recurse=False):
            (decay if isinstance(mod, torch.nn.Linear) and name == "weight" else no_decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                              {"params": no_decay, "weight_decay": 0.0}], lr=1e-4)


def run_train(name, B, reps):
    c = CONFIGS[name]
    torch.manual_seed(1)
    model = Student(c)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("norm1.weight") or n.endswith("norm2.weight") or n.endswith("norm.weight"):
                p.fill_(1.0)
            elif n.endswith(".bias"):
                p.zero_()
            else:
                p.normal_(0.0, 0.02)
    opt = optimizer(model)
    images, boxes, nreg, tokens, targets = make_bench_batch(c, B)
    best = float("inf")
    for r in range(reps + 1):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        logits = model.logits(images, boxes, nreg, tokens)
        loss = model.loss(logits, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        t = (time.perf_counter() - t) * 1e3
        if r > 0 or reps == 0:   # r = 0 warms up
            best = min(best, t)
    tag = "%s_b%d" % (name, B)
    print("ref train_step_%s %.3f" % (tag, best))
    print("ref rss_%s %.1f" % (tag, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0))
    sys.stdout.flush()


def run_generate(reps):
    c = CONFIGS["nano"]
    torch.manual_seed(1)
    model = Student(c)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02)
    images, boxes, nreg, tokens, _ = make_bench_batch(c, 1)
    best = float("inf")
    for r in range(reps + 1):
        model.generate(images, boxes, nreg, tokens[:, :8], 32)
        if r > 0 or reps == 0:
            best = min(best, model.step_seconds * 1e3 / 32)
    print("ref gen_tokens_nano %.4f" % best)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--one", nargs=3, metavar=("CONFIG", "BATCH", "REPS"))
    ap.add_argument("--no-train", action="store_true",
                    help="generation only (bench/run.sh runs --one per config in rounds)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.one:
        run_train(args.one[0], int(args.one[1]), int(args.one[2]))
        return 0
    if args.no_train:
        run_generate(10)
        return 0
    rc = 0
    for name, B, reps in (("nano", 32, 10), ("small", 8, 4)):   # as bench_model.c
        r = subprocess.run([sys.executable, os.path.abspath(__file__), "--threads", str(args.threads),
                            "--one", name, str(B), str(reps)])
        rc |= r.returncode
    run_generate(10)
    return rc


if __name__ == "__main__":
    sys.exit(main())
