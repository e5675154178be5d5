#!/usr/bin/env python3
"""Convert StackGAN's CUB-finetuned Inception (the released TensorFlow checkpoint of
StackGAN-inception-model: inception_finetuned_models/birds_valid299/model.ckpt, the one
AttnGAN's and DM-GAN's inception_score_bird.py restore) to the .safetensors that clipgan's
`eval::stackgan_inception` loads (`clipgan is --model cub-stackgan --weights OUT`,
`CLIPGAN.EVAL.IS_MODEL: cub-stackgan` + `IS_WEIGHTS: OUT`).

  python scripts/convert_stackgan_inception.py model.ckpt OUT.safetensors
  python scripts/convert_stackgan_inception.py model.ckpt --list     # the checkpoint's variables

Run it where TensorFlow is installed (1.x or 2.x: only tf.train.load_checkpoint is used)
and numpy; torch is not needed. `model.ckpt` is the checkpoint prefix (the files
model.ckpt.index / .data-* or the older single model.ckpt file).

Names: clipgan's are the TF variable names with '/' -> '.' (conv0/BatchNorm/beta ->
conv0.BatchNorm.beta; docs/evaluation.md lists them). Values: each variable's
exponential moving average (`<name>/ExponentialMovingAverage`) when the checkpoint has one,
as StackGAN's evaluation restores them (`variables_to_restore()` of an EMA with decay
0.9999), else the variable itself (the script says how many). Layouts: convolution
kernels H x W x in x out -> out x in x H x W; the logits weights 2048 x 51 -> 51 x 2048.
The auxiliary head and optimizer slots are not needed and are left out. Every name the
network needs must be found with the shape the TF-slim Inception V3 gives it, else the
script stops and lists what is missing.
"""
import json
import struct
import sys

K1, K3, K5, K17, K71, K13, K31 = (1, 1), (3, 3), (5, 5), (1, 7), (7, 1), (1, 3), (3, 1)


def units():
    """(name, cin, cout, kernel) of every conv unit of TF-slim's inception_v3, in order."""
    out = []

    def branch(scope, cin, specs):
        c = cin
        for i, (cout, k) in enumerate(specs):
            out.append((f"{scope}/{'Conv' if i == 0 else f'Conv_{i}'}", c, cout, k))
            c = cout

    for name, cin, cout, k in [("conv0", 3, 32, K3), ("conv1", 32, 32, K3), ("conv2", 32, 64, K3), ("conv3", 64, 80, K1), ("conv4", 80, 192, K3)]:
        out.append((name, cin, cout, k))
    for name, cin, pool in [("mixed_35x35x256a", 192, 32), ("mixed_35x35x288a", 256, 64), ("mixed_35x35x288b", 288, 64)]:
        branch(f"{name}/branch1x1", cin, [(64, K1)])
        branch(f"{name}/branch5x5", cin, [(48, K1), (64, K5)])
        branch(f"{name}/branch3x3dbl", cin, [(64, K1), (96, K3), (96, K3)])
        branch(f"{name}/branch_pool", cin, [(pool, K1)])
    branch("mixed_17x17x768a/branch3x3", 288, [(384, K3)])
    branch("mixed_17x17x768a/branch3x3dbl", 288, [(64, K1), (96, K3), (96, K3)])
    for name, c7 in [("mixed_17x17x768b", 128), ("mixed_17x17x768c", 160), ("mixed_17x17x768d", 160), ("mixed_17x17x768e", 192)]:
        branch(f"{name}/branch1x1", 768, [(192, K1)])
        branch(f"{name}/branch7x7", 768, [(c7, K1), (c7, K17), (192, K71)])
        branch(f"{name}/branch7x7dbl", 768, [(c7, K1), (c7, K71), (c7, K17), (c7, K71), (192, K17)])
        branch(f"{name}/branch_pool", 768, [(192, K1)])
    branch("mixed_17x17x1280a/branch3x3", 768, [(192, K1), (320, K3)])
    branch("mixed_17x17x1280a/branch7x7x3", 768, [(192, K1), (192, K17), (192, K71), (192, K3)])
    for name, cin in [("mixed_8x8x2048a", 1280), ("mixed_8x8x2048b", 2048)]:
        branch(f"{name}/branch1x1", cin, [(320, K1)])
        # Conv_1 (1x3) and Conv_2 (3x1) both read Conv's output: same shapes as a chain.
        branch(f"{name}/branch3x3", cin, [(384, K1), (384, K13), (384, K31)])
        out[-1] = (out[-1][0], 384, 384, K31)
        branch(f"{name}/branch3x3dbl", cin, [(448, K1), (384, K3), (384, K13), (384, K31)])
        out[-1] = (out[-1][0], 384, 384, K31)
        branch(f"{name}/branch_pool", cin, [(192, K1)])
    return out


