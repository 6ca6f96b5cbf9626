"""Load RadLex term lists from the official exports, or from the default list shipped with the package.

Supported files (chosen by extension):
- ``.csv``: BioPortal's RadLex CSV export (``Preferred Label`` plus ``|``-separated ``Synonyms``;
  rows whose ``Obsolete`` column is true are skipped) or a flat table with a ``Term`` column
  (e.g. ``tekram_Radlex_2017.csv``: Term, RID, Parent_RID);
- ``.owl`` / ``.rdf`` / ``.xml``: RSNA's RadLex OWL release (``Preferred_name``, ``Synonym``,
  ``rdfs:label``, SKOS labels; English or untagged only), read as a stream;
- ``.txt``: one term per line, ``#`` starts a comment line (the shipped default's format).

Terms come back stripped, de-duplicated case-insensitively, in file order. ``|`` inside a term is
replaced by ``/`` because captions.csv joins matched terms with ``|``.
"""
from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Callable, Iterable, Iterator

import pandas as pd

DATA_FOLDER = Path(__file__).resolve().parent / "data"
DEFAULT_TERMS_PATH = DATA_FOLDER / "radlex_default_terms.txt"
NOTICE_PATH = DATA_FOLDER / "RADLEX_NOTICE.txt"

_OWL_LABEL_TAGS = {"Preferred_name", "Synonym", "label", "prefLabel", "altLabel"}
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def _terms_from_txt(path: Path) -> Iterator[str]:
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.lstrip().startswith("#"):
            yield line


def _terms_from_csv(path: Path) -> Iterator[str]:
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if "Preferred Label" in table.columns:
        if "Obsolete" in table.columns:
            table = table[table["Obsolete"].str.lower() != "true"]
        synonyms = table["Synonyms"] if "Synonyms" in table.columns else pd.Series([""] * len(table))
        for preferred, synonym_field in zip(table["Preferred Label"], synonyms):
            yield preferred
            yield from synonym_field.split("|")
    elif "Term" in table.columns:
        yield from table["Term"]
    else:
        raise ValueError(
            f"{path}: expected a 'Preferred Label' column (BioPortal RadLex export) or a 'Term' column, "
            f"found {list(table.columns)}; export RadLex as CSV from BioPortal or pass the OWL file instead"
        )


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _terms_from_owl(path: Path) -> Iterator[str]:
    for _, element in ElementTree.iterparse(path, events=("end",)):
        if _local_name(element.tag) in _OWL_LABEL_TAGS and element.text:
            language = element.get(_XML_LANG, "en")
            if language.lower().startswith("en"):
                yield element.text
        # classes hold all their labels as children, so each finished class can be dropped
        if _local_name(element.tag) == "Class":
            element.clear()


_LOADERS: dict[str, Callable[[Path], Iterator[str]]] = {
    ".txt": _terms_from_txt,
    ".csv": _terms_from_csv,
    ".owl": _terms_from_owl,
    ".rdf": _terms_from_owl,
    ".xml": _terms_from_owl,
}


def clean_terms(raw_terms: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    terms = []
    for raw in raw_terms:
        term = " ".join(str(raw).split()).replace("|", "/")
        if term and term.lower() not in seen:
            seen.add(term.lower())
            terms.append(term)
    return terms


def load_radlex_terms(path: str | Path | None = None) -> list[str]:
    """Terms from ``path``, or the shipped default list (see data/RADLEX_NOTICE.txt) when None."""
    path = Path(path) if path is not None else DEFAULT_TERMS_PATH
    if not path.is_file():
        raise FileNotFoundError(f"RadLex file {path} does not exist; pass --radlex with a RadLex CSV/OWL export")
    loader = _LOADERS.get(path.suffix.lower())
    if loader is None:
        raise ValueError(f"RadLex file {path}: unsupported extension {path.suffix!r}; use one of {sorted(_LOADERS)}")
    terms = clean_terms(loader(path))
    if not terms:
        raise ValueError(f"RadLex file {path} holds no terms; check that it is a RadLex export")
    return terms
