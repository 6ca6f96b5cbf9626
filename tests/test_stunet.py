"""STUNet: published sizes, nnU-Net's expectations (deep supervision, plans, planner sizing), feature API."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from torch import nn

from nnunetv2_openvocab.network.stunet import STUNet, stunet_arch_kwargs
from nnunetv2_openvocab.network.stunet_blocks import NearestUpsampleProjection

SHARED_DATA = Path(os.environ.get("OPENVOCAB_SHARED_DATA",
                                  Path(__file__).resolve().parents[1].parent / "shared" / "data"))
REFERENCE_FILE = SHARED_DATA / "stunet_reference" / "stunet_state_dict_shapes.json"
# Huang et al. 2023, at 1 input channel and 105 classes
PUBLISHED_PARAMETER_COUNTS = {"S": 14_596_941, "B": 58_262_669, "L": 440_302_605, "H": 1_457_326_221}
TINY_DIMS = [8, 16, 32, 64, 128, 128]
# 4 isotropic poolings and an anisotropic last one: a 32^3 patch keeps a 2x1x1 bottleneck,
# enough voxels for instance norm in training mode
TINY_POOLING = [[2, 2, 2]] * 4 + [[2, 1, 1]]


def build_on_meta(size: str) -> STUNet:
    with torch.device("meta"):  # shapes only: even H needs no memory
        return STUNet(input_channels=1, num_classes=105, **stunet_arch_kwargs(size))


def tiny_stunet(deep_supervision: bool = True, num_classes: int = 3) -> STUNet:
    torch.manual_seed(0)
    network = STUNet(1, num_classes, dims=TINY_DIMS, pool_op_kernel_sizes=TINY_POOLING,
                     deep_supervision=deep_supervision)
    network.apply(network.initialize)
    return network


@pytest.mark.parametrize("size", sorted(PUBLISHED_PARAMETER_COUNTS))
def test_parameter_count_matches_paper(size):
    network = build_on_meta(size)
    assert sum(p.numel() for p in network.parameters()) == PUBLISHED_PARAMETER_COUNTS[size]


@pytest.mark.skipif(not REFERENCE_FILE.is_file(), reason=f"{REFERENCE_FILE} not available")
@pytest.mark.parametrize("size", sorted(PUBLISHED_PARAMETER_COUNTS))
def test_state_dict_equals_released_checkpoint_layout(size):
    reference = json.loads(REFERENCE_FILE.read_text(encoding="utf-8"))[size]
    assert stunet_arch_kwargs(size) == {"depth": reference["depth"], "dims": reference["dims"]}
    with torch.device("meta"):
        network = STUNet(reference["input_channels"], reference["num_classes"], reference["depth"], reference["dims"],
                         reference["pool_op_kernel_sizes"], reference["conv_kernel_sizes"])
    shapes = {name: list(tensor.shape) for name, tensor in network.state_dict().items()}
    assert list(shapes) == list(reference["state_dict"])
    assert shapes == reference["state_dict"]
    assert sum(p.numel() for p in network.parameters()) == reference["num_parameters"]


def test_arch_kwargs_width_override():
    assert stunet_arch_kwargs("L", base_width=8) == {"depth": [2] * 6, "dims": [8, 16, 32, 64, 128, 128]}
    with pytest.raises(ValueError, match="Unknown STU-Net size 'XL'"):
        stunet_arch_kwargs("XL")


def test_deep_supervision_outputs_highest_resolution_first_and_backpropagate():
    network = tiny_stunet()
    outputs = network(torch.randn(1, 1, 32, 32, 32))
    assert isinstance(outputs, list)
    assert [tuple(o.shape) for o in outputs] == [(1, 3, 32, 32, 32), (1, 3, 16, 16, 16), (1, 3, 8, 8, 8),
                                                (1, 3, 4, 4, 4), (1, 3, 2, 2, 2)]
    sum(o.mean() for o in outputs).backward()
    assert all(p.grad is not None for p in network.parameters())


def test_deep_supervision_toggle_through_decoder_keeps_state_dict():
    network = tiny_stunet().eval()
    names = list(network.state_dict())
    network.decoder.deep_supervision = False
    with torch.no_grad():
        output = network(torch.randn(1, 1, 32, 32, 32))
    assert isinstance(output, torch.Tensor) and output.shape == (1, 3, 32, 32, 32)
    assert list(network.state_dict()) == names
    assert not any(name.startswith("decoder") for name in names)


def test_forward_is_segmentation_heads_on_decode_features():
    network = tiny_stunet().eval()
    x = torch.randn(1, 1, 32, 32, 32)
    with torch.no_grad():
        skips = network.encode(x)
        features = network.decode_features(skips)
        outputs = network(x)
    assert [s.shape[1] for s in skips] == TINY_DIMS
    assert [f.shape[1] for f in features] == network.feature_channels == TINY_DIMS[:-1]
    assert [f.shape[2:] for f in features] == [o.shape[2:] for o in outputs]
    # seg_outputs are stored lowest resolution first, so the last one belongs to features[0]
    for head, feature, output in zip(reversed(network.seg_outputs), features, outputs):
        torch.testing.assert_close(head(feature), output)


def test_anisotropic_kernels_and_odd_input_sizes():
    network = STUNet(2, 4, depth=[1, 2, 1, 1, 1, 1], dims=TINY_DIMS,
                     pool_op_kernel_sizes=[[1, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2]],
                     conv_kernel_sizes=[[1, 3, 3]] + [[3, 3, 3]] * 5).eval()
    with torch.no_grad():
        outputs = network(torch.randn(1, 2, 9, 37, 30))
    assert outputs[0].shape == (1, 4, 9, 37, 30)
    assert outputs[1].shape == (1, 4, 9, 19, 15)  # strided 3x3x3 conv with padding 1 rounds up


def test_topology_errors_name_the_fix():
    with pytest.raises(ValueError, match="len\\(depth\\) == len\\(dims\\)"):
        STUNet(1, 2, depth=[1] * 5, dims=TINY_DIMS)
    with pytest.raises(ValueError, match="strides\\[0\\] must be all ones"):
        STUNet(1, 2, dims=TINY_DIMS, strides=[[2, 2, 2]] * 6)
    with pytest.raises(ValueError, match="disagree"):
        STUNet(1, 2, dims=TINY_DIMS, strides=[[1, 1, 1]] + [[2, 2, 2]] * 5, pool_op_kernel_sizes=TINY_POOLING)


def test_built_by_nnunet_from_plans_with_dotted_name():
    strides = [[1, 1, 1]] + TINY_POOLING
    # round-trip through JSON as the plans file does
    arch_kwargs = json.loads(json.dumps({**stunet_arch_kwargs("B", base_width=8), "strides": strides,
                                         "conv_kernel_sizes": [[3, 3, 3]] * 6}))
    network = get_network_from_plans("nnunetv2_openvocab.network.stunet.STUNet", arch_kwargs, [], 1, 3,
                                     deep_supervision=True)
    assert isinstance(network, STUNet) and network.decoder.deep_supervision
    assert network.pool_op_kernel_sizes == TINY_POOLING
    assert all(torch.count_nonzero(m.bias) == 0 for m in network.modules() if isinstance(m, nn.Conv3d))  # He init ran
    # nnU-Net's trainer derives the deep-supervision target scales from arch_kwargs['strides']
    scales = 1 / np.cumprod(np.vstack(strides), axis=0)[:-1]
    with torch.no_grad():
        outputs = network.eval()(torch.randn(1, 1, 32, 32, 32))
    assert [list(o.shape[2:]) for o in outputs] == [[int(32 * s) for s in scale] for scale in scales]
    assert not get_network_from_plans("nnunetv2_openvocab.network.stunet.STUNet", arch_kwargs, [], 1, 3,
                                      deep_supervision=False).decoder.deep_supervision


def test_conv_feature_map_size_counts_every_conv_output():
    network = tiny_stunet().eval()
    counted = []

    def record(module, inputs, output):
        counted.append(output.numel())

    upsample_convs = {m.conv for m in network.modules() if isinstance(m, NearestUpsampleProjection)}
    for module in network.modules():
        # an upsampling layer's map is counted at the upsampled size, where it is materialised
        if isinstance(module, NearestUpsampleProjection) or (isinstance(module, nn.Conv3d)
                                                             and module not in upsample_convs):
            module.register_forward_hook(record)
    with torch.no_grad():
        network(torch.randn(1, 1, 32, 32, 32))
    assert network.compute_conv_feature_map_size([32, 32, 32]) == sum(counted)


def test_conv_feature_map_size_is_comparable_to_plain_unet():
    dims = [32, 64, 128, 256, 320, 320]
    with torch.device("meta"):
        stunet = STUNet(1, 4, dims=dims)
        plain = PlainConvUNet(1, 6, dims, nn.Conv3d, 3, [[1, 1, 1]] + [[2, 2, 2]] * 5, 2, 4, [2] * 5, True,
                              nn.InstanceNorm3d, {"eps": 1e-5, "affine": True}, nonlin=nn.LeakyReLU,
                              nonlin_kwargs={"inplace": True}, deep_supervision=True)
    sizes = [stunet.compute_conv_feature_map_size(patch) for patch in ([64] * 3, [96] * 3, [128] * 3)]
    assert 0 < sizes[0] < sizes[1] < sizes[2]
    # residual blocks add a projection conv per stage: more than the plain U-Net, same magnitude
    assert 1 < sizes[2] / plain.compute_conv_feature_map_size([128] * 3) < 2
    stunet.decoder.deep_supervision = False
    assert stunet.compute_conv_feature_map_size([128] * 3) < sizes[2]
