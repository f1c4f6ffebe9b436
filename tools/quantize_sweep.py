#!/usr/bin/env python3
"""Which dynamic-int8 configuration of onnxruntime.quantization keeps CLIP's embeddings: quantises
a fp32 model directory several ways and measures, per configuration, the cosine between int8 and
fp32 embeddings (real photos + prompts) and the image tower's speed (ONNX Runtime alone, batch 16).

    target/xtask-cache/clip-venv/bin/python tools/quantize_sweep.py \
        --src target/xtask-cache/models/clip-vit-b32-random --photos target/xtask-cache/photos/skimage

Prints a markdown table. Preprocessing is open_clip's (the Rust engine's equals it, see the golden
tests); token ids are open_clip's tokenizer's. THE WEIGHTS OF THE TEST EXPORTS ARE RANDOM.
"""
import argparse
import glob
import os
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from quantize_clip import quantize_file  # noqa: E402

PROMPTS = [
    "a photo of an astronaut", "a cat lying on a rug", "a cup of coffee", "a rocket on the launch pad",
    "galaxies in the deep field", "a retina scan", "a man with a camera", "coins on a table",
    "a horse silhouette", "a red motorcycle", "", "a photo of a dog", "x" * 200,
    "Ünïcödé & <html> entities &amp; quotes “like” this", "123 456 789", "a",
]

CONFIGS = [
    # (label, ops, weight type, per channel, ORT pre-processing)
    ("MatMul, qint8, per tensor", ["MatMul"], "qint8", False, True),
    ("MatMul, qint8, per channel", ["MatMul"], "qint8", True, True),
    ("MatMul, quint8, per tensor", ["MatMul"], "quint8", False, True),
    ("MatMul+Gather, qint8, per channel", ["MatMul", "Gather"], "qint8", True, True),
    ("MatMul+Gemm+Conv+Gather, qint8, per channel", ["MatMul", "Gemm", "Conv", "Gather"], "qint8", True, True),
    ("MatMul, qint8, per channel, no pre-processing", ["MatMul"], "qint8", True, False),
]


def session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def cos(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(1)


def speed(sess, x, batch, rounds):
    best = float("inf")
    sess.run(None, {"pixel_values": x[:batch]})
    for _ in range(rounds):
        t = time.time()
        for i in range(0, len(x), batch):
            sess.run(None, {"pixel_values": x[i:i + batch]})
        best = min(best, time.time() - t)
    return len(x) / best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--photos", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--images", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--only", type=int, nargs="*", help="indexes into the configuration list")
    args = ap.parse_args()
    import open_clip
    from PIL import Image

    _, _, pre = open_clip.create_model_and_transforms("ViT-B-32-quickgelu", pretrained=None)
    paths = sorted(glob.glob(os.path.join(args.photos, "*.png")) + glob.glob(os.path.join(args.photos, "*.jpg")))
    photos = np.stack([pre(Image.open(p).convert("RGB")).numpy() for p in paths]).astype(np.float32)
    ids = open_clip.tokenize(PROMPTS).numpy().astype(np.int64)
    rng = np.random.default_rng(0)
    bench_x = photos[rng.integers(0, len(photos), args.images)]

    img_fp32 = session(os.path.join(args.src, "image.onnx"), args.threads)
    txt_fp32 = session(os.path.join(args.src, "text.onnx"), args.threads)
    ref_img = img_fp32.run(None, {"pixel_values": photos})[0]
    ref_txt = txt_fp32.run(None, {"input_ids": ids})[0]
    fp32_ips = speed(img_fp32, bench_x, args.batch, args.rounds)
    del img_fp32, txt_fp32
    print(f"{len(paths)} photos ({', '.join(os.path.basename(p) for p in paths)}), {len(PROMPTS)} prompts; "
          f"batch {args.batch}, {args.threads} threads; fp32 image tower {fp32_ips:.2f} images/s", flush=True)
    print("| configuration | image MB | text MB | photos: min / mean cosine | prompts: min / mean cosine | images/s (ORT alone) | × fp32 |")
    print("|---|---|---|---|---|---|---|")
    chosen = args.only if args.only else range(len(CONFIGS))
    for k in chosen:
        label, ops, wt, pc, prep = CONFIGS[k]
        with tempfile.TemporaryDirectory() as tmp:
            qi, qt = os.path.join(tmp, "image.onnx"), os.path.join(tmp, "text.onnx")
            quantize_file(os.path.join(args.src, "image.onnx"), qi, ops, wt, pc, prep)
            quantize_file(os.path.join(args.src, "text.onnx"), qt, ops, wt, pc, prep)
            si, st = session(qi, args.threads), session(qt, args.threads)
            ci = cos(si.run(None, {"pixel_values": photos})[0], ref_img)
            ct = cos(st.run(None, {"input_ids": ids})[0], ref_txt)
            ips = speed(si, bench_x, args.batch, args.rounds)
            print(f"| {label} | {os.path.getsize(qi) / 1e6:.0f} | {os.path.getsize(qt) / 1e6:.0f} | "
                  f"{ci.min():.5f} / {ci.mean():.5f} | {ct.min():.5f} / {ct.mean():.5f} | {ips:.2f} | "
                  f"{ips / fp32_ips:.2f} |", flush=True)


if __name__ == "__main__":
    main()
