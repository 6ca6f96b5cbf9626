"""The image side: a STUNet encoder from a segmentation-trained nnU-Net model, globally average pooled.

The encoder comes from an nnU-Net v2 model: ``checkpoint_final.pth`` (or any checkpoint file) plus
the ``plans.json`` of its training, whose configuration names the network (it must be a STUNet)
and its ``arch_kwargs``. The image embedding is the bottleneck feature map averaged over space,
so its size is ``arch_kwargs['dims'][-1]``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

import torch
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from nnunetv2_openvocab.network.checkpoint_loading import load_encoder_weights, read_checkpoint_state_dict
from nnunetv2_openvocab.network.stunet import STUNet
from nnunetv2_openvocab.text.encoder import module_fingerprint

RANDOM_INITIALISATION = "random initialisation"
CHECKPOINT_NAMES = ("checkpoint_final.pth", "checkpoint_best.pth", "checkpoint_latest.pth")


class PooledImageEncoder(nn.Module):
    """STUNet encoder stages -> global average pool of the bottleneck; (B, C, X, Y, Z) -> (B, dims[-1]).

    Holds the STUNet's `conv_blocks_context` under the same name, so its state dict has exactly the
    `conv_blocks_context.*` keys of STUNet checkpoints. It does not call `STUNet.encode`, which
    keeps every skip alive: at 220^3 the first stage alone is gigabytes that pooling never needs.
    With `checkpoint_stages` each residual block of the stages keeps only its input when trained with
    autograd and recomputes its activations in the backward pass (torch.utils.checkpoint; same gradients,
    one more forward). Per block, not per stage: at one 220^3 sample STU-Net L's first stage alone holds
    ~18 GB of activations, and a stage is only as cheap to recompute as its largest block.
    """

    def __init__(self, network: STUNet, checkpoint_stages: bool = False):
        super().__init__()
        self.conv_blocks_context = network.conv_blocks_context
        self.embedding_dim = network.dims[-1]
        self.checkpoint_stages = checkpoint_stages

    def feature_map(self, volumes: torch.Tensor) -> torch.Tensor:
        """(B, C_in, X, Y, Z) -> the last stage's features (B, dims[-1], x, y, z)."""
        x = volumes
        recompute = self.checkpoint_stages and torch.is_grad_enabled()
        for stage in self.conv_blocks_context:
            for block in stage:  # a stage is a sequence of residual blocks
                x = checkpoint(block, x, use_reentrant=False) if recompute else block(x)
        return x

    def forward(self, volumes: torch.Tensor) -> torch.Tensor:
        x = self.feature_map(volumes)
        return x.mean(dim=tuple(range(2, x.ndim)))  # (B, C, *spatial) -> (B, C)


@dataclass(frozen=True)
class ImageEncoderInfo:
    """What rebuilds the encoder (class, kwargs, channels) and where it came from; JSON-serialisable."""

    network_class_name: str
    arch_kwargs: dict
    input_channels: int
    embedding_dim: int
    fingerprint: str
    checkpoint: str
    plans: str
    configuration: str


def resolve_nnunet_model(encoder_checkpoint: str | Path, plans: Optional[str | Path] = None) -> tuple[Path, Path]:
    """(checkpoint file, plans.json) from a checkpoint file or an nnU-Net model folder.

    A model folder (the one holding plans.json) must contain exactly one fold_*/checkpoint_final.pth
    (else name the file). plans.json is looked up next to the checkpoint, then one folder up, as
    nnU-Net stores it beside the fold folders.
    """
    path = Path(encoder_checkpoint)
    if path.is_dir():
        candidates = sorted(path.glob("fold_*/checkpoint_final.pth")) or sorted(
            path / name for name in CHECKPOINT_NAMES if (path / name).is_file())
        if len(candidates) != 1:
            raise FileNotFoundError(
                f"{path} holds {len(candidates)} candidate checkpoints ({[str(c) for c in candidates]}); pass the "
                f"checkpoint file itself as --encoder-checkpoint, e.g. {path}/fold_0/checkpoint_final.pth.")
        path = candidates[0]
    if not path.is_file():
        raise FileNotFoundError(f"Encoder checkpoint {path} does not exist; pass an nnU-Net checkpoint file or "
                                f"model folder as --encoder-checkpoint.")
    if plans is None:
        found = [folder / "plans.json" for folder in (path.parent, path.parent.parent)
                 if (folder / "plans.json").is_file()]
        if not found:
            raise FileNotFoundError(f"No plans.json next to {path} or in {path.parent.parent}; pass the plans of "
                                    f"the model that produced the checkpoint with --plans.")
        plans = found[0]
    return path, Path(plans)


