"""The sliding window blends tiles exactly as nnU-Net's predictor does (issue 25): same tiles, same padding, same
Gaussian weights. A tile function whose output depends on the position inside the tile makes every weight count,
so any other weighting of the tiles' outer shells (a floor under the Gaussian, float32 weights) fails here."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from torch import nn

from nnunetv2_openvocab.inference.sliding_window import SlidingWindow

PATCH = (16, 16, 16)


class PositionDependentNetwork(nn.Module):
    """A convolution plus a fixed field over the patch: overlapping tiles disagree, so the blend shows the weights."""

    def __init__(self, channels: int):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv3d(1, channels, 3, padding=1)
        self.register_buffer("field", 4 * torch.randn(channels, *PATCH))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.field


def nnunet_logits(network: nn.Module, data: torch.Tensor, channels: int, mirror_axes) -> torch.Tensor:
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=mirror_axes is not None,
                                perform_everything_on_device=False, device=torch.device("cpu"), allow_tqdm=False)
    predictor.network = network
    predictor.configuration_manager = SimpleNamespace(patch_size=list(PATCH))
    predictor.label_manager = SimpleNamespace(num_segmentation_heads=channels)
    predictor.allowed_mirroring_axes = mirror_axes
    return predictor.predict_sliding_window_return_logits(data).float()


@pytest.mark.parametrize("mirror_axes", [None, (0, 1, 2)], ids=["no_mirroring", "mirroring"])
def test_blend_equals_nnunet_predictor(mirror_axes):
    channels = 3
    network = PositionDependentNetwork(channels).eval()
    data = torch.randn(1, 37, 40, 21)  # several tiles per axis and one axis padded
    expected = nnunet_logits(network, data, channels, mirror_axes)
    window = SlidingWindow(PATCH, 0.5, mirror_axes, show_progress=False)
    padded, volume = window.start(data, channels)
    window.accumulate(volume, padded, lambda tile: network(tile)[0])
    ours = torch.stack([volume.channel(k) for k in range(channels)])
    assert ours.shape == expected.shape
    # both sum in float16; compare where nnU-Net's float16 weight sums are normal numbers
    resolved = volume.weights[volume.unpad] >= 1e-3
    difference = (ours - expected).abs()[:, resolved]
    assert difference.max() < 0.02 and difference.mean() < 2e-3, (float(difference.max()), float(difference.mean()))
