#!/usr/bin/python3
"""The student (DESIGN.md section 4, model/student.c) in PyTorch, and the goldens of
tests/test_model_ref.c: one training batch's logits, loss and every parameter gradient.

The model, written from model/student.c:
  ViT:     F.unfold patches (channel, row, col) -> patch_embed (a Conv2d [d,3,P,P] as a
           matmul) -> + vit.pos -> bidirectional pre-LN blocks -> vit.norm: [B, G*G, d_vit]
  regions: torchvision roi_align over the grid (output 2x2, spatial_scale 1/patch,
           sampling_ratio 2, aligned), cell (ph, pw) -> token ph*2+pw;
           token = roi_proj(v) + box_proj(box / image) + s * dec.tok["[k]"] (id 3 + k; s = region_id_scale, nano 4)
  decoder: concat(vis_proj(feat), region tokens, dec.tok(tokens)) + dec.pos[ids] with
           ids: patches 0..G*G-1, region slot k cell c at G*G + 4k + c, text t at
           G*G + 64 + t (student_text_pos0); causal pre-LN blocks where the padded region
           slots (k >= n_regions[i]) are never attended; dec.norm; text positions only;
           logits = h @ dec.tok^T (tied); loss = mean cross-entropy, target -1 ignored.
  blocks:  x + attn(norm1(x)); h + mlp(norm2(h)); qkv = q|k|v, head h at columns h*hd;
           GELU tanh; LayerNorm eps 1e-5; Linear weights [out, in].

Goldens (tests/ref/golden_model, format docs/GOLDENS.md plus safetensors):
  tiny: a reduced config of the same architecture (image 32, patch 8, d 16, 2+2 layers,
        2 heads, vocab 300, text 16). Weights tiny.safetensors (written by our C code:
        student_init, seed 1234); for batches b2 (3 samples, 2 region slots, 2/1/0 real
        regions) and b4 (2 samples, 4 slots, 4/2 real): tiny_<b>.vgd (batch, logits, loss)
        and tiny_<b>.grads.safetensors (EVERY parameter gradient, full).
  tinypx: tiny with roi_pixels 4 (the region pixel token), batch b4, everything.
  tinypxn: tinypx with mention 1 (MENTION_NORM: a mention adds LayerNorm(v_k) with
        its own gain, bridge.mention_norm, instead of v_k), batch b4, everything.
  nano: the real nano config (1.94M parameters, weights from student_init seed 1234,
        not committed: the C test re-creates them and checks them against the stored
        weight norms and samples). nano_<b>.vgd holds the batch, the loss, a sample of
        the logits, per-parameter gradient norms and sampled gradient elements.
References are computed in float64 from the float32 weights and inputs (the exact
answer for what our float32 code sees); float32 PyTorch is also run and its distance
to float64 printed as a baseline of what float32 rounding costs.

Usage:
  /usr/bin/python3 tests/ref/model.py --out tests/ref/golden_model [--build build]
      runs BUILD/tests/test_model_ref --export-weights to get the weights of our
      student_init (or --weights DIR with DIR/tiny.safetensors and DIR/nano.safetensors).
"""
import argparse
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.ops import roi_align

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ops import VERSION, rel_error, write_case  # noqa: E402

MAX_REGIONS = 16
ROI_CELLS = 4
REGION0 = 3          # token id of "[0]" (lm/lm.h BPE_REGION0)
SEED = 1234          # the student_init seed of the C side

# model/config.c, plus the reduced config of the tests (same architecture).
CONFIGS = {
    "nano": dict(image=64, patch=8, vit_d=128, vit_layers=4, vit_heads=4, dec_d=128, dec_layers=4,
                 dec_heads=4, vocab=2048, max_text=64, roi_pixels=8, mention=1, region_id_scale=4),
    "small": dict(image=224, patch=16, vit_d=384, vit_layers=6, vit_heads=6, dec_d=384, dec_layers=6,
                  dec_heads=6, vocab=8192, max_text=96),
    "tiny": dict(image=32, patch=8, vit_d=16, vit_layers=2, vit_heads=2, dec_d=16, dec_layers=2,
                 dec_heads=2, vocab=300, max_text=16),
    # tiny plus the region pixel token (ModelConfig.roi_pixels, model/student.c)
    "tinypx": dict(image=32, patch=8, vit_d=16, vit_layers=2, vit_heads=2, dec_d=16, dec_layers=2,
                   dec_heads=2, vocab=300, max_text=16, roi_pixels=4),
    # tinypx with MENTION_NORM (ModelConfig.mention), what nano uses
    "tinypxn": dict(image=32, patch=8, vit_d=16, vit_layers=2, vit_heads=2, dec_d=16, dec_layers=2,
                    dec_heads=2, vocab=300, max_text=16, roi_pixels=4, mention=1),
}
for _c in CONFIGS.values():
    _c.setdefault("roi_pixels", 0)
    _c.setdefault("mention", 0)
    _c.setdefault("region_id_scale", 1)
