"""The aligned checkpoint: written by ``nnUNetv2_openvocab_pretrain export``, read by the planner, the text
encoder and the trainers. This module is its only reader.

A folder with:
  aligned.json                  {"format": "nnunetv2_openvocab.aligned/1",
                                 "text_encoder": "text_encoder",
                                 "projection": {"in_dim", "hidden_dim", "out_dim",
                                                "weights": "text_projection.safetensors"},
                                 "image_encoder": {"weights": "image_encoder.safetensors", "fingerprint": sha256,
                                                   "arch_kwargs": {...STUNet kwargs...},
                                                   "network_class_name": str, "input_channels": int},
                                 "pretraining": {where the weights came from: run, step, loss, ...}}
  text_encoder/                 SentenceTransformer.save() folder
  text_projection.safetensors   TextProjection state dict (sentence space -> image-embedding space)
  image_encoder.safetensors     STUNet encoder (conv_blocks_context.*) state dict; safetensors metadata
                                {"fingerprint": module_fingerprint over a module whose state dict is exactly this}
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

ALIGNED_FORMAT = "nnunetv2_openvocab.aligned/1"
ALIGNED_MANIFEST = "aligned.json"
TEXT_ENCODER_FOLDER = "text_encoder"
PROJECTION_WEIGHTS = "text_projection.safetensors"
IMAGE_ENCODER_WEIGHTS = "image_encoder.safetensors"
PROJECTION_FIELDS = ("in_dim", "hidden_dim", "out_dim", "weights")
REEXPORT_HINT = "Re-export it with nnUNetv2_openvocab_pretrain export."


class AlignedCheckpointError(ValueError):
    """aligned.json is unreadable, of another format, or names files that are missing."""


def is_aligned_checkpoint(path: str | Path | None) -> bool:
    return bool(path) and (Path(path) / ALIGNED_MANIFEST).is_file()


@dataclass(frozen=True)
class AlignedCheckpoint:
    folder: Path
    manifest: dict

    @property
    def text_encoder_folder(self) -> Path:
        return self.folder / self.manifest["text_encoder"]

    @property
    def projection_dims(self) -> dict:
        """{"in_dim", "hidden_dim", "out_dim"} of the TextProjection."""
        return {k: int(self.manifest["projection"][k]) for k in ("in_dim", "hidden_dim", "out_dim")}

    @property
    def projection_weights(self) -> Path:
        return self.folder / self.manifest["projection"]["weights"]

    @property
    def image_encoder_weights(self) -> Path:
        return self.folder / self.manifest["image_encoder"]["weights"]

    @property
    def image_encoder_depth_and_dims(self) -> Optional[dict]:
        """STUNet ``depth``/``dims`` of the image encoder (they fix the fine-tuning network's), or None."""
        arch = self.manifest["image_encoder"].get("arch_kwargs", {})
        return {k: arch[k] for k in ("depth", "dims") if k in arch} or None


def _require(condition: bool, path: Path, field: str, expected: str) -> None:
    if not condition:
        raise AlignedCheckpointError(f"{path}: field {field!r} must be {expected}. {REEXPORT_HINT}")


def read_aligned_checkpoint(folder: str | Path) -> AlignedCheckpoint:
    """Validated aligned checkpoint at ``folder``: format, required fields, and the files they name."""
    folder = Path(folder)
    path = folder / ALIGNED_MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise AlignedCheckpointError(f"{path} cannot be read as JSON ({error}). {REEXPORT_HINT}") from error
    _require(isinstance(manifest, dict) and manifest.get("format") == ALIGNED_FORMAT, path, "format",
             repr(ALIGNED_FORMAT))
    _require(isinstance(manifest.get("text_encoder"), str), path, "text_encoder", "a folder name")
    projection, image_encoder = manifest.get("projection"), manifest.get("image_encoder")
    _require(isinstance(projection, dict) and all(k in projection for k in PROJECTION_FIELDS), path, "projection",
             f"an object with {', '.join(PROJECTION_FIELDS)}")
    _require(isinstance(image_encoder, dict) and isinstance(image_encoder.get("weights"), str), path,
             "image_encoder", "an object with 'weights'")
    checkpoint = AlignedCheckpoint(folder, manifest)
    for named in (checkpoint.text_encoder_folder, checkpoint.projection_weights, checkpoint.image_encoder_weights):
        if not named.exists():
            raise AlignedCheckpointError(f"{path} names {named.name}, which is missing from {folder}. {REEXPORT_HINT}")
    return checkpoint
