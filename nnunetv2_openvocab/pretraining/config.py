"""Configs of the pretraining sidecar: dataclasses that round-trip through JSON.

Only settings that change the result live here (hyperparameters, preprocessing). Where things run
(paths, device, worker counts, when to stop) are arguments of the functions that run them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Type, TypeVar

from nnunetv2_openvocab.json_input import read_json_file
from nnunetv2_openvocab.text.encoder import DEFAULT_TEXT_ENCODER

ConfigT = TypeVar("ConfigT")


@dataclass(frozen=True)
class PreprocessingConfig:
    """How a CT volume becomes encoder input (the nnU-Net plans add normalisation and resampling order).

    target_spacing: mm per voxel after resampling, in nnU-Net's (transposed) axis order.
    patch_size: voxels after centre pad/crop (pad value 0 = the normalised mean, as nnU-Net's predictor pads).
    num_augmented_views: extra views per volume besides the unaugmented view 0; each is a shifted
        crop (up to ``max_shift_voxels`` per axis), optionally mirrored, with intensity x U(1 +- intensity_scale)
        + U(+- intensity_shift). Views are seeded by (augmentation_seed, volume, view), so they are reproducible.
    """

    target_spacing: tuple[float, ...] = (1.5, 1.5, 1.5)
    patch_size: tuple[int, ...] = (220, 220, 220)
    num_augmented_views: int = 0
    max_shift_voxels: int = 10
    mirror: bool = True
    intensity_scale: float = 0.1
    intensity_shift: float = 0.1
    augmentation_seed: int = 0

    def __post_init__(self):
        # JSON gives lists; keep tuples so configs compare and hash by value
        object.__setattr__(self, "target_spacing", tuple(float(s) for s in self.target_spacing))
        object.__setattr__(self, "patch_size", tuple(int(s) for s in self.patch_size))
        if len(self.target_spacing) != 3 or len(self.patch_size) != 3:
            raise ValueError(f"target_spacing and patch_size need 3 entries each (3D CT); got "
                             f"{list(self.target_spacing)} and {list(self.patch_size)}.")
        if self.num_augmented_views < 0:
            raise ValueError(f"num_augmented_views must be >= 0, got {self.num_augmented_views}.")

    @property
    def num_views(self) -> int:
        return 1 + self.num_augmented_views


LOSS_CHOICES = ("mgcl", "clip")
REPORT_SECTIONS = ("full", "findings")


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one contrastive run (saved as RUN/config.json; a resume must match it).

    loss: "mgcl" = L_CLIP(image, report) + L_MGCL(image, num_captions sampled captions) (paper eq. 5);
        "clip" = L_CLIP only (the ablation row).
    text_trainable_layers: -1 trains the whole sentence encoder, N > 0 its last N transformer layers,
        0 only the projection (the encoder is then frozen and each distinct text is encoded once).
    text_dropout: None keeps the encoder's dropout probabilities, a number overrides all of them.
    max_text_tokens: None keeps the encoder's max_seq_length (reports longer than it are truncated).
    projection_hidden_dim: hidden width of the MLP projection; None uses the image embedding size.
    batch_size: samples per process; the contrastive batch is batch_size x world size.
    val_fraction: share of the manifest held out for retrieval validation (chosen by volume-path hash).
    region_alignment: adds the fine-grained loss over the manifest's "regions" (Table VIII row 4); needs the
        image encoder in training (--unlock-image-encoder, volumes encoded on the fly).
    report_section: "full" pairs the image with the manifest's report as written; "findings" with its
        "Findings:" section only (the paper's choice; reports without that header are used whole).
    """

    text_encoder: str = DEFAULT_TEXT_ENCODER
    text_trainable_layers: int = -1
    text_dropout: Optional[float] = None
    max_text_tokens: Optional[int] = None
    projection_hidden_dim: Optional[int] = None
    loss: str = "mgcl"
    num_captions: int = 3
    init_logit_scale: float = 1 / 0.07
    max_logit_scale: float = 100.0
    batch_size: int = 32
    epochs: int = 20
    text_encoder_lr: float = 1e-5
    head_lr: float = 1e-3
    image_encoder_lr: float = 1e-5
    weight_decay: float = 0.01
    warmup_steps: int = 100
    unlock_image_encoder: bool = False
    val_fraction: float = 0.05
    checkpoint_every_steps: int = 500
    seed: int = 0
    report_section: str = "full"
    region_alignment: bool = False

    def __post_init__(self):
        if self.loss not in LOSS_CHOICES:
            raise ValueError(f"loss must be one of {LOSS_CHOICES}, got {self.loss!r}.")
        if self.loss == "mgcl" and self.num_captions < 1:
            raise ValueError(f"loss 'mgcl' samples num_captions >= 1 captions per image; got {self.num_captions}.")
        if self.report_section not in REPORT_SECTIONS:
            raise ValueError(f"report_section must be one of {REPORT_SECTIONS}, got {self.report_section!r}.")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}.")

    @property
    def captions_per_sample(self) -> int:
        """Captions the data loader samples per image (none for the CLIP-only loss)."""
        return self.num_captions if self.loss == "mgcl" else 0


def config_from_dict(cls: Type[ConfigT], values: dict[str, Any], source: str = "config") -> ConfigT:
    """Build `cls` from a dict, refusing unknown fields so that typos do not pass silently."""
    known = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{source}: unknown field(s) {unknown} for {cls.__name__}; known fields: {sorted(known)}.")
    return cls(**values)


def load_config(cls: Type[ConfigT], path: str | Path) -> ConfigT:
    values = read_json_file(path, "Fix the file or pass the settings as flags.")
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a JSON object of {cls.__name__} fields, found {type(values).__name__}.")
    return config_from_dict(cls, values, source=str(path))


def config_to_dict(config) -> dict[str, Any]:
    return dataclasses.asdict(config)


def differing_fields(saved, requested) -> list[str]:
    """'field: saved -> requested' for every field where two configs of one class differ."""
    old, new = config_to_dict(saved), config_to_dict(requested)
    return [f"{name}: {old[name]!r} -> {new[name]!r}" for name in old if old[name] != new[name]]