CONFIG_KEYS = ["image", "patch", "vit_d", "vit_layers", "vit_heads", "dec_d", "dec_layers", "dec_heads",
               "vocab", "max_text", "roi_pixels"]


def grid(c):
    return c["image"] // c["patch"]


def region_tokens_per_slot(c):
    return ROI_CELLS + (1 if c["roi_pixels"] > 0 else 0)


def max_seq(c):
    return grid(c) ** 2 + MAX_REGIONS * region_tokens_per_slot(c) + c["max_text"]


def text_pos0(c):
    return max_seq(c) - c["max_text"]


# ---------------------------------------------------------------- the model

class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x, causal, key_valid):
        """key_valid: None or bool [B, T] (False: never attended)."""
        B, T, D = x.shape
        hd = D // self.heads
        q, k, v = self.qkv(x).split(D, dim=2)
        q, k, v = (t.view(B, T, self.heads, hd).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        allowed = torch.ones(B, 1, T, T, dtype=torch.bool)
        if causal:
            allowed = allowed & torch.tril(torch.ones(T, T, dtype=torch.bool))
        if key_valid is not None:
            allowed = allowed & key_valid[:, None, None, :]
        att = att.masked_fill(~allowed, float("-inf")).softmax(dim=-1)
        att = att.masked_fill(~allowed, 0.0)   # a query with no key at all outputs 0
        y = (att @ v).transpose(1, 2).reshape(B, T, D)
        return self.proj(y)

    def step(self, x, cache_k, cache_v, valid):
        """One position with a KV cache: x [B, 1, D]; cache lists grow in place."""
        B, _, D = x.shape
        hd = D // self.heads
        q, k, v = self.qkv(x).split(D, dim=2)
        q, k, v = (t.view(B, 1, self.heads, hd).transpose(1, 2) for t in (q, k, v))
        cache_k.append(k)
        cache_v.append(v)
        K, V = torch.cat(cache_k, dim=2), torch.cat(cache_v, dim=2)
        att = (q @ K.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        if valid is not None:
            att = att.masked_fill(~valid[:, None, None, :K.shape[2]], float("-inf"))
        y = (att.softmax(dim=-1) @ V).transpose(1, 2).reshape(B, 1, D)
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

    def forward(self, x, causal, key_valid):
        h = x + self.attn(self.norm1(x), causal, key_valid)
        return h + self.mlp(self.norm2(h))


class Table(nn.Module):
    """An embedding table named "<prefix>.weight" like our Embedding."""
    def __init__(self, n, d):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n, d))


class Vit(nn.Module):
    def __init__(self, c):
        super().__init__()
        P, d = c["patch"], c["vit_d"]
        self.patch = P
        self.patch_embed = nn.Linear(3 * P * P, d)
        self.pos = Table(grid(c) ** 2, d)
        self.blocks = nn.ModuleList(Block(d, c["vit_heads"]) for _ in range(c["vit_layers"]))
        self.norm = nn.LayerNorm(d, eps=1e-5)

    def forward(self, img):
        x = F.unfold(img, self.patch, stride=self.patch).transpose(1, 2)   # [B, G*G, 3*P*P]
        x = self.patch_embed(x) + self.pos.weight[: x.shape[1]]
        for b in self.blocks:
            x = b(x, False, None)
        return self.norm(x)


