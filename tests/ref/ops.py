#!/usr/bin/python3
"""PyTorch reference for every op of tensor/tensor.h.

    /usr/bin/python3 tests/ref/ops.py --seed S --out DIR

writes DIR/MANIFEST and one DIR/<case>.vgd per case: the inputs, the forward output,
a random upstream gradient for the output and the gradient of every differentiable
input, computed by torch autograd in float64 from the float32 inputs and stored as
float32. tests/test_ops_ref.c reads them (VCM_GOLDEN_DIR=DIR make test-ref). The same
seed writes the same bytes. Shapes are partly drawn from the seed, partly pinned so
that the odd sizes 1, 3, 17 and 65 always appear. Old *.vgd files in DIR are removed.

--f32-report also runs every case in float32 PyTorch and prints the cases where plain
float32 arithmetic uses most of the C test's 1e-4 budget (a case should test the op,
not float32 rounding).

File format (also in docs/GOLDENS.md), all integers little-endian:

  MANIFEST   text. Line 1: "vcm-goldens 1 seed <S> cases <N>", then N lines, one case
             name each (file <name>.vgd). Names: [A-Za-z0-9_], at most 63 chars.
  <case>.vgd binary:
    magic    8 bytes  "VCMGOLD\\n"
    version  u32      1
    op_len   u32      1..31, then op_len bytes: the op name ("matmul", ...)
    n_arrays u32      1..32
    n_arrays times:
      name_len u32    1..31, then name_len bytes
      dtype    u32    0 = f32, 1 = i32, 2 = u8
      ndim     u32    1..4
      shape    ndim x i32, each >= 1
      data     prod(shape) x sizeof(dtype) bytes, row-major
    nothing after the last array.

Array names: "in.<k>" f32 inputs (all differentiable), "grad.<k>" the gradient of the
loss sum(out * dout) with respect to "in.<k>", "out" the forward output, "dout" the
upstream gradient, "attr" i32 integer attributes, "fattr" f32 float attributes,
"ids"/"targets" i32 integer inputs, "key_valid" u8 mask. Per op:

  add, sub, mul   in.a, in.b (b's shape equals a's or is a suffix of it)
  scale           in.a; fattr = [s]
  matmul          in.a, in.b; attr = [ta, tb]
  linear          in.x, in.W, optional in.b
  embedding       in.W, ids (its shape is the ids shape)
  layernorm       in.x, in.w, in.b; fattr = [eps]
  gelu, softmax   in.x
  attention       in.qkv; attr = [n_heads, causal]; optional key_valid [B*T]
  cross_entropy   in.logits, targets [N]; attr = [ignore_index]
  concat_seq      in.x0 .. in.x<n-1>
  slice_seq       in.x; attr = [start, len]
  mean            in.x; attr = [dim]
  patches         in.img; attr = [P]
"""
import argparse
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

MAGIC = b"VCMGOLD\n"
VERSION = 1
DTYPES = {np.dtype(np.float32): 0, np.dtype(np.int32): 1, np.dtype(np.uint8): 2}
MAX_ARRAYS = 32


