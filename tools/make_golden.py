#!/usr/bin/env python3
"""Golden fixtures for simile-embed, produced by the Python reference (open_clip + torch).

    python tools/make_golden.py --out crates/simile-embed/tests/assets/golden

Run through `cargo xtask models golden`. Writes:
* tokens.json     open_clip.tokenize() ids (77 each) for tricky prompts
* images/*        small synthetic test images (PNG / JPEG, square and not)
* preprocess.json per image (converted to RGB first, like FiftyOne's loaders): shape and file of the open_clip preprocessed tensor (raw f32 LE,
                  C-order [3,224,224]) in tensors/
* tiny.json       embeddings of the images, of some crops (FiftyOne/ETA patch semantics) and of
                  the prompts by the tiny RANDOM-WEIGHT CLIP in torch (the Rust engine must agree)
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from PIL import Image, ImageDraw
import open_clip

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_clip import build  # noqa: E402

PROMPTS = [
    "a photo of a dog",
    "Café crème brûlée",
    "Cafe\u0301 decomposed accent",
    "🐶 dog emoji 🎉🎉",
    "東京の夜景と富士山",
    "fish &amp;amp; chips",
    "“curly double” and ‘curly single’ quotes",
    "ﬁne ﬂowers in the ﬀ ligature",
    "ＦＵＬＬ　ｗｉｄｔｈ　ｔｅｘｔ１２３",
    "   lots   of\t\twhitespace\n\nhere  ",
    "",
    "UPPER lower MiXeD CaSe",
    "don't can't it's we'll they're I'm you've",
    "numbers 12345 and 3.14159 and 1,000,000",
    "C++ & C# <b>bold</b> &lt;tag&gt; &quot;q&quot;",
    "naïve résumé — em dash … ellipsis",
    "Ελληνικά русский язык עברית",
    "a\u00a0non-breaking space",
    "a photo of " * 30,
    "🐶" * 100,
    "hello!!! ??? ...",
    "&EACUTE; &amp &copy2026 &#128; &notit; &#x1F600;",
    "\x1b[31mred\x1b[0m terminal text",
    "zero\u200bwidth and soft\u00adhyphen",
    "tab\tand\u3000ideographic space",
    "\u0132ssel \u01c5emal \ufb03ce",
    "<b>html &amp;amp; tags</b>",
]


def make_images(img_dir):
    os.makedirs(img_dir, exist_ok=True)
    rng = np.random.default_rng(0)

    def base(w, h):
        yy, xx = np.mgrid[0:h, 0:w]
        r = (xx * 255 / max(w - 1, 1)).astype(np.float64)
        g = (yy * 255 / max(h - 1, 1)).astype(np.float64)
        b = 128 + 100 * np.sin(xx / 7.0) * np.cos(yy / 11.0)
        a = np.stack([r, g, b], -1) + rng.normal(0, 6, (h, w, 3))
        img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB")
        d = ImageDraw.Draw(img)
        d.rectangle([w // 5, h // 4, w // 2, h // 2], fill=(250, 20, 30))
        d.ellipse([w // 2, h // 2, w - 5, h - 5], fill=(10, 200, 40), outline=(0, 0, 0))
        d.line([0, h - 1, w - 1, 0], fill=(255, 255, 255), width=3)
        return img

    files = []
    base(320, 200).save(os.path.join(img_dir, "wide.jpg"), quality=90)  # 4:2:0 JPEG
    files.append("wide.jpg")
    base(180, 300).save(os.path.join(img_dir, "tall.png"))
    files.append("tall.png")
    im = base(256, 256).convert("RGBA")
    alpha = Image.fromarray((np.arange(256)[None, :].repeat(256, 0)).astype(np.uint8), "L")
    im.putalpha(alpha)
    im.save(os.path.join(img_dir, "rgba.png"))
    files.append("rgba.png")
    base(100, 61).convert("L").save(os.path.join(img_dir, "small_gray.png"))
    files.append("small_gray.png")
    base(640, 427).save(os.path.join(img_dir, "photo.jpg"), quality=85)
    files.append("photo.jpg")
    return files


# --- FiftyOne / ETA patch semantics (fiftyone.core.models/_extract_patches + eta BoundingBox) ---

def make_square(x, y, w, h):
    ws = x[1] - x[0]
    hs = y[1] - y[0]
    dx = hs - ws
    if dx < 0:
        b, a = make_square(y, x, h, w)
        return a, b

    def pad(z, dz, zmax):
        dz1 = int(0.5 * dz)
        dz2 = dz - dz1
        ddz = max(0, dz1 - z[0]) - max(0, z[1] + dz2 - zmax)
        return (z[0] - dz1 + ddz, z[1] + dz2 + ddz)

    dy = min(0, w - dx - ws)
    return pad(x, dx + dy, w), pad(y, dy, h)


def patch_box(w, h, box, force_square=False, alpha=None):
    x, y, bw, bh = box
    tlx, tly, brx, bry = x, y, x + bw, y + bh
    if alpha is not None:
        a = max(alpha, -1)
        wpad = 0.5 * a * (brx - tlx)
        hpad = 0.5 * a * (bry - tly)
        clamp = lambda v: max(0, min(v, 1))  # noqa: E731
        tlx, tly, brx, bry = clamp(tlx - wpad), clamp(tly - hpad), clamp(brx + wpad), clamp(bry + hpad)
    x1, y1 = int(w * 1.0 * tlx), int(h * 1.0 * tly)
    x2, y2 = int(w * 1.0 * brx), int(h * 1.0 * bry)
    xs, ys = (x1, x2), (y1, y2)
    if force_square:
        xs, ys = make_square(xs, ys, w, h)
    return xs[0], ys[0], xs[1], ys[1]


CROPS = [
    ("photo.jpg", [0.1, 0.2, 0.3, 0.5], False, None),
    ("photo.jpg", [0.1, 0.2, 0.3, 0.5], True, None),
    ("photo.jpg", [0.6, 0.1, 0.35, 0.2], True, 0.2),
    ("photo.jpg", [0.0, 0.0, 0.25, 0.9], True, None),
    ("wide.jpg", [0.5, 0.5, 0.5, 0.5], False, -0.3),
    ("tall.png", [0.8, 0.05, 0.2, 0.9], True, 0.1),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = args.out
    os.makedirs(os.path.join(out, "tensors"), exist_ok=True)

    # Tokens
    toks = open_clip.tokenize(PROMPTS).numpy().astype(np.int64)
    with open(os.path.join(out, "tokens.json"), "w") as f:
        rows = [json.dumps({"text": p, "ids": [int(v) for v in row]}, ensure_ascii=False)
                for p, row in zip(PROMPTS, toks)]
        f.write("[\n" + ",\n".join(rows) + "\n]\n")

    # Images + preprocessed tensors
    files = make_images(os.path.join(out, "images"))
    _, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32-quickgelu", pretrained=None)
    print(preprocess)
    pre = []
    tensors = {}
    for name in files:
        img = Image.open(os.path.join(out, "images", name))
        # Like FiftyOne's loaders: force RGB first (alpha dropped, not composited), then open_clip.
        t = preprocess(img.convert("RGB")).numpy().astype("<f4")
        tensors[name] = t
        tfile = f"tensors/{name}.f32"
        t.tofile(os.path.join(out, tfile))
        pre.append({"image": f"images/{name}", "size": list(img.size), "tensor": tfile,
                    "shape": list(t.shape)})
    with open(os.path.join(out, "preprocess.json"), "w") as f:
        json.dump(pre, f, indent=1)
        f.write("\n")

    # Tiny random-weight model embeddings (torch) for images, crops and prompts
    torch.backends.mha.set_fastpath_enabled(False)
    model, *_ = build("tiny")
    crops = []
    crop_tensors = []
    for name, box, fs, alpha in CROPS:
        img = Image.open(os.path.join(out, "images", name)).convert("RGB")
        w, h = img.size
        x1, y1, x2, y2 = patch_box(w, h, box, fs, alpha)
        arr = np.asarray(img)[y1:y2, x1:x2]
        crop_tensors.append(preprocess(Image.fromarray(arr)))
        crops.append({"image": f"images/{name}", "box": box, "force_square": fs, "alpha": alpha,
                      "pixels": [x1, y1, x2, y2]})
    with torch.no_grad():
        img_emb = model.encode_image(torch.stack([torch.from_numpy(tensors[n]) for n in files]))
        crop_emb = model.encode_image(torch.stack(crop_tensors))
        txt_emb = model.encode_text(torch.from_numpy(toks))
    for c, e in zip(crops, crop_emb.numpy()):
        c["embedding"] = [float(v) for v in e]
    tiny = {
        "model": "clip-tiny-random (RANDOM WEIGHTS)",
        "images": [{"image": f"images/{n}", "embedding": [float(v) for v in e]}
                   for n, e in zip(files, img_emb.numpy())],
        "crops": crops,
        "prompts": [{"text": p, "embedding": [float(v) for v in e]}
                    for p, e in zip(PROMPTS, txt_emb.numpy())],
    }
    with open(os.path.join(out, "tiny.json"), "w") as f:
        json.dump(tiny, f, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {out}: {len(PROMPTS)} prompts, {len(files)} images, {len(crops)} crops")


if __name__ == "__main__":
    main()
