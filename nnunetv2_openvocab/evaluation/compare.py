"""Compare two evaluations (the output folders of ``nnUNetv2_openvocab_evaluate``) case by case.

For every prompt, every Table II category (when the labels are TotalSegmentator's) and all prompts together,
and for DSC and NSD: the mean of each evaluation over the cases where both have a value, the mean paired
difference B - A (positive: B is better), and two paired tests over those cases, as the paper reports
significance (Tables V and XI): Student's paired t-test (``scipy.stats.ttest_rel``) and the Wilcoxon
signed-rank test (``scipy.stats.wilcoxon``, two-sided). A category's (or all prompts') value in a case is the
mean over that case's evaluated prompts of the category. With fewer than two pairs, or when every
difference is zero, a test has no p-value (NaN).

Both evaluations must score the same cases and prompts at the same NSD tolerance; anything else is refused
with a message that says what differs.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Tuple, Union

import numpy as np
from scipy import stats

from nnunetv2_openvocab.evaluation.report_writers import OUTPUT_FILES
from nnunetv2_openvocab.evaluation.summary import EVALUATED, METRICS
from nnunetv2_openvocab.evaluation.table2_categories import per_case_category_means
from nnunetv2_openvocab.json_input import read_json_file

ALL_PROMPTS = "all prompts"
RERUN = "Rerun nnUNetv2_openvocab_evaluate into that folder."
LEVELS = ("prompt", "category", "all")


@dataclass(frozen=True)
class Evaluation:
    folder: Path
    summary: Mapping

    @property
    def cases(self) -> set:
        return {row["case"] for row in self.summary["per_case"]}

    @property
    def prompts(self) -> List[str]:
        return [p["prompt"] for p in self.summary["prompts"]]

    @property
    def prompt_categories(self) -> Dict[str, str]:
        table2 = self.summary.get("table2")
        if not table2:
            return {}
        return {prompt: category for category, entry in table2["categories"].items() for prompt in entry["prompts"]}


def _as_float(value) -> float:
    return float("nan") if value is None else float(value)


def load_evaluation(folder: Union[str, Path]) -> Evaluation:
    folder = Path(folder)
    summary_file = folder / OUTPUT_FILES["json"]
    if not folder.is_dir():
        raise FileNotFoundError(f"evaluation folder {folder} does not exist; run nnUNetv2_openvocab_evaluate "
                                f"-o {folder} first")
    if not summary_file.is_file():
        raise FileNotFoundError(f"{summary_file} is missing; {folder} is not an nnUNetv2_openvocab_evaluate output "
                                "folder (rerun the evaluation into it)")
    summary = read_json_file(summary_file, RERUN)
    missing = [key for key in ("settings", "prompts", "per_case") if not isinstance(summary, dict) or key not in summary]
    if missing:
        raise ValueError(f"{summary_file} lacks {missing}; it was not written by nnUNetv2_openvocab_evaluate "
                         "(rerun the evaluation)")
    _check_summary(summary, summary_file)
    for row in summary["per_case"]:
        for metric in METRICS:
            row[metric] = _as_float(row.get(metric))
    return Evaluation(folder, summary)


def _records(value, keys: Sequence[str]) -> bool:
    """A list of objects whose ``keys`` all hold strings."""
    return isinstance(value, list) and all(isinstance(row, dict) and all(isinstance(row.get(k), str) for k in keys)
                                           for row in value)


def _check_summary(summary: Mapping, summary_file: Path) -> None:
    """Refuse a summary whose fields have the wrong types, naming the first such field."""
    table2 = summary.get("table2")
    categories = table2.get("categories") if isinstance(table2, dict) else None
    problems = {
        "settings": not isinstance(summary["settings"], dict),
        "prompts": not _records(summary["prompts"], ("prompt",)),
        "per_case": not _records(summary["per_case"], ("case", "prompt", "status")) or not all(
            row.get(metric) is None or (isinstance(row[metric], (int, float)) and not isinstance(row[metric], bool))
            for row in summary["per_case"] for metric in METRICS),
        "table2": bool(table2) and not (isinstance(categories, dict) and all(
            isinstance(entry, dict) and isinstance(entry.get("prompts"), list)
            and all(isinstance(prompt, str) for prompt in entry["prompts"]) for entry in categories.values())),
    }
    wrong = [field for field, bad in problems.items() if bad]
    if wrong:
        raise ValueError(f"{summary_file}: field {wrong[0]!r} does not have the layout nnUNetv2_openvocab_evaluate "
                         f"writes (per_case: a list of objects with 'case', 'prompt', 'status' and numeric metrics). "
                         f"{RERUN}")


def _difference(name: str, only_a: set, only_b: set, fix: str) -> str:
    return (f"the two evaluations score different {name}: only in A {sorted(only_a)[:5]}, only in B "
            f"{sorted(only_b)[:5]}; {fix}")


def check_comparable(a: Evaluation, b: Evaluation) -> None:
    """Raise ValueError naming the first difference that makes a paired comparison meaningless."""
    tolerance_a, tolerance_b = a.summary["settings"].get("tolerance_mm"), b.summary["settings"].get("tolerance_mm")
    if tolerance_a != tolerance_b:
        raise ValueError(f"NSD tolerances differ (A {tolerance_a} mm, B {tolerance_b} mm); evaluate both with the "
                         "same --tolerance-mm")
    if set(a.prompts) != set(b.prompts):
        raise ValueError(_difference("prompts", set(a.prompts) - set(b.prompts), set(b.prompts) - set(a.prompts),
                                     "evaluate both with the same --prompts-file"))
    if a.cases != b.cases:
        raise ValueError(_difference("cases", a.cases - b.cases, b.cases - a.cases,
                                     "evaluate both against the same -ref folder"))
    if a.prompt_categories != b.prompt_categories:
        raise ValueError("the two evaluations group prompts into different Table II categories; evaluate both "
                         "with the same dataset.json and --totalseg-version")


def paired_tests(values_a: Sequence[float], values_b: Sequence[float]) -> Dict:
    """Means, mean difference B - A and both paired tests over the pairs where A and B have values."""
    a, b = np.asarray(values_a, float), np.asarray(values_b, float)
    both = ~(np.isnan(a) | np.isnan(b))
    a, b = a[both], b[both]
    result = {"n_cases": int(both.sum()), "mean_a": float("nan"), "mean_b": float("nan"),
              "mean_difference": float("nan"), "t_statistic": float("nan"), "t_pvalue": float("nan"),
              "wilcoxon_statistic": float("nan"), "wilcoxon_pvalue": float("nan")}
    if a.size:
        result.update(mean_a=float(a.mean()), mean_b=float(b.mean()), mean_difference=float((b - a).mean()))
    if a.size >= 2 and np.any(b != a):
        with warnings.catch_warnings():  # constant non-zero differences: t is infinite, p 0; scipy warns
            warnings.simplefilter("ignore", RuntimeWarning)
            t_test = stats.ttest_rel(b, a)
            wilcoxon = stats.wilcoxon(b, a)
        result.update(t_statistic=float(t_test.statistic), t_pvalue=float(t_test.pvalue),
                      wilcoxon_statistic=float(wilcoxon.statistic), wilcoxon_pvalue=float(wilcoxon.pvalue))
    return result


def _per_case_prompt_values(evaluation: Evaluation) -> Dict[Tuple[str, str], Mapping]:
    return {(row["case"], row["prompt"]): row for row in evaluation.summary["per_case"] if row["status"] == EVALUATED}


def _all_prompts_means(evaluation: Evaluation) -> Dict[Tuple[str, str], Mapping]:
    everything = {prompt: ALL_PROMPTS for prompt in evaluation.prompts}
    return per_case_category_means(evaluation.summary["per_case"], everything)


def _series(values: Mapping[Tuple[str, str], Mapping], cases: Sequence[str], name: str, metric: str) -> List[float]:
    return [values[(case, name)][metric] if (case, name) in values else float("nan") for case in cases]


def compare_evaluations(folder_a: Union[str, Path], folder_b: Union[str, Path]) -> Dict:
    """Rows (level, name, metric, n_cases, means, difference B - A, t-test and Wilcoxon) for every prompt,
    category and all prompts together; see the module docstring."""
    a, b = load_evaluation(folder_a), load_evaluation(folder_b)
    check_comparable(a, b)
    cases = sorted(a.cases)
    categories = a.prompt_categories
    levels = {
        "prompt": (a.prompts, _per_case_prompt_values(a), _per_case_prompt_values(b)),
        "category": (list(dict.fromkeys(categories.values())),
                     per_case_category_means(a.summary["per_case"], categories),
                     per_case_category_means(b.summary["per_case"], categories)),
        "all": ([ALL_PROMPTS], _all_prompts_means(a), _all_prompts_means(b)),
    }
    rows = []
    for level, (names, values_a, values_b) in levels.items():
        for name in names:
            for metric in METRICS:
                tests = paired_tests(_series(values_a, cases, name, metric), _series(values_b, cases, name, metric))
                rows.append({"level": level, "name": name, "metric": metric, **tests})
    return {
        "settings": {
            "evaluation_a": str(a.folder), "evaluation_b": str(b.folder),
            "tolerance_mm": a.summary["settings"].get("tolerance_mm"), "cases": len(cases),
            "table2_version": (a.summary.get("table2") or {}).get("version"),
            "difference": "B - A (positive: B scores higher)",
            "tests": "paired over cases with values in both: scipy.stats.ttest_rel(B, A) and "
                     "scipy.stats.wilcoxon(B, A), two-sided; NaN with < 2 pairs or all differences zero",
        },
        "rows": rows,
    }