def write_case(path, op, arrays):
    """arrays: list of (name, numpy array) in file order."""
    assert 1 <= len(op) <= 31 and 1 <= len(arrays) <= MAX_ARRAYS
    with open(path, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<I", VERSION))
        f.write(struct.pack("<I", len(op)) + op.encode())
        f.write(struct.pack("<I", len(arrays)))
        for name, a in arrays:
            a = np.ascontiguousarray(a)
            assert 1 <= len(name) <= 31 and 1 <= a.ndim <= 4 and min(a.shape) >= 1, (name, a.shape)
            f.write(struct.pack("<I", len(name)) + name.encode())
            f.write(struct.pack("<II", DTYPES[a.dtype], a.ndim))
            f.write(struct.pack("<%di" % a.ndim, *a.shape))
            f.write(a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes())


def rel_error(ours, ref):
    """The C test's rule: max over elements of |ours - ref| / max(|ref|, 0.01 RMS(ref))."""
    ours, ref = ours.astype(np.float64), ref.astype(np.float64)
    floor = 0.01 * math.sqrt(float((ref ** 2).mean()))
    if floor == 0:
        return 0.0 if not ours.any() else math.inf
    return float((np.abs(ours - ref) / np.maximum(np.abs(ref), floor)).max())


class Writer:
    def __init__(self, out_dir, seed):
        self.out_dir = out_dir
        self.rng = np.random.default_rng(seed)
        self.names = []
        self.count = {}
        self.f32_report = False
        self.f32 = []

    # -- random inputs (float32, the values the C side gets)
    def randn(self, *shape, scale=1.0, shift=0.0):
        return (self.rng.standard_normal(shape) * scale + shift).astype(np.float32)

    def pick(self, *choices):
        return int(self.rng.choice(choices))

    def case(self, op, desc, inputs, fn, extra=(), attr=None, fattr=None):
        """inputs: dict name -> float32 array (all differentiable). fn maps the float64
        torch tensors (same names) to the float64 output."""
        k = self.count.get(op, 0)
        self.count[op] = k + 1
        name = "%s_%02d_%s" % (op, k, desc)
        assert len(name) <= 63 and all(c.isalnum() or c == "_" for c in name), name
        t = {n: torch.tensor(a, dtype=torch.float64, requires_grad=True) for n, a in inputs.items()}
        out = fn(**t)
        dout = self.randn(*out.shape)
        out.backward(torch.tensor(dout, dtype=torch.float64))
        arrays = [("in." + n, a) for n, a in inputs.items()]
        arrays += list(extra)
        if attr is not None:
            arrays.append(("attr", np.array(attr, dtype=np.int32)))
        if fattr is not None:
            arrays.append(("fattr", np.array(fattr, dtype=np.float32)))
        arrays.append(("out", out.detach().numpy().astype(np.float32)))
        arrays.append(("dout", dout))
        for n in inputs:
            g = t[n].grad
            if g is None:  # the output does not depend on it
                g = torch.zeros_like(t[n])
            arrays.append(("grad." + n, g.numpy().astype(np.float32)))
        write_case(os.path.join(self.out_dir, name + ".vgd"), op, arrays)
        self.names.append(name)
        if self.f32_report:
            self.f32.append((self.f32_baseline(fn, inputs, arrays), name))

    def f32_baseline(self, fn, inputs, arrays):
        """PyTorch's own float32 result judged by the C test's rule: how much of the
        1e-4 budget plain float32 arithmetic uses on this case."""
        t = {n: torch.tensor(a, requires_grad=True) for n, a in inputs.items()}
        ref = dict(arrays)
        out = fn(**t)
        out.backward(torch.tensor(ref["dout"]))
        worst = (rel_error(out.detach().numpy(), ref["out"]), "out")
        for n in inputs:
            if t[n].grad is not None:
                worst = max(worst, (rel_error(t[n].grad.numpy(), ref["grad." + n]), "grad." + n))
        return worst

    def finish(self, seed):
        with open(os.path.join(self.out_dir, "MANIFEST"), "w") as f:
            f.write("vcm-goldens %d seed %d cases %d\n" % (VERSION, seed, len(self.names)))
            for n in self.names:
                f.write(n + "\n")


# ---------------------------------------------------------------- references

def attention_ref(qkv, n_heads, causal, key_valid):
    """qkv [B,T,3D] = q | k | v, head h at columns h*hd..; a query row with no
    attendable key outputs 0."""
    B, T, D3 = qkv.shape
    D = D3 // 3
    hd = D // n_heads
    q, k, v = qkv.split(D, dim=-1)
    q, k, v = (x.reshape(B, T, n_heads, hd).transpose(1, 2) for x in (q, k, v))  # B,H,T,hd
    s = q @ k.transpose(-1, -2) / math.sqrt(hd)  # B,H,T,T
    allowed = torch.ones(B, 1, T, T, dtype=torch.bool)
    if causal:
        allowed = allowed & torch.ones(T, T, dtype=torch.bool).tril()
    if key_valid is not None:
        allowed = allowed & torch.tensor(key_valid != 0).reshape(B, 1, 1, T)
    any_key = allowed.any(-1, keepdim=True)
    s = s.masked_fill(~allowed, float("-inf"))
    s = torch.where(any_key, s, torch.zeros_like(s))  # no -inf-only rows in softmax
    p = torch.softmax(s, dim=-1)
    p = torch.where(any_key, p, torch.zeros_like(p))  # ... and those rows output 0
    return (p @ v).transpose(1, 2).reshape(B, T, D)


def cross_entropy_ref(logits, targets, ignore_index):
    """Mean over rows whose target != ignore_index; 0 when every row is ignored."""
    V = logits.shape[-1]
    lp = torch.log_softmax(logits.reshape(-1, V), dim=-1)
    t = torch.tensor(targets, dtype=torch.int64)
    keep = t != ignore_index
    nll = -lp.gather(1, torch.where(keep, t, torch.zeros_like(t))[:, None])[:, 0]
    nll = torch.where(keep, nll, torch.zeros_like(nll))
    return (nll.sum() / max(int(keep.sum()), 1)).reshape(1)


def patches_ref(img, P):
    """[B,C,H,W] -> [B, (H/P)(W/P), C*P*P], each patch in (channel, row, column) order."""
    return F.unfold(img, kernel_size=P, stride=P).transpose(1, 2)


def layernorm_ref(x, w, b, eps):
    """Written out rather than F.layer_norm: PyTorch's float64 kernel leaves ~1e-14
    residues where the exact gradient is 0 (one feature: x - mean = 0)."""
    mu = x.mean(-1, keepdim=True)
    xc = x - mu
    var = (xc * xc).mean(-1, keepdim=True)
    return xc / torch.sqrt(var + eps) * w + b


def mean_ref(x, dim):
    y = x.mean(dim)
    return y.reshape(1) if x.dim() == 1 else y


def self_checks():
    """The references above against PyTorch's own modules, where those exist."""
    g = torch.Generator().manual_seed(1)
    # patches == Conv2d with weight [D, C, P, P]
    img = torch.randn(2, 3, 6, 9, generator=g, dtype=torch.float64)
    w = torch.randn(5, 3, 3, 3, generator=g, dtype=torch.float64)
    conv = F.conv2d(img, w, stride=3).flatten(2).transpose(1, 2)
    assert torch.allclose(patches_ref(img, 3) @ w.reshape(5, -1).T, conv)
    # cross-entropy == F.cross_entropy when some rows are kept
    lg = torch.randn(6, 7, generator=g, dtype=torch.float64)
    tg = np.array([1, -100, 3, 6, -100, 0], dtype=np.int32)
    ref = F.cross_entropy(lg, torch.tensor(tg, dtype=torch.int64), ignore_index=-100)
    assert torch.allclose(cross_entropy_ref(lg, tg, -100)[0], ref)
    # attention without masks == the plain formula per head
    B, T, H, hd = 2, 4, 2, 3
    qkv = torch.randn(B, T, 3 * H * hd, generator=g, dtype=torch.float64)
    q, k, v = qkv.split(H * hd, dim=-1)
    for causal in (0, 1):
        got = attention_ref(qkv, H, causal, None)
        for h in range(H):
            c = slice(h * hd, (h + 1) * hd)
            s = q[:, :, c] @ k[:, :, c].transpose(1, 2) / math.sqrt(hd)
            if causal:
                s = s + torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
            assert torch.allclose(got[:, :, c], torch.softmax(s, -1) @ v[:, :, c])
    # layernorm == F.layer_norm
    x = torch.randn(3, 7, generator=g, dtype=torch.float64) * 2 + 1
    w = torch.randn(7, generator=g, dtype=torch.float64)
    b = torch.randn(7, generator=g, dtype=torch.float64)
    assert torch.allclose(layernorm_ref(x, w, b, 1e-5), F.layer_norm(x, (7,), w, b, 1e-5))
    # GELU tanh == its formula
    x = torch.linspace(-6, 6, 101, dtype=torch.float64)
    f = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    assert torch.allclose(F.gelu(x, approximate="tanh"), f)


# ---------------------------------------------------------------- cases

def gen_elementwise(w):
    r = lambda: w.pick(1, 2, 3, 4, 5, 7)
    shapes = [
        ("same", (3, 17), (3, 17)),
        ("same4d", (r(), r(), 3, r()), None),
        ("bcast1", (2, r(), 17), (17,)),
        ("bcast2", (r(), 5, 65), (5, 65)),
        ("bcast_one", (r(), 1), (1,)),
        ("bcast4d", (2, 3, r(), 5), (r(), 5)),
    ]
    fns = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b}
    for op, fn in fns.items():
        for desc, sa, sb in shapes:
            if sb is None:
                sb = sa
            if desc == "bcast4d":
                sb = (sa[2], 5)
            w.case(op, desc, {"a": w.randn(*sa), "b": w.randn(*sb)}, fn)


