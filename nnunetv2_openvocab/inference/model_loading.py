"""Restore a trained OpenVocab model from an nnU-Net results folder, without running pickled code.

A model folder is what ``nnUNetv2_train`` writes: ``plans.json``, ``dataset.json`` and ``fold_X/<checkpoint>``.
Everything needed to rebuild the network comes from there: the architecture from the plans, the text
encoder, training prompts and connector from the checkpoint's OpenVocabSpec (model_spec.py). The trainer
class is never needed, so a model loads whatever its trainer was called.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager

from nnunetv2_openvocab.json_input import read_json_file
from nnunetv2_openvocab.model_spec import OpenVocabSpec, OpenVocabSpecError
from nnunetv2_openvocab.network.openvocab_stunet import SPEC_STATE_KEY, OpenVocabSTUNet, build_openvocab_stunet
from nnunetv2_openvocab.safe_loading import torch_load_weights_only
from nnunetv2_openvocab.user_errors import UserError

logger = logging.getLogger(__name__)

DEFAULT_CHECKPOINT = "checkpoint_final.pth"
Fold = Union[int, str]


class ModelFolderError(UserError, RuntimeError):
    """The model folder, a fold or a checkpoint is missing or is not an OpenVocab model."""


@dataclass
class TrainedModel:
    """A rebuilt network (deep supervision off) plus the state dict of every fold to ensemble."""

    folder: Path
    network: OpenVocabSTUNet
    fold_state_dicts: List[dict]
    folds: Tuple[Fold, ...]
    plans_manager: PlansManager
    configuration_manager: ConfigurationManager
    dataset_json: dict
    trainer_name: str
    mirror_axes: Optional[Tuple[int, ...]]

    spec: OpenVocabSpec

    @property
    def canonical_prompts(self) -> List[str]:
        return self.spec.canonical_prompts

    @property
    def num_input_channels(self) -> int:
        return determine_num_input_channels(self.plans_manager, self.configuration_manager, self.dataset_json)


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise ModelFolderError(f"{path} is missing: {path.parent} is not an nnU-Net model folder. Pass the folder "
                               f"that nnUNetv2_train wrote (it holds plans.json, dataset.json and fold_X/).")
    content = read_json_file(path, "Retrain, or restore the file that nnUNetv2_train wrote.")
    if not isinstance(content, dict):
        raise ModelFolderError(f"{path} must hold a JSON object, found {type(content).__name__}. Restore the file "
                               f"that nnUNetv2_train wrote.")
    return content


def available_folds(model_folder: Path, checkpoint_name: str) -> Tuple[Fold, ...]:
    """Numbered folds with the checkpoint; ``all`` only when no numbered fold has it (nnU-Net ignores it)."""
    numbered = sorted(int(p.parent.name[5:]) for p in model_folder.glob(f"fold_*/{checkpoint_name}")
                      if p.parent.name[5:].isdigit())
    if numbered:
        return tuple(numbered)
    if (model_folder / "fold_all" / checkpoint_name).is_file():
        return ("all",)
    raise ModelFolderError(f"No fold of {model_folder} has {checkpoint_name}. Train a fold first, or pick another "
                           f"checkpoint with -chk (e.g. checkpoint_best.pth).")


def load_checkpoint(path: Path) -> dict:
    """An nnU-Net checkpoint, read with weights_only=True (numpy scalars of its loss log allow-listed)."""
    if not path.is_file():
        present = sorted(p.name for p in path.parent.glob("*.pth")) if path.parent.is_dir() else []
        raise ModelFolderError(f"Checkpoint {path} does not exist (present: {present or 'none'}). Pass -f with a "
                               f"trained fold and -chk with one of the present checkpoints.")
    return torch_load_weights_only(path)


def load_trained_model(model_folder: Union[str, Path], use_folds: Optional[Sequence[Fold]] = None,
                       checkpoint_name: str = DEFAULT_CHECKPOINT) -> TrainedModel:
    """Rebuild the network of ``model_folder`` and read the weights of ``use_folds`` (default: all trained)."""
    folder = Path(model_folder)
    if not folder.is_dir():
        raise ModelFolderError(f"Model folder {folder} does not exist. Pass -m with the folder nnUNetv2_train wrote "
                               f"(nnUNet_results/DatasetXXX/TRAINER__PLANS__CONFIGURATION), or -d/-tr/-p/-c.")
    plans_manager = PlansManager(_read_json(folder / "plans.json"))
    dataset_json = _read_json(folder / "dataset.json")
    folds = tuple(use_folds) if use_folds else available_folds(folder, checkpoint_name)
    folds = tuple(f if f == "all" else int(f) for f in folds)
    checkpoints = [load_checkpoint(folder / f"fold_{fold}" / checkpoint_name) for fold in folds]
    first = checkpoints[0]
    source = folder / f"fold_{folds[0]}" / checkpoint_name
    try:
        spec = OpenVocabSpec.from_checkpoint(first["network_weights"].get(SPEC_STATE_KEY), str(source))
        spec.check_labels(dataset_json, str(folder / "dataset.json"), str(source))
    except OpenVocabSpecError as error:
        raise ModelFolderError(str(error)) from error
    configuration_manager = plans_manager.get_configuration(first["init_args"]["configuration"])
    num_outputs = plans_manager.get_label_manager(dataset_json).num_segmentation_heads
    network = build_openvocab_stunet(spec, configuration_manager.network_arch_init_kwargs,
                                     determine_num_input_channels(plans_manager, configuration_manager, dataset_json),
                                     num_outputs, deep_supervision=False)
    state_dicts = [c["network_weights"] for c in checkpoints]
    network.load_state_dict(state_dicts[0])
    network.eval()
    mirror_axes = first.get("inference_allowed_mirroring_axes")
    trainer_name = first["trainer_name"]
    logger.info("Loaded %s folds %s (%s, %s connector) from %s", trainer_name, folds, checkpoint_name, spec.connector,
                folder)
    return TrainedModel(folder, network, state_dicts, folds, plans_manager, configuration_manager, dataset_json,
                        trainer_name, tuple(mirror_axes) if mirror_axes is not None else None, spec)