class Bridge(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.vis_proj = nn.Linear(c["vit_d"], c["dec_d"])
        self.roi_proj = nn.Linear(c["vit_d"], c["dec_d"])
        self.box_proj = nn.Linear(4, c["dec_d"])
        if c["roi_pixels"] > 0:
            self.pix_proj = nn.Linear(3 * c["roi_pixels"] ** 2, c["dec_d"])
        if c["roi_pixels"] > 0 and c["mention"] == 1:
            self.mention_norm = nn.LayerNorm(c["dec_d"], eps=1e-5)


class Decoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.tok = Table(c["vocab"], c["dec_d"])
        self.pos = Table(max_seq(c), c["dec_d"])
        self.blocks = nn.ModuleList(Block(c["dec_d"], c["dec_heads"]) for _ in range(c["dec_layers"]))
        self.norm = nn.LayerNorm(c["dec_d"], eps=1e-5)


class Student(nn.Module):
    """Parameter names equal ours: vit.patch_embed.weight, dec.blocks.0.attn.qkv.weight, ..."""
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.vit = Vit(c)
        self.bridge = Bridge(c)
        self.dec = Decoder(c)

    def region_tokens(self, feat, boxes, dtype, images):
        """feat [B, G*G, d_vit]; boxes float32 numpy [B, R, 4] -> [B, 4R, d_dec]; with
        roi_pixels P > 0, then one pixel token per slot: the image RoIAligned to P x P
        (scale 1, our layout flattens (cell, channel)), pix_proj + box_proj + "[k]"."""
        c = self.c
        B, R = boxes.shape[0], boxes.shape[1]
        G = grid(c)
        rois = np.zeros((B * R, 5), dtype=np.float32)
        rois[:, 0] = np.repeat(np.arange(B), R)
        rois[:, 1:] = boxes.reshape(B * R, 4)
        nchw = feat.transpose(1, 2).reshape(B, -1, G, G)
        pooled = roi_align(nchw, torch.tensor(rois, dtype=dtype), output_size=(2, 2),
                           spatial_scale=1.0 / c["patch"], sampling_ratio=2, aligned=True)  # [BR, d, 2, 2]
        pooled = pooled.flatten(2).transpose(1, 2).reshape(B, R * ROI_CELLS, -1)
        # box / image in float32, as the C code forms it
        boxin = np.repeat((boxes / np.float32(c["image"])).astype(np.float32), ROI_CELLS, axis=1)
        ids = REGION0 + np.minimum(np.arange(R), MAX_REGIONS - 1)
        kid = torch.tensor(ids)
        ids = torch.tensor(np.repeat(ids, ROI_CELLS))
        # the id part, scaled by region_id_scale (model/student.c region_id)
        s = float(max(1, c["region_id_scale"]))
        x = (self.bridge.roi_proj(pooled) + self.bridge.box_proj(torch.tensor(boxin, dtype=dtype))
             + s * self.dec.tok.weight[ids][None])
        P = c["roi_pixels"]
        if P <= 0:
            return x
        pix = roi_align(images, torch.tensor(rois, dtype=dtype), output_size=(P, P), spatial_scale=1.0,
                        sampling_ratio=2, aligned=True)                       # [BR, 3, P, P]
        pix = pix.permute(0, 2, 3, 1).reshape(B, R, P * P * 3)
        pbox = torch.tensor((boxes / np.float32(c["image"])).astype(np.float32), dtype=dtype)
        yv = self.bridge.pix_proj(pix) + self.bridge.box_proj(pbox)
        # what each mention "[k]" also carries: v_k, or LayerNorm(v_k) with its gain
        self.slot_vec = self.bridge.mention_norm(yv) if c["mention"] == 1 else yv
        y = yv + s * self.dec.tok.weight[kid][None]
        return torch.cat([x, y], dim=1)

    def decoder_input(self, images, boxes, n_regions, tokens):
        """Returns x [B, L, d] (positions added) and key_valid bool [B, L] or None."""
        c = self.c
        dtype = self.dec.tok.weight.dtype
        B, T = tokens.shape
        G = grid(c)
        img = torch.tensor(images, dtype=dtype)
        feat = self.vit(img)
        parts = [self.bridge.vis_proj(feat)]
        R = boxes.shape[1] if boxes is not None else 0
        if R > 0:
            parts.append(self.region_tokens(feat, boxes, dtype, img))
        txt = self.dec.tok.weight[torch.tensor(tokens, dtype=torch.long)]
        if R > 0 and c["roi_pixels"] > 0:
            # model/student.c add_mention_vectors: a mention "[k]" of one of the sample's
            # regions gets that region's pixel-token vector (without its id embedding)
            add = torch.zeros_like(txt)
            for i in range(B):
                for t in range(T):
                    k = int(tokens[i, t]) - REGION0
                    if 0 <= k < R and k < int(n_regions[i]):
                        add[i, t] = self.slot_vec[i, k]
            txt = txt + add
        parts.append(txt)
        x = torch.cat(parts, dim=1)
        L = x.shape[1]
        prefix = L - T
        key_valid = None
        if R > 0:
            kv = np.ones((B, L), dtype=bool)
            for i in range(B):
                for k in range(int(n_regions[i]), R):
                    kv[i, G * G + 4 * k: G * G + 4 * k + 4] = False
                    if c["roi_pixels"] > 0:
                        kv[i, G * G + 4 * R + k] = False
            key_valid = torch.tensor(kv)
        cells_end = G * G + ROI_CELLS * R
        pos = np.array([text_pos0(c) + i - prefix if i >= prefix else
                        i if i < cells_end else G * G + MAX_REGIONS * ROI_CELLS + i - cells_end for i in range(L)])
        return x + self.dec.pos.weight[torch.tensor(pos)], key_valid, prefix

    def logits(self, images, boxes, n_regions, tokens):
        x, key_valid, prefix = self.decoder_input(images, boxes, n_regions, tokens)
        for b in self.dec.blocks:
            x = b(x, True, key_valid)
        x = self.dec.norm(x)[:, prefix:]
        return x @ self.dec.tok.weight.t()

    def loss(self, logits, targets):
        t = torch.tensor(targets, dtype=torch.long).reshape(-1)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), t, ignore_index=-1)

    # -- generation with a manual KV cache (the bench's reference)
    @torch.no_grad()
    def generate(self, images, boxes, n_regions, prompt, n_new):
        """Greedy, batch 1: prefill over the prefix and the prompt, then one token at a
        time through per-layer key/value caches. Returns the new ids."""
        c = self.c
        x, key_valid, prefix = self.decoder_input(images, boxes, n_regions, prompt)
        caches = [([], []) for _ in self.dec.blocks]
        for b, (ck, cv) in zip(self.dec.blocks, caches):
            h = b.norm1(x)
            B, T, D = h.shape
            hd = D // b.attn.heads
            q, k, v = b.attn.qkv(h).split(D, dim=2)
            ck.append(k.view(B, T, b.attn.heads, hd).transpose(1, 2))
            cv.append(v.view(B, T, b.attn.heads, hd).transpose(1, 2))
            x = b(x, True, key_valid)
        h = self.dec.norm(x[:, -1:])
        valid = None
        if key_valid is not None:
            valid = torch.cat([key_valid, torch.ones(1, n_new + 1, dtype=torch.bool)], dim=1)
        out = []
        t = prompt.shape[1]
        start = time.perf_counter()
        for _ in range(n_new):
            nxt = int((h @ self.dec.tok.weight.t())[0, -1].argmax())
            out.append(nxt)
            x = self.dec.tok.weight[nxt].view(1, 1, -1) + self.dec.pos.weight[text_pos0(c) + t].view(1, 1, -1)
            t += 1
            for b, (ck, cv) in zip(self.dec.blocks, caches):
                x = x + b.attn.step(b.norm1(x), ck, cv, valid)
                x = x + b.mlp(b.norm2(x))
            h = self.dec.norm(x)
        self.step_seconds = time.perf_counter() - start   # the token loop only (the bench's figure)
        return out


