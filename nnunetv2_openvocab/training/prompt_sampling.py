"""Which prompts a training batch sees, and the binary targets that go with them.

Every sample gets one channel per label of the dataset (so annotated labels absent from the patch are
negatives), the prompt of each channel drawn uniformly from that label's prompts (synonym augmentation),
and an ``annotated`` flag that is False for labels not annotated in that case (masked back-propagation).
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
import torch

from nnunetv2_openvocab.prompts.dataset_prompts import DatasetPrompts


class PromptSampler:
    def __init__(self, dataset_prompts: DatasetPrompts, seed: int | None = None):
        self.dataset_prompts = dataset_prompts
        self.all_prompts = dataset_prompts.all_prompts
        counts = np.array([len(label.prompts) for label in dataset_prompts.labels])
        self._offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self._counts = counts
        self._rng = np.random.default_rng(seed)

    @property
    def num_labels(self) -> int:
        return len(self._counts)

    def canonical_indices(self) -> torch.Tensor:
        """(L,) index into ``all_prompts`` of each label's canonical prompt."""
        return torch.from_numpy(self._offsets.copy()).long()

    def sample(self, case_identifiers: Sequence[str]) -> Tuple[torch.Tensor, torch.Tensor]:
        """-> prompt indices (B, L) into ``all_prompts`` and annotated flags (B, L) bool."""
        batch = len(case_identifiers)
        synonym = (self._rng.random((batch, self.num_labels)) * self._counts).astype(np.int64)
        indices = torch.from_numpy(self._offsets[None] + synonym)
        annotated = torch.zeros((batch, self.num_labels), dtype=torch.bool)
        for row, case in enumerate(case_identifiers):
            annotated[row, list(self.dataset_prompts.annotated_label_indices(case))] = True
        return indices, annotated


class LabelTargets:
    """Integer label map -> one binary map per label; region labels (several voxel values) are unions."""

    def __init__(self, dataset_prompts: DatasetPrompts):
        self.label_values = [sorted(label.values) for label in dataset_prompts.labels]

    def __call__(self, segmentation: torch.Tensor) -> torch.Tensor:
        """(B, 1, *S) integer map -> (B, L, *S) bool; values of no label (unknown, negative) are in no map."""
        values = segmentation[:, 0]
        targets = torch.empty((values.shape[0], len(self.label_values), *values.shape[1:]), dtype=torch.bool,
                              device=segmentation.device)
        # one comparison per label writes its map in place: ~5x faster at ~100 labels than a lookup table
        # indexed by value, whose (B, *S, L) result needs a transposing copy to channels-first
        for channel, label_values in enumerate(self.label_values):
            target = targets[:, channel]
            torch.eq(values, label_values[0], out=target)
            for value in label_values[1:]:  # region labels: unions
                target |= values == value
        return targets