def _build_stunet(network_class_name: str, arch_kwargs: dict, kw_requires_import, input_channels: int,
                  source: str, initialise: bool = False) -> STUNet:
    # the decoder is built too (nnU-Net builds whole networks) but only the encoder stages are kept
    network = get_network_from_plans(network_class_name, arch_kwargs, kw_requires_import, input_channels,
                                     output_channels=1, allow_init=initialise, deep_supervision=False)
    if not isinstance(network, STUNet):
        raise ValueError(f"{source}: the network is {network_class_name}, but pretraining needs a STUNet "
                         f"(nnunetv2_openvocab.network.stunet.STUNet) encoder. Use a STUNet-trained model.")
    return network


def _load_all_encoder_weights(network: STUNet, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    report = load_encoder_weights(network, state_dict, source=source)
    if report.missing or report.mismatched:
        raise ValueError(f"{source} does not cover the whole encoder of this STUNet (a locked, partly random "
                         f"encoder would be useless):\n{report.summary()}\nCheck that --plans and --configuration "
                         f"belong to the checkpoint.")


def _image_encoder_from_plans(plans_file: Path, configuration: str, checkpoint: Optional[Path], seed: int = 0
                              ) -> tuple[PooledImageEncoder, ImageEncoderInfo]:
    """The plans' STUNet encoder with the checkpoint's weights, or nnU-Net's initialisation seeded by `seed`."""
    configuration_manager = PlansManager(str(plans_file)).get_configuration(configuration)
    input_channels = len(configuration_manager.normalization_schemes)
    if checkpoint is None:
        torch.manual_seed(seed)  # the same random encoder on every process and after a resume
    network = _build_stunet(configuration_manager.network_arch_class_name,
                            configuration_manager.network_arch_init_kwargs,
                            configuration_manager.network_arch_init_kwargs_req_import, input_channels,
                            source=f"{plans_file} (configuration {configuration})", initialise=checkpoint is None)
    if checkpoint is not None:
        _load_all_encoder_weights(network, read_checkpoint_state_dict(checkpoint), str(checkpoint))
    encoder = PooledImageEncoder(network)
    info = ImageEncoderInfo(
        network_class_name=configuration_manager.network_arch_class_name,
        arch_kwargs=dict(configuration_manager.network_arch_init_kwargs),
        input_channels=input_channels, embedding_dim=encoder.embedding_dim,
        fingerprint=module_fingerprint(encoder),
        checkpoint=str(checkpoint) if checkpoint is not None else f"{RANDOM_INITIALISATION} (seed {seed})",
        plans=str(plans_file), configuration=configuration)
    return encoder, info


def load_image_encoder_from_nnunet(checkpoint: Path, plans_file: Path, configuration: str
                                   ) -> tuple[PooledImageEncoder, ImageEncoderInfo]:
    return _image_encoder_from_plans(plans_file, configuration, checkpoint)


def random_image_encoder(plans_file: Path, configuration: str, seed: int
                         ) -> tuple[PooledImageEncoder, ImageEncoderInfo]:
    """The plans' STUNet encoder, randomly initialised as nnU-Net initialises it (Table VIII rows 2 to 4)."""
    return _image_encoder_from_plans(plans_file, configuration, None, seed)


def build_image_encoder(info: ImageEncoderInfo, state_dict: Mapping[str, torch.Tensor], source: str
                        ) -> PooledImageEncoder:
    """Rebuild the pooled encoder recorded in `info` and load `state_dict` (conv_blocks_context.* keys)."""
    network = _build_stunet(info.network_class_name, info.arch_kwargs, [], info.input_channels, source)
    _load_all_encoder_weights(network, state_dict, source)
    return PooledImageEncoder(network)


def region_features(feature_map: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Average of one volume's features inside each region (paper Table VIII row 4).

    feature_map (C, x, y, z); masks (R, X, Y, Z) at input resolution -> ((R', C), kept (R,) bool) for the R'
    regions that keep voxels in this view. Each mask is down-sampled to the feature grid by area (the share
    of every feature cell it covers), and those shares weight the average, so small structures are not lost
    to a nearest-neighbour sampling.
    """
    weights = F.adaptive_avg_pool3d(masks[:, None].float(), feature_map.shape[1:])[:, 0]  # (R, x, y, z)
    totals = weights.flatten(1).sum(dim=1)
    kept = totals > 0
    # (R', x*y*z) @ (x*y*z, C) -> (R', C)
    pooled = weights[kept].flatten(1) @ feature_map.flatten(1).T
    return pooled / totals[kept, None], kept


@torch.no_grad()
def encode_locked(encoder: nn.Module, volumes: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(N, C, *patch) -> (N, D) float32 on `device`, one volume at a time to bound memory at full patch size."""
    return torch.cat([encoder(volume[None].to(device)).float() for volume in volumes])


def lock(encoder: nn.Module) -> nn.Module:
    """Eval mode and no gradients: the paper's best setting keeps the segmentation-trained encoder fixed."""
    encoder.eval()
    encoder.requires_grad_(False)
    return encoder