# ---------------------------------------------------------------- safetensors

def safetensors_read(path):
    """name -> float32 numpy array (a minimal reader: u64 header size, JSON, data)."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F32", (path, name, e["dtype"])
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(data[b:end], dtype="<f4").reshape(e["shape"]).copy()
    return out


def safetensors_write(path, tensors):
    """tensors: list of (name, float32 array), written in that order."""
    header, at = {}, 0
    for name, a in tensors:
        nbytes = a.size * 4
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [at, at + nbytes]}
        at += nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, a in tensors:
            f.write(np.ascontiguousarray(a, dtype="<f4").tobytes())


def load_weights(model, weights):
    names = dict(model.named_parameters())
    assert set(names) == set(weights), ("names differ", sorted(set(names) ^ set(weights)))
    with torch.no_grad():
        for n, p in names.items():
            assert tuple(p.shape) == weights[n].shape, (n, p.shape, weights[n].shape)
            p.copy_(torch.tensor(weights[n]))


# ---------------------------------------------------------------- batches

def make_batch(c, rng, B, R, n_regions, lengths, T):
    """Images in [-1, 1]; boxes in model pixels, some partly outside, padded slots 0;
    tokens <bos> first, <pad> (0) after each sample's end with target -1."""
    S = c["image"]
    images = rng.uniform(-1, 1, (B, 3, S, S)).astype(np.float32)
    boxes = np.zeros((B, R, 4), dtype=np.float32)
    for i in range(B):
        for k in range(n_regions[i]):
            x0, x1 = np.sort(rng.uniform(-0.2 * S, 1.2 * S, 2))
            y0, y1 = np.sort(rng.uniform(-0.2 * S, 1.2 * S, 2))
            boxes[i, k] = [x0, y0, x1, y1]
    tokens = np.zeros((B, T), dtype=np.int32)
    targets = np.full((B, T), -1, dtype=np.int32)
    for i in range(B):
        n = lengths[i]
        seq = rng.integers(3, c["vocab"], n + 1).astype(np.int32)
        seq[0] = 1
        seq[n] = 2
        # region mentions "[k]" (ids 3 + k), of real and of absent slots
        for j in range(1, n, 3):
            seq[j] = 3 + int(rng.integers(0, max(R, 1) + 1))
        tokens[i, :n] = seq[:n]
        targets[i, :n] = seq[1:n + 1]
    return dict(images=images, boxes=boxes, n_regions=np.array(n_regions, dtype=np.int32), tokens=tokens,
                targets=targets)