def expected(num_classes):
    """TF name -> (expected TF shape, transpose to PyTorch layout or None)."""
    want = {}
    for name, cin, cout, (kh, kw) in units():
        want[f"{name}/weights"] = ((kh, kw, cin, cout), (3, 2, 0, 1))
        for v in ("beta", "moving_mean", "moving_variance"):
            want[f"{name}/BatchNorm/{v}"] = ((cout,), None)
    want["logits/logits/weights"] = ((2048, num_classes), (1, 0))
    want["logits/logits/biases"] = ((num_classes,), None)
    return want


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, a in tensors.items():
        b = a.astype("<f4", copy=False).tobytes(order="C")
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    header["__metadata__"] = {"source": "StackGAN CUB-finetuned Inception (TensorFlow checkpoint)", "converter": "scripts/convert_stackgan_inception.py"}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    import os

    os.replace(tmp, path)


def convert(reader_names, get, out_path):
    """reader_names: {checkpoint name: shape}; get(name) -> numpy array."""
    import numpy as np

    # A scope prefix (a tower name) in front of every variable is allowed.
    anchors = [n for n in reader_names if n.endswith("conv0/weights")]
    if not anchors:
        sys.exit("no conv0/weights in the checkpoint: not TF-slim's Inception V3 (run with --list to see its variables)")
    prefix = min(anchors, key=len)[: -len("conv0/weights")]
    bias = reader_names.get(prefix + "logits/logits/biases")
    if bias is None:
        sys.exit(f"no {prefix}logits/logits/biases in the checkpoint (run with --list)")
    num_classes = int(bias[0])
    tensors, missing, raw = {}, [], 0
    for tf_name, (shape, perm) in expected(num_classes).items():
        full = prefix + tf_name
        ema = full + "/ExponentialMovingAverage"
        src = ema if ema in reader_names else full if full in reader_names else None
        if src is None:
            missing.append(full)
            continue
        raw += src == full
        a = np.asarray(get(src), dtype=np.float32)
        if tuple(a.shape) != shape:
            sys.exit(f"{src} has shape {tuple(a.shape)}; TF-slim's Inception V3 needs {shape}")
        if perm is not None:
            a = np.ascontiguousarray(a.transpose(perm))
        tensors[tf_name.replace("/", ".")] = a
    if missing:
        sys.exit(f"{len(missing)} variables missing from the checkpoint, e.g. {', '.join(missing[:5])}")
    write_safetensors(out_path, tensors)
    n = sum(a.size for a in tensors.values())
    print(f"wrote {out_path}: {len(tensors)} tensors, {n} values, {num_classes} classes "
          f"({len(tensors) - raw} from their moving averages, {raw} without one)")


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    import tensorflow as tf

    reader = tf.train.load_checkpoint(argv[1])
    shapes = reader.get_variable_to_shape_map()
    if argv[2] == "--list":
        for name in sorted(shapes):
            print(name, shapes[name])
        return
    convert(shapes, reader.get_tensor, argv[2])


if __name__ == "__main__":
    main(sys.argv)
