"""Shape accuracy of images of the synthetic dataset (`clipgan data synth`), without any CLIP.

Does a generated image show the shape its caption names (circle, square, triangle,
diamond, star, cross)? R-precision cannot say: it is measured with the demo's own CLIP,
which the generator's CLIP terms train against, and colours alone earn most of it. This
looks at pixels only: the background is the median colour of a thin border, the object
is every pixel far from it, and its mask, resampled over the mask's own bounding box to
32x32, is compared (IoU) with the six shapes drawn the way `src/data/synth.rs` draws them.
The best IoU names the shape. On the dataset's own images it is right 99.9 % of the time;
chance is 1/6 (less where a test split lacks a shape).

    python scripts/synth_shapes.py DATA_DIR --real            # the real images: the ceiling
    python scripts/synth_shapes.py DATA_DIR FOLDER [...]      # generated images, e.g. an
                                                              # eval run's images/<label>
Generated images are matched to their shape by name: `<key>_p<pass>_c<caption>.png` as
`clipgan eval` writes them (key: an image of attributes.txt), or `<shape>_<anything>.png`.
`--json` prints one JSON object per folder instead of the table.

Needs numpy and Pillow (in clipgan's venv once `make test` has installed its test
packages; otherwise `pip install numpy pillow`).
"""
import argparse
import glob
import json
import os
import re
import signal
import sys

import numpy as np
from PIL import Image

GRID = 32
SHAPES = ["circle", "square", "triangle", "diamond", "star", "cross"]
# A pixel belongs to the object when its RGB distance to the background is above this
# (the dataset's colour jitter and shading stay within about 15).
FOREGROUND = 60.0
# Below this fraction of foreground pixels there is no object to name.
MIN_OBJECT = 0.03


def _star(u, v):
    # Even-odd test against the 10-vertex star (outer 0.95, inner 0.4, point up), as synth.rs.
    vert = []
    for i in range(10):
        r = 0.95 if i % 2 == 0 else 0.4
        a = np.pi * i / 5
        vert.append((r * np.sin(a), -r * np.cos(a) + 0.05))
    inside = np.zeros(u.shape, bool)
    for i in range(10):
        xi, yi = vert[i]
        xj, yj = vert[(i + 9) % 10]
        inside ^= ((yi > v) != (yj > v)) & (u < (xj - xi) * (v - yi) / (yj - yi) + xi)
    return inside


def inside(shape, u, v):
    """Shape::inside of src/data/synth.rs (object coordinates in [-1, 1]², v down)."""
    if shape == "circle":
        return u * u + v * v <= 0.81
    if shape == "square":
        return np.maximum(abs(u), abs(v)) <= 0.8
    if shape == "triangle":
        return (v >= -0.85) & (v <= 0.75) & (abs(u) <= 0.95 * (v + 0.85) / 1.6)
    if shape == "diamond":
        return abs(u) + abs(v) <= 0.95
    if shape == "star":
        return _star(u, v)
    if shape == "cross":
        return ((abs(u) <= 0.28) & (abs(v) <= 0.9)) | ((abs(v) <= 0.28) & (abs(u) <= 0.9))
    raise ValueError(shape)


def normalised(mask):
    """The mask over its bounding box (1st-99th percentile of its pixels), GRID x GRID."""
    ys, xs = np.nonzero(mask)
    if len(xs) < 8:
        return None
    x0, x1 = np.percentile(xs, [1, 99])
    y0, y1 = np.percentile(ys, [1, 99])
    gx = x0 + (np.arange(GRID) + 0.5) / GRID * (x1 + 1 - x0)
    gy = y0 + (np.arange(GRID) + 0.5) / GRID * (y1 + 1 - y0)
    xi = np.clip(gx.astype(int), 0, mask.shape[1] - 1)
    yi = np.clip(gy.astype(int), 0, mask.shape[0] - 1)
    return mask[np.ix_(yi, xi)]


def _templates():
    g = (np.arange(400) + 0.5) / 400 * 2.2 - 1.1
    u, v = np.meshgrid(g, g)
    return {s: normalised(inside(s, u, v)) for s in SHAPES}


TEMPLATES = _templates()


