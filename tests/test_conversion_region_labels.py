"""Overlapping structures as nnU-Net region labels: ordering, regions_class_order, nnU-Net's LabelManager."""
from __future__ import annotations

from nnunetv2.utilities.label_handling.label_handling import LabelManager

from dataset_conversion.label_tables import label_table_keys, load_label_table
from dataset_conversion.region_labels import (nnunet_labels, normalise, order_supersets_first,
                                              regions_class_order)


def test_kits_regions_paint_back_to_the_native_values():
    labels = order_supersets_first(normalise({"kidney_tumor": [2], "kidney": [1, 2, 3], "kidney_cyst": 3,
                                              "kidney_mass": [3, 2]}))
    assert list(labels) == ["kidney", "kidney_mass", "kidney_tumor", "kidney_cyst"]
    order = regions_class_order(labels)
    assert order == [1, 2, 2, 3]
    # painting each region with its value, in order, reproduces every native value
    for native in (1, 2, 3):
        painted = 0
        for values, paint in zip(labels.values(), order):
            if native in values:
                painted = paint
        assert painted == native


def test_plain_labels_need_no_region_order():
    labels = normalise({"background": 0, "spleen": 1, "liver": 2})
    assert regions_class_order(labels) is None
    assert nnunet_labels(labels) == {"background": 0, "spleen": 1, "liver": 2}


def test_every_label_table_is_accepted_by_nnunet():
    for key in label_table_keys():
        labels = load_label_table(key).labels
        manager = LabelManager(nnunet_labels(labels), regions_class_order(labels))
        assert manager.all_labels == list(range(0, len(manager.all_labels)))
        assert manager.has_regions == (regions_class_order(labels) is not None)
