"""nnU-Net label dictionaries for overlapping structures (region labels).

A label is a set of voxel values: ``{"kidney": (1, 2, 3), "kidney_tumor": (2,)}`` says voxels 1-3 are kidney and
voxel 2 is also tumour. nnU-Net writes a label as an int when it is one value and as a list otherwise; once any label
is a list it needs ``regions_class_order``: for each label, in dataset.json order, the value painted when a
prediction is turned back into one label map (later labels paint over earlier ones).
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from nnunetv2_openvocab.prompts.dataset_prompts import BACKGROUND, label_values_by_name

LabelValues = Dict[str, Tuple[int, ...]]


def normalise(labels: Mapping[str, object]) -> LabelValues:
    """``{name: int | [ints]}`` (background excluded) -> ``{name: sorted tuple of ints}``."""
    return {name: tuple(sorted(set(values))) for name, values in label_values_by_name(labels).items()}


def order_supersets_first(labels: Mapping[str, Sequence[int]]) -> LabelValues:
    """Order labels so that a label comes before every label it contains (needed for painting regions).

    Sorting by (smallest value, larger set first) does it: a superset's smallest value is never larger than its
    subset's, and on a tie the superset is larger. Ties otherwise keep the given order.
    """
    items = [(name, tuple(sorted(set(values)))) for name, values in labels.items()]
    items.sort(key=lambda item: (item[1][0], -len(item[1])))
    return dict(items)


def has_regions(labels: Mapping[str, Sequence[int]]) -> bool:
    return any(len(values) > 1 for values in labels.values())


def regions_class_order(labels: Mapping[str, Sequence[int]]) -> Optional[List[int]]:
    """Painting value per label (in the given order), or None when no label spans several values.

    A label paints its smallest value that no smaller label inside it claims; when the labels inside it cover it
    completely (KiTS 'mass' = tumour + cyst) it paints its smallest value and the inner labels repaint.
    Non-nested overlaps (SegRap temporal lobe / hippocampus) cannot be painted exactly; the later label wins.
    """
    if not has_regions(labels):
        return None
    sets = {name: set(values) for name, values in labels.items()}
    order = []
    for name, values in sets.items():
        inner = set().union(*(other for o, other in sets.items() if o != name and other < values))
        own = sorted(values - inner)
        order.append(own[0] if own else min(values))
    return order


def nnunet_labels(labels: Mapping[str, Sequence[int]]) -> Dict[str, object]:
    """``{"background": 0, name: int or [ints]}`` as nnU-Net's dataset.json wants it."""
    out: Dict[str, object] = {BACKGROUND: 0}
    for name, values in labels.items():
        out[name] = int(values[0]) if len(values) == 1 else [int(v) for v in values]
    return out


def all_values(labels: Mapping[str, Iterable[int]]) -> List[int]:
    return sorted({int(v) for values in labels.values() for v in values})