def gen_scale(w):
    for desc, shape in (("vec", (17,)), ("mat", (3, 65)), ("one", (1,))):
        s = float(np.float32(w.rng.uniform(-3, 3)))
        w.case("scale", desc, {"a": w.randn(*shape)}, lambda a, s=s: a * s, fattr=[s])


def gen_matmul(w):
    def mm(ta, tb):
        def fn(a, b):
            A = a.transpose(-1, -2) if ta else a
            Bm = b.transpose(-1, -2) if tb else b
            return A @ Bm
        return fn

    r = lambda: w.pick(1, 2, 3, 5, 8)
    for ta in (0, 1):
        for tb in (0, 1):
            tag = "nt"[ta] + "nt"[tb]
            for desc, lead_a, lead_b, (M, K, N) in (
                ("2d", (), (), (17, 65, 3)),
                ("2d_ones", (), (), (1, 3, 1)),
                ("batched", (r(),), None, (r(), 17, r())),
                ("batched4d", (2, r()), None, (3, r(), 65)),
                ("shared2d", (r(), 3), (), (5, 17, r())),
            ):
                if lead_b is None:
                    lead_b = lead_a
                sa = lead_a + ((K, M) if ta else (M, K))
                sb = lead_b + ((N, K) if tb else (K, N))
                w.case("matmul", "%s_%s" % (tag, desc), {"a": w.randn(*sa), "b": w.randn(*sb)},
                       mm(ta, tb), attr=[ta, tb])


