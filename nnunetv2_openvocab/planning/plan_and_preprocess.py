"""nnU-Net's plan-and-preprocess with STUNet plans, as one function.

nnU-Net's ``-pl`` only finds planners inside nnunetv2, so this runs the same three steps (fingerprint, plan,
preprocess) with :class:`STUNetPlanner`, after validating the dataset's prompts.
"""
from __future__ import annotations

import json
from typing import Optional, Sequence

from nnunetv2.configuration import default_num_processes
from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import DatasetFingerprintExtractor
from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprint_dataset, preprocess_dataset
from nnunetv2.utilities.dataset_name_id_conversion import convert_dataset_name_to_id

from nnunetv2_openvocab.planning.openvocab_section import aligned_image_encoder_arch, plan_openvocab_spec
from nnunetv2_openvocab.planning.stunet_planner import PAPER_TARGET_SPACING, STUNetPlanner
from nnunetv2_openvocab.prompts.validation import require_valid_dataset
from nnunetv2_openvocab.raw_datasets import raw_dataset_folder
from nnunetv2_openvocab.text.encoder import DEFAULT_TEXT_ENCODER


def plan_and_preprocess(dataset: str, configurations: Sequence[str] = ("3d_fullres",), size: str = "B",
                        base_width: Optional[int] = None, text_encoder: str = DEFAULT_TEXT_ENCODER,
                        pretrained: Optional[str] = None, isotropic_1p5mm: bool = False,
                        patch_size: Optional[Sequence[int]] = None, num_processes: int = default_num_processes,
                        verify_dataset_integrity: bool = False, clean: bool = False,
                        gpu_memory_target_in_gb: float = 8, plans_name: Optional[str] = None,
                        verbose: bool = False, show_progress_bar: bool = True) -> str:
    """Validate, fingerprint, plan and preprocess one dataset; returns the plans identifier."""
    raw_folder = raw_dataset_folder(dataset)
    require_valid_dataset(raw_folder)
    dataset_id = convert_dataset_name_to_id(raw_folder.name)
    extract_fingerprint_dataset(dataset_id, DatasetFingerprintExtractor, num_processes, verify_dataset_integrity,
                                clean, verbose, show_progress_bar)
    dataset_json = json.loads((raw_folder / "dataset.json").read_text(encoding="utf-8"))
    planner = STUNetPlanner(dataset_id, size, base_width,
                            openvocab=plan_openvocab_spec(dataset_json, text_encoder, pretrained),
                            patch_size=patch_size, gpu_memory_target_in_gb=gpu_memory_target_in_gb,
                            plans_name=plans_name,
                            overwrite_target_spacing=list(PAPER_TARGET_SPACING) if isotropic_1p5mm else None)
    aligned_arch = aligned_image_encoder_arch(pretrained)
    if aligned_arch:
        planner.stunet_kwargs.update(aligned_arch)  # the pretrained encoder fixes depth and widths
    planner.plan_experiment()
    preprocess_dataset(dataset_id, planner.plans_identifier, list(configurations),
                       [num_processes] * len(configurations), verbose, show_progress_bar)
    return planner.plans_identifier
