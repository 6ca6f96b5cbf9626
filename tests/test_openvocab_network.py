"""OpenVocabSTUNet: one backbone pass for any number of prompts, nnU-Net layout without prompts, frozen encoder."""
from __future__ import annotations

import pytest
import torch
from nnunetv2.run.load_pretrained_weights import load_pretrained_weights

from nnunetv2_openvocab.network.openvocab_stunet import OpenVocabSTUNet
from nnunetv2_openvocab.network.stunet import STUNet, stunet_arch_kwargs
from nnunetv2_openvocab.training.pretrained_backbone import load_pretrained_backbone

ARCH = {**stunet_arch_kwargs("B", 4), "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2], [1, 1, 1], [1, 1, 1]]}
E = 16


def network(num_labels=3, with_background=True, **kwargs) -> OpenVocabSTUNet:
    torch.manual_seed(0)
    net = OpenVocabSTUNet(1, num_labels + int(with_background), E, num_labels, **kwargs, **ARCH)
    net.apply(net.initialize)
    return net


def test_backbone_runs_once_for_any_number_of_prompts():
    net = network()
    calls = []
    net.conv_blocks_context[0].register_forward_hook(lambda *_: calls.append(1))
    x = torch.randn(2, 1, 16, 16, 16)
    outputs = net(x, torch.randn(2, 117, E))
    assert len(calls) == 1
    assert [tuple(o.shape[:2]) for o in outputs] == [(2, 117)] * 5  # one per decoder stage
    assert outputs[0].shape[2:] == x.shape[2:]


def test_same_prompt_gives_same_logits_whatever_else_is_asked():
    net = network().eval()
    x, prompts = torch.randn(1, 1, 16, 16, 16), torch.randn(5, E)
    net.decoder.deep_supervision = False
    alone = net(x, prompts[:1])
    together = net(x, prompts)
    torch.testing.assert_close(alone[:, 0], together[:, 0], atol=1e-5, rtol=1e-5)


def test_default_mode_matches_nnunet_layouts():
    x = torch.randn(1, 1, 16, 16, 16)
    labels = network(3, with_background=True)
    labels.decoder.deep_supervision = False
    out = labels(x)
    assert out.shape[1] == 4 and torch.all(out[:, 0] == 0)  # background logit 0 <=> sigmoid 0.5 threshold
    regions = network(3, with_background=False)
    regions.decoder.deep_supervision = False
    assert regions(x).shape[1] == 3


def test_cross_attention_connector_conditions_on_the_image():
    net = network(connector="cross_attention").eval()
    net.decoder.deep_supervision = False
    prompts = torch.randn(2, E)
    out_a = net(torch.randn(1, 1, 16, 16, 16), prompts)
    assert out_a.shape == (1, 2, 16, 16, 16) and torch.isfinite(out_a).all()


def test_frozen_encoder_gets_no_gradient_and_stays_unchanged():
    net = network()
    net.freeze_encoder()
    before = {k: v.clone() for k, v in net.conv_blocks_context.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    loss = sum(o.square().mean() for o in net(torch.randn(2, 1, 16, 16, 16), torch.randn(2, 3, E)))
    loss.backward()
    optimizer.step()
    assert all(p.grad is None for p in net.conv_blocks_context.parameters())
    assert all(torch.equal(before[k], v) for k, v in net.conv_blocks_context.state_dict().items())
    assert any(p.grad is not None for p in net.conv_blocks_localization.parameters())


@pytest.fixture
def segmentation_checkpoint(tmp_path):
    """An nnU-Net v2 checkpoint of a plain STUNet trained for another label set (105 classes)."""
    torch.manual_seed(1)
    stunet = STUNet(1, 105, **ARCH)
    path = tmp_path / "checkpoint_final.pth"
    torch.save({"network_weights": stunet.state_dict()}, path)
    return stunet, path


def test_stock_pretrained_weights_flag_loads_the_backbone(segmentation_checkpoint):
    stunet, path = segmentation_checkpoint
    net = network()
    head_before = net.head.connector.trunk[0].weight.clone()
    load_pretrained_weights(net, str(path))  # what nnUNetv2_train -pretrained_weights calls
    torch.testing.assert_close(net.conv_blocks_context[2][0].conv1.weight, stunet.conv_blocks_context[2][0].conv1.weight)
    torch.testing.assert_close(net.conv_blocks_localization[0][0].conv1.weight,
                               stunet.conv_blocks_localization[0][0].conv1.weight)
    assert torch.equal(net.head.connector.trunk[0].weight, head_before)


def test_plans_pretrained_checkpoint_loads_encoder_and_decoder(segmentation_checkpoint):
    stunet, path = segmentation_checkpoint
    net = network()
    report = load_pretrained_backbone(net, path)
    assert not report.mismatched and any(n.startswith("seg_outputs") for n in report.skipped)
    torch.testing.assert_close(net.upsample_layers[1].conv.weight, stunet.upsample_layers[1].conv.weight)
