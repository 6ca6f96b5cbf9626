"""Unseen-prompt sets: the shipped files (paper Tables VI/VII on TotalSegmentator v2 and v1) and their generation."""
from __future__ import annotations

import pytest

from dataset_conversion.label_tables import load_label_table
from nnunetv2_openvocab.prompts.taxonomy import load_taxonomy
from dataset_conversion.unseen_sets import shipped_sets, spec_unseen_set, taxonomy_unseen_set, training_prompts
from nnunetv2_openvocab.prompts.unseen_sets import load_unseen_set

TOTALSEG_LABELS = list(load_label_table("totalsegmentator_v2").labels)
TOTALSEG_V1_LABELS = list(load_label_table("totalsegmentator_v1").labels)
PAPER_TABLE_VI = ["left lung", "right lung", "left and right lung", "left heart", "right heart",
                  "left and right kidney", "left and right adrenal gland", "heart", "left ribs", "right ribs", "trachea and esophagus",
                  "left gluteus", "right gluteus", "cervical vertebrae", "lumbar vertebrae", "thoracic vertebrae",
                  "veins", "arteries"]
PAPER_TABLE_VII = ["renal organs", "hepatic system", "heart muscle", "aortic vessel", "cerebrum", "small intestine"]


def by_prompt(unseen):
    return {p["prompt"]: p for p in unseen["prompts"]}


def test_shipped_files_match_the_generator():
    for unseen in shipped_sets():
        assert load_unseen_set(unseen["name"]) == unseen


@pytest.mark.parametrize("name, labels", [("totalsegmentator_merged", TOTALSEG_LABELS),
                                          ("totalsegmentator_synonyms", TOTALSEG_LABELS),
                                          ("totalsegmentator_taxonomy", TOTALSEG_LABELS),
                                          ("totalsegmentator_v1_merged", TOTALSEG_V1_LABELS),
                                          ("totalsegmentator_v1_synonyms", TOTALSEG_V1_LABELS)])
def test_shipped_sets_have_the_evaluation_format(name, labels):
    unseen = load_unseen_set(name)
    assert set(unseen) == {"name", "description", "prompts"} and unseen["name"] == name
    seen = training_prompts(labels, load_taxonomy())
    for entry in unseen["prompts"]:
        assert set(entry) == {"prompt", "targets", "kind"} and entry["kind"] in ("merged", "synonym")
        assert entry["targets"] and set(entry["targets"]) <= set(labels)
        assert not seen.is_seen(entry["prompt"])


def test_paper_table_vi_merged_prompts():
    merged = by_prompt(load_unseen_set("totalsegmentator_merged"))
    assert merged["left lung"]["targets"] == ["lung_upper_lobe_left", "lung_lower_lobe_left"]
    assert set(merged["left and right lung"]["targets"]) == {n for n in TOTALSEG_LABELS if n.startswith("lung_")}
    assert merged["left and right kidney"]["targets"] == ["kidney_left", "kidney_right"]
    assert merged["cervical vertebrae"]["targets"] == [f"vertebrae_C{i}" for i in range(7, 0, -1)]
    assert set(merged["left gluteus"]["targets"]) == {"gluteus_maximus_left", "gluteus_medius_left",
                                                       "gluteus_minimus_left"}
    assert len(merged["left ribs"]["targets"]) == 12
    assert "left heart" not in merged and "'left heart'" in load_unseen_set("totalsegmentator_merged")["description"]


def test_paper_table_vii_synonyms():
    synonyms = by_prompt(load_unseen_set("totalsegmentator_synonyms"))
    assert set(synonyms["renal organs"]["targets"]) == {"kidney_left", "kidney_right"}
    assert synonyms["hepatic system"]["targets"] == ["liver"]
    assert synonyms["small intestine"]["targets"] == ["small_bowel"]
    assert all(p["kind"] == "synonym" for p in synonyms.values())


