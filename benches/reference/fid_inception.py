"""pytorch-fid's FID Inception V3, re-implemented with torch.nn only (same module and
parameter names as pytorch_fid/inception.py's fid_inception_v3(), which builds on
torchvision's Inception3), for clipgan's cross-checks and speed comparison.

  python fid_inception.py fixture OUT.safetensors   # tests/fixtures/eval/fid_inception_ref.safetensors
  python fid_inception.py bench [--batch 32] [--iters 5] [--threads N] [--device cuda] [--model repo|pytorch-fid] [--json]
  python fid_inception.py convert pt_inception-2015-12-05-6726825d.pth OUT.safetensors

`fixture` fills the network with the deterministic synthetic weights of clipgan's
`eval::inception::fill_synthetic` (parameter i in sorted-name order: sin(0.37 k + i),
scaled per kind) and records the outputs for deterministic inputs, so
tests/eval/inception.rs checks the Rust forward without Python.
Only torch is needed (no torchvision, numpy or safetensors packages); `bench --model
pytorch-fid` times the pytorch_fid package's own model instead (it needs that package
and torchvision; its weight download is replaced by the synthetic weights).
"""
import ctypes, json, math, struct, sys, time

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicConv2d(nn.Module):
    def __init__(self, cin, cout, **kw):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kw)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)), inplace=True)


class FIDInceptionA(nn.Module):
    def __init__(self, cin, pool_features):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(cin, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, kernel_size=1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        d = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        p = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False))
        return torch.cat([b1, b5, d, p], 1)


class InceptionB(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3(x)
        d = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([b3, d, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class FIDInceptionC(nn.Module):
    def __init__(self, cin, c7):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for i in range(1, 6):
            d = getattr(self, f"branch7x7dbl_{i}")(d)
        p = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False))
        return torch.cat([b1, b7, d, p], 1)


class InceptionD(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class FIDInceptionE(nn.Module):
    """FIDInceptionE_1 (max_pool=False) and FIDInceptionE_2 (max_pool=True)."""

    def __init__(self, cin, max_pool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(cin, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(cin, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        if self.max_pool:
            p = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            p = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        return torch.cat([b1, b3, d, self.branch_pool(p)], 1)


class FIDInception3(nn.Module):
    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = FIDInceptionA(192, 32)
        self.Mixed_5c = FIDInceptionA(256, 64)
        self.Mixed_5d = FIDInceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, 128)
        self.Mixed_6c = FIDInceptionC(768, 160)
        self.Mixed_6d = FIDInceptionC(768, 160)
        self.Mixed_6e = FIDInceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = FIDInceptionE(1280, False)
        self.Mixed_7c = FIDInceptionE(2048, True)
        self.fc = nn.Linear(2048, 1008)

    def forward(self, inp):
        """pytorch-fid's InceptionV3.forward (resize_input, normalize_input) returning
        every block's output, spatially averaged as fid_score.get_activations does, and
        the logits of torchvision's Inception3 (fc on pool3; dropout is off in eval)."""
        pool = lambda t: F.adaptive_avg_pool2d(t, (1, 1)).flatten(1)
        x = F.interpolate(inp, size=(299, 299), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        out = {}
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        out["f64"] = pool(x)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        out["f192"] = pool(x)
        for m in ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"]:
            x = getattr(self, m)(x)
        out["f768"] = pool(x)
        for m in ["Mixed_7a", "Mixed_7b", "Mixed_7c"]:
            x = getattr(self, m)(x)
        out["f2048"] = pool(x)
        out["logits"] = self.fc(out["f2048"])
        return out


def fill_synthetic(net):
    """clipgan's eval::inception::fill_synthetic (num_batches_tracked is no variable there)."""
    sd = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    with torch.no_grad():
        for i, name in enumerate(sorted(sd)):
            t = sd[name]
            s = torch.sin(torch.arange(t.numel(), dtype=torch.float64) * 0.37 + i)
            if name.endswith("running_var"):
                v = s * s * 0.5 + 0.5
            elif name.endswith("bn.weight"):
                v = s * 0.2 + 1.0
            elif name.endswith("running_mean") or name.endswith("bias"):
                v = s * 0.1
            else:
                fan_in = math.prod(t.shape[1:])
                v = s * (2.0 / math.sqrt(fan_in))
            t.copy_(v.view(t.shape).to(t.dtype))


def test_images():
    """Two deterministic images in [0, 1] of 75 x 90 (not 299: the resize is checked too)."""
    k = torch.arange(2 * 3 * 75 * 90, dtype=torch.float64).view(2, 3, 75, 90)
    return ((torch.sin(k * 0.013) * torch.cos(k * 0.0071) + 1) / 2).float()


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    dtypes = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        b = ctypes.string_at(t.data_ptr(), t.numel() * t.element_size())
        header[name] = {"dtype": dtypes[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def pytorch_fid_model(state):
    """pytorch-fid's own InceptionV3 (block 3: pool3, resize and normalisation on) with
    `state` in place of its downloaded weights (its loader is replaced, no network)."""
    from pytorch_fid import inception as pf

    pf.load_state_dict_from_url = lambda *a, **k: state
    return pf.InceptionV3([pf.InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=True, normalize_input=True, use_fid_inception=True)


def bench(argv):
    """Images/s of the FID feature extraction at 299 px on synthetic weights."""
    import argparse

    ap = argparse.ArgumentParser(prog="fid_inception.py bench")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--model", choices=["repo", "pytorch-fid"], default="repo",
                    help="repo: this file's re-implementation; pytorch-fid: the pytorch_fid package's own model (needs it and torchvision)")
    ap.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    ref = FIDInception3().eval()
    fill_synthetic(ref)
    net = (pytorch_fid_model(ref.state_dict()) if a.model == "pytorch-fid" else ref).eval().to(device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    x = torch.rand(a.batch, 3, 299, 299, device=device)
    times, cpus = [], []
    with torch.no_grad():
        net(x)  # warm-up
        sync()
        for _ in range(a.iters):
            t, c = time.perf_counter(), time.process_time()
            net(x)
            sync()
            times.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
    med = sorted(times)[len(times) // 2]
    cpu = sorted(cpus)[len(cpus) // 2]
    if a.json:
        print(json.dumps(dict(bench="fid-features-reference", model=a.model, torch=torch.__version__, device=str(device), batch=a.batch,
                              iters=a.iters, threads=torch.get_num_threads(), median_wall_s=med, median_cpu_s=cpu, images_per_s=a.batch / med)))
    else:
        print(f"pytorch fid-features ({a.model}): batch {a.batch}, {device}, threads {torch.get_num_threads()}: "
              f"median {med:.3f} s/batch wall = {a.batch / med:.1f} images/s ({cpu:.3f} CPU-s/batch)")


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else "bench"
    if cmd == "fixture":
        torch.set_num_threads(1)
        net = FIDInception3().eval()
        fill_synthetic(net)
        x = test_images()
        with torch.no_grad():
            out = net(x)
        out["input"] = x
        write_safetensors(sys.argv[2], out)
        print({k: tuple(v.shape) for k, v in out.items()})
    elif cmd == "convert":
        sd = torch.load(sys.argv[2], map_location="cpu", weights_only=True)
        write_safetensors(sys.argv[3], {k: v for k, v in sd.items() if v.dtype in (torch.float32, torch.int64)})
        print(f"wrote {len(sd)} tensors to {sys.argv[3]}")
    elif cmd == "bench":
        bench(sys.argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
