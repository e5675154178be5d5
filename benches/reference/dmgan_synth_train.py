"""A cross-check of the demo study (docs/training.md, "The demo"): DM-GAN's own modules, from
dmgan_step.py (plain PyTorch), trained on a `clipgan data synth` dataset, to see after how
many training images an independent implementation draws the shapes.

Differences from `clipgan train`, on purpose: no CLIP. Each class gets a fixed random
sentence code and random word codes (so the conditioning names the class, shape and colours
together, an easier task than CLIP text features of unseen classes), one caption per image,
the CLIP and contrastive terms left out. Everything else as method.md: the AttnGAN bounding
box crop (76/64 resize, random crop, flip), the G/D losses with mismatched pairs, Adam with
betas 0.5/0.999, spectral norm in D, an EMA of G (decay 0.9, as the demo) that the samples use.

    python benches/reference/dmgan_synth_train.py DATA_DIR OUT STEPS [--batch 32] [--lr 1e-3]
        [--dlr LR] [--branch 1] [--ngf 8] [--ndf 8] [--every 250] [--seed 1] [--threads 1]

Every --every steps (and at the end) it writes OUT/s<step>/<shape>_<class>_<j>.png: 8 samples
of every training class, which scripts/synth_shapes.py scores. Needs numpy and Pillow (in
clipgan's venv once `make test` has installed its test packages).
"""
import argparse
import copy
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dmgan_step as R  # noqa: E402

NEF, WORDS, REAL_WORDS = 128, 24, 12


def load(data, size, big):
    """Training images cropped by the bounding-box rule, resized to big x big, in [-1, 1]."""
    path = os.path.join(data, "attributes.txt")
    try:
        lines = open(path).read().splitlines()
    except OSError as e:
        sys.exit(f"dmgan_synth_train: cannot read {path}: {e.strerror}")
    head = lines[0].lstrip("# ").split("\t")
    col = {name: i for i, name in enumerate(head)}
    images, classes, shapes = [], [], []
    root = os.path.join(data, "CUB_200_2011", "images")
    for line in lines[1:]:
        f = line.split("\t")
        if len(f) < len(head) or f[col["split"]] != "train":
            continue
        file = next((os.path.join(root, f[0] + ext) for ext in (".jpg", ".png") if os.path.exists(os.path.join(root, f[0] + ext))), None)
        if file is None:
            sys.exit(f"dmgan_synth_train: no image for {f[0]} under {root}")
        im = Image.open(file).convert("RGB")
        x, y, w, h = (float(f[col[k]]) for k in "xywh")
        r = int(max(w, h) * 0.75)
        cx, cy = int((2 * x + w) / 2), int((2 * y + h) / 2)
        box = (max(0, cx - r), max(0, cy - r), min(im.width, cx + r), min(im.height, cy + r))
        images.append(np.asarray(im.crop(box).resize((big, big), Image.BILINEAR)))
        classes.append(int(f[col["class_id"]]))
        shapes.append(f[col["shape"]])
    if not images:
        sys.exit(f"dmgan_synth_train: {path} lists no training images")
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1
    return x, classes, shapes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data")
    ap.add_argument("out")
    ap.add_argument("steps", type=int)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3, help="G's learning rate (and D's without --dlr)")
    ap.add_argument("--dlr", type=float, default=None)
    ap.add_argument("--branch", type=int, default=1, choices=[1, 2, 3])
    ap.add_argument("--ngf", type=int, default=8)
    ap.add_argument("--ndf", type=int, default=8)
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    size = 64 << (a.branch - 1)
    big = size * 76 // 64
    X, cls, shp = load(a.data, size, big)
    classes = sorted(set(cls))
    cidx = torch.tensor([classes.index(c) for c in cls])
    sent_of = torch.randn(len(classes), NEF)
    words_of = torch.randn(len(classes), NEF, WORDS)
    pad = torch.zeros(1, WORDS, dtype=torch.bool)
    pad[:, REAL_WORDS:] = True
    batch = min(a.batch, len(X))
    print(f"{len(X)} training images, {len(classes)} classes, {size} px, batch {batch}", flush=True)

    p = dict(branch=a.branch, ngf=a.ngf, ndf=a.ndf, z=100, ncf=100, r_num=1)
    G = R.G_NET(p, NEF)
    G.apply(R.weights_init)
    ema = copy.deepcopy(G)
    Ds = [R.D_NET(a.ndf, NEF, k) for k in range(a.branch)]
    for d in Ds:
        d.apply(R.weights_init)
    opt_g = torch.optim.Adam(G.parameters(), lr=a.lr, betas=(0.5, 0.999))
    opt_d = [torch.optim.Adam(d.parameters(), lr=a.dlr or a.lr, betas=(0.5, 0.999)) for d in Ds]
    bce = R.bce

    def sample(step):
        out = os.path.join(a.out, f"s{step:05d}")
        os.makedirs(out, exist_ok=True)
        ema.eval()
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for ci, c in enumerate(classes):
                z = torch.randn(8, 100, generator=gen)
                imgs, _, _ = ema(z, sent_of[[ci] * 8], words_of[[ci] * 8], pad.expand(8, WORDS))
                x = ((imgs[-1] + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
                for j in range(8):
                    Image.fromarray(x[j]).save(os.path.join(out, f"{shp[cls.index(c)]}_{ci}_{j}.png"))

    t0 = time.time()
    for step in range(1, a.steps + 1):
        i = torch.from_numpy(rng.choice(len(X), batch, replace=False))
        ox, oy = rng.integers(0, big - size + 1, 2)
        x = X[i, :, oy:oy + size, ox:ox + size]
        if rng.random() < 0.5:
            x = x.flip(3)
        reals = [F.interpolate(x, size=64 << k, mode="bilinear", align_corners=False) if (64 << k) != size else x for k in range(a.branch)]
        sent, words = sent_of[cidx[i]], words_of[cidx[i]]
        pads = pad.expand(batch, WORDS)
        fakes, mu, logvar = G(torch.randn(batch, 100), sent, words, pads)
        d_losses = []
        for k, d in enumerate(Ds):
            rc, fc = d.code(reals[k]), d.code(fakes[k].detach())
            loss = (bce(d.uncond_logits(rc), 1) + bce(d.cond_logits(rc, sent), 1)) / 2 + (
                bce(d.uncond_logits(fc), 0) + bce(d.cond_logits(fc, sent), 0) + bce(d.cond_logits(rc[:-1], sent[1:]), 0)
            ) / 3
            opt_d[k].zero_grad()
            loss.backward()
            opt_d[k].step()
            d_losses.append(round(loss.item(), 3))
        g_adv = sum(bce(d.uncond_logits(d.code(fakes[k])), 1) + bce(d.cond_logits(d.code(fakes[k]), sent), 1) for k, d in enumerate(Ds))
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).mean()
        opt_g.zero_grad()
        (g_adv + kl).backward()
        opt_g.step()
        with torch.no_grad():
            for e, g in zip(ema.parameters(), G.parameters()):
                e.mul_(0.9).add_(g, alpha=0.1)
            for e, g in zip(ema.buffers(), G.buffers()):
                e.copy_(g)
        if step % 50 == 0 or step == a.steps:
            print(f"step {step} ({step * batch} images) {time.time() - t0:.0f} s  D {d_losses}  G adv {g_adv.item():.3f}", flush=True)
        if step % a.every == 0 or step == a.steps:
            sample(step)


if __name__ == "__main__":
    main()