def classify(path):
    """(shape or None, its IoU) for one image file."""
    a = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    b = 3 * max(1, a.shape[0] // 64)
    border = np.concatenate([a[:b].reshape(-1, 3), a[-b:].reshape(-1, 3), a[:, :b].reshape(-1, 3), a[:, -b:].reshape(-1, 3)])
    mask = np.sqrt(((a - np.median(border, axis=0)) ** 2).sum(-1)) > FOREGROUND
    m = normalised(mask) if mask.mean() >= MIN_OBJECT else None
    if m is None:
        return None, 0.0
    ious = {s: (m & t).sum() / max(1, (m | t).sum()) for s, t in TEMPLATES.items()}
    best = max(ious, key=ious.get)
    return best, float(ious[best])


def shapes_of(data):
    """Image key (with and without its class folder) -> shape, from attributes.txt."""
    path = os.path.join(data, "attributes.txt")
    try:
        lines = open(path).read().splitlines()
    except OSError as e:
        sys.exit(f"synth_shapes: cannot read {path}: {e.strerror} (is {data} a `clipgan data synth` folder?)")
    head = lines[0].lstrip("# ").split("\t") if lines else []
    if "key" not in head or "shape" not in head:
        sys.exit(f"synth_shapes: {path}: expected a header with key and shape columns")
    k, s = head.index("key"), head.index("shape")
    out = {}
    for line in lines[1:]:
        f = line.split("\t")
        if len(f) > max(k, s):
            out[f[k]] = f[s]
            out[os.path.basename(f[k])] = f[s]
    return out


def score(pairs):
    n = right = missing = 0
    ious = []
    confusion = {w: {g: 0 for g in SHAPES + ["none"]} for w in SHAPES}
    for path, want in pairs:
        got, iou = classify(path)
        n += 1
        right += got == want
        missing += got is None
        ious.append(iou)
        confusion[want][got or "none"] += 1
    return {"images": n, "accuracy": right / n if n else 0.0, "no_object": missing, "mean_iou": float(np.mean(ious)) if ious else 0.0, "confusion": confusion}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", help="the `clipgan data synth` folder (its attributes.txt)")
    ap.add_argument("folders", nargs="*", help="folders of generated images (searched recursively)")
    ap.add_argument("--real", action="store_true", help="score the dataset's own images")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_intermixed_args()
    truth = shapes_of(a.data)
    jobs = []
    if a.real:
        root = os.path.join(a.data, "CUB_200_2011", "images")
        files = sorted(glob.glob(os.path.join(root, "*", "*.*")))
        jobs.append(("real", [(f, truth.get(os.path.splitext(os.path.relpath(f, root))[0])) for f in files]))
    for folder in a.folders:
        if not os.path.isdir(folder):
            sys.exit(f"synth_shapes: {folder}: not a folder")
        pairs = []
        for f in sorted(glob.glob(os.path.join(folder, "**", "*.png"), recursive=True)):
            name = os.path.basename(f)
            want = truth.get(re.sub(r"_p\d+_c\d+\.png$", "", name)) or next((s for s in SHAPES if name.startswith(s + "_")), None)
            pairs.append((f, want))
        jobs.append((folder, pairs))
    if not jobs:
        sys.exit("synth_shapes: give --real or a folder of generated images")
    for name, pairs in jobs:
        known = [(f, w) for f, w in pairs if w in SHAPES]
        if not known:
            sys.exit(f"synth_shapes: {name}: no image whose shape is known ({len(pairs)} images)")
        r = score(known)
        r["folder"] = name
        if a.json:
            print(json.dumps(r))
            continue
        print(f"{name}: shape accuracy {r['accuracy']:.3f} ({round(r['accuracy'] * r['images'])}/{r['images']}), no object {r['no_object']}, mean best IoU {r['mean_iou']:.3f}")
        print("   wanted \\ seen " + " ".join(f"{s[:5]:>5}" for s in SHAPES + ["none"]))
        for w in SHAPES:
            print(f"   {w:14s} " + " ".join(f"{r['confusion'][w][g]:5d}" for g in SHAPES + ["none"]))


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends it quietly
    main()
