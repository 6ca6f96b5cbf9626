"""Peak device memory of the STU-Net stages around pretraining: one nnU-Net training step (segmentation
pretraining with the stock trainer, or OpenVocab fine-tuning), one cache-features volume and one
sliding-window tile of prediction.

Each function returns the block to pass to live_bytes.fake_peak. The blocks build the networks and run the
projects' own code: OpenVocabSTUNet with its loss (DeepSupervisionPromptLoss) or STUNet with nnU-Net's
DC_and_CE_loss, nnU-Net's SGD (momentum buffers) and gradient clipping; encode_locked; the predictor's
choose_readout and SlidingWindow.predict_tile with mirroring. Mixed precision: nnU-Net autocasts to
float16 on CUDA, estimated as bfloat16 on CPU (same bytes per element).
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper

from nnunetv2_openvocab.inference.prompt_readout import choose_readout
from nnunetv2_openvocab.inference.sliding_window import SlidingWindow
from nnunetv2_openvocab.network.openvocab_stunet import OpenVocabSTUNet
from nnunetv2_openvocab.network.stunet import STUNet
from nnunetv2_openvocab.pretraining.image_encoder import PooledImageEncoder, encode_locked, lock
from nnunetv2_openvocab.training.loss import DeepSupervisionPromptLoss, PromptSegmentationLoss

CPU = torch.device("cpu")


@dataclass(frozen=True)
class SegmentationNetwork:
    """arch_kwargs of the plans; text_embedding_dim None = the stock STUNet with num_labels + 1 outputs."""

    arch_kwargs: dict
    num_labels: int
    text_embedding_dim: Optional[int] = 768
    connector: str = "mlp"
    frozen_encoder: bool = False
    input_channels: int = 1

    def build(self, deep_supervision: bool) -> STUNet:
        if self.text_embedding_dim is None:
            return STUNet(self.input_channels, self.num_labels + 1, deep_supervision=deep_supervision,
                          **self.arch_kwargs)
        network = OpenVocabSTUNet(self.input_channels, self.num_labels + 1, self.text_embedding_dim, self.num_labels,
                                  self.connector, deep_supervision=deep_supervision, **self.arch_kwargs)
        if self.frozen_encoder:
            network.freeze_encoder()
        return network


def _mixed_precision(enabled: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if enabled else nullcontext()


def training_step(network: SegmentationNetwork, patch_size: Sequence[int], batch_size: int,
                  mixed_precision: bool = True) -> Callable[[], None]:
    """One nnU-Net training step (nnUNetTrainer / nnUNetTrainerOpenVocab.train_step) with deep supervision."""

    def block() -> None:
        model = network.build(deep_supervision=True)
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], 1e-2, weight_decay=3e-5,
                                    momentum=0.99, nesterov=True)
        data = torch.randn(batch_size, network.input_channels, *patch_size)
        with _mixed_precision(mixed_precision):
            if network.text_embedding_dim is None:
                logits = model(data)
                targets = [torch.zeros(batch_size, 1, *l.shape[2:]) for l in logits]
                loss = DeepSupervisionWrapper(DC_and_CE_loss({"batch_dice": False, "smooth": 1e-5, "do_bg": False},
                                                             {}), [1 / 2 ** i for i in range(len(logits))])
                value = loss(logits, targets)
            else:
                embeddings = torch.randn(batch_size, network.num_labels, network.text_embedding_dim)
                logits = model(data, embeddings)
                targets = [torch.zeros(l.shape, dtype=torch.bool) for l in logits]
                annotated = torch.ones(batch_size, network.num_labels, dtype=torch.bool)
                value = DeepSupervisionPromptLoss(PromptSegmentationLoss(), len(logits))(logits, targets, annotated)
        value.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 12)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return block


def cache_features_volume(arch_kwargs: dict, patch_size: Sequence[int], input_channels: int = 1
                          ) -> Callable[[], None]:
    """cache-features: the locked, pooled encoder on one volume (encode_locked goes volume by volume)."""

    def block() -> None:
        network = STUNet(input_channels, 1, deep_supervision=False, **arch_kwargs)
        del network.upsample_layers, network.conv_blocks_localization, network.seg_outputs
        encoder = lock(PooledImageEncoder(network))
        encode_locked(encoder, torch.randn(1, input_channels, *patch_size), CPU)

    return block


def prediction_tile(network: SegmentationNetwork, patch_size: Sequence[int], num_prompts: int,
                    mirror_axes: Optional[Sequence[int]] = (0, 1, 2), mixed_precision: bool = True
                    ) -> Callable[[], None]:
    """One sliding-window tile of nnUNetv2_openvocab_predict on the device: network, prompt queries, all mirrored
    passes. The blended sums stay in host memory (blend_buffer_bytes)."""

    def block() -> None:
        model = network.build(deep_supervision=False).eval()
        readout = choose_readout(model, torch.randn(num_prompts, network.text_embedding_dim))
        window = SlidingWindow(patch_size, mirror_axes=mirror_axes, show_progress=False)
        with torch.inference_mode(), _mixed_precision(mixed_precision):
            window.predict_tile(readout.tile_function, torch.randn(1, network.input_channels, *patch_size))

    return block


def blend_buffer_bytes(network: SegmentationNetwork, image_shape: Sequence[int], num_prompts: int) -> int:
    """Host bytes of the blended sums and weights for an image of `image_shape` voxels (after resampling)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        readout = choose_readout(network.build(deep_supervision=False), torch.empty(num_prompts,
                                                                                     network.text_embedding_dim))
    voxels = int(torch.tensor(image_shape).prod())
    return voxels * (readout.num_channels * readout.accumulation_dtype.itemsize + 4)