BATCHES = {  # name: B, R, n_regions, text lengths, T
    "b2": (3, 2, [2, 1, 0], [12, 7, 10], 12),
    "b4": (2, 4, [4, 2], [16, 9], 16),
}


def run_batch(model, batch):
    model.zero_grad(set_to_none=True)
    logits = model.logits(batch["images"], batch["boxes"], batch["n_regions"], batch["tokens"])
    loss = model.loss(logits, batch["targets"])
    loss.backward()
    grads = {n: (p.grad if p.grad is not None else torch.zeros_like(p)).detach().numpy().astype(np.float32)
             for n, p in model.named_parameters()}
    return logits.detach().numpy().astype(np.float32), float(loss), grads


def batch_arrays(c, batch):
    return [("config", np.array([c[k] for k in CONFIG_KEYS], dtype=np.int32)),
            ("images", batch["images"]), ("boxes", batch["boxes"]), ("n_regions", batch["n_regions"]),
            ("tokens", batch["tokens"]), ("targets", batch["targets"])]


def sampled_rel(ours, ref, floor):
    """The golden rule on a sample, with the floor of the whole tensor."""
    ours, ref = ours.astype(np.float64), ref.astype(np.float64)
    if floor == 0:
        return 0.0 if not ours.any() else math.inf
    return float((np.abs(ours - ref) / np.maximum(np.abs(ref), floor)).max())


