"""The PyTorch reference for `clipgan bench train-step`: the same DM-GAN training
iteration (every D step, then the G step with the frozen-CLIP terms, EMA update) on
random inputs and random weights, timed the same way (median wall and process CPU time).

DM-GAN's modules as in its model.py (with spectral norm in the discriminators and the
per-caption word mask), the G/D losses of method.md section 4, a plain-PyTorch CLIP of
the same architecture as clipgan's presets (pre-LayerNorm, quick-GELU).

    $VIRTUAL_ENV/bin/python benches/reference/dmgan_step.py --preset demo --batch 16 [--gan-only] --threads 1
    $VIRTUAL_ENV/bin/python benches/reference/dmgan_step.py --preset bird --batch 4 [--gan-only] --threads 1
    python3 benches/reference/dmgan_step.py --preset bird --batch 4 --device cuda --json   # scripts/gpu-check.sh

`--device cuda` builds everything on the GPU (torch.set_default_device) and synchronises
before reading each clock; `--json` prints the result as one JSON object on stdout (the
progress goes to stderr).
"""
import argparse
import copy
import json
import sys
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm

PRESETS = {
    # GAN sizes, CLIP preset (width, layers, heads, image size, patch), WORDS_NUM, lambda
    "bird": dict(branch=3, ngf=64, ndf=32, z=100, ncf=100, r_num=2, clip=(512, 768, 12, 12, 8, 12, 224, 32), words=77, lam=10.0),
    "demo": dict(branch=2, ngf=16, ndf=16, z=100, ncf=100, r_num=1, clip=(128, 128, 4, 4, 4, 4, 64, 8), words=24, lam=10.0),
}


class GLU(nn.Module):
    def forward(self, x):
        return F.glu(x, 1)


def conv3x3(i, o):
    return nn.Conv2d(i, o, 3, 1, 1, bias=False)


def up_block(i, o):
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv3x3(i, o * 2), nn.BatchNorm2d(o * 2), GLU())


class ResBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.block = nn.Sequential(conv3x3(c, c * 2), nn.BatchNorm2d(c * 2), GLU(), conv3x3(c, c), nn.BatchNorm2d(c))

    def forward(self, x):
        return self.block(x) + x


class CA_NET(nn.Module):
    def __init__(self, nef, ncf):
        super().__init__()
        self.ncf = ncf
        self.fc = nn.Linear(nef, ncf * 4)

    def forward(self, s):
        x = F.glu(self.fc(s), 1)
        mu, logvar = x[:, : self.ncf], x[:, self.ncf :]
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar), mu, logvar


