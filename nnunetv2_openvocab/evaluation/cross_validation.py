"""One evaluation over nnU-Net's cross-validation: the ``fold_k/validation`` label maps of a results folder
(``nnUNetv2_train DATASET CONFIG k`` for every fold) gathered into one prediction folder, with the reference label
maps of exactly those cases, so ``evaluate_folder`` scores every case once, by the fold that held it out.

The gathered folders (``cv_predictions/``, ``cv_references/``, links into the results and reference folders) live in
the evaluation's output folder; a case validated by two folds, a missing fold or a prediction without a reference is
refused with the fix.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Dict, Mapping, Sequence, Tuple, Union

from nnunetv2_openvocab.evaluation.evaluate_folder import evaluate_folder, load_dataset_json

CV_FOLDS = (0, 1, 2, 3, 4)  # nnU-Net's default five folds


def validation_label_maps(results_folder: Path, folds: Sequence[int], file_ending: str) -> Dict[str, Path]:
    """{case: label map} over ``fold_k/validation`` of every fold in ``folds``."""
    found: Dict[str, Path] = {}
    missing = [k for k in folds if not (results_folder / f"fold_{k}" / "validation").is_dir()]
    if missing:
        raise FileNotFoundError(f"{results_folder}: no fold_k/validation for folds {missing}. Train them "
                                f"(nnUNetv2_train DATASET CONFIGURATION FOLD, which validates at the end), or "
                                f"pass --cv-folds with the folds you trained.")
    for k in folds:
        for path in sorted((results_folder / f"fold_{k}" / "validation").glob(f"*{file_ending}")):
            case = path.name[: -len(file_ending)]
            if case in found:
                raise ValueError(f"case {case} is validated by two folds ({found[case].parent.parent.name} and "
                                 f"fold_{k}); the folds of one cross-validation hold out each case once.")
            found[case] = path
    if not found:
        raise FileNotFoundError(f"{results_folder}: the validation folders of folds {list(folds)} hold no "
                                f"*{file_ending} label map. Rerun nnUNetv2_train ... --val for those folds.")
    return found


def _link_all(files: Mapping[str, Path], folder: Path, file_ending: str) -> None:
    if folder.exists():
        shutil.rmtree(folder)  # ours: rebuilt from the results each time
    folder.mkdir(parents=True)
    for case, path in files.items():
        os.symlink(path.resolve(), folder / f"{case}{file_ending}")


def gather_cross_validation(results_folder: Union[str, Path], reference_folder: Union[str, Path],
                            output_folder: Union[str, Path], file_ending: str,
                            folds: Sequence[int] = CV_FOLDS) -> Tuple[Path, Path]:
    """(prediction folder, reference folder) holding every validated case once, inside ``output_folder``."""
    results_folder, reference_folder = Path(results_folder), Path(reference_folder)
    predictions = validation_label_maps(results_folder, folds, file_ending)
    references = {case: reference_folder / f"{case}{file_ending}" for case in predictions}
    unknown = [case for case, path in references.items() if not path.is_file()]
    if unknown:
        raise FileNotFoundError(f"{reference_folder}: no reference label map for validated cases {unknown[:5]}. "
                                f"Pass the dataset's labelsTr with -ref.")
    gathered = Path(output_folder) / "cv_predictions", Path(output_folder) / "cv_references"
    _link_all(predictions, gathered[0], file_ending)
    _link_all(references, gathered[1], file_ending)
    return gathered


def evaluate_cross_validation(results_folder: Union[str, Path], reference_folder: Union[str, Path],
                              output_folder: Union[str, Path], dataset_json: Union[None, str, Path] = None,
                              folds: Sequence[int] = CV_FOLDS, **evaluation) -> Dict:
    """``evaluate_folder`` over the gathered folds; ``dataset_json`` defaults to the one nnU-Net copies into the
    results folder; ``evaluation``: evaluate_folder's other keyword arguments."""
    dataset_json = Path(dataset_json or Path(results_folder) / "dataset.json")
    dataset, _ = load_dataset_json(dataset_json)
    predictions, references = gather_cross_validation(results_folder, reference_folder, output_folder,
                                                      dataset.get("file_ending", ".nii.gz"), folds)
    return evaluate_folder(references, predictions, dataset_json, output_folder, **evaluation)
