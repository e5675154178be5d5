"""StackGAN's CUB-finetuned Inception V3 (TF-slim `inception/slim` Inception V3, 51 classes)
transcribed to torch.nn, written independently of clipgan's Rust network
(src/eval/stackgan_inception.rs) from the TensorFlow graph: the reference it is tested
against.

  python stackgan_inception.py fixture OUT_DIR [--seed 17]

writes OUT_DIR/weights.safetensors (seeded weights under the documented names: the TF
names with `/` -> `.`, PyTorch layout) and OUT_DIR/expected.safetensors (`images`: two
seeded 3 x 256 x 256 images in [0, 1]; `logits`: the 50 IS logits StackGAN's evaluation
takes; `full`: all 51 logits of the same images already at 299 x 299 in [-1, 1], `x299`).
The weights are 87 MB, so tests/eval/stackgan_inception.rs runs this with the venv's
torch into a temporary folder instead of committing them. Only torch is needed.

  python stackgan_inception.py via-converter WEIGHTS OUT

runs scripts/convert_stackgan_inception.py's mapping (names, layouts, moving averages) on
WEIGHTS laid out as the TensorFlow checkpoint holds them (no TensorFlow needed; numpy is);
OUT must equal WEIGHTS.

  python stackgan_inception.py tf-checkpoint WEIGHTS PREFIX

(with TensorFlow and numpy importable besides torch) writes WEIGHTS as a real TensorFlow
checkpoint laid out as the released one, to run the converter itself on.

  python stackgan_inception.py tf-forward WEIGHTS EXPECTED

(TensorFlow, numpy and torch importable) runs the network in TensorFlow's own ops on
EXPECTED's 299 px inputs and compares with the torch transcription's logits.
"""
import ctypes, json, struct, sys

import torch
import torch.nn as nn
import torch.nn.functional as F


class Unit(nn.Module):
    """TF-slim ops.conv2d with batch_norm_params: conv (no bias), BatchNorm with beta only
    (scale=False), eps 0.001, moving statistics; ReLU. TF 'SAME' at stride 1 = symmetric."""

    def __init__(self, cin, cout, k, stride=1, same=True):
        super().__init__()
        k = (k, k) if isinstance(k, int) else k
        self.stride = stride
        self.padding = ((k[0] - 1) // 2, (k[1] - 1) // 2) if same else (0, 0)
        self.weights = nn.Parameter(torch.empty(cout, cin, *k))
        self.BatchNorm = nn.Module()
        self.BatchNorm.beta = nn.Parameter(torch.empty(cout))
        self.BatchNorm.register_buffer("moving_mean", torch.empty(cout))
        self.BatchNorm.register_buffer("moving_variance", torch.empty(cout))

    def forward(self, x):
        y = F.conv2d(x, self.weights, None, self.stride, self.padding)
        bn = self.BatchNorm
        y = (y - bn.moving_mean.view(1, -1, 1, 1)) / torch.sqrt(bn.moving_variance.view(1, -1, 1, 1) + 1e-3) + bn.beta.view(1, -1, 1, 1)
        return F.relu(y)


def scope(units):
    """A TF variable scope holding units named Conv, Conv_1, ... (default scope names)."""
    m = nn.Module()
    for i, u in enumerate(units):
        setattr(m, "Conv" if i == 0 else f"Conv_{i}", u)
    return m


def avg_same(x):
    # TF avg_pool 3x3 stride 1 'SAME': the mean of the valid inputs only.
    return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)


def seq(m, x, names):
    for n in names:
        x = getattr(m, n)(x)
    return x


class A(nn.Module):
    def __init__(self, cin, pool):
        super().__init__()
        self.branch1x1 = scope([Unit(cin, 64, 1)])
        self.branch5x5 = scope([Unit(cin, 48, 1), Unit(48, 64, 5)])
        self.branch3x3dbl = scope([Unit(cin, 64, 1), Unit(64, 96, 3), Unit(96, 96, 3)])
        self.branch_pool = scope([Unit(cin, pool, 1)])

    def forward(self, x):
        return torch.cat([
            self.branch1x1.Conv(x),
            seq(self.branch5x5, x, ["Conv", "Conv_1"]),
            seq(self.branch3x3dbl, x, ["Conv", "Conv_1", "Conv_2"]),
            self.branch_pool.Conv(avg_same(x)),
        ], 1)