class INIT_STAGE_G(nn.Module):
    def __init__(self, ngf16, nz):
        super().__init__()
        self.ngf16 = ngf16
        self.fc = nn.Sequential(nn.Linear(nz, ngf16 * 32, bias=False), nn.BatchNorm1d(ngf16 * 32), GLU())
        self.upsample1 = up_block(ngf16, ngf16 // 2)
        self.upsample2 = up_block(ngf16 // 2, ngf16 // 4)
        self.upsample3 = up_block(ngf16 // 4, ngf16 // 8)
        self.upsample4 = up_block(ngf16 // 8, ngf16 // 16)

    def forward(self, cz):
        x = self.fc(cz).view(-1, self.ngf16, 4, 4)
        return self.upsample4(self.upsample3(self.upsample2(self.upsample1(x))))


class NEXT_STAGE_G(nn.Module):
    def __init__(self, ngf, nef, r_num):
        super().__init__()
        self.A = nn.Linear(nef, 1, bias=False)
        self.B = nn.Linear(ngf, 1, bias=False)
        self.M_r = nn.Sequential(nn.Conv1d(ngf, ngf * 2, 1), nn.ReLU())
        self.M_w = nn.Sequential(nn.Conv1d(nef, ngf * 2, 1), nn.ReLU())
        self.key = nn.Sequential(nn.Conv1d(ngf * 2, ngf, 1), nn.ReLU())
        self.value = nn.Sequential(nn.Conv1d(ngf * 2, ngf, 1), nn.ReLU())
        self.response_gate = nn.Sequential(nn.Conv2d(ngf * 2, 1, 1), nn.Sigmoid())
        self.residual = nn.Sequential(*[ResBlock(ngf * 2) for _ in range(r_num)])
        self.upsample = up_block(ngf * 2, ngf)

    def forward(self, h, words, pad):
        b, c, hh, ww = h.shape
        r = h.mean((2, 3)).detach()
        gate = torch.sigmoid(self.A(words.transpose(1, 2)).transpose(1, 2) + self.B(r).unsqueeze(2))
        memory = self.M_w(words) * gate + self.M_r(r.unsqueeze(2)) * (1 - gate)
        key, value = self.key(memory), self.value(memory)
        q = h.view(b, c, hh * ww).transpose(1, 2)
        beta = torch.bmm(q, key).masked_fill(pad.unsqueeze(1), float("-inf")).softmax(-1)
        o = torch.bmm(value, beta.transpose(1, 2)).view(b, c, hh, ww)
        g = self.response_gate(torch.cat([h, o], 1))
        h2 = h * (1 - g) + o * g
        return self.upsample(self.residual(torch.cat([h2, h2], 1)))


class G_NET(nn.Module):
    def __init__(self, p, nef):
        super().__init__()
        ngf = p["ngf"]
        self.ca_net = CA_NET(nef, p["ncf"])
        self.h_net1 = INIT_STAGE_G(ngf * 16, p["ncf"] + p["z"])
        self.next = nn.ModuleList([NEXT_STAGE_G(ngf, nef, p["r_num"]) for _ in range(p["branch"] - 1)])
        self.img = nn.ModuleList([nn.Sequential(conv3x3(ngf, 3), nn.Tanh()) for _ in range(p["branch"])])

    def forward(self, z, sent, words, pad):
        c, mu, logvar = self.ca_net(sent)
        h = self.h_net1(torch.cat([c, z], 1))
        imgs = [self.img[0](h)]
        for k, stage in enumerate(self.next):
            h = stage(h, words, pad)
            imgs.append(self.img[k + 1](h))
        return imgs, mu, logvar


def sn_conv(i, o, k, s, p):
    return spectral_norm(nn.Conv2d(i, o, k, s, p))


class D_NET(nn.Module):
    def __init__(self, ndf, nef, k):
        super().__init__()
        lr = lambda: nn.LeakyReLU(0.2, inplace=True)
        layers = [sn_conv(3, ndf, 4, 2, 1), lr(), sn_conv(ndf, ndf * 2, 4, 2, 1), lr(), sn_conv(ndf * 2, ndf * 4, 4, 2, 1), lr(), sn_conv(ndf * 4, ndf * 8, 4, 2, 1), lr()]
        if k >= 1:
            layers += [sn_conv(ndf * 8, ndf * 16, 4, 2, 1), lr()]
        if k == 1:
            layers += [sn_conv(ndf * 16, ndf * 8, 3, 1, 1), lr()]
        if k >= 2:
            layers += [sn_conv(ndf * 16, ndf * 32, 4, 2, 1), lr(), sn_conv(ndf * 32, ndf * 16, 3, 1, 1), lr(), sn_conv(ndf * 16, ndf * 8, 3, 1, 1), lr()]
        self.code = nn.Sequential(*layers)
        self.uncond = nn.Conv2d(ndf * 8, 1, 4, 4)
        self.joint = nn.Sequential(sn_conv(ndf * 8 + nef, ndf * 8, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True))
        self.cond_out = nn.Conv2d(ndf * 8, 1, 4, 4)

    def uncond_logits(self, code):
        return self.uncond(code).view(-1)

    def cond_logits(self, code, sent):
        b, _, h, w = code.shape
        c = sent.view(b, -1, 1, 1).expand(b, sent.shape[1], h, w)
        return self.cond_out(self.joint(torch.cat([code, c], 1))).view(-1)


def weights_init(m):
    name = m.__class__.__name__
    if "Conv" in name or "Linear" in name:
        w = m.weight_orig if hasattr(m, "weight_orig") else m.weight
        nn.init.orthogonal_(w.data, 1.0)
        if "Linear" in name and m.bias is not None:
            m.bias.data.fill_(0.0)
    elif "BatchNorm" in name:
        m.weight.data.normal_(1.0, 0.02)
        m.bias.data.fill_(0)


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x, mask=None):
        b, n, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.out(a.transpose(1, 2).reshape(b, n, d))
        h = self.fc1(self.ln2(x))
        return x + self.fc2(h * torch.sigmoid(1.702 * h))


class CLIP(nn.Module):
    def __init__(self, tw, vw, tl, vl, th, vh, image, patch, vocab=49408, ctx=77):
        super().__init__()
        self.tok = nn.Embedding(vocab, tw)
        self.tpos = nn.Parameter(torch.randn(ctx, tw) * 0.01)
        self.tblocks = nn.ModuleList([Block(tw, th) for _ in range(tl)])
        self.tln = nn.LayerNorm(tw)
        self.tproj = nn.Linear(tw, tw, bias=False)
        self.patch = nn.Conv2d(3, vw, patch, patch, bias=False)
        self.cls = nn.Parameter(torch.randn(vw) * 0.01)
        self.vpos = nn.Parameter(torch.randn((image // patch) ** 2 + 1, vw) * 0.01)
        self.pre = nn.LayerNorm(vw)
        self.vblocks = nn.ModuleList([Block(vw, vh) for _ in range(vl)])
        self.post = nn.LayerNorm(vw)
        self.vproj = nn.Linear(vw, tw, bias=False)
        self.subr = nn.Linear(vw, tw)
        self.image = image

    def encode_text(self, ids, real):
        l = ids.shape[1]
        x = self.tok(ids) + self.tpos[:l]
        causal = torch.ones(l, l, dtype=torch.bool, device=ids.device).tril()
        mask = (causal.unsqueeze(0) & real.unsqueeze(1)).unsqueeze(1)
        for blk in self.tblocks:
            x = blk(x, mask)
        x = self.tln(x)
        eos = real.sum(1) - 1
        pooled = x[torch.arange(x.shape[0]), eos]
        return x.transpose(1, 2), self.tproj(pooled)

    def encode_image(self, pixels):
        p = self.patch(pixels).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(p.shape[0], 1, -1), p], 1) + self.vpos
        x = self.pre(x)
        for blk in self.vblocks:
            x = blk(x)
        return self.subr(x[:, 1:]).transpose(1, 2), self.vproj(self.post(x[:, 0]))


MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)


def pixels_for_clip(x, size):
    x = (x + 1) * 0.5
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return (x - MEAN.to(x.device)) / STD.to(x.device)


def two_way_ce(s):
    y = torch.arange(s.shape[0])
    return F.cross_entropy(s, y) + F.cross_entropy(s.t(), y)


def words_loss(regions, words, real, g1, g2, g3):
    # The same vectorised DAMSM word loss as clipgan's train::losses::words_loss.
    pad = (~real).view(1, real.shape[0], 1, -1)
    s = torch.einsum("jdr,idt->jirt", regions, words)
    alpha = (s.masked_fill(pad, float("-inf")).softmax(-1) * g1).softmax(2)
    dot = (alpha * s).sum(2)
    gram = torch.einsum("jdr,jds->jrs", regions, regions)
    c_sq = torch.einsum("jirt,jrs,jist->jit", alpha, gram, alpha)
    cos = dot / (c_sq.clamp_min(0).sqrt() * words.square().sum(1).sqrt().unsqueeze(0)).clamp_min(1e-8)
    r = (cos * g2).masked_fill(~real.unsqueeze(0), float("-inf")).logsumexp(-1)
    return two_way_ce(r * g3)


def sentence_loss(code, sent, g3):
    return two_way_ce(F.normalize(code, dim=1, eps=1e-8) @ F.normalize(sent, dim=1, eps=1e-8).t() * g3)


def nt_xent(z1, z2, tau=0.5):
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = (z @ z.t() / tau).masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    return F.cross_entropy(sim, torch.cat([torch.arange(n, 2 * n), torch.arange(n)]))


def bce(logits, target):
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", choices=PRESETS, default="demo")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--gan-only", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")
    a = ap.parse_args()
    say = (lambda *x: print(*x, file=sys.stderr)) if a.json else print
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    torch.set_default_device(device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    torch.manual_seed(7)
    p = PRESETS[a.preset]
    tw, vw, tl, vl, th, vh, image, patch = p["clip"]
    nef, b, l = tw, a.batch, p["words"]
    netG = G_NET(p, nef)
    netG.apply(weights_init)
    ema = copy.deepcopy(netG)
    Ds = [D_NET(p["ndf"], nef, k) for k in range(p["branch"])]
    for d in Ds:
        d.apply(weights_init)
    optG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optD = [torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999)) for d in Ds]
    clip = None if a.gan_only else CLIP(tw, vw, tl, vl, th, vh, image, patch)
    if clip is not None:
        clip.requires_grad_(False)
    sizes = [64 << k for k in range(p["branch"])]
    reals = [torch.rand(b, 3, s, s) * 2 - 1 for s in sizes]
    lens = torch.randint(9, min(21, l) + 1, (2, b))
    real_masks = [torch.arange(l).unsqueeze(0) < lens[j].unsqueeze(1) for j in range(2)]
    ids = [torch.randint(1, 49405, (b, l)) * m for m in real_masks]
    z = torch.randn(b, p["z"])
    fixed = [(torch.randn(b, nef, l), torch.randn(b, nef)) for _ in range(2)]
    g1, g2, g3, lam = 4.0, 5.0, 10.0, p["lam"]

    def step():
        if clip is not None:
            with torch.no_grad():
                texts = [clip.encode_text(ids[j], real_masks[j]) for j in range(2)]
        else:
            texts = fixed
        fakes = [netG(z, s, w, ~m) for (w, s), m in zip(texts, real_masks)]
        for k, d in enumerate(Ds):
            real_code = d.code(reals[k])
            loss = 0
            for (imgs, _, _), (_, s) in zip(fakes, texts):
                fc = d.code(imgs[k].detach())
                loss = loss + (bce(d.uncond_logits(real_code), 1) + bce(d.cond_logits(real_code, s), 1)) / 2 + (
                    bce(d.uncond_logits(fc), 0) + bce(d.cond_logits(fc, s), 0) + bce(d.cond_logits(real_code[: b - 1], s[1:]), 0)
                ) / 3
            optD[k].zero_grad()
            loss.backward()
            optD[k].step()
        for d in Ds:
            d.requires_grad_(False)
        total, codes = 0, []
        for (imgs, mu, logvar), (w, s), m in zip(fakes, texts, real_masks):
            for k, d in enumerate(Ds):
                code = d.code(imgs[k])
                total = total + bce(d.uncond_logits(code), 1) + bce(d.cond_logits(code, s), 1)
            total = total - 0.5 * torch.mean(1 + logvar - mu.pow(2) - logvar.exp())
            if clip is not None:
                regions, icode = clip.encode_image(pixels_for_clip(imgs[-1], image))
                total = total + lam * (words_loss(regions, w, m, g1, g2, g3) + sentence_loss(icode, s, g3))
                codes.append(icode)
        if codes:
            total = total + 0.2 * nt_xent(codes[0], codes[1])
        optG.zero_grad()
        total.backward()
        optG.step()
        for d in Ds:
            d.requires_grad_(True)
        with torch.no_grad():
            for pe, pg in zip(ema.parameters(), netG.parameters()):
                pe.lerp_(pg, 1 - 0.999)
            for be, bg in zip(ema.buffers(), netG.buffers()):
                be.copy_(bg)

    cpu = lambda: (lambda r: r.ru_utime + r.ru_stime)(resource.getrusage(resource.RUSAGE_SELF))
    nG = sum(x.numel() for x in netG.parameters())
    nD = sum(x.numel() for d in Ds for x in d.parameters())
    say(f"PyTorch {torch.__version__} DM-GAN train step: preset {a.preset}, G {nG:,} / D {nD:,} parameters, batch {b}, "
        f"{'--gan-only' if a.gan_only else 'CLIP terms'}, on {device}, {torch.get_num_threads()} threads")
    step()
    sync()
    wall, cpus = [], []
    for i in range(a.iters):
        t0, c0 = time.perf_counter(), cpu()
        step()
        sync()
        wall.append(time.perf_counter() - t0)
        cpus.append(cpu() - c0)
        say(f"iteration {i + 1}: {wall[-1]:.3f} s wall, {cpus[-1]:.3f} s CPU")
    mw, mc = statistics.median(wall), statistics.median(cpus)
    if a.json:
        print(json.dumps(dict(bench="train-step-reference", torch=torch.__version__, preset=a.preset, device=str(device), batch=b,
                              iters=a.iters, gan_only=a.gan_only, threads=torch.get_num_threads(), median_wall_s=mw,
                              median_cpu_s=mc, images_per_s=b / mw)))
    else:
        print(f"median: {mw:.3f} s wall ({b / mw:.2f} images/s), {mc:.3f} s CPU per iteration")


if __name__ == "__main__":
    main()
