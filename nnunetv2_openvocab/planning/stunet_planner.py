"""nnU-Net experiment planner that writes STUNet plans (``nnUNetPlans_STUNet{S,B,L,H}[_width{W}]``).

nnU-Net's default planner picks spacing, patch size and normalisation; this planner keeps those and swaps
the 3D architecture for STUNet: six stages, 3x3x3 kernels everywhere (so released STU-Net weights fit),
up to five poolings chosen like nnU-Net's (an axis stops pooling once its feature map would drop below 4
voxels; missing poolings become [1, 1, 1]). Batch size is STU-Net's 2. The plans also get an ``openvocab``
section: the OpenVocabSpec (model_spec.py).
"""
from __future__ import annotations

from typing import Optional, Sequence

from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
from nnunetv2.experiment_planning.experiment_planners.network_topology import get_pool_and_conv_props

from nnunetv2_openvocab.model_spec import PLANS_KEY, OpenVocabSpec
from nnunetv2_openvocab.network.stunet import STUNet, stunet_arch_kwargs

STUNET_CLASS_NAME = f"{STUNet.__module__}.{STUNet.__name__}"
STUNET_STAGES = 6
STUNET_BATCH_SIZE = 2
MIN_FEATURE_MAP_EDGE = 4
PAPER_TARGET_SPACING = (1.5, 1.5, 1.5)


def stunet_plans_name(size: str, base_width: Optional[int] = None) -> str:
    return f"nnUNetPlans_STUNet{size}" + (f"_width{base_width}" if base_width is not None else "")


def stunet_topology(spacing: Sequence[float], patch_size: Sequence[int]) -> dict:
    """Patch size and per-stage strides/kernels of a six-stage STUNet for this spacing."""
    _, pool_sizes, _, patch, _ = get_pool_and_conv_props(list(spacing), list(patch_size), MIN_FEATURE_MAP_EDGE,
                                                         STUNET_STAGES - 1)
    strides = [list(map(int, p)) for p in pool_sizes]  # first entry is the un-pooled stage 0
    strides += [[1, 1, 1]] * (STUNET_STAGES - len(strides))
    return {"patch_size": [int(p) for p in patch], "strides": strides,
            "conv_kernel_sizes": [[3, 3, 3]] * STUNET_STAGES}


class STUNetPlanner(ExperimentPlanner):
    def __init__(self, dataset_name_or_id, size: str = "B", base_width: Optional[int] = None,
                 openvocab: Optional[OpenVocabSpec] = None, patch_size: Optional[Sequence[int]] = None,
                 gpu_memory_target_in_gb: float = 8, preprocessor_name: str = "DefaultPreprocessor",
                 plans_name: Optional[str] = None, overwrite_target_spacing=None, suppress_transpose: bool = False):
        super().__init__(dataset_name_or_id, gpu_memory_target_in_gb, preprocessor_name,
                         plans_name or stunet_plans_name(size, base_width), overwrite_target_spacing, suppress_transpose)
        self.stunet_kwargs = stunet_arch_kwargs(size, base_width)
        self.openvocab = openvocab
        self.fixed_patch_size = list(patch_size) if patch_size is not None else None

    def get_plans_for_configuration(self, spacing, median_shape, data_identifier, approximate_n_voxels_dataset, _cache):
        plan = super().get_plans_for_configuration(spacing, median_shape, data_identifier,
                                                   approximate_n_voxels_dataset, _cache)
        if len(spacing) != 3:
            return plan  # 2D stays nnU-Net's PlainConvUNet; STUNet is 3D only
        topology = stunet_topology(spacing, self.fixed_patch_size or plan["patch_size"])
        plan["patch_size"] = topology["patch_size"]
        plan["batch_size"] = STUNET_BATCH_SIZE
        plan["architecture"] = {
            "network_class_name": STUNET_CLASS_NAME,
            "arch_kwargs": {**self.stunet_kwargs, "strides": topology["strides"],
                            "conv_kernel_sizes": topology["conv_kernel_sizes"]},
            "_kw_requires_import": [],
        }
        return plan

    def plan_experiment(self):
        plans = super().plan_experiment()
        if self.openvocab is not None:
            plans[PLANS_KEY] = self.openvocab.to_plans()
            self.save_plans(plans)
        return plans

