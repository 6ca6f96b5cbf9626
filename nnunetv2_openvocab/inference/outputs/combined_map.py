"""Combined label map of all prompts of a case, with a JSON legend that accounts for every overlap.

Prompts may overlap ("kidney" and "left kidney"); a label map holds one value per voxel, so the rule is
explicit: **the prompt listed first keeps a contested voxel** (label value = 1-based position in the prompt
list; list the structure you care most about first). Nothing is dropped silently: the legend gives, for each
prompt, the voxels of its own binary mask, the voxels it kept in the map, and for each earlier prompt how
many of its voxels that prompt had already taken. The per-prompt binary masks always keep full overlaps.

Legend (``<case>_labels.json``); ``colours`` are the preview's and the RTSTRUCT's (prompt_colours)::

    {"overlap_rule": "...", "labels": {"0": "background", "1": "liver", ...}, "colours": {"1": "#1f77b4", ...},
     "prompts": [{"label": 1, "prompt": "liver", "mask_voxels": 9500, "kept_voxels": 9500,
                  "lost_to": {}}, {"label": 2, ..., "lost_to": {"liver": 12}}]}
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

from nnunetv2_openvocab.inference.outputs.prompt_colours import prompt_colours_8bit

OVERLAP_RULE = ("A voxel claimed by several prompts gets the label of the prompt listed first; "
                "'lost_to' counts the voxels each prompt ceded to earlier prompts. Per-prompt masks keep all voxels.")


class CombinedLabelMap:
    def __init__(self, shape: Sequence[int], prompts: Sequence[str]):
        self.prompts = list(prompts)
        self.labels = np.zeros(shape, dtype=np.uint8 if len(self.prompts) < 255 else np.uint16)
        self.entries: List[Dict] = []

    def add(self, prompt_index: int, mask: np.ndarray) -> None:
        """Add the binary mask of prompt ``prompt_index``; call in prompt order."""
        if prompt_index != len(self.entries):
            raise ValueError(f"Masks must be added in prompt order: expected prompt {len(self.entries)}, "
                             f"got {prompt_index}.")
        claimed = mask.astype(bool, copy=False)
        taken = np.bincount(self.labels[claimed].ravel(), minlength=prompt_index + 1)  # by earlier label value
        free = claimed & (self.labels == 0)
        self.labels[free] = prompt_index + 1
        lost_to = {self.prompts[value - 1]: int(taken[value]) for value in range(1, prompt_index + 1) if taken[value]}
        self.entries.append({"label": prompt_index + 1, "prompt": self.prompts[prompt_index],
                             "mask_voxels": int(claimed.sum()), "kept_voxels": int(taken[0]), "lost_to": lost_to})

    def legend(self) -> Dict:
        return {"overlap_rule": OVERLAP_RULE,
                "labels": {"0": "background", **{str(e["label"]): e["prompt"] for e in self.entries}},
                "colours": {str(e["label"]): "#" + bytes(rgb).hex()
                            for e, rgb in zip(self.entries, prompt_colours_8bit(len(self.prompts)))},
                "prompts": self.entries}
