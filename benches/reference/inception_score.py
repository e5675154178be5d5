"""torch-fidelity's Inception Score on clipgan's synthetic FID Inception weights.

    python benches/reference/inception_score.py fixture OUT.safetensors

Fills pytorch-fid's network (benches/reference/fid_inception.py) with the deterministic
synthetic weights of clipgan's `eval::inception::fill_synthetic`, saves them as a
`torch.save` state_dict, loads that file into torch-fidelity's own
`FeatureExtractorInceptionV3` (the network behind `torch_fidelity.calculate_metrics(isc=True)`),
and records for 10 deterministic 299 x 299 uint8 images:

- `logits_unbiased` [10, 1008]: torch-fidelity's IS feature (pool3 x fc.weight, no bias,
  as the original Inception Score code);
- `is_mean`, `is_std`: `isc_features_to_metric(logits, splits=5, shuffle=False)` (the
  original code's contiguous splits; torch-fidelity's default shuffles first). With
  synthetic weights pool3 hardly varies between images, so this is ~1;
- `spread_logits` [20, 1008] (seeded normal x 4) and `spread_is_mean`, `spread_is_std`:
  torch-fidelity's score of logits that do differ, for the score itself.

torch-fidelity takes uint8 images and feeds `(u - 128) / 128`; clipgan's network feeds
`2 x - 1` for x in [0, 1], so the Rust test gives it x = u / 256 to see the same input.
Needs torch and torch-fidelity (scripts/requirements-test.txt).
"""
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fid_inception import FIDInception3, fill_synthetic, write_safetensors  # noqa: E402

N, SPLITS = 10, 5


def test_images():
    """uint8 [N, 3, 299, 299]; an integer formula, so Rust computes the same bytes."""
    n = torch.arange(N).view(N, 1, 1, 1)
    c = torch.arange(3).view(1, 3, 1, 1)
    y = torch.arange(299).view(1, 1, 299, 1)
    x = torch.arange(299).view(1, 1, 1, 299)
    return ((x * x * 3 + y * 7 + c * 85 + n * 37 + (x * y) % 61 + (n * x * 5) % 29) % 256).to(torch.uint8)


def main():
    if len(sys.argv) != 3 or sys.argv[1] != "fixture":
        sys.exit(__doc__)
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    from torch_fidelity.metric_isc import isc_features_to_metric

    torch.set_num_threads(1)
    net = FIDInception3().eval()
    fill_synthetic(net)
    with tempfile.TemporaryDirectory() as tmp:
        weights = os.path.join(tmp, "synthetic_inception.pth")
        torch.save(net.state_dict(), weights)
        fe = FeatureExtractorInceptionV3("inception-v3-compat", ["logits_unbiased"], feature_extractor_weights_path=weights)
    with torch.no_grad():
        (logits,) = fe(test_images())
    m = isc_features_to_metric(logits, splits=SPLITS, shuffle=False)
    spread = torch.randn(20, 1008, generator=torch.Generator().manual_seed(17)) * 4
    ms = isc_features_to_metric(spread, splits=SPLITS, shuffle=False)
    f64 = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    out = {
        "logits_unbiased": logits.float(),
        "is_mean": f64(m["inception_score_mean"]),
        "is_std": f64(m["inception_score_std"]),
        "spread_logits": spread,
        "spread_is_mean": f64(ms["inception_score_mean"]),
        "spread_is_std": f64(ms["inception_score_std"]),
    }
    write_safetensors(sys.argv[2], out)
    print(m, ms)


if __name__ == "__main__":
    main()
