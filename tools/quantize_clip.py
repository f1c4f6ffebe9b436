#!/usr/bin/env python3
"""Make the dynamic-int8 variant of an exported CLIP model with ONNX Runtime's own tooling
(`onnxruntime.quantization.quantize_dynamic`), as a separate model directory with its own manifest.

    python tools/quantize_clip.py --src target/xtask-cache/models/clip-vit-b32-random \
                                  --out target/xtask-cache/models/clip-vit-b32-random-int8

Run through `cargo xtask models quantize` (the export venv has onnx + onnxruntime). Works on any
model directory with a simile manifest.json (image.onnx / text.onnx), e.g. the downloaded
`clip-vit-base32` (real OpenAI weights): `--out $SIMILE_MODELS_DIR/clip-vit-base32-int8`.

The variant's manifest is the fp32 one (same inputs, outputs, preprocessing and tokenizer) with
`precision: "int8"`, `quantized_from: <fp32 name>`, name and aliases suffixed `-int8`, and the new
files' checksums. Dynamic quantisation: weights int8 ahead of time, activations quantised per batch
at run time, so no calibration data is needed.

The default configuration is the one measured best in docs/benchmarks.md ("CLIP int8"):
`--weight-type qint8 --per-channel --ops MatMul` (see tools/quantize_sweep.py for the others).
"""
import argparse
import copy
import json
import os
import tempfile

from model_files import sha256

# The configuration simile ships (chosen by measurement, see the module docstring).
DEFAULT_OPS = "MatMul"
DEFAULT_WEIGHT_TYPE = "qint8"
DEFAULT_PER_CHANNEL = True


def quantize_file(src, dst, ops, weight_type, per_channel, preprocess=True):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    wt = {"qint8": QuantType.QInt8, "quint8": QuantType.QUInt8}[weight_type]
    with tempfile.TemporaryDirectory() as tmp:
        model = src
        if preprocess:
            # ORT's recommended pre-processing (ONNX shape inference + graph optimisation; its
            # symbolic shape inference fails on the exported ViT's Reshape),
            # so MatMuls hidden behind foldable ops are quantised too.
            from onnxruntime.quantization.shape_inference import quant_pre_process

            model = os.path.join(tmp, "pre.onnx")
            quant_pre_process(src, model, skip_symbolic_shape=True)
        quantize_dynamic(
            model,
            dst,
            weight_type=wt,
            per_channel=per_channel,
            op_types_to_quantize=ops,
            extra_options={"MatMulConstBOnly": True},
        )


def describe(ops, weight_type, per_channel):
    return (f"dynamic int8 (onnxruntime.quantization.quantize_dynamic: {weight_type} weights"
            f"{', per channel' if per_channel else ', per tensor'}, ops {'+'.join(ops)}; "
            f"activations quantised at run time)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True, help="fp32 model directory (manifest.json + ONNX)")
    ap.add_argument("--out", required=True, help="int8 model directory to write")
    ap.add_argument("--ops", default=DEFAULT_OPS, help="comma-separated op types to quantise")
    ap.add_argument("--weight-type", default=DEFAULT_WEIGHT_TYPE, choices=["qint8", "quint8"])
    ap.add_argument("--per-channel", dest="per_channel", action="store_true",
                    default=DEFAULT_PER_CHANNEL)
    ap.add_argument("--per-tensor", dest="per_channel", action="store_false")
    ap.add_argument("--no-preprocess", action="store_true")
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    ops = [o for o in args.ops.split(",") if o]

    with open(os.path.join(args.src, "manifest.json")) as f:
        src = json.load(f)
    if src.get("precision", "fp32") != "fp32":
        raise SystemExit(f"{args.src} is already {src['precision']}")
    if os.path.isfile(os.path.join(args.out, "manifest.json")) and not args.force:
        print(f"{args.out} already exists (use --force to re-quantise)")
        return
    os.makedirs(args.out, exist_ok=True)
    m = copy.deepcopy(src)
    how = describe(ops, args.weight_type, args.per_channel)
    m["name"] = src["name"] + "-int8"
    m["aliases"] = [a + "-int8" for a in src.get("aliases", [])]
    m["precision"] = "int8"
    m["quantized_from"] = src["name"]
    m["description"] = f"{how} of {src['name']}. " + src.get("description", "")
    for key in ("image", "text"):
        tower = m.get(key)
        if not tower:
            continue
        src_file = os.path.join(args.src, tower["file"])
        dst_file = os.path.join(args.out, tower["file"])
        partial = dst_file + ".partial"
        quantize_file(src_file, partial, ops, args.weight_type, args.per_channel,
                      preprocess=not args.no_preprocess)
        os.replace(partial, dst_file)
        tower["sha256"] = sha256(dst_file)
        tower["size"] = os.path.getsize(dst_file)
        tower.pop("url", None)  # made here, not downloaded
        print(f"{key}: {os.path.getsize(src_file) / 1e6:.1f} MB -> {tower['size'] / 1e6:.1f} MB")
    # The manifest last: its presence marks a complete variant.
    tmp = os.path.join(args.out, "manifest.json.partial")
    with open(tmp, "w") as f:
        json.dump(m, f, indent=2)
        f.write("\n")
    os.replace(tmp, os.path.join(args.out, "manifest.json"))
    readme = os.path.join(args.src, "README.md")
    with open(os.path.join(args.out, "README.md"), "w") as f:
        f.write(f"# {m['name']}\n\n{m['description']}\n\nMade by `tools/quantize_clip.py` "
                f"(`cargo xtask models quantize`) from `{src['name']}`.\n")
        if os.path.isfile(readme):
            f.write("\nThe fp32 model's README:\n\n")
            with open(readme) as r:
                f.write(r.read())
    print(f"wrote {args.out} ({m['name']}: {how})")


if __name__ == "__main__":
    main()