class B(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3 = scope([Unit(cin, 384, 3, 2, False)])
        self.branch3x3dbl = scope([Unit(cin, 64, 1), Unit(64, 96, 3), Unit(96, 96, 3, 2, False)])

    def forward(self, x):
        return torch.cat([self.branch3x3.Conv(x), seq(self.branch3x3dbl, x, ["Conv", "Conv_1", "Conv_2"]), F.max_pool2d(x, 3, 2)], 1)


class C(nn.Module):
    def __init__(self, c7):
        super().__init__()
        self.branch1x1 = scope([Unit(768, 192, 1)])
        self.branch7x7 = scope([Unit(768, c7, 1), Unit(c7, c7, (1, 7)), Unit(c7, 192, (7, 1))])
        self.branch7x7dbl = scope([Unit(768, c7, 1), Unit(c7, c7, (7, 1)), Unit(c7, c7, (1, 7)), Unit(c7, c7, (7, 1)), Unit(c7, 192, (1, 7))])
        self.branch_pool = scope([Unit(768, 192, 1)])

    def forward(self, x):
        return torch.cat([
            self.branch1x1.Conv(x),
            seq(self.branch7x7, x, ["Conv", "Conv_1", "Conv_2"]),
            seq(self.branch7x7dbl, x, ["Conv", "Conv_1", "Conv_2", "Conv_3", "Conv_4"]),
            self.branch_pool.Conv(avg_same(x)),
        ], 1)


class D(nn.Module):
    def __init__(self):
        super().__init__()
        self.branch3x3 = scope([Unit(768, 192, 1), Unit(192, 320, 3, 2, False)])
        self.branch7x7x3 = scope([Unit(768, 192, 1), Unit(192, 192, (1, 7)), Unit(192, 192, (7, 1)), Unit(192, 192, 3, 2, False)])

    def forward(self, x):
        return torch.cat([
            seq(self.branch3x3, x, ["Conv", "Conv_1"]),
            seq(self.branch7x7x3, x, ["Conv", "Conv_1", "Conv_2", "Conv_3"]),
            F.max_pool2d(x, 3, 2),
        ], 1)


class E(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch1x1 = scope([Unit(cin, 320, 1)])
        self.branch3x3 = scope([Unit(cin, 384, 1), Unit(384, 384, (1, 3)), Unit(384, 384, (3, 1))])
        self.branch3x3dbl = scope([Unit(cin, 448, 1), Unit(448, 384, 3), Unit(384, 384, (1, 3)), Unit(384, 384, (3, 1))])
        self.branch_pool = scope([Unit(cin, 192, 1)])

    def forward(self, x):
        b = self.branch3x3.Conv(x)
        d = seq(self.branch3x3dbl, x, ["Conv", "Conv_1"])
        return torch.cat([
            self.branch1x1.Conv(x),
            self.branch3x3.Conv_1(b), self.branch3x3.Conv_2(b),
            self.branch3x3dbl.Conv_2(d), self.branch3x3dbl.Conv_3(d),
            self.branch_pool.Conv(avg_same(x)),  # TF-slim: average pool here too (no FID max pool)
        ], 1)


class StackganInception(nn.Module):
    def __init__(self, num_classes=51):
        super().__init__()
        self.conv0 = Unit(3, 32, 3, 2, False)
        self.conv1 = Unit(32, 32, 3, 1, False)
        self.conv2 = Unit(32, 64, 3, 1, True)
        self.conv3 = Unit(64, 80, 1, 1, False)
        self.conv4 = Unit(80, 192, 3, 1, False)
        self.mixed_35x35x256a = A(192, 32)
        self.mixed_35x35x288a = A(256, 64)
        self.mixed_35x35x288b = A(288, 64)
        self.mixed_17x17x768a = B(288)
        self.mixed_17x17x768b = C(128)
        self.mixed_17x17x768c = C(160)
        self.mixed_17x17x768d = C(160)
        self.mixed_17x17x768e = C(192)
        self.mixed_17x17x1280a = D()
        self.mixed_8x8x2048a = E(1280)
        self.mixed_8x8x2048b = E(2048)
        self.logits = nn.Module()
        self.logits.logits = nn.Module()
        self.logits.logits.weights = nn.Parameter(torch.empty(num_classes, 2048))
        self.logits.logits.biases = nn.Parameter(torch.empty(num_classes))

    def forward(self, x):
        """x: B x 3 x 299 x 299 in [-1, 1]; all logits (class 0 = background)."""
        x = self.conv2(self.conv1(self.conv0(x)))
        x = F.max_pool2d(x, 3, 2)
        x = self.conv4(self.conv3(x))
        x = F.max_pool2d(x, 3, 2)
        for name in ["mixed_35x35x256a", "mixed_35x35x288a", "mixed_35x35x288b", "mixed_17x17x768a", "mixed_17x17x768b",
                     "mixed_17x17x768c", "mixed_17x17x768d", "mixed_17x17x768e", "mixed_17x17x1280a", "mixed_8x8x2048a",
                     "mixed_8x8x2048b"]:
            x = getattr(self, name)(x)
        x = x.mean((2, 3))  # avg_pool over the whole 8 x 8 map ('VALID'), dropout off
        return x @ self.logits.logits.weights.t() + self.logits.logits.biases


def preprocess(images):
    """StackGAN's evaluation: scipy.misc.imresize(img, (299, 299), 'bilinear') (uint8 out),
    then img / 127.5 - 1. Here: bilinear (align_corners=False) on [0, 1], rounded to 8 bits."""
    x = F.interpolate(images, size=(299, 299), mode="bilinear", align_corners=False)
    return torch.round(x * 255).clamp(0, 255) / 127.5 - 1


def seeded(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in sorted(list(model.named_parameters()) + list(model.named_buffers())):
            r = torch.randn(t.shape, generator=g)
            if name.endswith("moving_variance"):
                t.copy_(r.abs() * 0.5 + 0.5)
            elif name.endswith("moving_mean") or name.endswith("beta") or name.endswith("biases"):
                t.copy_(r * 0.1)
            else:
                fan_in = t[0].numel()
                t.copy_(r * (2.0 / fan_in) ** 0.5)


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().float().contiguous().cpu()
        b = ctypes.string_at(t.data_ptr(), t.numel() * t.element_size())
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def fixture(out_dir, seed):
    torch.set_num_threads(2)
    model = StackganInception().eval()
    seeded(model, seed)
    state = dict(model.state_dict())
    write_safetensors(f"{out_dir}/weights.safetensors", state)
    g = torch.Generator().manual_seed(seed + 1)
    images = torch.rand(2, 3, 256, 256, generator=g)
    x299 = torch.rand(2, 3, 299, 299, generator=g) * 2 - 1
    with torch.no_grad():
        logits = model(preprocess(images))[:, 1:]  # StackGAN drops the background class
        full = model(x299)
    write_safetensors(f"{out_dir}/expected.safetensors", {"images": images, "logits": logits, "x299": x299, "full": full})
    print(f"wrote {out_dir}: {sum(t.numel() for t in state.values())} weights")


def read_safetensors(path):
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8:8 + n])
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        out[k] = torch.frombuffer(bytearray(b[8 + n + s:8 + n + e]), dtype=torch.float32).view(v["shape"])
    return out


def via_converter(weights, out):
    """scripts/convert_stackgan_inception.py's mapping without TensorFlow: `weights` laid out
    as the TF checkpoint holds them (TF names, H x W x in x out kernels, 2048 x 51 logits),
    every other variable's value only under `<name>/ExponentialMovingAverage` with a decoy
    (zeros) under the plain name, plus an auxiliary head and optimizer slots that must be
    left out; then the converter's `convert` writes `out`, which must equal `weights`."""
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2] / "scripts"))
    import convert_stackgan_inception as conv

    ckpt = {}
    for i, (name, t) in enumerate(sorted(read_safetensors(weights).items())):
        tf_name = name.replace(".", "/")
        a = t.numpy()
        if a.ndim == 4:
            a = a.transpose(2, 3, 1, 0)
        elif a.ndim == 2:
            a = a.T
        if i % 2:
            ckpt[tf_name + "/ExponentialMovingAverage"] = a.copy()
            ckpt[tf_name] = a * 0
        else:
            ckpt[tf_name] = a.copy()
    ckpt["aux_logits/FC/weights"] = ckpt["logits/logits/weights"][:768]
    ckpt["conv0/weights/RMSProp"] = ckpt["conv0/weights"] * 0
    ckpt["global_step"] = __import__("numpy").array(1000)
    conv.convert({k: list(v.shape) for k, v in ckpt.items()}, ckpt.__getitem__, out)


