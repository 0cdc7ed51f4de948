#!/usr/bin/python3
"""The critic (model/critic.c) in PyTorch, and the goldens of tests/test_critic_ref.c.

The critic is the student of tests/ref/model.py (imported, not copied) plus:
  pooled = mean of the final-LayerNorm hidden states over the text positions whose
           target is not -1 (<bos> and the text; padding excluded)
  nll    = per sample, the mean next-token cross-entropy of the tied logits over the
           same positions (the trunk's surprise at the text)
  logits = critic.head(pooled) + critic.lm(nll): Linear dec_d -> 2 with bias, plus
           Linear 1 -> 2 without; (reject, accept)
  loss   = mean cross-entropy against labels (0 reject, 1 accept)

Goldens (tests/ref/golden_critic, format docs/GOLDENS.md plus safetensors):
  tinypx_crit: model.py's "tinypx" config (the region pixel token on). Weights
        tinypx_crit.safetensors (our critic_init, seed 1234); tinypx_crit.vgd holds
        the batch, the labels, logits [B, 2], loss, float32 PyTorch's own error per
        tensor; tinypx_crit.grads.safetensors EVERY parameter gradient, full.
  nano_crit: the real nano config (weights from critic_init seed 1234, not committed:
        the C test re-creates them and checks the stored weight norms and samples).
        Logits and loss in full, every parameter's gradient norm, every element of the
        gradients of critic.head.* and dec.norm.* and sampled elements of the others.
References are float64 PyTorch on our float32 weights and inputs.

Usage:
  /usr/bin/python3 tests/ref/critic.py --out tests/ref/golden_critic [--build build]
      (runs BUILD/tests/test_critic_ref --export-weights to get critic_init's weights)
"""
import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ops import VERSION, rel_error, write_case  # noqa: E402
from model import (CONFIGS, Student, batch_arrays, load_weights, make_batch, names_blob,  # noqa: E402
                   safetensors_read, safetensors_write)


class Head(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.head = nn.Linear(d, 2)
        self.lm = nn.Linear(1, 2, bias=False)


class Critic(Student):
    """Parameter names equal ours: the student's plus critic.head.weight / .bias."""
    def __init__(self, c):
        super().__init__(c)
        self.critic = Head(c["dec_d"])

    def critic_logits(self, batch):
        x, key_valid, prefix = self.decoder_input(batch["images"], batch["boxes"], batch["n_regions"],
                                                  batch["tokens"])
        for b in self.dec.blocks:
            x = b(x, True, key_valid)
        h = self.dec.norm(x)[:, prefix:]                                  # [B, T, d]
        mask = torch.tensor(batch["targets"] >= 0, dtype=h.dtype)         # [B, T]
        pooled = (h * mask[:, :, None]).sum(1) / mask.sum(1, keepdim=True)
        lm = h @ self.dec.tok.weight.t()                                   # [B, T, V]
        tg = torch.tensor(batch["targets"], dtype=torch.long)
        nll = torch.stack([F.cross_entropy(lm[i], tg[i], ignore_index=-1) for i in range(lm.shape[0])])
        return self.critic.head(pooled) + self.critic.lm(nll[:, None])


def run(model, batch):
    model.zero_grad(set_to_none=True)
    logits = model.critic_logits(batch)
    loss = F.cross_entropy(logits, torch.tensor(batch["labels"], dtype=torch.long))
    loss.backward()
    grads = {n: (p.grad if p.grad is not None else torch.zeros_like(p)).detach().numpy().astype(np.float32)
             for n, p in model.named_parameters()}
    return logits.detach().numpy().astype(np.float32), float(loss), grads


# name: config, B, R, n_regions, text lengths, T
CASES = {
    "tinypx_crit": ("tinypx", 3, 2, [2, 1, 0], [12, 5, 9], 12),
    "nano_crit": ("nano", 2, 3, [3, 1], [20, 11], 20),
}
FULL_IN_NANO = ("critic.head.weight", "critic.head.bias", "critic.lm.weight", "dec.norm.weight", "dec.norm.bias")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--build", default="build", help="where tests/test_critic_ref is (to export the weights)")
    ap.add_argument("--weights", help="DIR with tinypx_crit.safetensors and nano_crit.safetensors")
    ap.add_argument("--seed", type=int, default=0, help="seed of the batches")
    ap.add_argument("--samples", type=int, default=8, help="sampled gradient elements per nano parameter")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    tmp = None
    wdir = args.weights
    if not wdir:
        tmp = tempfile.mkdtemp(prefix="vcm-critic-ref-")
        subprocess.run([os.path.join(args.build, "tests", "test_critic_ref"), "--export-weights", tmp], check=True)
        wdir = tmp
    rng = np.random.default_rng(args.seed)
    names = []
    for case, (cfg, B, R, nreg, lens, T) in CASES.items():
        c = CONFIGS[cfg]
        weights = safetensors_read(os.path.join(wdir, case + ".safetensors"))
        m64, m32 = Critic(c).double(), Critic(c)
        load_weights(m64, weights)
        load_weights(m32, weights)
        pnames = [n for n, _ in m64.named_parameters()]
        batch = make_batch(c, rng, B, R, nreg, lens, T)
        batch["labels"] = np.array([i % 2 for i in range(B)], dtype=np.int32)
        logits, loss, grads = run(m64, batch)
        l32, loss32, g32 = run(m32, batch)
        t32 = [rel_error(l32, logits), rel_error(np.array([loss32]), np.array([loss]))]
        t32 += [rel_error(g32[n], grads[n]) for n in pnames]
        arrays = batch_arrays(c, batch) + [("labels", batch["labels"]), ("logits", logits),
                                            ("loss", np.array([loss], dtype=np.float32)),
                                            ("torch32_rel", np.array(t32, dtype=np.float32))]
        if cfg != "nano":
            shutil.copyfile(os.path.join(wdir, case + ".safetensors"), os.path.join(args.out, case + ".safetensors"))
            safetensors_write(os.path.join(args.out, case + ".grads.safetensors"), [(n, grads[n]) for n in pnames])
        else:
            gidx, gval, wval = [], [], []
            for pi, n in enumerate(pnames):
                g = grads[n].reshape(-1)
                if n in FULL_IN_NANO:
                    idx = np.arange(g.size)
                else:
                    idx = np.sort(rng.choice(g.size, min(args.samples, g.size), replace=False))
                    idx[0] = int(np.abs(g).argmax())
                    idx = np.unique(idx)
                for j in idx:
                    gidx.append((pi, j))
                    gval.append(g[j])
                    wval.append(weights[n].reshape(-1)[j])
            arrays += [
                ("param_names", names_blob(pnames)),
                ("grad_norm", np.array([np.linalg.norm(grads[n].astype(np.float64)) for n in pnames],
                                       dtype=np.float32)),
                ("weight_norm", np.array([np.linalg.norm(weights[n].astype(np.float64)) for n in pnames],
                                         dtype=np.float32)),
                ("sample_idx", np.array(gidx, dtype=np.int32)),
                ("grad_val", np.array(gval, dtype=np.float32)),
                ("weight_val", np.array(wval, dtype=np.float32)),
            ]
        write_case(os.path.join(args.out, case + ".vgd"), "critic", arrays)
        names.append(case)
        print("%-12s loss %.6f  float32 PyTorch vs float64: worst rel %.2g" % (case, loss, max(t32)))
    with open(os.path.join(args.out, "MANIFEST"), "w") as f:
        f.write("vcm-goldens %d seed %d cases %d\n" % (VERSION, args.seed, len(names)))
        for n in names:
            f.write(n + "\n")
    if tmp:
        shutil.rmtree(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
