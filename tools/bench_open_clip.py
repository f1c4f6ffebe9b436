#!/usr/bin/env python3
"""The Python reference side by side with `clip_bench`: open_clip on torch (CPU), same RANDOM
ViT-B/32 weights (seed 0, as tools/export_clip.py), same JPEG files.

    python tools/bench_jpegs.py --photos target/xtask-cache/photos/skimage-0.26.0 --out /tmp/photos
    cargo run --release -p simile-embed --example clip_bench -- --images-dir /tmp/clipbench \
        --photos-dir /tmp/photos
    target/xtask-cache/clip-venv/bin/python tools/bench_open_clip.py --images-dir /tmp/photos \
        --noise-dir /tmp/clipbench

Prints images/s end to end (PIL decode + open_clip transform + encode_image, batch 16), the model
alone on pre-made tensors (encode_image only), each the best of --rounds, and prompts/s (tokenize +
encode_text); `--noise-dir` also measures end to end on `clip_bench`'s worst-case noise JPEGs
(alternating with the main set).
`--json` prints one JSON line instead (used by `cargo xtask models bench`).
"""
import argparse
import glob
import json
import os
import sys
import time

import torch
from PIL import Image
import open_clip

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_clip import build  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images-dir", required=True)
    ap.add_argument("--noise-dir", help="also end to end on these JPEGs (clip_bench's noise set)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=1,
                    help="passes of each measurement (end to end per set, model alone); the best counts")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, *_ = build("vitb32")
    _, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32-quickgelu", pretrained=None)
    paths = sorted(glob.glob(os.path.join(args.images_dir, "*.jpg")))
    n = len(paths)

    def end_to_end(files):
        """(wall, CPU) seconds: PIL decode + transform + encode_image, batch by batch."""
        t = time.time()
        c = time.process_time()
        for i in range(0, len(files), args.batch):
            x = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in files[i:i + args.batch]])
            model.encode_image(x)
        return time.time() - t, time.process_time() - c

    with torch.no_grad():
        model.encode_image(torch.zeros(1, 3, 224, 224))  # warm-up
        noise = sorted(glob.glob(os.path.join(args.noise_dir, "*.jpg"))) if args.noise_dir else []
        # Both sets alternately, --rounds times, the best of each counting (as clip_bench does):
        # the first pass after loading is slower and the machine may be shared.
        e2e = e2e_cpu = noise_e2e = noise_cpu = float("inf")
        for _ in range(args.rounds):
            e2e, e2e_cpu = min((e2e, e2e_cpu), end_to_end(paths))
            if noise:
                noise_e2e, noise_cpu = min((noise_e2e, noise_cpu), end_to_end(noise))
        # The model alone on the same images, preprocessed beforehand.
        tensors = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in paths])
        alone = float("inf")
        for _ in range(args.rounds):
            t = time.time()
            for i in range(0, n, args.batch):
                model.encode_image(tensors[i:i + args.batch])
            alone = min(alone, time.time() - t)
        prompts = [f"a photo of a dog number {i}" for i in range(args.prompts)]
        model.encode_text(open_clip.tokenize(prompts[:1]))
        t = time.time()
        c = time.process_time()
        for i in range(0, len(prompts), args.batch):
            model.encode_text(open_clip.tokenize(prompts[i:i + args.batch]))
        txt = time.time() - t
        txt_cpu = time.process_time() - c
    if args.json:
        print(json.dumps({"torch": torch.__version__, "threads": args.threads, "batch": args.batch,
                          "images": n, "e2e_images_per_s": round(n / e2e, 2),
                          "model_images_per_s": round(n / alone, 2),
                          "noise_images": len(noise),
                          "noise_e2e_images_per_s": round(len(noise) / noise_e2e, 2) if noise else None,
                          "prompts_per_s": round(len(prompts) / txt, 2)}))
        return
    print(f"open_clip/torch {torch.__version__}, {args.threads} threads, RANDOM ViT-B/32 weights")
    print(f"model alone (tensors): {n / alone:.2f} images/s ({1e3 * alone / n:.1f} ms/image)")
    print(f"end to end from JPEG: {n / e2e:.2f} images/s ({1e3 * e2e / n:.1f} ms/image, "
          f"CPU {1e3 * e2e_cpu / n:.1f} ms/image)")
    if noise:
        print(f"end to end, noise JPEGs: {len(noise) / noise_e2e:.2f} images/s "
              f"(CPU {1e3 * noise_cpu / len(noise):.1f} ms/image)")
    print(f"text prompts:         {len(prompts) / txt:.2f} prompts/s ({1e3 * txt / len(prompts):.1f} ms/prompt, "
          f"CPU {1e3 * txt_cpu / len(prompts):.1f} ms/prompt)")


if __name__ == "__main__":
    main()
