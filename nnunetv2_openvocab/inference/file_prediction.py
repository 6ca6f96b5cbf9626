"""Prediction of files into an output folder: jobs checked up front, one part of the cases (-num_parts), background
preprocessing and export (-npp/-nps), every output of a case written by ``CaseOutputWriter``, and the folder's
shared records (``prediction_settings.json`` with each finished case's results, and the prompt report rebuilt from
them) merged with earlier and concurrent runs into the same folder.
``OpenVocabPredictor.predict_from_files`` is the public entry; the predictor itself knows nothing of files.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple, Union

from tqdm import tqdm

from nnunetv2_openvocab.atomic_files import is_complete_file
from nnunetv2_openvocab.inference.background_workers import ExportQueue, Workers, prefetched
from nnunetv2_openvocab.inference.case_parts import CasePart
from nnunetv2_openvocab.inference.case_preprocessing import PreprocessedCase, read_and_preprocess
from nnunetv2_openvocab.inference.input_images import reader_writer_for, require_dicom_series
from nnunetv2_openvocab.inference.outputs.case_outputs import (DICOM_WRITERS, CaseOutputWriter, OutputOptions,
                                                               check_case_outputs, dicom_writer, expected_files)
from nnunetv2_openvocab.inference.outputs.prompt_report import (FAR_THRESHOLD, REPORT_JSON, REPORT_MARKDOWN,
                                                                PromptReport, write_prompt_report)
from nnunetv2_openvocab.inference.outputs.dicom_sources import check_dicom_sources
from nnunetv2_openvocab.inference.outputs.run_settings import (SETTINGS_FILE, locked_records, merged_settings,
                                                               record_case_results, record_settings, recorded_results)
from nnunetv2_openvocab.inference.patient_side import SideCheck
from nnunetv2_openvocab.inference.presence import Presence
from nnunetv2_openvocab.inference.prompt_jobs import PredictionJob, all_prompts
from nnunetv2_openvocab.json_input import read_json_file
from nnunetv2_openvocab.output_folder import OutputFolderError, check_inputs_outside, check_output_folder

if TYPE_CHECKING:  # the predictor calls into this module
    from nnunetv2_openvocab.inference.predictor import OpenVocabPredictor

logger = logging.getLogger(__name__)


@dataclass
class PredictionRun:
    """What ``predict_from_files`` did: the prompt report (with grounding and presence), files written per case,
    cases skipped as done."""

    output_folder: Path
    report: PromptReport
    report_files: Tuple[Path, Path]
    written: Dict[str, List[Path]] = field(default_factory=dict)
    skipped: List[str] = field(default_factory=list)


def predict_files(predictor: OpenVocabPredictor, inputs: Optional[Union[str, Path]], output_folder: Union[str, Path],
                  prompts: Optional[Sequence[str]] = None, prompts_file: Optional[Union[str, Path]] = None,
                  options: OutputOptions = OutputOptions(), skip_existing: bool = False,
                  far_threshold: float = FAR_THRESHOLD, part: CasePart = CasePart(),
                  workers: Workers = Workers()) -> PredictionRun:
    """The body of ``OpenVocabPredictor.predict_from_files`` (see there)."""
    output_folder = check_output_folder(output_folder, "-o", inputs)
    jobs = predictor.make_jobs(inputs, prompts, prompts_file)
    check_inputs_outside(output_folder, [source for job in jobs for source in job.case.sources])
    if options.output_type in DICOM_WRITERS:
        require_dicom_series([job.case for job in jobs], options.output_type)
        check_dicom_sources([job.case for job in jobs])
    file_ending = predictor.model.dataset_json["file_ending"]
    for job in jobs:
        check_case_outputs(job.case.case_id, job.prompts, job.case.output_ending(file_ending), options,
                           ", ".join(map(str, job.case.sources)))
    settings = merged_settings(output_folder / SETTINGS_FILE, run_settings(predictor, jobs, options))
    prompts_of_run = all_prompts(jobs)
    predictor.embed([q for g in predictor.ground(prompts_of_run) for q in g.queries])
    record_settings(output_folder, settings)
    report = rebuilt_prompt_report(predictor, output_folder, far_threshold)
    run = PredictionRun(output_folder, report, (output_folder / REPORT_JSON, output_folder / REPORT_MARKDOWN))
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
    model = predictor.model
    load = partial(read_and_preprocess, plans_manager=model.plans_manager,
                   configuration_manager=model.configuration_manager, dataset_json=model.dataset_json,
                   keep_image=options.needs_image)
    with ExportQueue(workers.export) as export:
        # the first case has nothing to overlap with: a single case is read in this process
        preprocessing_processes = min(workers.preprocessing, max(len(todo) - 1, 0))
        for job, case in tqdm(prefetched(todo, load, preprocessing_processes), total=len(todo), desc="Cases",
                              unit="case", disable=not predictor.show_progress):
            case_id = job.case.case_id
            run.written[case_id], presence, side_checks = predict_case(
                predictor, job, case, output_folder, job.case.output_ending(file_ending), options, export)
            record_case_results(output_folder, case_id, {
                prompt: {"presence": found.to_dict(),
                         "side_check": side_checks[prompt].to_dict() if prompt in side_checks else None}
                for prompt, found in presence.items()})
    run.report = rebuilt_prompt_report(predictor, output_folder, far_threshold)  # now with this run's cases
    return run


def rebuilt_prompt_report(predictor: OpenVocabPredictor, output_folder: Path, far_threshold: float) -> PromptReport:
    """The folder's prompt report rebuilt from its records, under the folder's lock: every prompt and every finished
    case's presence and side checks, whichever run (earlier, concurrent, or this one) predicted it."""
    with locked_records(output_folder):
        settings = read_json_file(output_folder / SETTINGS_FILE)
        report = predictor.prompt_report(list(dict.fromkeys(p for case in settings["cases"].values()
                                                            for p in case["prompts"])), far_threshold)
        try:
            for case_id, results in recorded_results(settings).items():
                report.presence[case_id] = {prompt: Presence(**r["presence"]) for prompt, r in results.items()}
                report.side_checks[case_id] = {prompt: SideCheck(**r["side_check"])
                                               for prompt, r in results.items() if r["side_check"]}
        except (AttributeError, KeyError, TypeError) as error:
            raise OutputFolderError(f"the results recorded in {output_folder / SETTINGS_FILE} are damaged "
                                    f"({error!r}); delete it (the masks stay usable) or predict into a new -o.") from None
        write_prompt_report(report, output_folder)
    return report


