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

import json
import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import SimpleITK as sitk
import torch
from nnunetv2.utilities.helpers import dummy_context
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from tqdm import tqdm

from nnunetv2_openvocab.inference.background_workers import ExportQueue, Workers, prefetched
from nnunetv2_openvocab.inference.case_outputs import (DICOM_SEG, CaseOutputWriter, OutputOptions, check_case_outputs,
                                                       expected_files)
from nnunetv2_openvocab.inference.case_parts import CasePart
from nnunetv2_openvocab.inference.dicom_seg import DICOM_SEG_ENDING, DicomSegWriter, check_dicom_seg_inputs
from nnunetv2_openvocab.inference.grounding import MATCH_THRESHOLD, TEXT, Grounding, PromptGrounder
from nnunetv2_openvocab.inference.input_images import (check_case, check_voxel_values, find_cases, read_case,
                                                       reader_writer_for, sitk_image_to_case_arrays)
from nnunetv2_openvocab.inference.model_loading import DEFAULT_CHECKPOINT, Fold, TrainedModel, load_trained_model
from nnunetv2_openvocab.inference.original_geometry import OriginalGeometry
from nnunetv2_openvocab.inference.patient_side import (PatientFrame, SideCheck, check_answer_side, patient_frame,
                                                       trim_label_mask)
from nnunetv2_openvocab.inference.prompt_jobs import (PredictionJob, all_prompts, jobs_for_cases, load_prompts_file,
                                                      validate_prompts)
from nnunetv2_openvocab.inference.presence import LogitSummary, Presence, presence
from nnunetv2_openvocab.inference.prompt_readout import cede_to_rivals, choose_readout
from nnunetv2_openvocab.inference.prompt_report import FAR_THRESHOLD, PromptReport, build_prompt_report, \
    write_prompt_report
from nnunetv2_openvocab.inference.sliding_window import BlendedVolume, SlidingWindow
from nnunetv2_openvocab.atomic_files import is_complete_file, write_json_atomic
from nnunetv2_openvocab.output_folder import OutputFolderError, check_output_folder
from nnunetv2_openvocab.text.embedding_bank import EmbeddingBank, load_embedding_bank
from nnunetv2_openvocab.text.embedding_cache import PromptEmbeddingCache

logger = logging.getLogger(__name__)

ImageInput = Union[str, Path, sitk.Image, np.ndarray]
SETTINGS_FILE = "prediction_settings.json"
# settings that must agree for two runs to share one output folder (their cases and reports are merged)
SHARED_SETTINGS = ("model_folder", "trainer", "folds", "patch_size", "tile_step_size", "mirror_axes", "text_encoder")


@dataclass
class PredictionRun:
    """What ``predict_from_files`` did: the prompt report (with grounding and presence), files written per case,
    cases skipped as done."""

    output_folder: Path
    report: PromptReport
    report_files: Tuple[Path, Path]
    written: Dict[str, List[Path]] = field(default_factory=dict)
    skipped: List[str] = field(default_factory=list)


@dataclass(frozen=True)
class PromptAnswer:
    """One prompt's mask in the input's array layout, with its presence figures and, if asked for, its float16
    probability map."""

    index: int
    mask: np.ndarray
    presence: Presence
    probabilities: Optional[np.ndarray] = None
    side_check: Optional[SideCheck] = None  # for a prompt that names a side (patient_side)


@dataclass
class PreprocessedCase:
    """A case after nnU-Net's preprocessing; ``image`` is the first input channel as read (statistics, previews);
    ``frame`` where the patient's left and midline are (side safety)."""

    data: Optional[np.ndarray]
    properties: dict
    image: Optional[np.ndarray] = None
    frame: Optional[PatientFrame] = None

    def take_data(self) -> np.ndarray:
        """Hand the preprocessed array over (this object keeps no reference), so it can be freed early."""
        data, self.data = self.data, None
        return data


def preprocess_array(data: np.ndarray, properties: dict, plans_manager: PlansManager,
                     configuration_manager: ConfigurationManager, dataset_json: dict) -> np.ndarray:
    """nnU-Net's preprocessing of (C, *spatial) ``data``; adds the crop/resampling record to ``properties``."""
    preprocessor = configuration_manager.preprocessor_class(verbose=False)
    preprocessed, _, _ = preprocessor.run_case_npy(data, None, properties, plans_manager, configuration_manager,
                                                   dataset_json)
    return preprocessed


