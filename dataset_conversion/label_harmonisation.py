"""Harmonised label ids for merging datasets whose labels are named with canonical taxonomy names.

Every voxel value of a source dataset stands for the set of label names that contain it (KiTS value 2 =
{kidney, kidney_mass, kidney_tumor}; BTCV value 6 = {liver}). The merged dataset gives one new value to each
distinct name set ("atomic class"), in source order, so equal meanings share a value across datasets (MSD value 1
and BTCV value 6 are both {liver}). A merged label is then the union of the atomic classes holding its name, which
keeps overlapping structures (tumour inside organ) as nnU-Net regions. Uniting the labels of duplicate scans can
create name sets no source has; they are appended as further atomic classes.

A case is annotated for the names of its source dataset (or that dataset's own ``annotated_labels`` entry); every
other merged label is unknown in that case, so masked in training, never background.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, FrozenSet, Iterable, List, Mapping, Sequence, Set, Tuple

import numpy as np

from dataset_conversion.region_labels import LabelValues

NameSet = FrozenSet[str]


@dataclass(frozen=True)
class HarmonisedLabels:
    atomic_classes: Tuple[NameSet, ...]        # merged voxel value v >= 1 is atomic_classes[v - 1]
    labels: LabelValues                        # merged label name -> merged voxel values
    value_maps: Tuple[Dict[int, int], ...]     # per source: source voxel value -> merged voxel value

    def names_of(self, value: int) -> NameSet:
        return frozenset() if value == 0 else self.atomic_classes[value - 1]

    def value_of(self, names: NameSet) -> int:
        """Merged value of a name set (0 for the empty set); ValueError if the table does not hold it."""
        return 0 if not names else self.atomic_classes.index(names) + 1

    def with_classes(self, extra: Iterable[NameSet]) -> "HarmonisedLabels":
        """The same table with further atomic classes appended (existing values keep their meaning)."""
        atomic = list(self.atomic_classes)
        atomic += [names for names in dict.fromkeys(extra) if names and names not in atomic]
        labels = {name: tuple(i + 1 for i, names in enumerate(atomic) if name in names) for name in self.labels}
        return HarmonisedLabels(tuple(atomic), labels, self.value_maps)

    def lookup_table(self, source_index: int) -> np.ndarray:
        """Array mapping a source label map's voxel values to merged values: ``lut[source_array]``."""
        value_map = self.value_maps[source_index]
        lut = np.zeros(max(value_map, default=0) + 1, dtype=np.uint16)
        for source_value, merged_value in value_map.items():
            lut[source_value] = merged_value
        return lut


def harmonise(source_labels: Sequence[LabelValues]) -> HarmonisedLabels:
    atomic: List[NameSet] = []
    value_maps: List[Dict[int, int]] = []
    label_order: Dict[str, None] = {}
    for labels in source_labels:
        label_order.update(dict.fromkeys(labels))
        value_map = {0: 0}
        for value in sorted({v for values in labels.values() for v in values}):
            names = frozenset(name for name, values in labels.items() if value in values)
            if names not in atomic:
                atomic.append(names)
            value_map[value] = atomic.index(names) + 1
        value_maps.append(value_map)
    merged = {name: tuple(i + 1 for i, names in enumerate(atomic) if name in names) for name in label_order}
    return HarmonisedLabels(tuple(atomic), merged, tuple(value_maps))


def annotated_sets(case_ids: Sequence[str], source_labels: LabelValues,
                   source_annotated: Mapping[str, Sequence[str]]) -> Dict[str, Set[str]]:
    """{case: names annotated in it} from a source's labels and its optional ``annotated_labels``."""
    return {case: set(source_annotated.get(case, source_labels)) for case in case_ids}


def compatible_pairs(names: Sequence[str], can_overlap: Callable[[str, str], bool]) -> FrozenSet[FrozenSet[str]]:
    """All pairs of distinct names that one voxel may carry together (picklable, for worker processes)."""
    return frozenset(frozenset((a, b)) for i, a in enumerate(names) for b in names[i + 1:] if can_overlap(a, b))


def union_duplicate_labels(kept: np.ndarray, kept_annotated: Set[str], other: np.ndarray, other_annotated: Set[str],
                           harmonised: HarmonisedLabels, compatible: FrozenSet[FrozenSet[str]]
                           ) -> Tuple[np.ndarray, Set[str], HarmonisedLabels, int]:
    """Add to ``kept`` the structures only ``other`` annotates (same scan, merged values on both).

    Rule: the annotated sets are united; for a structure both annotate, the kept (earlier) dataset's voxels are
    used; a structure only ``other`` annotates is added where it can overlap everything the kept labels say there
    (``compatible`` pairs: part-of or lesion-in-organ, e.g. KiTS 'kidney' + BTCV 'kidney_right'); elsewhere the kept
    labels win and the voxels count as conflicts. A voxel may so get a name set no source had: the returned table
    then holds that extra class. Returns (new label map, new annotated set, table, conflicting voxels).
    """
    new_names = other_annotated - kept_annotated
    if not new_names:
        return kept, kept_annotated, harmonised, 0
    out = kept.copy()
    conflicts = 0
    pairs = np.unique(np.stack([kept.ravel(), other.ravel()]), axis=1)
    for kept_value, other_value in pairs.T:
        added = harmonised.names_of(int(other_value)) & new_names
        if not added:
            continue
        kept_names = harmonised.names_of(int(kept_value))
        where = (kept == kept_value) & (other == other_value)
        if not all(frozenset((a, k)) in compatible for a in added for k in kept_names):
            conflicts += int(np.count_nonzero(where))
            continue
        names = kept_names | added
        if names not in harmonised.atomic_classes:
            harmonised = harmonised.with_classes([names])
        out[where] = harmonised.value_of(names)
    return out, kept_annotated | new_names, harmonised, conflicts