def gen_linear(w):
    for desc, xs, nout, bias in (
        ("bias3d", (2, 3, 17), 5, True),
        ("nobias", (65, 3), 17, False),
        ("ones", (1, 65), 1, True),
        ("bias4d", (2, 2, w.pick(1, 3, 5), 7), w.pick(2, 4, 9), True),
        ("nobias1d", (17,), 3, False),
    ):
        inputs = {"x": w.randn(*xs), "W": w.randn(nout, xs[-1], scale=0.3)}
        if bias:
            inputs["b"] = w.randn(nout)
            w.case("linear", desc, inputs, lambda x, W, b: F.linear(x, W, b))
        else:
            w.case("linear", desc, inputs, lambda x, W: F.linear(x, W))


def gen_embedding(w):
    for desc, V, D, ids_shape in (
        ("2d", 17, 65, (3, 5)),
        ("one_row", 1, 3, (4,)),
        ("3d", 65, 17, (2, 3, w.pick(1, 4, 7))),
        ("wide", w.pick(3, 5, 9), 1, (w.pick(2, 6), 3)),
    ):
        ids = w.rng.integers(0, V, size=ids_shape).astype(np.int32)
        ids.reshape(-1)[0] = ids.reshape(-1)[-1]  # at least one repeated id when n > 1
        idt = torch.tensor(ids, dtype=torch.int64)
        w.case("embedding", desc, {"W": w.randn(V, D)}, lambda W, idt=idt: W[idt], extra=[("ids", ids)])


def gen_layernorm(w):
    eps = float(np.float32(1e-5))  # the value the C side gets
    for desc, xs, scale, shift in (
        ("rows", (3, 17), 1.0, 0.0),
        ("seq", (2, w.pick(3, 5), 65), 2.0, 1.5),
        ("single", (1, 1), 1.0, 0.0),
        ("c1", (5, 1), 1.0, 0.5),
        ("c3", (w.pick(2, 7), 3), 3.0, -1.0),
    ):
        C = xs[-1]
        inputs = {"x": w.randn(*xs, scale=scale, shift=shift), "w": w.randn(C, scale=0.5, shift=1.0),
                  "b": w.randn(C, scale=0.5)}
        w.case("layernorm", desc, inputs, lambda x, w, b: layernorm_ref(x, w, b, eps), fattr=[eps])