def predict_case(predictor: OpenVocabPredictor, job: PredictionJob, case: PreprocessedCase, output_folder: Path,
                 ending: str, options: OutputOptions, export: ExportQueue
                 ) -> Tuple[List[Path], Dict[str, Presence], Dict[str, SideCheck]]:
    """Predict one preprocessed case and write its outputs; returns the files, each prompt's presence and the side
    checks of the prompts that name a side."""
    plans_reader_writer = predictor.model.plans_manager.image_reader_writer_class
    answers = predictor.answers_from_preprocessed(case.take_data(), case.properties, job.prompts,
                                                  options.save_probabilities,
                                                  case.frame if predictor.side_check else None)
    dicom = dicom_writer(options.output_type, job.case.sources[0], job.prompts, output_folder, job.case.case_id,
                         predictor.model.folder.name)
    writer = CaseOutputWriter(output_folder, job.case.case_id, job.prompts, ending,
                              reader_writer_for(job.case, plans_reader_writer), case.properties, options,
                              case.image, dicom, export)
    found: Dict[str, Presence] = {}
    side_checks: Dict[str, SideCheck] = {}
    for answer in answers:
        found[job.prompts[answer.index]] = answer.presence
        if answer.side_check is not None:
            side_checks[job.prompts[answer.index]] = answer.side_check
        writer.add(answer.index, answer.mask, answer.presence, answer.probabilities, answer.side_check)
    return writer.finish(), found, side_checks


def run_settings(predictor: OpenVocabPredictor, jobs: Sequence[PredictionJob], options: OutputOptions) -> dict:
    """What this run records in prediction_settings.json: model, sliding window, grounding, outputs, cases."""
    model = predictor.model
    return {"model_folder": str(model.folder), "trainer": model.trainer_name, "folds": list(model.folds),
            "patch_size": list(model.configuration_manager.patch_size), "tile_step_size": predictor.tile_step_size,
            "mirror_axes": list(model.mirror_axes) if (predictor.use_mirroring and model.mirror_axes) else None,
            "device": str(predictor.device), "text_encoder": model.spec.text_encoder,
            "grounding": predictor.grounding, "grounding_threshold": predictor.grounding_threshold,
            "grounding_held_out": list(predictor.held_out_prompts), "side_check": predictor.side_check,
            "embedding_bank": predictor.embedding_bank_path,
            "outputs": {"combined": options.combined, "statistics": options.statistics, "preview": options.preview,
                        "save_probabilities": options.save_probabilities, "output_type": options.output_type},
            "cases": {job.case.case_id: {"inputs": [str(p) for p in job.case.sources], "prompts": list(job.prompts)}
                      for job in jobs}}
