"""The shared taxonomy: coverage (117 TotalSegmentator classes, every label table), relations, prompts, RadLex."""
from __future__ import annotations

import json

import pytest

from nnunetv2_openvocab.prompts import taxonomy as taxonomy_module
from dataset_conversion.build_taxonomy import build_taxonomy
from dataset_conversion.label_tables import label_table_keys, load_label_table
from nnunetv2_openvocab.prompts.taxonomy import DATA_DIR, DEFAULT_TAXONOMY_PATH, load_taxonomy
from test_conversion_support import SHARED_DATA, TOTALSEG

RADLEX = SHARED_DATA / "radlex" / "oidm_anatomic_locations_noembed.json"
EXPECTED_TABLES = {"totalsegmentator_v2", "totalsegmentator_v1", "msd_liver", "msd_lung", "msd_pancreas",
                   "msd_hepaticvessel", "msd_colon",
                   "kits23", "btcv", "btcv_cervix", "amos22", "flare22", "segthor", "segrap2023_oar",
                   "segrap2023_gtv", "covid19"}


@pytest.fixture(scope="module")
def taxonomy():
    return load_taxonomy()


def test_covers_all_117_totalsegmentator_classes(taxonomy):
    table = load_label_table("totalsegmentator_v2")
    assert len(table.labels) == 117
    assert all(name in taxonomy for name in table.labels)
    if (TOTALSEG / "class_map_total.json").is_file():
        class_map = json.loads((TOTALSEG / "class_map_total.json").read_text(encoding="utf-8"))
        assert {name: (int(k),) for k, name in class_map.items()} == table.labels


def test_covers_every_label_of_every_label_table(taxonomy):
    assert set(label_table_keys()) == EXPECTED_TABLES
    for key in label_table_keys():
        table = load_label_table(key)
        table.check(taxonomy)  # canonical names, consecutive voxel values
        assert table.source and table.licence and table.reference


def test_part_of_relations(taxonomy):
    assert set(taxonomy.parts_of("lung_left")) == {"lung_upper_lobe_left", "lung_lower_lobe_left"}
    assert set(taxonomy.parts_of("lung")) == {"lung_left", "lung_right"}
    assert set(taxonomy.parts_of("vertebrae_cervical")) == {f"vertebrae_C{i}" for i in range(1, 8)}
    assert {"heart_myocardium", "heart_atrium_left", "heart_atrium_right", "heart_ventricle_left",
            "heart_ventricle_right"} <= set(taxonomy.parts_of("heart"))
    assert "lung" in taxonomy.ancestors("lung_middle_lobe_right")
    assert set(taxonomy.parts_of("kidney")) == {"kidney_left", "kidney_right"}  # unsided parent of a sided pair


def test_lesions_have_an_organ(taxonomy):
    lesions = [s for s in taxonomy.structures.values() if s.is_lesion]
    expected = {"liver_tumor", "kidney_tumor", "kidney_cyst", "covid19_lesion", "pancreas_tumor"}
    assert expected <= {s.name for s in lesions}
    for lesion in lesions:
        assert lesion.organ in taxonomy, lesion.name
    assert taxonomy.structure("liver_tumor").organ == "liver"
    kidney_lesions = {s.name for s in taxonomy.structures.values() if s.is_lesion and s.organ == "kidney"}
    assert kidney_lesions == {"kidney_cyst", "kidney_tumor", "kidney_mass"}


def test_prompts_keep_the_side_word_and_are_unambiguous(taxonomy):
    owners = {}
    for structure in taxonomy.structures.values():
        assert structure.laterality in ("left", "right", "none")
        for prompt in structure.prompts:
            if structure.laterality != "none":
                assert structure.laterality in prompt.lower(), (structure.name, prompt)
            assert owners.setdefault(prompt.lower(), structure.name) == structure.name, prompt
    for structure in taxonomy.structures.values():
        for held_out in structure.eval_synonyms:
            assert held_out.lower() not in owners, held_out  # never a training prompt


def test_module_api(taxonomy):
    assert taxonomy_module.prompts_for("kidney_left")[0] == "left kidney"
    assert taxonomy_module.structure("liver").radlex_id == "RID58"
    assert taxonomy_module.structure("kidney_left").radlex_id == "RID29663"
    assert "small intestine" not in taxonomy_module.prompts_for("small_bowel")  # held out for the benchmark
    assert taxonomy_module.parts_of("ribs") == ["ribs_left", "ribs_right"]
    with pytest.raises(KeyError, match="build_taxonomy"):
        taxonomy.structure("left kidney")


def test_resolution_needs_complete_parts_except_for_collections(taxonomy):
    totalseg = list(load_label_table("totalsegmentator_v2").labels)
    assert taxonomy.resolve_to_labels("lung_left", totalseg) == ["lung_upper_lobe_left", "lung_lower_lobe_left"]
    assert taxonomy.resolve_to_labels("heart_left", totalseg) == []  # v2 has no heart chambers
    assert "pulmonary_artery" not in totalseg and len(taxonomy.resolve_to_labels("arteries", totalseg)) == 8


def test_can_overlap_follows_part_of_and_lesion_organ(taxonomy):
    assert taxonomy.can_overlap("kidney", "kidney_right")
    assert taxonomy.can_overlap("kidney_tumor", "kidney_left")
    assert taxonomy.can_overlap("kidney_cyst_left", "kidney_cyst")
    assert not taxonomy.can_overlap("kidney_tumor", "kidney_cyst")
    assert not taxonomy.can_overlap("liver", "spleen")


def test_radlex_ids_and_notice(taxonomy):
    with_id = [s for s in taxonomy.structures.values() if s.radlex_id]
    assert len(with_id) > 150 and all(s.radlex_id.startswith("RID") for s in with_id)
    notice = (DATA_DIR / "RADLEX_NOTICE.md").read_text(encoding="utf-8")
    assert "Radiological Society of North America" in notice and "RadLex License" in notice


@pytest.mark.skipif(not RADLEX.is_file(), reason=f"RadLex file not found under {SHARED_DATA}")
def test_generator_reproduces_the_shipped_file():
    generated = build_taxonomy(RADLEX, TOTALSEG / "class_map_total.json")
    assert generated == json.loads(DEFAULT_TAXONOMY_PATH.read_text(encoding="utf-8"))
