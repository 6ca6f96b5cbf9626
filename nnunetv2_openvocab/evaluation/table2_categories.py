"""OpenVocabCT Table II's categories (vertebrae, cardiac, muscles, organs, ribs) for TotalSegmentator labels.

The grouping is data (``data/totalsegmentator_table2_categories.json``): TotalSegmentator's own five model
parts, for v1's 104 and v2's 117 class names. A dataset's labels are TotalSegmentator's when every structure
label is a class of one version; names that both versions share but group differently (the esophagus is
"cardiac" in v1, an organ in v2) follow v2 unless only v1 fits or the caller names the version.

A prompt belongs to a category when all its targets do ("left & right kidney" -> organs); a prompt whose
targets span categories belongs to none. A category's score is the mean of its prompts' means (Table II
averages classes) and "average" is the mean over the categories that have prompts, as Table II's "Avg".
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

from nnunetv2_openvocab.evaluation.prompt_sets import PromptSet
from nnunetv2_openvocab.evaluation.summary import EVALUATED, METRICS, nan_mean

CATEGORY_FILE = Path(__file__).resolve().parents[1] / "data" / "totalsegmentator_table2_categories.json"
VERSIONS = ("v2", "v1")  # detection order: v2 wins when the labels fit both


@dataclass(frozen=True)
class CategoryMap:
    version: str
    categories: tuple  # Table II's column order
    category_of: Mapping[str, str]  # TotalSegmentator class name -> category


def load_category_maps(path: Path = CATEGORY_FILE) -> Dict[str, CategoryMap]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return {
        version: CategoryMap(version, tuple(data["categories"]),
                             {name: category for category in data["categories"] for name in data[version][category]})
        for version in VERSIONS
    }


def detect_category_map(label_names: Iterable[str], version: Optional[str] = None) -> Optional[CategoryMap]:
    """The category map that covers every label, or None when the labels are not TotalSegmentator's.

    ``version`` ("v1"/"v2") forces one map and raises ValueError if a label is not one of its classes.
    """
    names = set(label_names)
    maps = load_category_maps()
    if version is not None:
        if version not in maps:
            raise ValueError(f"unknown TotalSegmentator version {version!r}; use one of {sorted(maps)}")
        unknown = sorted(names - set(maps[version].category_of))
        if unknown:
            raise ValueError(f"labels {unknown[:5]} are not TotalSegmentator {version} classes, so Table II "
                             "categories do not apply; leave the version out to detect it")
        return maps[version]
    return next((maps[v] for v in VERSIONS if names and names <= set(maps[v].category_of)), None)


def prompt_categories(prompt_set: PromptSet, category_map: CategoryMap) -> Dict[str, str]:
    """{prompt: category} for the prompts whose targets all fall in one category."""
    result = {}
    for prompt in prompt_set.prompts:
        categories = {category_map.category_of.get(target) for target in prompt.targets}
        if len(categories) == 1 and None not in categories:
            result[prompt.prompt] = categories.pop()
    return result


def category_summary(mean_by_prompt: Mapping[str, Mapping], categories_of_prompts: Mapping[str, str],
                     category_map: CategoryMap) -> Dict:
    """Table II row: per category the mean of its prompts' mean DSC and NSD, and the average over categories."""
    per_category = {}
    for category in category_map.categories:
        prompts = [p for p, c in categories_of_prompts.items() if c == category]
        per_category[category] = {
            **{metric: nan_mean([mean_by_prompt[p][metric] for p in prompts]) for metric in METRICS},
            "prompts": prompts,
        }
    return {
        "version": category_map.version,
        "categories": per_category,
        "average": {metric: nan_mean([per_category[c][metric] for c in category_map.categories if per_category[c]["prompts"]])
                    for metric in METRICS},
        "rule": "category = mean over its prompts' means; average = mean over categories with prompts (Table II)",
    }


def per_case_category_means(rows: Sequence[Mapping], categories_of_prompts: Mapping[str, str]) -> Dict:
    """{(case, category): {metric: mean over that case's evaluated prompts of the category}}."""
    grouped: Dict[tuple, Dict[str, List[float]]] = {}
    for row in rows:
        category = categories_of_prompts.get(row["prompt"])
        if category is None or row["status"] != EVALUATED:
            continue
        values = grouped.setdefault((row["case"], category), {metric: [] for metric in METRICS})
        for metric in METRICS:
            values[metric].append(row[metric])
    return {key: {metric: nan_mean(values[metric]) for metric in METRICS} for key, values in grouped.items()}
