"""nnUNetTrainerOpenVocab: text-prompted fine-tuning (OpenVocabCT III-C) with masked back-propagation.

Each iteration every sample gets one channel per dataset label, prompted by a randomly chosen synonym of
that label (prompt_sampling); labels absent from the patch are negatives, labels not annotated in that
case get no loss (loss). The frozen text encoder is only needed for prompts missing from the embedding
cache; embeddings of all training prompts are looked up once at start. The network (OpenVocabSTUNet) runs
its backbone once per batch and contracts the decoder features with one query per prompt.

Without prompts the network answers with the canonical training prompts in nnU-Net's label layout, so
nnU-Net's validation (``--val``, ``--c``, all folds) and ``nnUNetv2_predict`` work unchanged. Checkpoints that
``--c``/``--val`` resume from are read weights-only (``load_checkpoint``), unlike the stock trainer's.
"""
from __future__ import annotations

from typing import Optional

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_openvocab.model_spec import OpenVocabSpec
from nnunetv2_openvocab.network.openvocab_stunet import OpenVocabSTUNet, build_openvocab_stunet
from nnunetv2_openvocab.prompts.dataset_prompts import DatasetPrompts
from nnunetv2_openvocab.safe_loading import torch_load_weights_only
from nnunetv2_openvocab.text.embedding_cache import PromptEmbeddingCache
from nnunetv2_openvocab.training.loss import DeepSupervisionPromptLoss, PromptSegmentationLoss
from nnunetv2_openvocab.training.pretrained_backbone import load_pretrained_backbone
from nnunetv2_openvocab.training.prompt_sampling import LabelTargets, PromptSampler
from nnunetv2_openvocab.constants import binarise, mixed_precision


class TrainingRefused(SystemExit):
    """Ends nnUNetv2_train with one line naming the problem and the fix, instead of training a wrong model."""