def names_blob(names):
    return np.frombuffer("\n".join(names).encode(), dtype=np.uint8).copy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--build", default="build", help="where tests/test_model_ref is (to export the weights)")
    ap.add_argument("--weights", help="DIR with tiny.safetensors and nano.safetensors (skips --build)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the batches")
    ap.add_argument("--samples", type=int, default=24, help="sampled gradient elements per nano parameter")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    tmp = None
    wdir = args.weights
    if not wdir:
        tmp = tempfile.mkdtemp(prefix="vcm-model-ref-")
        exe = os.path.join(args.build, "tests", "test_model_ref")
        subprocess.run([exe, "--export-weights", tmp], check=True)
        wdir = tmp
    rng = np.random.default_rng(args.seed)
    names = []
    worst32 = {}
    # tinypxn last, so the batches of the earlier cases are drawn as before it existed
    for cfg in ("tiny", "tinypx", "nano", "tinypxn"):
        c = CONFIGS[cfg]
        weights = safetensors_read(os.path.join(wdir, cfg + ".safetensors"))
        m64 = Student(c).double()
        m32 = Student(c)
        load_weights(m64, weights)
        load_weights(m32, weights)
        pnames = [n for n, _ in m64.named_parameters()]
        full = cfg != "nano"
        if full:
            shutil.copyfile(os.path.join(wdir, cfg + ".safetensors"), os.path.join(args.out, cfg + ".safetensors"))
        for bname, (B, R, nreg, lens, T) in BATCHES.items():
            if cfg in ("tinypx", "tinypxn") and bname != "b4":
                continue
            batch = make_batch(c, rng, B, R, nreg, lens, T)
            logits, loss, grads = run_batch(m64, batch)
            l32, loss32, g32 = run_batch(m32, batch)
            e = [(rel_error(l32, logits), "logits")] + [(rel_error(g32[n], grads[n]), n) for n in pnames]
            worst32[cfg + "_" + bname] = max(e)
            case = "%s_%s" % (cfg, bname)
            arrays = batch_arrays(c, batch) + [("loss", np.array([loss], dtype=np.float32))]
            if full:
                # float32 PyTorch's own worst rel per tensor: logits, loss, then each gradient
                t32 = [rel_error(l32, logits), rel_error(np.array([loss32]), np.array([loss]))]
                t32 += [rel_error(g32[n], grads[n]) for n in pnames]
                arrays.append(("torch32_rel", np.array(t32, dtype=np.float32)))
                arrays.append(("logits", logits))
                safetensors_write(os.path.join(args.out, case + ".grads.safetensors"),
                                  [(n, grads[n]) for n in pnames])
            else:
                # a sample of the logits (with the tensor's RMS for the floor), per-parameter
                # gradient norms and sampled gradient elements, weight norms and samples
                flat = logits.reshape(-1)
                li = np.sort(rng.choice(flat.size, 1024, replace=False)).astype(np.int32)
                gidx, gval, wval = [], [], []
                lrms = math.sqrt(float((flat.astype(np.float64) ** 2).mean()))
                t32 = [sampled_rel(l32.reshape(-1)[li], flat[li], 0.01 * lrms),
                       rel_error(np.array([loss32]), np.array([loss]))]
                for pi, n in enumerate(pnames):
                    g = grads[n].reshape(-1)
                    k = min(args.samples, g.size)
                    idx = np.sort(rng.choice(g.size, k, replace=False))
                    idx[0] = int(np.abs(g).argmax())  # always include the largest element
                    for j in idx:
                        gidx.append((pi, j))
                        gval.append(g[j])
                        wval.append(weights[n].reshape(-1)[j])
                    gn = np.linalg.norm(g.astype(np.float64))
                    # float32 PyTorch's own error on the whole tensor (its float32 noise level)
                    t32.append(max(rel_error(g32[n], grads[n]),
                                   rel_error(np.array([np.linalg.norm(g32[n].astype(np.float64))]),
                                             np.array([gn]))))
                arrays.append(("torch32_rel", np.array(t32, dtype=np.float32)))
                arrays += [
                    ("param_names", names_blob(pnames)),
                    ("logit_idx", li), ("logit_val", flat[li]),
                    ("logit_rms", np.array([math.sqrt(float((flat.astype(np.float64) ** 2).mean()))],
                                           dtype=np.float32)),
                    ("grad_norm", np.array([np.linalg.norm(grads[n].astype(np.float64)) for n in pnames],
                                           dtype=np.float32)),
                    ("weight_norm", np.array([np.linalg.norm(weights[n].astype(np.float64)) for n in pnames],
                                             dtype=np.float32)),
                    ("sample_idx", np.array(gidx, dtype=np.int32)),
                    ("grad_val", np.array(gval, dtype=np.float32)),
                    ("weight_val", np.array(wval, dtype=np.float32)),
                ]
            write_case(os.path.join(args.out, case + ".vgd"), "student", arrays)
            names.append(case)
            print("%-8s loss %.6f  float32 PyTorch vs float64: worst rel %.2g (%s)"
                  % (case, loss, worst32[case][0], worst32[case][1]))
    with open(os.path.join(args.out, "MANIFEST"), "w") as f:
        f.write("vcm-goldens %d seed %d cases %d\n" % (VERSION, args.seed, len(names)))
        for n in names:
            f.write(n + "\n")
    if tmp:
        shutil.rmtree(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
