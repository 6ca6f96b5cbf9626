"""``OpenVocabPredictor``: free-text prompts -> binary masks in the input's original geometry.

Notebook use::

    predictor = OpenVocabPredictor(device=torch.device("cpu"))
    predictor.initialize_from_trained_model_folder(model_folder, use_folds=("all",))
    masks = predictor.predict_single_image("ct.nii.gz", ["liver", "renal organs"])   # {prompt: uint8 array}
    predictor.predict_from_files("images/", "out/", prompts=["liver"], options=OutputOptions(statistics=True))

Per image: nnU-Net's preprocessing (plans' reader, crop, normalisation, resampling), one sliding-window pass
whose backbone serves every prompt (prompt_readout), then per prompt: logits -> original geometry -> mask
(and, with ``save_probabilities``, its float16 probability map) -> written and freed (original_geometry).
Prompts are grounded first (grounding: a prompt the taxonomy
resolves is answered with its training labels' queries, a union of them from the same pass), and each answer
gets a presence status (presence). Embeddings: the canonical training prompts' come from the checkpoint
(``head.default_embeddings``); others from an embedding bank (``use_embedding_bank``) or else the on-disk
cache shared with training (the text encoder is loaded only for prompts never embedded before).
``predict_from_files`` takes nnU-Net's scale-out options: one part of the cases (case_parts) and background
preprocessing/export processes (background_workers).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import SimpleITK as sitk
import torch

from nnunetv2_openvocab.constants import DEFAULT_STEP_SIZE, mixed_precision
from nnunetv2_openvocab.inference.background_workers import Workers
from nnunetv2_openvocab.inference.case_parts import CasePart
from nnunetv2_openvocab.inference.case_preprocessing import preprocess_array
from nnunetv2_openvocab.inference.file_prediction import PredictionRun, predict_files
from nnunetv2_openvocab.inference.input_images import (check_case, check_voxel_values, find_cases, read_case,
                                                       sitk_image_to_case_arrays)
from nnunetv2_openvocab.inference.model_loading import DEFAULT_CHECKPOINT, Fold, TrainedModel, load_trained_model
from nnunetv2_openvocab.inference.original_geometry import OriginalGeometry
from nnunetv2_openvocab.inference.patient_side import PatientFrame, patient_frame
from nnunetv2_openvocab.inference.outputs.case_outputs import OutputOptions
from nnunetv2_openvocab.inference.outputs.prompt_report import FAR_THRESHOLD, PromptReport, build_prompt_report
from nnunetv2_openvocab.inference.prompt_answers import PromptAnswer, QueryPlan, answer_prompts
from nnunetv2_openvocab.inference.prompt_jobs import PredictionJob, jobs_for_cases, load_prompts_file, validate_prompts
from nnunetv2_openvocab.inference.prompt_readout import choose_readout
from nnunetv2_openvocab.inference.sliding_window import BlendedVolume, SlidingWindow
from nnunetv2_openvocab.prompts.definition_route import calibrated_definition_threshold
from nnunetv2_openvocab.prompts.grounding import MATCH_THRESHOLD, Grounding, PromptGrounder
from nnunetv2_openvocab.text.embedding_bank import EmbeddingBank, load_embedding_bank
from nnunetv2_openvocab.text.embedding_cache import PromptEmbeddingCache

logger = logging.getLogger(__name__)

ImageInput = Union[str, Path, sitk.Image, np.ndarray]


class OpenVocabPredictor:
    def __init__(self, tile_step_size: float = DEFAULT_STEP_SIZE, use_mirroring: bool = True,
                 device: Optional[torch.device] = None, show_progress: bool = True,
                 embedding_cache_root: Optional[Union[str, Path]] = None, grounding: str = "auto",
                 grounding_threshold: float = MATCH_THRESHOLD, held_out_prompts: Sequence[str] = (),
                 side_check: bool = True):
        self.tile_step_size = tile_step_size
        self.use_mirroring = use_mirroring
        self.device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.show_progress = show_progress
        self.embedding_cache_root = embedding_cache_root
        self.grounding, self.grounding_threshold = grounding, grounding_threshold
        self.held_out_prompts = tuple(held_out_prompts)  # grounding's held-out option (prompts/grounding.py)
        # off only to compare the network's raw masks with nnU-Net's predictor (patient_side: sided answers unchecked)
        self.side_check = side_check
        self._model: Optional[TrainedModel] = None
        self._cache: Optional[PromptEmbeddingCache] = None
        self._bank: Optional[EmbeddingBank] = None
        self._embeddings: Dict[str, torch.Tensor] = {}
        self._groundings: Dict[str, Grounding] = {}
        self._twin_queries: Dict[str, str] = {}

    # ---- model and prompts -------------------------------------------------------------------------------------
    def initialize_from_trained_model_folder(self, model_folder: Union[str, Path],
                                             use_folds: Optional[Sequence[Fold]] = None,
                                             checkpoint_name: str = DEFAULT_CHECKPOINT) -> "OpenVocabPredictor":
        self._model = load_trained_model(model_folder, use_folds, checkpoint_name)
        self._model.network.to(self.device)
        spec = self._model.spec
        self._cache = PromptEmbeddingCache(spec.text_encoder, spec.text_encoder_fingerprint,
                                           self.embedding_cache_root)
        # the canonical prompts' embeddings as trained: no text encoder needed for them
        self._embeddings = dict(zip(self._model.canonical_prompts, self._model.network.head.default_embeddings.cpu()))
        self._groundings, self._twin_queries = {}, {}
        return self

    def use_embedding_bank(self, path: Union[str, Path]) -> "OpenVocabPredictor":
        """Take every embedding not stored in the checkpoint from a bank (text/embedding_bank.py): the text encoder is
        then never loaded. Refuses a bank made with another encoder."""
        bank = load_embedding_bank(path)
        spec = self.model.spec
        bank.check_encoder(spec.text_encoder_fingerprint, spec.text_encoder, spec.embedding_dim)
        self._bank = bank
        return self

    @property
    def model(self) -> TrainedModel:
        if self._model is None:
            raise RuntimeError("Call initialize_from_trained_model_folder(model_folder) before predicting.")
        return self._model

    @property
    def embedding_cache(self) -> PromptEmbeddingCache:
        self.model  # noqa: B018 - raises the initialisation error
        return self._cache

    @property
    def embedding_bank_path(self) -> Optional[str]:
        return str(self._bank.path) if self._bank is not None else None

    @property
    def training_prompts(self) -> List[str]:
        """The model's canonical prompt of every training label: the default prompts."""
        return self.model.canonical_prompts

    def embed(self, prompts: Sequence[str]) -> torch.Tensor:
        """(P, E) embeddings, computed once per prompt and predictor (disk cache shared with training)."""
        missing = [p for p in dict.fromkeys(prompts) if p not in self._embeddings]
        if missing:
            source = self._bank if self._bank is not None else self.embedding_cache
            self._embeddings.update(zip(missing, source.embed(missing)))
        return torch.stack([self._embeddings[p] for p in prompts])

    def ground(self, prompts: Sequence[str]) -> List[Grounding]:
        """How each prompt is answered (grounding), resolved once per prompt and predictor."""
        missing = [p for p in dict.fromkeys(prompts) if p not in self._groundings]
        if missing:
            spec = self.model.spec
            grounder = PromptGrounder(spec.training_prompts, self.embed,
                                      match_threshold=self.grounding_threshold, held_out=self.held_out_prompts,
                                      definition_threshold=calibrated_definition_threshold(spec.text_encoder))
            self._groundings.update((g.prompt, g) for g in grounder.ground(missing, self.grounding))
            self._twin_queries = grounder.twin_queries if self.grounding != "text" else {}
        return [self._groundings[p] for p in prompts]

    def prompt_report(self, prompts: Sequence[str], far_threshold: float = FAR_THRESHOLD) -> PromptReport:
        spec = self.model.spec
        return build_prompt_report(prompts, spec.training_prompts, self.embed, spec.text_encoder,
                                   far_threshold=far_threshold, groundings=self.ground(prompts))

    # ---- one image ---------------------------------------------------------------------------------------------
    def _sliding_window(self, accumulation_dtype: torch.dtype) -> SlidingWindow:
        mirror_axes = self.model.mirror_axes if self.use_mirroring else None
        return SlidingWindow(self.model.configuration_manager.patch_size, self.tile_step_size, mirror_axes,
                             self.device, accumulation_dtype, self.show_progress)

    def _blend(self, data: torch.Tensor, readout, window: SlidingWindow) -> BlendedVolume:
        padded, volume = window.start(data, readout.num_channels)
        network, folds = self.model.network, self.model.fold_state_dicts
        with mixed_precision(self.device):
            for index, state_dict in enumerate(folds):
                if len(folds) > 1:
                    network.load_state_dict(state_dict)
                window.accumulate(volume, padded, readout.tile_function,
                                  f"Sliding window (fold {self.model.folds[index]})")
        return volume

    def preprocess(self, data: np.ndarray, properties: dict) -> np.ndarray:
        """nnU-Net's preprocessing of (C, *spatial) ``data``; adds the crop/resampling record to ``properties``."""
        model = self.model
        return preprocess_array(data, properties, model.plans_manager, model.configuration_manager, model.dataset_json)

    def iter_masks(self, data: np.ndarray, properties: dict,
                   prompts: Sequence[str]) -> Iterator[Tuple[int, np.ndarray]]:
        """Yield (prompt index, uint8 mask in the input's array layout), one prompt at a time.

        ``data`` (C, *spatial) and ``properties`` as returned by the plans' reader (read_case)."""
        frame = patient_frame(data[0], properties) if self.side_check else None
        return self.masks_from_preprocessed(self.preprocess(data, properties), properties, prompts, frame)

    def masks_from_preprocessed(self, preprocessed: np.ndarray, properties: dict, prompts: Sequence[str],
                                frame: Optional[PatientFrame] = None) -> Iterator[Tuple[int, np.ndarray]]:
        """``iter_masks`` after ``preprocess``; hand ``preprocessed`` over (keep no reference): it is freed once
        the sliding window is done. ``frame``: ``patient_frame`` of the image as read (without it, sided prompts
        are reported as not side-checked)."""
        return ((answer.index, answer.mask) for answer in self.answers_from_preprocessed(
            preprocessed, properties, prompts, frame=frame))

    def answers_from_preprocessed(self, preprocessed: np.ndarray, properties: dict, prompts: Sequence[str],
                                  probabilities: bool = False,
                                  frame: Optional[PatientFrame] = None) -> Iterator[PromptAnswer]:
        """Each prompt's mask and presence, in prompt order, from one sliding-window pass (prompt_answers).
        ``probabilities``: also each prompt's float16 probability map, one prompt at a time; ``frame``: the
        patient's sides, for the side checks."""
        model = self.model
        groundings = self.ground(prompts)
        plan = QueryPlan.of(groundings, self._twin_queries)
        readout = choose_readout(model.network, self.embed(plan.queries).to(self.device), len(model.folds))
        volume = self._blend(torch.from_numpy(preprocessed), readout, self._sliding_window(readout.accumulation_dtype))
        del preprocessed  # free it before the per-prompt exports
        geometry = OriginalGeometry(properties, model.plans_manager, model.configuration_manager,
                                    volume.weights[volume.unpad].shape)
        label_of_query = dict(zip(model.canonical_prompts, model.spec.label_names))
        yield from answer_prompts(prompts, groundings, plan, readout, volume, geometry, label_of_query, probabilities,
                                  frame)

    def predict_single_image(self, image: ImageInput, prompts: Optional[Sequence[str]] = None,
                             properties: Optional[dict] = None) -> Dict[str, np.ndarray]:
        """{prompt: uint8 mask} in the image's own array layout and geometry.

        ``image``: an image file or DICOM series folder; a SimpleITK image; or a (C, *spatial) array with the
        ``properties`` the plans' reader returns (at least ``spacing``)."""
        prompts = validate_prompts(self.training_prompts if prompts is None else prompts)
        data, properties = self._image_arrays(image, properties)
        return {prompts[i]: mask for i, mask in self.iter_masks(data, properties, prompts)}

    def _image_arrays(self, image: ImageInput, properties: Optional[dict]) -> Tuple[np.ndarray, dict]:
        if isinstance(image, sitk.Image):
            data, properties = sitk_image_to_case_arrays(image)
            check_voxel_values(data, "the given SimpleITK image")
            return data, properties
        if isinstance(image, np.ndarray):
            if properties is None or "spacing" not in properties:
                raise ValueError("An array input needs properties={'spacing': [...]} (per array axis, as nnU-Net's "
                                 "readers return them).")
            data = image[None] if image.ndim == 3 else image
            check_voxel_values(data, "the given array")
            return data, dict(properties)
        cases = find_cases(image, self.model.dataset_json["file_ending"])
        if len(cases) != 1:
            raise ValueError(f"{image} holds {len(cases)} cases; predict_single_image takes one image.")
        check_case(cases[0], self.model.num_input_channels)
        return read_case(cases[0], self.model.plans_manager.image_reader_writer_class)

    # ---- batches of files --------------------------------------------------------------------------------------
    def make_jobs(self, inputs: Optional[Union[str, Path]] = None, prompts: Optional[Sequence[str]] = None,
                  prompts_file: Optional[Union[str, Path]] = None) -> List[PredictionJob]:
        """Jobs from an input path (every case gets ``prompts``) or from a prompts file; all inputs checked."""
        if (inputs is None) == (prompts_file is None):
            raise ValueError("Give either the input images (-i) or a prompts file (--prompts-file), not both.")
        default_prompts = validate_prompts(prompts) if prompts is not None else tuple(self.training_prompts)
        file_ending = self.model.dataset_json["file_ending"]
        jobs = (load_prompts_file(prompts_file, file_ending, default_prompts) if prompts_file is not None
                else jobs_for_cases(find_cases(inputs, file_ending), default_prompts))
        for job in jobs:
            check_case(job.case, self.model.num_input_channels)
        return jobs

    def predict_from_files(self, inputs: Optional[Union[str, Path]], output_folder: Union[str, Path],
                           prompts: Optional[Sequence[str]] = None, prompts_file: Optional[Union[str, Path]] = None,
                           options: OutputOptions = OutputOptions(), skip_existing: bool = False,
                           far_threshold: float = FAR_THRESHOLD, part: CasePart = CasePart(),
                           workers: Workers = Workers()) -> PredictionRun:
        """Predict every case of ``inputs`` (or of ``prompts_file``) into ``output_folder`` (file_prediction).

        All inputs, case names and the output folder are checked and all prompts embedded before the first file
        is written, so a bad input or a missing text encoder leaves no output behind. ``skip_existing`` skips
        cases whose outputs all exist and are complete. A folder that already holds predictions of the same
        model keeps them: ``prediction_settings.json`` and the prompt report then cover every run's cases.
        ``part`` predicts one of nnU-Net's -num_parts shares of the cases (the settings cover all cases, so every
        part writes the same ones); ``workers`` preprocess and export in background processes (-npp/-nps)."""
        return predict_files(self, inputs, output_folder, prompts, prompts_file, options, skip_existing,
                             far_threshold, part, workers)
