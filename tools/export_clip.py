#!/usr/bin/env python3
"""Export a CLIP with RANDOM weights (torch.manual_seed(0)) to two ONNX files + a manifest.

    python tools/export_clip.py --arch tiny   --out crates/simile-embed/tests/assets/clip-tiny-random
    python tools/export_clip.py --arch vitb32 --out target/xtask-cache/models/clip-vit-b32-random

Run through `cargo xtask models export-tiny|export-vitb32`, which creates the torch + open_clip venv.

* image.onnx: pixel_values f32 [N,3,224,224] -> image_embeds f32 [N,D]
* text.onnx:  input_ids  i64 [N,77]        -> text_embeds  f32 [N,D] (pooled at argmax(ids) = EOT)
Outputs are NOT L2-normalised (like open_clip's encode_image / encode_text).

THESE WEIGHTS ARE RANDOM. The embeddings mean nothing semantically; they exist so the engine's
plumbing, shapes, speed and parity with open_clip can be tested without pretrained weights.
"""
import argparse
import json
import os

import numpy as np
import torch
import open_clip

from model_files import sha256

MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]


def build(arch):
    torch.manual_seed(0)
    if arch == "tiny":
        model = open_clip.model.CLIP(
            embed_dim=64,
            vision_cfg=open_clip.model.CLIPVisionCfg(
                layers=2, width=64, head_width=32, patch_size=32, image_size=224
            ),
            text_cfg=open_clip.model.CLIPTextCfg(
                context_length=77, vocab_size=49408, width=64, heads=2, layers=2
            ),
            quick_gelu=True,
        )
        name = "clip-tiny-random"
        desc = ("TINY CLIP WITH RANDOM WEIGHTS (seed 0): 2 layers, width 64, real 49,408-token "
                "vocabulary. For tests only; the embeddings are meaningless.")
        arch_name = "open_clip CLIP(embed_dim=64, vision 2x64 patch32, text 2x64) quick_gelu"
    elif arch == "vitb32":
        model = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None)
        name = "clip-vit-b32-random"
        desc = ("ViT-B/32 (open_clip ViT-B-32-quickgelu, the OpenAI architecture) WITH RANDOM "
                "WEIGHTS (seed 0). Same compute as the real model; for benchmarks only.")
        arch_name = "open_clip ViT-B-32-quickgelu"
    else:
        raise SystemExit(f"unknown arch {arch}")
    model.eval()
    return model, name, desc, arch_name


class ImageTower(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, pixel_values):
        return self.m.encode_image(pixel_values)


class TextTower(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids):
        return self.m.encode_text(input_ids)


def export(module, example, in_name, out_name, path):
    torch.onnx.export(
        module,
        (example,),
        path,
        input_names=[in_name],
        output_names=[out_name],
        dynamic_axes={in_name: {0: "batch"}, out_name: {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )


class HfTextStub(torch.nn.Module):
    """A tiny stand-in for a Hugging Face text-tower export: inputs `input_ids` AND
    `attention_mask` (int64 [N,77]), output `text_embeds` [N,64] = masked mean of embeddings of
    (id mod 997), projected. Not CLIP at all; it only pins how the engine feeds the mask."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(997, 64)
        self.proj = torch.nn.Linear(64, 64)

    def forward(self, input_ids, attention_mask):
        e = self.emb(torch.remainder(input_ids, 997))
        m = attention_mask.unsqueeze(-1).to(e.dtype)
        return self.proj((e * m).sum(1) / m.sum(1).clamp(min=1.0))


def export_hf_stub(out):
    model = HfTextStub().eval()
    prompts = ["a photo of a dog", "", "a much longer prompt " * 3]
    ids = open_clip.tokenize(prompts)
    # Hugging Face convention: 1 for every real token (SOT .. EOT), 0 for padding.
    mask = (torch.cumsum((ids == 49407).long(), 1) - (ids == 49407).long() == 0).long()
    path = os.path.join(out, "text_hf.onnx")
    with torch.no_grad():
        torch.onnx.export(model, (ids, mask), path, input_names=["input_ids", "attention_mask"],
                          output_names=["text_embeds"],
                          dynamic_axes={"input_ids": {0: "batch"}, "attention_mask": {0: "batch"},
                                        "text_embeds": {0: "batch"}},
                          opset_version=17, dynamo=False)
        ref = model(ids, mask).numpy()
    with open(os.path.join(out, "hf_stub.json"), "w") as f:
        json.dump({"prompts": prompts, "embeddings": [[float(v) for v in r] for r in ref]}, f)
        f.write("\n")
    print(f"wrote {path}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", required=True, choices=["tiny", "vitb32", "hf-text-stub"])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    # The TorchScript exporter cannot export the fused MHA fast path.
    torch.backends.mha.set_fastpath_enabled(False)
    if args.arch == "hf-text-stub":
        export_hf_stub(args.out)
        return

    model, name, desc, arch_name = build(args.arch)
    dim = model.text_projection.shape[1]
    pix = torch.randn(2, 3, 224, 224)
    ids = open_clip.tokenize(["a photo of a dog", "a cat"])
    img_path = os.path.join(args.out, "image.onnx")
    txt_path = os.path.join(args.out, "text.onnx")
    with torch.no_grad():
        export(ImageTower(model), pix, "pixel_values", "image_embeds", img_path)
        export(TextTower(model), ids, "input_ids", "text_embeds", txt_path)
        ref_img = model.encode_image(pix).numpy()
        ref_txt = model.encode_text(ids).numpy()

    # Check the export against torch with onnxruntime.
    import onnxruntime as ort

    s = ort.InferenceSession(img_path, providers=["CPUExecutionProvider"])
    got = s.run(None, {"pixel_values": pix.numpy()})[0]
    assert np.allclose(got, ref_img, atol=1e-4), np.abs(got - ref_img).max()
    s = ort.InferenceSession(txt_path, providers=["CPUExecutionProvider"])
    got = s.run(None, {"input_ids": ids.numpy().astype(np.int64)})[0]
    assert np.allclose(got, ref_txt, atol=1e-4), np.abs(got - ref_txt).max()

    manifest = {
        "name": name,
        "description": desc,
        "random_weights": True,
        "architecture": arch_name,
        "dim": int(dim),
        "image": {
            "file": "image.onnx",
            "sha256": sha256(img_path),
            "size": os.path.getsize(img_path),
            "input": "pixel_values",
            "output": "image_embeds",
        },
        "text": {
            "file": "text.onnx",
            "sha256": sha256(txt_path),
            "size": os.path.getsize(txt_path),
            "input": "input_ids",
            "output": "text_embeds",
            "context_length": 77,
        },
        "preprocess": {"image_size": 224, "mean": MEAN, "std": STD},
    }
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    with open(os.path.join(args.out, "README.md"), "w") as f:
        f.write(f"# {name}: RANDOM WEIGHTS\n\n{desc}\n\nRegenerate: `cargo xtask models "
                f"export-{'tiny' if args.arch == 'tiny' else 'vitb32'} --force` (tools/export_clip.py).\n")
    print(f"wrote {args.out}: dim {dim}, image {manifest['image']['size']} B, text {manifest['text']['size']} B")


if __name__ == "__main__":
    main()
