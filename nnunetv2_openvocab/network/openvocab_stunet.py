"""STUNet whose fixed segmentation convs are replaced by text queries (OpenVocabCT fine-tuning network).

Called with prompt embeddings it returns one logit map per prompt (B, P, *S), per deep-supervision scale.
Called without (as nnU-Net's own validation and ``nnUNetv2_predict`` do), it uses the training labels'
canonical prompts and behaves like an nnU-Net network: a zero background logit is prepended for label
datasets, so softmax/argmax pick a label where its sigmoid exceeds 0.5 and it beats the others; region
datasets get the per-region logits that nnU-Net passes through a sigmoid.

The head lives at ``text_query.seg_layers``: nnU-Net's ``-pretrained_weights`` loader transfers every key
except those containing ``.seg_layers.``, so a segmentation-pretrained STUNet checkpoint initialises the
whole backbone through the stock flag while the text head keeps its own initialisation.
"""
from __future__ import annotations

import inspect
from contextlib import nullcontext
from typing import Mapping, Optional, Sequence

import torch
from torch import nn

from nnunetv2_openvocab.model_spec import OpenVocabSpec, OpenVocabSpecError
from nnunetv2_openvocab.network.stunet import STUNet
from nnunetv2_openvocab.network.text_query_head import TextQueryHead, build_connector


SPEC_STATE_KEY = "text_query.seg_layers._extra_state"  # the head's extra state: the checkpoint's OpenVocabSpec


class OpenVocabSTUNet(STUNet):
    def __init__(self, input_channels: int, num_classes: int, embedding_dim: int, num_default_prompts: int,
                 connector: str = "mlp", connector_kwargs: Optional[dict] = None,
                 depth: Sequence[int] = (1, 1, 1, 1, 1, 1), dims: Sequence[int] = (32, 64, 128, 256, 512, 512),
                 pool_op_kernel_sizes=None, conv_kernel_sizes=None, deep_supervision: bool = True, strides=None):
        super().__init__(input_channels, 1, depth, dims, pool_op_kernel_sizes, conv_kernel_sizes,
                         deep_supervision, strides)
        del self.seg_outputs  # text queries replace the fixed per-class 1x1x1 convs
        if num_classes not in (num_default_prompts, num_default_prompts + 1):
            raise ValueError(f"num_classes {num_classes} must be the number of labels ({num_default_prompts}, region "
                             f"datasets) or labels + background ({num_default_prompts + 1}).")
        self.prepend_background = num_classes == num_default_prompts + 1
        head = TextQueryHead(build_connector(connector, embedding_dim, self.feature_channels, self.dims[-1],
                                             **(connector_kwargs or {})), num_default_prompts, embedding_dim)
        self.text_query = nn.ModuleDict({"seg_layers": head})
        self.encoder_frozen = False

    def freeze_encoder(self) -> None:
        """Lock the encoder (OpenVocabCT's best setting): no gradients, and no activations kept for backward."""
        self.conv_blocks_context.requires_grad_(False)
        self.encoder_frozen = True

    @property
    def head(self) -> TextQueryHead:
        return self.text_query["seg_layers"]

    def forward(self, x: torch.Tensor, prompt_embeddings: Optional[torch.Tensor] = None):
        with torch.no_grad() if self.encoder_frozen else nullcontext():
            skips = self.encode(x)
        features = self.decode_features(skips)
        if not self.decoder.deep_supervision:
            features = features[:1]
        logits = self.head(features, skips[-1], prompt_embeddings)
        if prompt_embeddings is None and self.prepend_background:
            logits = [torch.cat((torch.zeros_like(l[:, :1]), l), dim=1) for l in logits]
        return logits if self.decoder.deep_supervision else logits[0]


def build_openvocab_stunet(spec: OpenVocabSpec, arch_kwargs: Mapping, num_input_channels: int,
                           num_output_channels: int, deep_supervision: bool) -> OpenVocabSTUNet:
    """The network of ``spec`` on the plans' STUNet architecture (``arch_kwargs``), freshly initialised."""
    foreign = sorted(set(arch_kwargs) - set(inspect.signature(OpenVocabSTUNet).parameters))
    if foreign:
        raise OpenVocabSpecError(f"The configuration's architecture is not STUNet (arch_kwargs {foreign} are not "
                                 f"STUNet's). Train a 3D configuration of the plans that "
                                 f"nnUNetv2_openvocab_plan_and_preprocess wrote (nnUNetPlans_STUNet*).")
    network = OpenVocabSTUNet(num_input_channels, num_output_channels, spec.embedding_dim, len(spec.label_names),
                              spec.connector, dict(spec.connector_kwargs), deep_supervision=deep_supervision,
                              **arch_kwargs)
    network.apply(network.initialize)
    return network