def tf_checkpoint(weights, prefix):
    """A real TensorFlow (name-based, TF1 Saver) checkpoint of `weights` laid out as the
    released one is (TF names and layouts; every variable also under its
    ExponentialMovingAverage name, the plain one holding zeros), for running
    scripts/convert_stackgan_inception.py itself. Needs TensorFlow and numpy besides torch."""
    import numpy as np
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    g = tf.Graph()
    with g.as_default():
        var_list = {}
        for name, t in sorted(read_safetensors(weights).items()):
            a = t.numpy()
            a = a.transpose(2, 3, 1, 0) if a.ndim == 4 else a.T if a.ndim == 2 else a
            tf_name = name.replace(".", "/")
            var_list[tf_name + "/ExponentialMovingAverage"] = tf.compat.v1.Variable(np.ascontiguousarray(a))
            var_list[tf_name] = tf.compat.v1.Variable(np.zeros_like(a))
        var_list["aux_logits/FC/weights"] = tf.compat.v1.Variable(np.zeros((768, 51), np.float32))
        saver = tf.compat.v1.train.Saver(var_list)
        with tf.compat.v1.Session(graph=g) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, prefix, write_meta_graph=False)
    print(f"wrote {prefix}.index / .data-*")


def tf_forward(weights, expected):
    """The same network once more, in TensorFlow's own ops as TF-slim's inception_v3 calls
    them (NHWC; tf.nn.conv2d / avg_pool2d / max_pool2d with 'SAME' and 'VALID' padding,
    tf.nn.batch_normalization without scale), on the `x299` inputs of EXPECTED; prints its
    relative difference from EXPECTED's `full` logits (the torch transcription's, which the
    Rust network matches). This checks the transcriptions' reading of TF's padding and
    pooling semantics. Needs TensorFlow and numpy besides torch."""
    import numpy as np
    import tensorflow as tf

    W = {k: v.numpy() for k, v in read_safetensors(weights).items()}
    E = read_safetensors(expected)

    def unit(x, name, stride=1, padding="SAME"):
        y = tf.nn.conv2d(x, W[name + ".weights"].transpose(2, 3, 1, 0), strides=stride, padding=padding)
        bn = name + ".BatchNorm."
        y = tf.nn.batch_normalization(y, W[bn + "moving_mean"], W[bn + "moving_variance"], W[bn + "beta"], None, 0.001)
        return tf.nn.relu(y)

    def chain(x, scope, n, last=None):
        for i in range(n):
            name = f"{scope}.{'Conv' if i == 0 else f'Conv_{i}'}"
            x = unit(x, name, *(last if (last and i == n - 1) else (1, "SAME")))
        return x

    avg = lambda x: tf.nn.avg_pool2d(x, 3, 1, "SAME")
    mx = lambda x: tf.nn.max_pool2d(x, 3, 2, "VALID")
    x = tf.constant(E["x299"].numpy().transpose(0, 2, 3, 1))
    x = unit(x, "conv0", 2, "VALID")
    x = unit(x, "conv1", 1, "VALID")
    x = mx(unit(x, "conv2", 1, "SAME"))
    x = unit(x, "conv3", 1, "VALID")
    x = mx(unit(x, "conv4", 1, "VALID"))
    for m in ["mixed_35x35x256a", "mixed_35x35x288a", "mixed_35x35x288b"]:
        x = tf.concat([chain(x, m + ".branch1x1", 1), chain(x, m + ".branch5x5", 2), chain(x, m + ".branch3x3dbl", 3),
                       chain(avg(x), m + ".branch_pool", 1)], 3)
    m = "mixed_17x17x768a"
    x = tf.concat([chain(x, m + ".branch3x3", 1, (2, "VALID")), chain(x, m + ".branch3x3dbl", 3, (2, "VALID")), mx(x)], 3)
    for m in ["mixed_17x17x768b", "mixed_17x17x768c", "mixed_17x17x768d", "mixed_17x17x768e"]:
        x = tf.concat([chain(x, m + ".branch1x1", 1), chain(x, m + ".branch7x7", 3), chain(x, m + ".branch7x7dbl", 5),
                       chain(avg(x), m + ".branch_pool", 1)], 3)
    m = "mixed_17x17x1280a"
    x = tf.concat([chain(x, m + ".branch3x3", 2, (2, "VALID")), chain(x, m + ".branch7x7x3", 4, (2, "VALID")), mx(x)], 3)
    for m in ["mixed_8x8x2048a", "mixed_8x8x2048b"]:
        b = unit(x, m + ".branch3x3.Conv")
        d = unit(unit(x, m + ".branch3x3dbl.Conv"), m + ".branch3x3dbl.Conv_1")
        x = tf.concat([unit(x, m + ".branch1x1.Conv"),
                       tf.concat([unit(b, m + ".branch3x3.Conv_1"), unit(b, m + ".branch3x3.Conv_2")], 3),
                       tf.concat([unit(d, m + ".branch3x3dbl.Conv_2"), unit(d, m + ".branch3x3dbl.Conv_3")], 3),
                       unit(avg(x), m + ".branch_pool.Conv")], 3)
    x = tf.reshape(tf.nn.avg_pool2d(x, x.shape[1:3], 1, "VALID"), [x.shape[0], -1])
    logits = (tf.matmul(x, W["logits.logits.weights"].T) + W["logits.logits.biases"]).numpy()
    want = E["full"].numpy()
    err = np.abs(logits - want).max() / np.abs(want).max()
    print(f"TensorFlow {tf.__version__} vs the torch transcription: max relative difference {err:.3g}")
    return err


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "fixture":
        seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 17
        fixture(sys.argv[2], seed)
    elif len(sys.argv) == 4 and sys.argv[1] == "tf-forward":
        sys.exit(0 if tf_forward(sys.argv[2], sys.argv[3]) < 1e-4 else 1)
    elif len(sys.argv) == 4 and sys.argv[1] == "tf-checkpoint":
        tf_checkpoint(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "via-converter":
        via_converter(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
