"""The memory estimate of one ``nnUNetv2_train`` configuration (stock or OpenVocab trainer) from its preprocessed
plans, without allocating it (estimates.py)."""
from __future__ import annotations

import json
from pathlib import Path

from nnunetv2_openvocab.prompts.dataset_prompts import foreground_label_names

STOCK_TRAINER = "nnUNetTrainer"


def estimate_trainer_configuration(dataset: str, configuration: str, trainer: str, plans_identifier: str,
                                   mixed_precision: bool = True):
    """The MemoryEstimate (estimates.py) of `nnUNetv2_train dataset configuration FOLD -tr trainer -p plans_identifier`."""
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    import nnunetv2_openvocab.training as registry
    from nnunetv2_openvocab.memory_estimate.estimates import estimate_training
    from nnunetv2_openvocab.model_spec import OpenVocabSpec
    from nnunetv2_openvocab.training.variants import nnUNetTrainerOpenVocabFrozenEncoder

    if trainer != STOCK_TRAINER and trainer not in registry.__all__:
        raise ValueError(f"-tr {trainer}: not one of nnUNetTrainer or {', '.join(registry.__all__)}.")
    folder = Path(nnUNet_preprocessed or "") / maybe_convert_to_dataset_name(dataset)
    plans_file = folder / f"{plans_identifier}.json"
    if not plans_file.is_file():
        raise FileNotFoundError(f"{plans_file} does not exist; plan the dataset first or fix -p / nnUNet_preprocessed.")
    dataset_json = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    num_labels = len(foreground_label_names(dataset_json["labels"]))
    if trainer == STOCK_TRAINER:
        return estimate_training(plans_file, configuration, num_labels, None, mixed_precision=mixed_precision)
    trainer_class = getattr(registry, trainer)
    spec = OpenVocabSpec.from_plans(json.loads(plans_file.read_text(encoding="utf-8")), str(plans_file))
    return estimate_training(plans_file, configuration, len(spec.label_names), spec,
                             issubclass(trainer_class, nnUNetTrainerOpenVocabFrozenEncoder), trainer_class.connector,
                             mixed_precision)
