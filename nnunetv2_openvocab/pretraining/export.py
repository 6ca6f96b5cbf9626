"""The ``export`` stage: a training run -> the aligned checkpoint folder the planner and trainer consume.

The folder layout is documented in nnunetv2_openvocab/aligned_checkpoint.py.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from nnunetv2_openvocab.aligned_checkpoint import (ALIGNED_FORMAT, ALIGNED_MANIFEST, IMAGE_ENCODER_WEIGHTS,
                                                   PROJECTION_WEIGHTS, TEXT_ENCODER_FOLDER, is_aligned_checkpoint)
from nnunetv2_openvocab.atomic_files import write_json_atomic
from nnunetv2_openvocab.pretraining.checkpointing import CHECKPOINT_NAME, load_checkpoint
from nnunetv2_openvocab.pretraining.config import TrainConfig, load_config
from nnunetv2_openvocab.pretraining.feature_cache import ENCODER_WEIGHTS, save_tensors_atomic
from nnunetv2_openvocab.pretraining.image_encoder import ImageEncoderInfo, build_image_encoder
from nnunetv2_openvocab.pretraining.text_tower import build_text_tower
from nnunetv2_openvocab.safe_loading import read_safetensors
from nnunetv2_openvocab.pretraining.train import CONFIG_NAME, RUN_INFO
from nnunetv2_openvocab.text.encoder import module_fingerprint


def _submodule_state(state: dict, prefix: str) -> dict:
    return {name[len(prefix):]: tensor for name, tensor in state.items() if name.startswith(prefix)}


def _replace_folder(source: Path, destination: Path) -> None:
    """Move the finished export into place; an earlier export at `destination` is replaced, anything else kept."""
    if destination.exists():
        if not is_aligned_checkpoint(destination):
            raise FileExistsError(f"{destination} exists and is no aligned checkpoint; choose another --out.")
        retired = Path(tempfile.mkdtemp(prefix=f".{destination.name}.old.", dir=destination.parent))
        os.replace(destination, retired / destination.name)
        os.replace(source, destination)
        shutil.rmtree(retired)
    else:
        os.replace(source, destination)


def export_aligned_checkpoint(run: str | Path, out: str | Path) -> Path:
    """Write the aligned checkpoint of the latest checkpoint of `run` to `out`; returns `out`."""
    run, out = Path(run), Path(out)
    if not (run / RUN_INFO).is_file():
        raise FileNotFoundError(f"{run} is no pretraining run ({RUN_INFO} is missing); pass the --out folder of "
                                f"nnUNetv2_openvocab_pretrain train as --run.")
    run_info = json.loads((run / RUN_INFO).read_text(encoding="utf-8"))
    config = load_config(TrainConfig, run / CONFIG_NAME)
    checkpoint = load_checkpoint(run / CHECKPOINT_NAME)
    info = ImageEncoderInfo(**run_info["image_encoder"])

    text_tower = build_text_tower(config, info.embedding_dim, "cpu")
    text_tower.load_state_dict(_submodule_state(checkpoint["model"], "text_tower."))
    if config.unlock_image_encoder:
        encoder_state, source = _submodule_state(checkpoint["model"], "image_encoder."), str(run / CHECKPOINT_NAME)
    else:
        encoder_state, source = read_safetensors(run / ENCODER_WEIGHTS), str(run / ENCODER_WEIGHTS)
    encoder = build_image_encoder(info, encoder_state, source)
    fingerprint = module_fingerprint(encoder)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    os.chmod(staging, 0o755)  # mkdtemp makes it private; the export is meant to be shared
    text_tower.sentence_model.save(str(staging / TEXT_ENCODER_FOLDER))
    save_tensors_atomic(staging / PROJECTION_WEIGHTS, text_tower.projection.state_dict())
    save_tensors_atomic(staging / IMAGE_ENCODER_WEIGHTS, encoder.state_dict(), metadata={"fingerprint": fingerprint})
    write_json_atomic(staging / ALIGNED_MANIFEST, {
        "format": ALIGNED_FORMAT,
        "text_encoder": TEXT_ENCODER_FOLDER,
        "projection": {**text_tower.projection.config(), "weights": PROJECTION_WEIGHTS},
        "image_encoder": {"weights": IMAGE_ENCODER_WEIGHTS, "fingerprint": fingerprint, "arch_kwargs": info.arch_kwargs,
                          "network_class_name": info.network_class_name, "input_channels": info.input_channels},
        "pretraining": {"run": str(run.resolve()), "step": checkpoint["step"], "base_text_encoder": config.text_encoder,
                        "loss": config.loss, "image_encoder_locked": not config.unlock_image_encoder,
                        "image_encoder_source": info.checkpoint},
    })
    _replace_folder(staging, out)
    return out
