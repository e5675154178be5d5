"""clipgan's DM-GAN against DM-GAN's modules in PyTorch (dmgan_step.py), value for value.

Reads a safetensors file written by tests/models/dmgan_parity.rs: clipgan's weights under
their checkpoint names (`g.`, `d0.`, `d1.`, ...; the discriminators' spectral-norm u, v as
they were before the forward pass), the inputs (`in.z`, `in.eps` the conditioning noise,
`in.sent`, `in.words`, `in.pad` true at padding) and clipgan's outputs (`out.img{k}`,
`out.mu`, `out.logvar`, `out.d{k}.uncond`, `out.d{k}.cond`: each discriminator on clipgan's
image of its branch). Loads the weights into the PyTorch modules (strictly: every tensor
used, none missing), runs the same forward in training mode (batch statistics in BatchNorm,
one power iteration per spectral-norm call) and prints the largest differences; exits 1
when one is above --tol.

    python benches/reference/dmgan_parity.py FILE --branch 3 --ngf 4 --ndf 4 --z 8 --ncf 6 --r-num 2 --nef 16
"""
import argparse
import json
import os
import struct
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dmgan_step as R  # noqa: E402

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "BOOL": torch.bool, "U8": torch.uint8}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[a:b]), dtype=DTYPES[info["dtype"]]) if b > a else torch.empty(0, dtype=DTYPES[info["dtype"]])
        out[name] = t.reshape(info["shape"]).clone()
    return out


def g_name(k):
    """clipgan (= DM-GAN's checkpoint) name -> dmgan_step.G_NET name."""
    parts = k.split(".")
    if parts[0].startswith("h_net") and parts[0] != "h_net1":
        parts[0] = f"next.{int(parts[0][5:]) - 2}"
    elif parts[0].startswith("img_net"):
        return f"img.{int(parts[0][7:]) - 1}." + ".".join(parts[2:])
    return ".".join(parts)


def d_name(k, branch):
    """clipgan (= DM-GAN's checkpoint) name -> dmgan_step.D_NET name."""
    extra = {"img_code_s32.0": 8, "img_code_s32_1.0": 10, "img_code_s64.0": 10, "img_code_s64_1.0": 12, "img_code_s64_2.0": 14}
    head, _, rest = k.partition(".")
    if head == "img_code_s16":
        return "code." + rest
    for prefix, i in extra.items():
        if k.startswith(prefix + "."):
            return f"code.{i}." + k[len(prefix) + 1:]
    if k.startswith("COND_DNET.jointConv.0."):
        return "joint.0." + k[len("COND_DNET.jointConv.0."):]
    if k.startswith("COND_DNET.outlogits.0."):
        return "cond_out." + k[len("COND_DNET.outlogits.0."):]
    if k.startswith("UNCOND_DNET.outlogits.0."):
        return "uncond." + k[len("UNCOND_DNET.outlogits.0."):]
    raise KeyError(k)


def load(module, tensors, prefix, rename):
    state = {rename(k[len(prefix):]): v for k, v in tensors.items() if k.startswith(prefix)}
    own = module.state_dict()
    # BatchNorm's num_batches_tracked is PyTorch bookkeeping that clipgan does not keep.
    for k in own:
        if k.endswith("num_batches_tracked"):
            state.setdefault(k, own[k])
    module.load_state_dict(state, strict=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file")
    for name in ["branch", "ngf", "ndf", "z", "ncf", "r-num", "nef"]:
        ap.add_argument(f"--{name}", type=int, required=True)
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    t = read_safetensors(a.file)
    p = dict(branch=a.branch, ngf=a.ngf, ndf=a.ndf, z=a.z, ncf=a.ncf, r_num=a.r_num)
    torch.use_deterministic_algorithms(True)
    G = R.G_NET(p, a.nef).train()
    load(G, t, "g.", g_name)
    z, eps, sent, words, pad = t["in.z"], t["in.eps"], t["in.sent"], t["in.words"], t["in.pad"]
    diffs = {}
    with torch.no_grad():
        x = F.glu(G.ca_net.fc(sent), 1)
        mu, logvar = x[:, : a.ncf], x[:, a.ncf:]
        c = mu + eps * torch.exp(0.5 * logvar)
        h = G.h_net1(torch.cat([c, z], 1))
        imgs = [G.img[0](h)]
        for k, stage in enumerate(G.next):
            h = stage(h, words, pad)
            imgs.append(G.img[k + 1](h))
        diffs["mu"] = (mu - t["out.mu"]).abs().max().item()
        diffs["logvar"] = (logvar - t["out.logvar"]).abs().max().item()
        for k, im in enumerate(imgs):
            diffs[f"image {64 << k} px"] = (im - t[f"out.img{k}"]).abs().max().item()
    for k in range(a.branch):
        D = R.D_NET(a.ndf, a.nef, k).train()
        load(D, t, f"d{k}.", lambda n: d_name(n, k))
        with torch.no_grad():
            code = D.code(t[f"out.img{k}"])
            diffs[f"D{64 << k} unconditional logit"] = (D.uncond_logits(code) - t[f"out.d{k}.uncond"]).abs().max().item()
            diffs[f"D{64 << k} conditional logit"] = (D.cond_logits(code, sent) - t[f"out.d{k}.cond"]).abs().max().item()
    worst = max(diffs.values())
    for name, d in diffs.items():
        print(f"{name}: max |clipgan - PyTorch| = {d:.3g}")
    print(f"largest difference {worst:.3g} (tolerance {a.tol:g})")
    sys.exit(0 if worst <= a.tol else 1)


if __name__ == "__main__":
    main()
