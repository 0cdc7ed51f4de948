#!/usr/bin/python3
"""Reference for tests/test_nn.c: a tiny causal language model trained for a few AdamW
steps in PyTorch, written out so the C implementation can replay it.

Model (the same as nn/ builds it): token embedding + learned positions, a stack of
pre-LN transformer blocks (x + attn(norm1(x)); x + mlp(norm2(x)); qkv laid out q|k|v;
MLP ratio 4 with GELU tanh; LayerNorm eps 1e-5), final LayerNorm, logits tied to the
token embedding, cross-entropy with ignore index -1 on padding. Padded keys, and a few
random other keys, are masked through key_valid.

Optimiser: torch.optim.AdamW (single-tensor path), weight decay on Linear weights only
(not on biases, LayerNorm or embeddings), linear warmup + cosine LR (nn/nn.h lr_at),
torch.nn.utils.clip_grad_norm_ before each step.

Usage: /usr/bin/python3 tests/ref/train_block.py --out DIR [--seed S]
Writes DIR/meta.txt (config, per-step loss / grad norm / lr, per-parameter grad norms
at step 1), DIR/init.bin (initial parameters by name), DIR/batches.bin (inputs,
targets, key_valid for every step), DIR/final.bin (parameters after the last step).

.bin format (little-endian): b"VCMT", u32 count, then per tensor: u32 name length,
name bytes, u32 dtype (0 float32, 1 int32), u32 ndim, u32 shape[ndim], the data.
"""
import argparse
import math
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

CFG = dict(vocab=67, d=32, heads=4, layers=2, n_ctx=20, T=17, batch=3, steps=10,
           max_lr=5e-3, min_lr=5e-4, warmup=3, total=10, beta1=0.9, beta2=0.95,
           eps=1e-8, weight_decay=0.1, clip=2.5, ignore_index=-1)


class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x, key_valid):
        B, T, D = x.shape
        hd = D // self.heads
        q, k, v = self.qkv(x).split(D, dim=2)
        q, k, v = (t.view(B, T, self.heads, hd).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
        mask = causal[None, None, :, :] & key_valid[:, None, None, :]
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, D)
        return self.proj(y)


class Mlp(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(d, eps=1e-5)
        self.attn = Attention(d, heads)
        self.norm2 = nn.LayerNorm(d, eps=1e-5)
        self.mlp = Mlp(d)

    def forward(self, x, key_valid):
        x = x + self.attn(self.norm1(x), key_valid)
        return x + self.mlp(self.norm2(x))


class TinyLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.tok_emb = nn.Embedding(c["vocab"], c["d"])
        self.pos_emb = nn.Embedding(c["n_ctx"], c["d"])
        self.blocks = nn.ModuleList([Block(c["d"], c["heads"]) for _ in range(c["layers"])])
        self.norm = nn.LayerNorm(c["d"], eps=1e-5)

    def forward(self, ids, targets, key_valid):
        T = ids.shape[1]
        x = self.tok_emb(ids) + self.pos_emb.weight[:T]
        for b in self.blocks:
            x = b(x, key_valid)
        logits = self.norm(x) @ self.tok_emb.weight.t()
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                               ignore_index=CFG["ignore_index"])


def lr_at(c, step):
    """nn/nn.h lr_at, in double."""
    if step < c["warmup"]:
        return c["max_lr"] * (step + 1) / c["warmup"]
    if step >= c["total"] or c["total"] <= c["warmup"]:
        return c["min_lr"]
    progress = (step - c["warmup"]) / (c["total"] - c["warmup"])
    return c["min_lr"] + 0.5 * (c["max_lr"] - c["min_lr"]) * (1.0 + math.cos(math.pi * progress))


def init_params(model, gen):
    """Non-trivial values everywhere (LN weights away from 1, biases away from 0) so a
    mistake in any parameter's use shows up in the loss."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.02 * torch.randn(p.shape, generator=gen))
            elif "emb" in name:
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.08 * torch.randn(p.shape, generator=gen))


def make_batches(c, gen):
    """Per step: B sequences of random length L in [T/2, T] (one of full length),
    inputs padded with 0, targets padded with ignore_index, key_valid = position < L
    minus a few random holes."""
    S, B, T, V = c["steps"], c["batch"], c["T"], c["vocab"]
    ids = torch.zeros(S, B, T, dtype=torch.int32)
    tgt = torch.full((S, B, T), c["ignore_index"], dtype=torch.int32)
    valid = torch.zeros(S, B, T, dtype=torch.int32)
    for s in range(S):
        for b in range(B):
            L = T if b == 0 else int(torch.randint(T // 2, T + 1, (1,), generator=gen))
            seq = torch.randint(1, V, (L + 1,), generator=gen, dtype=torch.int64).to(torch.int32)
            ids[s, b, :L] = seq[:L]
            tgt[s, b, :L] = seq[1:]
            valid[s, b, :L] = 1
            # Holes in the keys (never key 0, so no query row is fully masked): with
            # causal attention and right padding alone key_valid would change nothing.
            holes = torch.rand(T, generator=gen) < 0.15
            holes[0] = False
            valid[s, b][holes] = 0
    return ids, tgt, valid


def write_bin(path, tensors):
    with open(path, "wb") as f:
        f.write(b"VCMT")
        f.write(struct.pack("<I", len(tensors)))
        for name, t in tensors:
            t = t.detach().contiguous()
            dtype = 0 if t.dtype == torch.float32 else 1
            assert t.dtype in (torch.float32, torch.int32)
            nb = name.encode()
            f.write(struct.pack("<I", len(nb)) + nb)
            f.write(struct.pack("<II", dtype, t.dim()))
            f.write(struct.pack("<%dI" % t.dim(), *t.shape))
            f.write(t.numpy().astype("<f4" if dtype == 0 else "<i4").tobytes())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="directory for the golden files")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    c = CFG
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(args.seed)
    model = TinyLM(c)
    init_params(model, gen)
    ids, tgt, valid = make_batches(c, gen)
    write_bin(os.path.join(args.out, "init.bin"), list(model.named_parameters()))
    write_bin(os.path.join(args.out, "batches.bin"), [("ids", ids), ("targets", tgt), ("key_valid", valid)])

    decay = [p for n, p in model.named_parameters() if p.dim() == 2 and "emb" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() == 2 and "emb" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": c["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=c["max_lr"], betas=(c["beta1"], c["beta2"]), eps=c["eps"], foreach=False)
    lines = ["%s %r" % (k, v) for k, v in c.items()]
    lines.append("seed %d" % args.seed)
    for s in range(c["steps"]):
        opt.zero_grad(set_to_none=False)
        loss = model(ids[s].long(), tgt[s].long(), valid[s].bool())
        loss.backward()
        if s == 0:
            for n, p in model.named_parameters():
                lines.append("gradnorm1 %s %.9g" % (n, p.grad.double().norm().item()))
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), c["clip"])
        lr = lr_at(c, s)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        lines.append("step %d loss %.9g norm %.9g lr %.9g" % (s + 1, loss.item(), norm.item(), lr))
        print(lines[-1])
    write_bin(os.path.join(args.out, "final.bin"), list(model.named_parameters()))
    with open(os.path.join(args.out, "meta.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