def gen_gelu(w):
    for desc, xs, scale in (("vec", (17,), 1.0), ("wide", (3, 65), 3.0), ("4d", (2, 3, w.pick(1, 5), 7), 2.0),
                            ("one", (1,), 1.0)):
        w.case("gelu", desc, {"x": w.randn(*xs, scale=scale)}, lambda x: F.gelu(x, approximate="tanh"))


def gen_softmax(w):
    for desc, xs, scale in (("one", (1,), 1.0), ("rows", (3, 17), 1.0), ("seq", (2, w.pick(1, 5), 65), 3.0),
                            ("len1", (4, 1), 1.0), ("4d", (2, 2, 3, w.pick(3, 9)), 1.5)):
        w.case("softmax", desc, {"x": w.randn(*xs, scale=scale)}, lambda x: torch.softmax(x, -1))


def gen_attention(w):
    def case(desc, B, T, H, hd, causal, key_valid):
        qkv = w.randn(B, T, 3 * H * hd)
        extra = [] if key_valid is None else [("key_valid", key_valid.reshape(B * T).astype(np.uint8))]
        w.case("attention", desc, {"qkv": qkv},
               lambda qkv: attention_ref(qkv, H, causal, key_valid), extra=extra, attr=[H, causal])

    case("causal", 2, 5, 2, 3, 1, None)
    case("bidir", 1, 17, 3, w.pick(2, 4), 0, None)
    case("t1", 2, 1, 2, 2, 1, None)
    case("long_causal", 1, 65, 2, 4, 1, None)
    # key mask: batch 1 has no valid key at all -> its rows are 0
    B, T = 2, 7
    kv = (w.rng.random((B, T)) < 0.6).astype(np.uint8)
    kv[0, 0] = 1
    kv[1, :] = 0
    case("mask_bidir", B, T, 1, 8, 0, kv)
    # causal + key mask: key 0 masked in batch 0, so query 0 of batch 0 sees nothing
    B, T = 3, 6
    kv = (w.rng.random((B, T)) < 0.7).astype(np.uint8)
    kv[0, 0] = 0
    kv[1, :] = 1
    case("mask_causal", B, T, 2, 5, 1, kv)
    # a padding-style mask (trailing keys invalid), bidirectional, 3 heads
    B, T = 2, w.pick(9, 17)
    kv = np.ones((B, T), dtype=np.uint8)
    kv[0, T - 3:] = 0
    case("mask_pad", B, T, 3, 3, 0, kv)


def gen_cross_entropy(w):
    def case(desc, shape, ignore, p_ignore, force_all=False):
        V = shape[-1]
        N = int(np.prod(shape[:-1]))
        t = w.rng.integers(0, V, size=N).astype(np.int32)
        drop = w.rng.random(N) < p_ignore
        if force_all:
            drop[:] = True
        t[drop] = ignore
        w.case("cross_entropy", desc, {"logits": w.randn(*shape, scale=2.0)},
               lambda logits: cross_entropy_ref(logits, t, ignore), extra=[("targets", t)], attr=[ignore])

    case("rows", (5, 17), -100, 0.3)
    case("seq", (2, 3, 65), -100, 0.3)
    case("v1", (4, 1), -1, 0.0)
    case("single", (1, 3), -100, 0.0)
    case("all_ignored", (3, 5), -100, 0.0, force_all=True)
    case("ignore_zero", (w.pick(6, 9), 7), 0, 0.0)  # ignore_index is a real class id


def gen_concat_seq(w):
    for desc, B, D, Ts in (("two", 2, 5, (3, 1)), ("three", 1, 3, (17, 2, 65)),
                           ("one", w.pick(1, 3), 4, (w.pick(1, 5),)), ("odd", 3, 1, (1, 1, 3, 2))):
        inputs = {"x%d" % i: w.randn(B, T, D) for i, T in enumerate(Ts)}
        w.case("concat_seq", desc, inputs, lambda **xs: torch.cat([xs["x%d" % i] for i in range(len(xs))], 1))


def gen_slice_seq(w):
    for desc, xs, start, ln in (("mid", (2, 17, 5), 3, 7), ("all", (1, 65, 3), 0, 65),
                                ("last", (3, 4, 2), 3, 1), ("first", (2, w.pick(2, 9), 1), 0, 1)):
        w.case("slice_seq", desc, {"x": w.randn(*xs)}, lambda x, s=start, n=ln: x[:, s:s + n].clone(),
               attr=[start, ln])


