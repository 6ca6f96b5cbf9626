"""Contrastive samples and the global batch order.

Everything random about a sample (which view, which captions) is drawn from a generator seeded by
(seed, epoch, sample index), never from global RNG state. A sample is therefore the same whichever
process loads it, however many processes there are, and after a resume.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from nnunetv2_openvocab.pretraining.manifest import ManifestEntry
from nnunetv2_openvocab.pretraining.preprocessing import VolumePreprocessor

# (sample index, view) -> a cached (D,) embedding or a (C, *patch) volume view
ImageSource = Callable[[int, int], torch.Tensor]


def cached_embedding_source(embeddings: torch.Tensor) -> ImageSource:
    """embeddings: (N, V, D) from the feature cache."""
    return lambda index, view: embeddings[index, view]


class VolumeViewSource:
    """Preprocesses the volume on every call (on-the-fly encoding; the cache avoids exactly this)."""

    def __init__(self, volumes: Sequence[str], preprocessor: VolumePreprocessor):
        self.volumes, self.preprocessor = list(volumes), preprocessor

    def __call__(self, index: int, view: int) -> torch.Tensor:
        volume = self.volumes[index]
        return torch.from_numpy(self.preprocessor.views(volume, [view])[0])


@dataclass
class RegionSample:
    """A volume's regions in its view: masks (R, *patch) bool and one caption each (fine-grained alignment)."""
    masks: torch.Tensor
    captions: list[str]


class RegionViewSource:
    """Like VolumeViewSource, but (volume view, RegionSample or None) with the entry's regions in the same view."""

    def __init__(self, entries: Sequence[ManifestEntry], preprocessor: VolumePreprocessor):
        self.entries, self.preprocessor = list(entries), preprocessor
        self.volumes = VolumeViewSource([entry.volume for entry in entries], preprocessor)

    def __call__(self, index: int, view: int) -> tuple[torch.Tensor, Optional[RegionSample]]:
        entry = self.entries[index]
        if not entry.regions:
            return self.volumes(index, view), None
        volume, masks = self.preprocessor.region_view(
            entry.volume, [(region.mask, region.label) for region in entry.regions], view)
        return torch.from_numpy(volume), RegionSample(torch.from_numpy(masks),
                                                      [region.caption for region in entry.regions])


def sample_captions(entry: ManifestEntry, count: int, rng: np.random.Generator) -> list[str]:
    """`count` captions drawn at random (with replacement only if there are fewer); the report if there are none."""
    if count == 0:
        return []
    pool = entry.captions or (entry.report,)
    return [pool[i] for i in rng.choice(len(pool), size=count, replace=len(pool) < count)]


class ContrastiveDataset(Dataset):
    """Item (epoch, index) -> (image, report, captions, regions) for manifest entry `index`.

    `with_regions`: `images` is a RegionViewSource; otherwise regions are None.
    """

    def __init__(self, entries: Sequence[ManifestEntry], images: ImageSource, num_views: int,
                 captions_per_sample: int, seed: int, with_regions: bool = False):
        self.entries, self.images = list(entries), images
        self.num_views, self.captions_per_sample, self.seed = num_views, captions_per_sample, seed
        self.with_regions = with_regions

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, str, list[str], Optional[RegionSample]]:
        epoch, index = key
        rng = np.random.default_rng([self.seed, epoch, index])
        view = int(rng.integers(self.num_views))
        entry = self.entries[index]
        image, regions = self.images(index, view) if self.with_regions else (self.images(index, view), None)
        return image, entry.report, sample_captions(entry, self.captions_per_sample, rng), regions


@dataclass
class ContrastiveBatch:
    images: torch.Tensor  # (b, D) embeddings or (b, C, *patch) volumes
    reports: list[str]
    captions: Optional[list[list[str]]]  # K slots x b captions; None for the CLIP-only loss
    regions: Optional[list[Optional[RegionSample]]] = None  # per image, with fine-grained alignment


def collate(samples: Sequence[tuple[torch.Tensor, str, list[str], Optional[RegionSample]]]) -> ContrastiveBatch:
    images, reports, captions, regions = zip(*samples)
    slots = [list(slot) for slot in zip(*captions)]  # b x K -> K x b
    has_regions = any(region is not None for region in regions)
    return ContrastiveBatch(torch.stack(images), list(reports), slots or None, list(regions) if has_regions else None)


class GlobalBatchSampler:
    """Per-process index lists of one global batch order.

    Each epoch shuffles all samples with (seed, epoch), cuts global batches of batch_size x
    world_size (dropping the incomplete last one, so every all_gather has equal shapes) and gives
    process r the r-th consecutive slice: the slices concatenated in rank order are exactly the
    batch one process would get with batch_size x world_size.
    """

    def __init__(self, num_samples: int, batch_size: int, rank: int, world_size: int, seed: int):
        self.num_samples, self.batch_size, self.rank, self.world_size, self.seed = (
            num_samples, batch_size, rank, world_size, seed)
        if self.batches_per_epoch == 0:
            raise ValueError(f"{num_samples} training samples are fewer than one global batch "
                             f"({batch_size} per process x {world_size} processes); lower batch_size.")

    @property
    def global_batch_size(self) -> int:
        return self.batch_size * self.world_size

    @property
    def batches_per_epoch(self) -> int:
        return self.num_samples // self.global_batch_size

    def batches(self, epoch: int, start: int = 0) -> list[list[tuple[int, int]]]:
        """This process's (epoch, index) lists for batches start.. of `epoch`."""
        order = np.random.default_rng([self.seed, epoch]).permutation(self.num_samples)
        first = self.rank * self.batch_size
        return [[(epoch, int(index)) for index in order[b * self.global_batch_size:][first:first + self.batch_size]]
                for b in range(start, self.batches_per_epoch)]
