#!/usr/bin/env python3
"""The CLIP benchmark's realistic JPEG set: N files of 640x480 (every third one 480x640) cut from
scikit-image's sample photos and saved the way a camera or phone saves them (Pillow, baseline,
4:2:0 chroma subsampling, quality 90). `cargo xtask bench --only clip` makes them once per run;
`clip_bench --photos-dir` and `tools/bench_open_clip.py --images-dir` read the same files.

    python tools/bench_jpegs.py --photos target/xtask-cache/photos/skimage-0.26.0 --out DIR [--n 96]

Each output k takes source photo k mod len(SOURCES), a crop of the target aspect ratio whose size
and position vary with k (deterministic: the same files every run), resized with Lanczos. Most of
the sources are smaller than 640x480, so those crops are enlarged: smoother than a real camera's
640x480 frame, cheaper to decode. The mean file size is printed (and in the JSON line) so the
table says what was decoded.
"""
import argparse
import json
import os
import random

from PIL import Image

# Colour photographs first, then grey photographs and textures (decoded as RGB, as the engine does).
SOURCES = [
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "ihc.png",
    "camera.png",
    "grass.png",
    "gravel.png",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", required=True, help="scikit-image's skimage/data files")
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=96)
    ap.add_argument("--quality", type=int, default=90)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = random.Random(0)
    srcs = [Image.open(os.path.join(args.photos, s)).convert("RGB") for s in SOURCES]
    total = 0
    for k in range(args.n):
        src = srcs[k % len(srcs)]
        w, h = (480, 640) if k % 3 == 0 else (640, 480)
        sw, sh = src.size
        # The largest crop of the target's aspect ratio, then 60-100 % of it where the source
        # is larger than the target (never enlarging more than the source forces).
        cw, ch = (sw, sw * h // w) if sw * h <= sh * w else (sh * w // h, sh)
        lo = max(0.6, w / cw if cw > w else 1.0)
        s = rng.uniform(lo, 1.0) if lo < 1.0 else 1.0
        cw, ch = max(1, round(cw * s)), max(1, round(ch * s))
        x, y = rng.randint(0, sw - cw), rng.randint(0, sh - ch)
        img = src.crop((x, y, x + cw, y + ch)).resize((w, h), Image.LANCZOS)
        p = os.path.join(args.out, f"photo{k:04}.jpg")
        img.save(p, "JPEG", quality=args.quality, subsampling="4:2:0", optimize=False)
        total += os.path.getsize(p)
    mean_kb = total / max(1, args.n) / 1e3
    if args.json:
        print(json.dumps({"images": args.n, "sources": len(SOURCES), "mean_kb": round(mean_kb, 1)}))
    else:
        print(f"{args.n} JPEGs from {len(SOURCES)} photos in {args.out}, {mean_kb:.0f} KB on average")


if __name__ == "__main__":
    main()
