"""RadLex loading (CSV, OWL, txt, shipped default) and the whole-word, case-insensitive filter."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from caption_curation.build_radlex_default_terms import build_default_terms
from caption_curation.radlex_filter import RadLexFilter, plural_forms
from caption_curation.radlex_terms import DEFAULT_TERMS_PATH, NOTICE_PATH, load_radlex_terms

SHARED_DATA = Path(
    os.environ.get("OPENVOCAB_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")
)
RADLEX_TABLE = SHARED_DATA / "radlex" / "tekram_Radlex_2017.csv"

TERMS = ["pleural effusion", "effusion", "liver", "lymph node", "vertebra", "bronchus", "metastasis", "node",
         "no", "T1", "non-ionic contrast", "Lungs"]


@pytest.fixture(scope="module")
def small_filter() -> RadLexFilter:
    return RadLexFilter(TERMS)


@pytest.mark.parametrize(
    "caption, expected",
    [
        ("No pleural effusion.", ["no", "pleural effusion", "effusion"]),
        ("NO PLEURAL EFFUSION", ["no", "pleural effusion", "effusion"]),
        ("Pleural effusion-thickening was not detected", ["pleural effusion", "effusion"]),
        ("Nodules in the deliver zone", []),  # no "no"/"node" inside words, no "liver" inside "deliver"
        ("Enlarged lymph nodes; vertebrae and bronchi normal; liver metastases",
         ["lymph node", "node", "vertebra", "bronchus", "liver", "metastasis"]),
        ("T1-weighted, non ionic contrast", ["T1", "non-ionic contrast"]),
        ("lungs clear", ["Lungs"]),  # a RadLex term that is itself plural keeps its own name
        ("", []),
        ("...", []),
    ],
)
def test_whole_word_case_insensitive_matching(small_filter, caption, expected):
    assert small_filter.matched_terms(caption) == expected


def test_plural_forms_cover_english_and_latin_endings():
    assert {"arteries", "vertebrae", "bronchi", "metastases", "diverticula", "masses"} <= {
        plural for term in ["artery", "vertebra", "bronchus", "metastasis", "diverticulum", "mass"]
        for plural in plural_forms(term)}


def test_loads_csv_owl_and_txt_exports(tmp_path):
    bioportal = tmp_path / "RADLEX.csv"
    bioportal.write_text('Class ID,Preferred Label,Synonyms,Obsolete\n'
                         'http://radlex.org/RID/RID58,liver,hepar|hepatic parenchyma,false\n'
                         'http://radlex.org/RID/RID1,old term,,true\n'
                         'http://radlex.org/RID/RID86,Spleen,,false\n', encoding="utf-8")
    assert load_radlex_terms(bioportal) == ["liver", "hepar", "hepatic parenchyma", "Spleen"]
    owl = tmp_path / "RadLex.owl"
    owl.write_text(
        '<?xml version="1.0"?>\n<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        'xmlns:owl="http://www.w3.org/2002/07/owl#" xmlns:rdfs="http://www.w3.org/2000/01/rdf-schema#" '
        'xmlns="http://www.radlex.org/RID/#">\n'
        '<owl:Class rdf:about="http://www.radlex.org/RID/#RID58"><Preferred_name xml:lang="en">liver</Preferred_name>'
        '<Synonym xml:lang="en">hepar</Synonym><Synonym xml:lang="de">Leber</Synonym></owl:Class>\n'
        '<owl:Class rdf:about="http://www.radlex.org/RID/#RID86"><rdfs:label>spleen</rdfs:label></owl:Class>\n'
        '</rdf:RDF>\n', encoding="utf-8")
    assert load_radlex_terms(owl) == ["liver", "hepar", "spleen"]
    txt = tmp_path / "terms.txt"
    txt.write_text("# comment\nLiver\nliver\n  pleural   effusion \n\nA|B\n", encoding="utf-8")
    assert load_radlex_terms(txt) == ["Liver", "pleural effusion", "A/B"]


def test_load_errors_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="--radlex"):
        load_radlex_terms(tmp_path / "missing.csv")
    (tmp_path / "terms.json").write_text("[]")
    with pytest.raises(ValueError, match=r"terms.json: unsupported extension"):
        load_radlex_terms(tmp_path / "terms.json")
    (tmp_path / "bad.csv").write_text("Name,Id\nliver,1\n")
    with pytest.raises(ValueError, match=r"bad.csv: expected a 'Preferred Label' column"):
        load_radlex_terms(tmp_path / "bad.csv")


def test_shipped_default_list_and_its_licence_notice():
    terms = load_radlex_terms()
    assert 35_000 < len(terms) < 45_000
    lowered = {t.lower() for t in terms}
    assert {"liver", "pleural effusion", "emphysema", "lymph node", "nodule"} <= lowered
    assert lowered.isdisjoint({"no", "normal", "left", "few", "patient", "wall", "middle"})  # generic words left out
    notice = NOTICE_PATH.read_text(encoding="utf-8")
    assert "Radiological Society of North America" in notice and "RadLex License Version 2.0" in notice
    assert "RADLEX_NOTICE.txt" in DEFAULT_TERMS_PATH.read_text(encoding="utf-8").splitlines()[0]


@pytest.mark.skipif(not RADLEX_TABLE.is_file(), reason="shared RadLex table not available")
def test_default_list_is_reproducible_from_the_shared_radlex_table(tmp_path):
    rebuilt = tmp_path / "terms.txt"
    build_default_terms(RADLEX_TABLE, rebuilt)
    assert rebuilt.read_text(encoding="utf-8") == DEFAULT_TERMS_PATH.read_text(encoding="utf-8")


@pytest.mark.skipif(not RADLEX_TABLE.is_file(), reason="shared RadLex table not available")
def test_full_radlex_table_loads_and_matches():
    full = RadLexFilter.from_file(RADLEX_TABLE)
    assert full.n_terms > 45_000
    assert {"pleural effusion", "no", "normal"} <= set(full.matched_terms("No pleural effusion, normal heart"))
