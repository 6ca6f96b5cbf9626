"""``run_prediction``: load a trained model and predict files with prompts in one call (the plain function behind
``nnUNetv2_openvocab_predict``; also used by the unseen-prompt evaluation, the demo and notebooks)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import torch

from nnunetv2_openvocab.constants import DEFAULT_STEP_SIZE
from nnunetv2_openvocab.inference.background_workers import Workers
from nnunetv2_openvocab.inference.case_parts import CasePart
from nnunetv2_openvocab.inference.model_loading import DEFAULT_CHECKPOINT, Fold
from nnunetv2_openvocab.inference.outputs.case_outputs import OutputOptions
from nnunetv2_openvocab.inference.outputs.prompt_report import FAR_THRESHOLD
from nnunetv2_openvocab.inference.file_prediction import PredictionRun
from nnunetv2_openvocab.inference.predictor import OpenVocabPredictor
from nnunetv2_openvocab.prompts.grounding import MATCH_THRESHOLD


def run_prediction(model_folder: Union[str, Path], output_folder: Union[str, Path],
                   inputs: Optional[Union[str, Path]] = None, prompts: Optional[Sequence[str]] = None,
                   prompts_file: Optional[Union[str, Path]] = None, folds: Optional[Sequence[Fold]] = None,
                   checkpoint_name: str = DEFAULT_CHECKPOINT, step_size: float = DEFAULT_STEP_SIZE, use_mirroring: bool = True,
                   device: Optional[torch.device] = None, options: OutputOptions = OutputOptions(),
                   skip_existing: bool = False, far_threshold: float = FAR_THRESHOLD,
                   show_progress: bool = True,
                   embedding_cache_root: Optional[Union[str, Path]] = None, grounding: str = "auto",
                   grounding_threshold: float = MATCH_THRESHOLD,
                   embedding_bank: Optional[Union[str, Path]] = None, part: CasePart = CasePart(),
                   workers: Workers = Workers(), held_out_prompts: Sequence[str] = (),
                   side_check: bool = True) -> PredictionRun:
    """Load the model and predict; ``embedding_cache_root`` defaults to $nnUNet_openvocab_cache; with
    ``embedding_bank`` (an nnUNetv2_openvocab_embed file) the text encoder is never loaded; ``held_out_prompts``
    withdraws an evaluated set's texts from grounding's taxonomy look-up (prompts/grounding.py)."""
    predictor = OpenVocabPredictor(step_size, use_mirroring, device, show_progress, embedding_cache_root, grounding,
                                   grounding_threshold, held_out_prompts, side_check)
    predictor.initialize_from_trained_model_folder(model_folder, folds, checkpoint_name)
    if embedding_bank is not None:
        predictor.use_embedding_bank(embedding_bank)
    return predictor.predict_from_files(inputs, output_folder, prompts, prompts_file, options, skip_existing,
                                        far_threshold, part, workers)