def gen_mean(w):
    for desc, xs in (("1d", (17,)), ("2d", (3, 65)), ("3d", (2, w.pick(1, 3), 5)), ("4d", (2, 3, 4, w.pick(1, 5)))):
        for dim in range(len(xs)):
            w.case("mean", "%s_dim%d" % (desc, dim), {"x": w.randn(*xs)}, lambda x, d=dim: mean_ref(x, d),
                   attr=[dim])
    w.case("mean", "single", {"x": w.randn(1)}, lambda x: mean_ref(x, 0), attr=[0])


def gen_patches(w):
    for desc, shape, P in (("p4", (2, 3, 8, 8), 4), ("whole", (1, 1, 17, 17), 17), ("rect", (1, 3, 6, 9), 3),
                           ("p1", (2, 2, 3, 3), 1), ("big", (1, 3, 65, 65), 5), ("p2", (w.pick(1, 3), 2, 4, 6), 2)):
        w.case("patches", desc, {"img": w.randn(*shape)}, lambda img, P=P: patches_ref(img, P), attr=[P])


def gen_linear_residual(w):
    """op_linear_residual: r + x·Wᵀ + b (the transformer block's residual adds)."""
    for desc, xs, nout, bias in (("bias3d", (2, 3, 17), 5, True), ("nobias", (65, 3), 17, False),
                                 ("ones", (1, 65), 1, True)):
        rs = xs[:-1] + (nout,)
        inputs = {"x": w.randn(*xs), "W": w.randn(nout, xs[-1], scale=0.3)}
        if bias:
            inputs["b"] = w.randn(nout)
            inputs["r"] = w.randn(*rs)
            w.case("linear_residual", desc, inputs, lambda x, W, b, r: r + F.linear(x, W, b))
        else:
            inputs["r"] = w.randn(*rs)
            w.case("linear_residual", desc, inputs, lambda x, W, r: r + F.linear(x, W))


def gen_attention_from(w):
    """op_attention_from: only the queries q0 … T−1 (all keys and values)."""
    def case(desc, B, T, H, hd, causal, key_valid, q0):
        qkv = w.randn(B, T, 3 * H * hd)
        extra = [] if key_valid is None else [("key_valid", key_valid.reshape(B * T).astype(np.uint8))]
        w.case("attention_from", desc, {"qkv": qkv},
               lambda qkv: attention_ref(qkv, H, causal, key_valid)[:, q0:], extra=extra, attr=[H, causal, q0])

    case("causal", 2, 17, 2, 4, 1, None, 5)
    case("bidir", 1, 33, 3, 8, 0, None, 32)
    B, T = 2, 20
    kv = np.ones((B, T), dtype=np.uint8)
    kv[0, 3:7] = 0
    kv[1, 12:] = 0
    case("mask_causal", B, T, 2, 16, 1, kv, 9)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="directory to write (created if missing)")
    ap.add_argument("--f32-report", action="store_true",
                    help="also run every case in float32 PyTorch and print its worst relative error")
    ap.add_argument("--f32-report-top", type=int, default=5, help="how many cases --f32-report prints")
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    self_checks()
    os.makedirs(args.out, exist_ok=True)
    for f in os.listdir(args.out):  # no stale cases from an older script
        if f.endswith(".vgd"):
            os.remove(os.path.join(args.out, f))
    w = Writer(args.out, args.seed)
    w.f32_report = args.f32_report
    for gen in (gen_elementwise, gen_scale, gen_matmul, gen_linear, gen_embedding, gen_layernorm, gen_gelu,
                gen_softmax, gen_attention, gen_cross_entropy, gen_concat_seq, gen_slice_seq, gen_mean, gen_patches,
                # appended last: the cases before keep their random draws
                gen_linear_residual, gen_attention_from):
        gen(w)
    w.finish(args.seed)
    for (err, where), name in sorted(w.f32, reverse=True)[:args.f32_report_top]:
        print("float32 PyTorch on %s: worst rel %.3g in %s" % (name, err, where), file=sys.stderr)
    total = sum(os.path.getsize(os.path.join(args.out, n + ".vgd")) for n in w.names)
    print("wrote %d cases (%d bytes) to %s" % (len(w.names), total, args.out), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