class nnUNetTrainerOpenVocab(nnUNetTrainer):
    connector: Optional[str] = None  # None: the plans' connector; a variant names one
    connector_kwargs: dict = {}

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.dataset_prompts = self.training_prompts(DatasetPrompts(dataset_json))
        spec = self.model_spec(self.plans_manager)
        spec.check_labels(dataset_json, "dataset.json", f"plans {self.plans_manager.plans_name!r}")
        self.spec = spec.with_prompts(self.dataset_prompts.prompts_by_label)
        self.prompt_sampler = PromptSampler(self.dataset_prompts)
        self.label_targets = LabelTargets(self.dataset_prompts)
        self.prompt_embeddings: torch.Tensor | None = None  # (num prompts, E), filled in initialize

    def training_prompts(self, dataset_prompts: DatasetPrompts) -> DatasetPrompts:
        """The prompts training samples from: every synonym of every label (a variant may narrow them)."""
        return dataset_prompts

    @classmethod
    def model_spec(cls, plans_manager) -> OpenVocabSpec:
        spec = OpenVocabSpec.from_plans(plans_manager.plans, plans_manager.plans_name)
        return spec if cls.connector is None else spec.with_connector(cls.connector, cls.connector_kwargs)

    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels: int,
                                   num_output_channels: int, enable_deep_supervision: bool = True) -> OpenVocabSTUNet:
        return build_openvocab_stunet(cls.model_spec(plans_manager), configuration_manager.network_arch_init_kwargs,
                                      num_input_channels, num_output_channels, enable_deep_supervision)

    def initialize(self):
        super().initialize()
        cache = PromptEmbeddingCache(self.spec.text_encoder, self.spec.text_encoder_fingerprint)
        self.prompt_embeddings = cache.embed(self.prompt_sampler.all_prompts)
        head = self._bare_network().head
        head.default_embeddings.copy_(self.prompt_embeddings[self.prompt_sampler.canonical_indices()])
        head.metadata = self.spec.to_checkpoint()
        if self.spec.pretrained_checkpoint:
            # the plans name pretrained weights: train from them, or not at all
            try:
                report = load_pretrained_backbone(self._bare_network(), self.spec.pretrained_checkpoint)
            except (OSError, ValueError, RuntimeError) as error:
                raise TrainingRefused(f"Plans {self.plans_manager.plans_name!r}, openvocab.pretrained_checkpoint "
                                      f"{self.spec.pretrained_checkpoint}: {error}") from None
            self.print_to_log_file(report.summary())

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        """nnU-Net's hook for ``--c``, ``--val`` and ``--val_best``: the file is read with weights_only=True."""
        if isinstance(filename_or_checkpoint, str):
            filename_or_checkpoint = torch_load_weights_only(filename_or_checkpoint, map_location=self.device)
        super().load_checkpoint(filename_or_checkpoint)

    def _bare_network(self) -> OpenVocabSTUNet:
        network = self.network.module if self.is_ddp else self.network
        return getattr(network, "_orig_mod", network)

    def _build_loss(self):
        scales = self._get_deep_supervision_scales() if self.enable_deep_supervision else None
        return DeepSupervisionPromptLoss(PromptSegmentationLoss(), len(scales) if scales else 1)

    @staticmethod
    def get_training_transforms(patch_size, rotation_for_DA, deep_supervision_scales, mirror_axes,
                                do_dummy_2d_data_aug, use_mask_for_norm=None, is_cascaded=False,
                                foreground_labels=None, regions=None, ignore_label=None):
        # integer label maps are kept (regions=None): prompt targets are built from them, overlaps included
        return nnUNetTrainer.get_training_transforms(patch_size, rotation_for_DA, deep_supervision_scales, mirror_axes,
                                                     do_dummy_2d_data_aug, use_mask_for_norm, is_cascaded,
                                                     foreground_labels, None, ignore_label)

    @staticmethod
    def get_validation_transforms(deep_supervision_scales, is_cascaded=False, foreground_labels=None, regions=None,
                                  ignore_label=None):
        return nnUNetTrainer.get_validation_transforms(deep_supervision_scales, is_cascaded, foreground_labels, None,
                                                       ignore_label)

    def _prompted_batch(self, batch: dict, sample_synonyms: bool):
        """-> data, prompt embeddings (B, L, E), per-scale binary targets (B, L, *S), annotated (B, L)."""
        data = batch["data"].to(self.device, non_blocking=True)
        segmentations = batch["target"] if isinstance(batch["target"], list) else [batch["target"]]
        indices, annotated = self.prompt_sampler.sample(batch["keys"])
        if not sample_synonyms:
            indices = self.prompt_sampler.canonical_indices().expand_as(indices)
        embeddings = self.prompt_embeddings[indices].to(self.device, non_blocking=True)
        targets = [self.label_targets(s.to(self.device, non_blocking=True)) for s in segmentations]
        return data, embeddings, targets, annotated.to(self.device)

    def _autocast(self):
        return mixed_precision(self.device)

    def train_step(self, batch: dict) -> dict:
        data, embeddings, targets, annotated = self._prompted_batch(batch, sample_synonyms=True)
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            logits = self.network(data, embeddings)
            loss = self.loss(logits if isinstance(logits, list) else [logits], targets, annotated)
        if self.grad_scaler is not None:
            self.grad_scaler.scale(loss).backward()
            self.grad_scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), 12)
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), 12)
            self.optimizer.step()
        return {"loss": loss.detach().cpu().numpy()}

    def validation_step(self, batch: dict) -> dict:
        data, embeddings, targets, annotated = self._prompted_batch(batch, sample_synonyms=False)
        with torch.no_grad(), self._autocast():
            logits = self.network(data, embeddings)
            logits = logits if isinstance(logits, list) else [logits]
            loss = self.loss(logits, targets, annotated)
        predicted, reference = binarise(logits[0]), targets[0]  # sigmoid > 0.5 per prompt, overlaps allowed
        spatial = tuple(range(2, predicted.ndim))
        weight = annotated.float()  # unannotated labels count neither as hits nor as errors
        tp = ((predicted & reference).sum(spatial) * weight).sum(0)
        fp = ((predicted & ~reference).sum(spatial) * weight).sum(0)
        fn = ((~predicted & reference).sum(spatial) * weight).sum(0)
        return {"loss": loss.detach().cpu().numpy(), "tp_hard": tp.cpu().numpy(), "fp_hard": fp.cpu().numpy(),
                "fn_hard": fn.cpu().numpy()}