def read_and_preprocess(job: PredictionJob, plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                        dataset_json: dict, keep_image: bool) -> PreprocessedCase:
    """Read and preprocess one job's image (module level: it also runs in background processes, which get the
    plans but not the network weights)."""
    data, properties = read_case(job.case, plans_manager.image_reader_writer_class)
    image = data[0] if keep_image else None
    frame = patient_frame(data[0], properties)
    return PreprocessedCase(preprocess_array(data, properties, plans_manager, configuration_manager, dataset_json),
                            properties, image, frame)


class OpenVocabPredictor:
    def __init__(self, tile_step_size: float = 0.5, use_mirroring: bool = True,
                 device: Optional[torch.device] = None, show_progress: bool = True,
                 embedding_cache_root: Optional[Union[str, Path]] = None, grounding: str = "auto",
                 grounding_threshold: float = MATCH_THRESHOLD):
        self.tile_step_size = tile_step_size
        self.use_mirroring = use_mirroring
        self.device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.show_progress = show_progress
        self.embedding_cache_root = embedding_cache_root
        self.grounding, self.grounding_threshold = grounding, grounding_threshold
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
        bank.check_encoder(spec.text_encoder_fingerprint, spec.text_encoder)
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
            grounder = PromptGrounder(spec.label_names, spec.text_prompts, self.embed,
                                      match_threshold=self.grounding_threshold)
            self._groundings.update((g.prompt, g) for g in grounder.ground(missing, self.grounding))
            self._twin_queries = grounder.twin_queries if self.grounding != "text" else {}
        return [self._groundings[p] for p in prompts]

    def prompt_report(self, prompts: Sequence[str], far_threshold: float = FAR_THRESHOLD) -> PromptReport:
        spec = self.model.spec
        return build_prompt_report(prompts, spec.text_prompts, self.embed, spec.text_encoder,
                                   far_threshold=far_threshold, groundings=self.ground(prompts))

    # ---- one image ---------------------------------------------------------------------------------------------
    def _sliding_window(self, accumulation_dtype: torch.dtype) -> SlidingWindow:
        mirror_axes = self.model.mirror_axes if self.use_mirroring else None
        return SlidingWindow(self.model.configuration_manager.patch_size, self.tile_step_size, mirror_axes,
                             self.device, accumulation_dtype, self.show_progress)

    def _blend(self, data: torch.Tensor, readout, window: SlidingWindow) -> BlendedVolume:
        padded, volume = window.start(data, readout.num_channels)
        network, folds = self.model.network, self.model.fold_state_dicts
        autocast = torch.autocast(self.device.type) if self.device.type == "cuda" else dummy_context()
        with autocast:
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
        frame = patient_frame(data[0], properties)
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
        """Each prompt's mask and presence, in prompt order. The grounded queries of all prompts share one
        sliding-window pass; a query's mask is computed once and kept only until the last prompt using it.
        ``probabilities``: also each prompt's float16 probability map (a union of queries takes their maximum,
        as its mask is their union), one prompt at a time: never a prompts x volume buffer."""
        model = self.model
        groundings = self.ground(prompts)
        answered = list(dict.fromkeys(q for g in groundings for q in g.queries))
        # a query cedes the voxels where one of its rivals scores higher: a sided label's other-side twin, and the
        # labels that cannot overlap an unlearnt structure's text query (both empty under text grounding)
        rivals = {q: (self._twin_queries[q],) for q in answered if q in self._twin_queries}
        rivals.update((g.queries[0], g.cedes_to) for g in groundings if g.cedes_to)
        queries = list(dict.fromkeys([*answered, *(r for q in rivals.values() for r in q)]))
        readout = choose_readout(model.network, self.embed(queries).to(self.device), len(model.folds))
        volume = self._blend(torch.from_numpy(preprocessed), readout, self._sliding_window(readout.accumulation_dtype))
        del preprocessed  # free it before the per-prompt exports
        geometry = OriginalGeometry(properties, model.plans_manager, model.configuration_manager,
                                    volume.weights[volume.unpad].shape)
        query_index = {q: i for i, q in enumerate(queries)}
        label_of_query = dict(zip(model.canonical_prompts, model.spec.label_names))
        last_use = {q: i for i, g in enumerate(groundings) for q in g.queries}
        computed: Dict[str, Tuple[Tuple[np.ndarray, int], LogitSummary, Optional[np.ndarray]]] = {}
        for index, grounding in enumerate(groundings):
            for query in grounding.queries:
                if query not in computed:
                    logits = readout.prompt_logits(volume, query_index[query])
                    if query in rivals:
                        cede_to_rivals(logits, readout, volume, [query_index[r] for r in rivals[query]])
                    mask, voxels = geometry.mask(logits)
                    probability = geometry.probabilities(logits) if probabilities else None
                    if query in label_of_query:  # a sided label's own mask keeps to its side of the midline
                        voxels -= trim_label_mask(label_of_query[query], mask, probability, frame)
                    computed[query] = ((mask, voxels), LogitSummary.of(logits), probability)
            parts = [computed[q] for q in grounding.queries]
            if len(parts) == 1:
                (mask, voxels), probability = parts[0][0], parts[0][2]
            else:
                mask = np.logical_or.reduce([m for (m, _), _, _ in parts]).astype(np.uint8)
                voxels = int(np.count_nonzero(mask))
                probability = np.maximum.reduce([p for _, _, p in parts]) if probabilities else None
            # a sided prompt's answer must lie on its side of the patient; a mask a later prompt reuses is copied
            shared = len(parts) == 1 and last_use[grounding.queries[0]] > index
            checked, side_check = check_answer_side(prompts[index], grounding, mask, probability, frame, shared), None
            if checked is not None:
                mask, probability, side_check = checked
                voxels = side_check.voxels - side_check.voxels_removed
            found = presence(voxels, [s for _, s, _ in parts], text_route=grounding.route == TEXT)
            yield PromptAnswer(index, mask, found, probability, side_check)
            for query in grounding.queries:
                if last_use[query] == index:
                    del computed[query]

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
        """Predict every case of ``inputs`` (or of ``prompts_file``) into ``output_folder``.

        All inputs, case names and the output folder are checked and all prompts embedded before the first file
        is written, so a bad input or a missing text encoder leaves no output behind. ``skip_existing`` skips
        cases whose outputs all exist and are complete. A folder that already holds predictions of the same
        model keeps them: ``prediction_settings.json`` and the prompt report then cover every run's cases.
        ``part`` predicts one of nnU-Net's -num_parts shares of the cases (the settings cover all cases, so every
        part writes the same ones); ``workers`` preprocess and export in background processes (-npp/-nps)."""
        output_folder = check_output_folder(output_folder, "-o", inputs)
        jobs = self.make_jobs(inputs, prompts, prompts_file)
        if options.output_type == DICOM_SEG:
            check_dicom_seg_inputs([job.case for job in jobs])
        file_ending = self.model.dataset_json["file_ending"]
        for job in jobs:
            check_case_outputs(job.case.case_id, job.prompts, job.case.output_ending(file_ending), options,
                               ", ".join(map(str, job.case.sources)))
        settings = _merged_settings(output_folder / SETTINGS_FILE, self._settings(jobs, options))
        prompts_of_run = all_prompts(jobs)
        self.embed([q for g in self.ground(prompts_of_run) for q in g.queries])
        report = self.prompt_report(list(dict.fromkeys(p for case in settings["cases"].values()
                                                       for p in case["prompts"])), far_threshold)
        run = PredictionRun(output_folder, report, write_prompt_report(report, output_folder))
        write_json_atomic(output_folder / SETTINGS_FILE, settings)
        todo = []
        for job in part.select(jobs):
            ending = job.case.output_ending(file_ending)
            if skip_existing and all(is_complete_file(p) for p in expected_files(output_folder, job.case.case_id,
                                                                                  job.prompts, ending, options)):
                run.skipped.append(job.case.case_id)
            else:
                todo.append(job)
        logger.info("Part %d of %d (counted from 0): %d of %d cases, %d already done", part.part_id, part.num_parts,
                    len(todo) + len(run.skipped), len(jobs), len(run.skipped))
        model = self.model
        load = partial(read_and_preprocess, plans_manager=model.plans_manager,
                       configuration_manager=model.configuration_manager, dataset_json=model.dataset_json,
                       keep_image=options.needs_image)
        with ExportQueue(workers.export) as export:
            # the first case has nothing to overlap with: a single case is read in this process
            preprocessing_processes = min(workers.preprocessing, max(len(todo) - 1, 0))
            for job, case in tqdm(prefetched(todo, load, preprocessing_processes), total=len(todo), desc="Cases",
                                  unit="case", disable=not self.show_progress):
                (run.written[job.case.case_id], report.presence[job.case.case_id],
                 report.side_checks[job.case.case_id]) = self._predict_case(
                    job, case, output_folder, job.case.output_ending(file_ending), options, export)
        run.report_files = write_prompt_report(report, output_folder)  # now with the presence of every case
        return run

    def _predict_case(self, job: PredictionJob, case: PreprocessedCase, output_folder: Path, ending: str,
                      options: OutputOptions, export: ExportQueue) -> Tuple[List[Path], Dict[str, Presence],
                                                                            Dict[str, SideCheck]]:
        plans_reader_writer = self.model.plans_manager.image_reader_writer_class
        answers = self.answers_from_preprocessed(case.take_data(), case.properties, job.prompts,
                                                 options.save_probabilities, case.frame)
        dicom_seg = None
        if options.output_type == DICOM_SEG:
            dicom_seg = DicomSegWriter(job.case.sources[0], job.prompts,
                                       output_folder / f"{job.case.case_id}{DICOM_SEG_ENDING}", self.model.folder.name)
        writer = CaseOutputWriter(output_folder, job.case.case_id, job.prompts, ending,
                                  reader_writer_for(job.case, plans_reader_writer), case.properties, options,
                                  case.image, dicom_seg, export)
        found: Dict[str, Presence] = {}
        side_checks: Dict[str, SideCheck] = {}
        for answer in answers:
            found[job.prompts[answer.index]] = answer.presence
            if answer.side_check is not None:
                side_checks[job.prompts[answer.index]] = answer.side_check
            writer.add(answer.index, answer.mask, answer.presence, answer.probabilities, answer.side_check)
        return writer.finish(), found, side_checks

    def _settings(self, jobs: Sequence[PredictionJob], options: OutputOptions) -> dict:
        model = self.model
        return {"model_folder": str(model.folder), "trainer": model.trainer_name, "folds": list(model.folds),
                "patch_size": list(model.configuration_manager.patch_size), "tile_step_size": self.tile_step_size,
                "mirror_axes": list(model.mirror_axes) if (self.use_mirroring and model.mirror_axes) else None,
                "device": str(self.device), "text_encoder": model.spec.text_encoder,
                "grounding": self.grounding, "grounding_threshold": self.grounding_threshold,
                "embedding_bank": str(self._bank.path) if self._bank is not None else None,
                "outputs": {"combined": options.combined, "statistics": options.statistics, "preview": options.preview,
                            "save_probabilities": options.save_probabilities, "output_type": options.output_type},
                "cases": {job.case.case_id: {"inputs": [str(p) for p in job.case.sources], "prompts": list(job.prompts)}
                          for job in jobs}}


def _merged_settings(path: Path, settings: dict) -> dict:
    """``settings`` plus the cases of an earlier run recorded in ``path``; refuses a folder that holds the
    predictions of another model or other sliding-window settings."""
    if not path.is_file():
        return settings
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
        differing = [key for key in SHARED_SETTINGS if previous[key] != settings[key]]
        previous_cases = dict(previous["cases"])
    except (ValueError, KeyError, TypeError) as error:
        raise OutputFolderError(f"{path} is damaged ({error!r}); delete it (the masks stay usable) or predict into "
                                f"a new -o.") from None
    if differing:
        raise OutputFolderError(f"{path.parent} holds predictions made with other settings ({', '.join(differing)} "
                                f"differ, see {path}). Predict into a new -o, or empty that folder.")
    return {**settings, "cases": {**previous_cases, **settings["cases"]}}
