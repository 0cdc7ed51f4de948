#!/usr/bin/python3
"""Reference for tests/test_roi_align_ref.c: vit/roi_align.c against
torchvision.ops.roi_align, forward and backward.

Our layout is tokens [B, H*W, C] (token y*W + x); torchvision's is NCHW. The script
converts, runs torchvision in float32 (the kernel our C code reproduces operation by
operation) and stores the float32 result. It also runs torchvision in float64 and
prints how far float32 is from that (information only: float32 box geometry cannot
match float64 geometry exactly).

Cases: random feature maps and boxes, always including boxes partly outside the image,
sub-pixel boxes, boxes touching the border, a box entirely outside, a reversed box
(x1 < x0), several images in the batch, and the model's settings (pooled 2x2,
sampling_ratio 2, aligned, spatial_scale 1/patch); a few cases also use the adaptive
sampling ratio, a 3x2 output and aligned=False.

Usage: /usr/bin/python3 tests/ref/roi_align.py --out DIR [--seed S]
Writes DIR/MANIFEST and DIR/<case>.vgd in the format of docs/GOLDENS.md (op
"roi_align"): in.feat [B, H*W, C], boxes [R, 5] (batch index, x0, y0, x1, y1 in
image pixels), attr [H, W, pooled_h, pooled_w, sampling_ratio, aligned],
fattr [spatial_scale], out [R, pooled_h*pooled_w, C], dout, grad.feat.
"""
import argparse
import os
import sys

import numpy as np
import torch
from torchvision.ops import roi_align

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ops import VERSION, rel_error, write_case  # noqa: E402


def run(feat_tok, boxes, H, W, ph, pw, scale, sr, aligned, dout, dtype):
    """torchvision on our token layout; returns (out [R, ph*pw, C], grad [B, H*W, C])."""
    B, _, C = feat_tok.shape
    nchw = torch.tensor(feat_tok, dtype=dtype).reshape(B, H, W, C).permute(0, 3, 1, 2).contiguous()
    nchw.requires_grad_(True)
    out = roi_align(nchw, torch.tensor(boxes, dtype=dtype), output_size=(ph, pw), spatial_scale=scale,
                    sampling_ratio=sr, aligned=aligned)                      # [R, C, ph, pw]
    R = boxes.shape[0]
    out_tok = out.permute(0, 2, 3, 1).reshape(R, ph * pw, C)
    out_tok.backward(torch.tensor(dout, dtype=dtype))
    grad = nchw.grad.permute(0, 2, 3, 1).reshape(B, H * W, C)
    return out_tok.detach().numpy().astype(np.float32), grad.numpy().astype(np.float32)


def edge_boxes(rng, B, img_w, img_h):
    """The boxes the issue names, then a few random ones."""
    f = np.float32
    rows = [
        [0, -10.0, -7.0, 20.0, 15.0],                       # partly outside (top-left)
        [1, img_w - 9.0, img_h - 5.0, img_w + 13.0, img_h + 11.0],  # partly outside (bottom-right)
        [0, 17.2, 9.1, 17.6, 9.3],                          # sub-pixel
        [B - 1, 0.0, 0.0, img_w, img_h],                    # the whole image, touching every border
        [1, 0.0, 3.0, 6.5, img_h],                          # touching left and bottom
        [0, img_w - 4.0, 0.0, img_w, 4.0],                  # small, in the top-right corner
        [B - 1, img_w + 30.0, img_h + 30.0, img_w + 60.0, img_h + 45.0],  # entirely outside
        [0, -40.0, 5.0, -20.0, 9.0],                        # entirely outside (left)
        [1, 30.0, 20.0, 10.0, 8.0],                         # reversed (x1 < x0, y1 < y0)
        [0, 5.0, 5.0, 5.0, 5.0],                            # zero size
    ]
    for _ in range(6):
        b = int(rng.integers(0, B))
        x0, x1 = np.sort(rng.uniform(-0.3 * img_w, 1.3 * img_w, 2))
        y0, y1 = np.sort(rng.uniform(-0.3 * img_h, 1.3 * img_h, 2))
        rows.append([b, x0, y0, x1, y1])
    return np.array(rows, dtype=f)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    torch.set_num_threads(1)
    # name, B, H, W, C, patch (scale = 1/patch), pooled, sampling_ratio, aligned
    specs = [
        ("model_nano_grid", 3, 8, 8, 16, 8, (2, 2), 2, True),
        ("rect_grid", 3, 5, 7, 6, 8, (2, 2), 2, True),
        ("small_grid", 2, 14, 14, 5, 16, (2, 2), 2, True),
        ("grid_2x3", 2, 2, 3, 4, 4, (2, 2), 2, True),
        ("adaptive_ratio", 2, 6, 6, 3, 4, (2, 2), 0, True),
        ("pooled_3x2", 2, 5, 6, 3, 8, (3, 2), 2, True),
        ("unaligned", 2, 5, 7, 3, 8, (2, 2), 2, False),
        ("scale_1", 2, 6, 9, 4, 1, (2, 2), 2, True),
    ]
    names = []
    worst32 = 0.0
    for k, (desc, B, H, W, C, patch, (ph, pw), sr, aligned) in enumerate(specs):
        scale = 1.0 / patch
        feat = rng.standard_normal((B, H * W, C)).astype(np.float32)
        boxes = edge_boxes(rng, B, W * patch, H * patch)
        R = boxes.shape[0]
        dout = rng.standard_normal((R, ph * pw, C)).astype(np.float32)
        out32, g32 = run(feat, boxes, H, W, ph, pw, scale, sr, aligned, dout, torch.float32)
        out64, g64 = run(feat, boxes, H, W, ph, pw, scale, sr, aligned, dout, torch.float64)
        e = max(rel_error(out32, out64), rel_error(g32, g64))
        worst32 = max(worst32, e)
        name = "roi_align_%02d_%s" % (k, desc)
        write_case(os.path.join(args.out, name + ".vgd"), "roi_align", [
            ("in.feat", feat), ("boxes", boxes),
            ("attr", np.array([H, W, ph, pw, sr, int(aligned)], dtype=np.int32)),
            ("fattr", np.array([scale], dtype=np.float32)),
            ("out", out32), ("dout", dout), ("grad.feat", g32)])
        names.append(name)
        print("%-32s R=%2d float32 torchvision vs float64: worst rel %.2g" % (name, R, e))
    with open(os.path.join(args.out, "MANIFEST"), "w") as f:
        f.write("vcm-goldens %d seed %d cases %d\n" % (VERSION, args.seed, len(names)))
        for n in names:
            f.write(n + "\n")
    print("wrote %d cases to %s (float32 vs float64 worst rel %.2g)" % (len(names), args.out, worst32))
    return 0


if __name__ == "__main__":
    sys.exit(main())