def test_heart_entries_resolve_on_totalsegmentator_v1_style_labels():
    """With heart chambers as labels (v1), the paper's heart prompts apply; with v2's single heart they do not."""
    v1_like = [n for n in TOTALSEG_LABELS if n != "heart"] + [
        "heart_myocardium", "heart_atrium_left", "heart_atrium_right", "heart_ventricle_left", "heart_ventricle_right"]
    merged = by_prompt(spec_unseen_set("totalsegmentator_merged", v1_like))
    assert set(merged["left heart"]["targets"]) == {"heart_atrium_left", "heart_ventricle_left"}
    assert len(merged["heart"]["targets"]) == 5
    synonyms = by_prompt(spec_unseen_set("totalsegmentator_synonyms", v1_like))
    assert synonyms["heart muscle"]["targets"] == ["heart_myocardium"]


def test_v1_sets_hold_every_prompt_of_tables_vi_and_vii():
    """On v1's 104 classes (the paper's protocol) nothing is left out: heart chambers are labels there."""
    merged = by_prompt(load_unseen_set("totalsegmentator_v1_merged"))
    assert list(merged) == PAPER_TABLE_VI
    assert set(merged["heart"]["targets"]) == {"heart_myocardium", "heart_atrium_left", "heart_atrium_right",
                                               "heart_ventricle_left", "heart_ventricle_right"}
    assert set(merged["right heart"]["targets"]) == {"heart_atrium_right", "heart_ventricle_right"}
    synonyms = by_prompt(load_unseen_set("totalsegmentator_v1_synonyms"))
    assert list(synonyms) == PAPER_TABLE_VII
    assert synonyms["heart muscle"]["targets"] == ["heart_myocardium"]


def test_taxonomy_covers_every_v1_class_name():
    taxonomy = load_taxonomy()
    assert len(TOTALSEG_V1_LABELS) == 104 and all(name in taxonomy for name in TOTALSEG_V1_LABELS)
    assert taxonomy.prompts_for("face")[0] == "face"


def test_taxonomy_set_for_another_dataset():
    amos = list(load_label_table("amos22").labels)
    unseen = by_prompt(taxonomy_unseen_set("amos", amos))
    assert unseen["kidney"]["targets"] == ["kidney_right", "kidney_left"] and unseen["kidney"]["kind"] == "merged"
    assert unseen["adrenal gland"]["kind"] == "merged"
    assert unseen["hepatic system"] == {"prompt": "hepatic system", "targets": ["liver"], "kind": "synonym"}


def test_unknown_set_names_the_available_ones():
    with pytest.raises(FileNotFoundError, match="totalsegmentator_merged"):
        load_unseen_set("nope")


@pytest.mark.parametrize("trainer_name", ["nnUNetTrainerOpenVocab", "nnUNetTrainerOpenVocabCanonicalPrompts"])
def test_unseen_sets_stay_disjoint_from_the_training_prompts(trainer_name):
    """Synonym sampling (the base trainer) and canonical prompts (the paper's mode) both train on prompts
    that no shipped unseen set contains; the sets are built from the same taxonomy as converted datasets."""
    from nnunetv2_openvocab import training
    from nnunetv2_openvocab.prompts.dataset_prompts import DatasetPrompts
    from nnunetv2_openvocab.prompts.prompt_text import prompt_identity

    taxonomy = load_taxonomy()
    dataset_json = {"labels": {"background": 0, **{name: i + 1 for i, name in enumerate(TOTALSEG_LABELS)}},
                    "text_prompts": {name: taxonomy.prompts_for(name) for name in TOTALSEG_LABELS}}
    trained = getattr(training, trainer_name).training_prompts(None, DatasetPrompts(dataset_json))
    if trainer_name.endswith("CanonicalPrompts"):
        assert trained.all_prompts == [taxonomy.prompts_for(name)[0] for name in TOTALSEG_LABELS]
    trained_identities = {prompt_identity(p) for p in trained.all_prompts}
    for name in ("totalsegmentator_merged", "totalsegmentator_synonyms", "totalsegmentator_taxonomy"):
        unseen = {prompt_identity(e["prompt"]) for e in load_unseen_set(name)["prompts"]}
        assert unseen and not unseen & trained_identities, name
