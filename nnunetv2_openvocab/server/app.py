"""The HTTP API around one loaded ``OpenVocabPredictor`` (FastAPI; the OpenAPI schema is served at /openapi.json).

    GET  /                       the page to try prompts (page.py)
    GET  /health                 liveness, the model and the queue (no token needed)
    POST /ground                 {"prompts": [...]} -> route, labels and nearest training labels per prompt
    POST /jobs                   multipart: file (NIfTI or zip of one DICOM series) or example=true, prompts (a
                                 JSON list), output_type, combined, statistics, preview, probabilities -> job id
    GET  /jobs/{id}              state, queue position, progress, per-prompt route and presence, output names
    GET  /jobs/{id}/outputs/{name}   one listed output file
    GET  /jobs/{id}/image        the job's input as NIfTI, for the page's viewer

Every error is a 4xx (5xx only for bugs) whose JSON ``detail`` is one line naming the field and the fix.
"""
from __future__ import annotations

import hmac
import json
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import SimpleITK as sitk
from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from nnunetv2_openvocab.example_dataset import EXAMPLE_CT
from nnunetv2_openvocab.inference.outputs.case_outputs import DICOM_WRITERS, NIFTI, OUTPUT_TYPES, OutputOptions
from nnunetv2_openvocab.inference.input_images import read_dicom_series, require_dicom_series
from nnunetv2_openvocab.inference.predictor import OpenVocabPredictor
from nnunetv2_openvocab.inference.prompt_jobs import validate_prompts
from nnunetv2_openvocab.server.jobs import INPUT, JobQueue, JobRecord, QueueFullError
from nnunetv2_openvocab.server.page import page_routes
from nnunetv2_openvocab.server.uploads import CASE_NAME, UploadLimits, store_upload
from nnunetv2_openvocab.user_errors import USER_ERRORS

UPLOAD_NAME = "upload.bin"
VIEWER_IMAGE = "viewer.nii.gz"  # a DICOM input converted once for the page


@dataclass(frozen=True)
class ServerSettings:
    work_folder: Path
    api_key: Optional[str] = None  # None: no token (loopback only, enforced by server.launch)
    max_prompts: int = 64
    max_prompt_length: int = 200
    max_queued: int = 32
    retention_s: float = 3600.0
    upload: UploadLimits = field(default_factory=UploadLimits)


class GroundRequest(BaseModel):
    prompts: List[str]


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def parse_prompts(text: str, settings: ServerSettings) -> List[str]:
    try:
        prompts = json.loads(text)
    except ValueError:
        prompts = None
    if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
        raise HTTPException(400, 'field \'prompts\': expected a JSON list of strings, e.g. ["liver", "renal organs"].')
    return checked_prompts(prompts, settings)


def checked_prompts(prompts: List[str], settings: ServerSettings) -> List[str]:
    """The prompts cleaned as the command line cleans them, within the server's count and length limits."""
    check_prompt_limits(prompts, settings)
    try:
        return list(validate_prompts(prompts, "field 'prompts'"))
    except USER_ERRORS as error:
        raise HTTPException(400, str(error)) from None


def check_prompt_limits(prompts: List[str], settings: ServerSettings) -> None:
    if len(prompts) > settings.max_prompts:
        raise HTTPException(413, f"field 'prompts': {len(prompts)} prompts; at most {settings.max_prompts} per "
                                 f"request. Split them over several jobs.")
    too_long = [p[:40] for p in prompts if len(p) > settings.max_prompt_length]
    if too_long:
        raise HTTPException(413, f"field 'prompts': {too_long[0]!r}... is longer than {settings.max_prompt_length} "
                                 f"characters; shorten it.")


def create_app(predictor: OpenVocabPredictor, settings: ServerSettings) -> FastAPI:
    lock = threading.Lock()  # one predictor: grounding waits for a running job's sliding window
    jobs = JobQueue(predictor, settings.work_folder, settings.max_queued, settings.retention_s, lock)
    app = FastAPI(title="nnunetv2-openvocab", description="Free-text promptable CT segmentation.",
                  on_shutdown=[jobs.close])
    bearer = HTTPBearer(auto_error=False)

    def authorised(credentials: Optional[HTTPAuthorizationCredentials] = Depends(bearer)) -> None:
        if settings.api_key is None:
            return
        given = credentials.credentials.encode() if credentials is not None else b""
        if not hmac.compare_digest(given, settings.api_key.encode()):
            raise HTTPException(401, "header 'Authorization': missing or wrong bearer token; send "
                                     "'Authorization: Bearer <key>' with the server's API key.",
                                headers={"WWW-Authenticate": "Bearer"})

    def job_record(job_id: str, _: None = Depends(authorised)) -> JobRecord:
        record = jobs.records.get(job_id)
        if record is None:
            raise HTTPException(404, f"job {job_id[:40]!r}: no such job (finished jobs are deleted after "
                                     f"{settings.retention_s:.0f} s); submit it again.")
        return record

    @app.exception_handler(StarletteHTTPException)  # also the router's own 404 and 405
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": one_line(error.detail)}, error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query"))
        return JSONResponse({"detail": one_line(f"field '{where}': {first.get('msg')}. See /docs for the request "
                                                f"format.")}, 422)

    page_routes(app)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": predictor.model.folder.name, "training_prompts": predictor.training_prompts,
                "jobs": len(jobs.records), "output_types": list(OUTPUT_TYPES)}

    @app.post("/ground", dependencies=[Depends(authorised)])
    def ground(request: GroundRequest) -> dict:
        prompts = checked_prompts(request.prompts, settings)
        with lock:
            report = predictor.prompt_report(prompts)
        return {"prompts": [{"prompt": a.prompt, "status": a.status, "route": a.grounding.route,
                             "labels": list(a.grounding.labels), "structure": a.grounding.structure,
                             "reason": a.grounding.reason,
                             "nearest": [{"label": n.label, "training_prompt": n.training_prompt,
                                          "cosine": round(n.cosine, 4)} for n in a.nearest],
                             "warnings": a.warnings} for a in report.prompts]}

    @app.post("/jobs", status_code=202, dependencies=[Depends(authorised)])
    def submit(prompts: str = Form(..., description='JSON list, e.g. ["liver", "renal organs"]'),
               file: Optional[UploadFile] = File(None, description="NIfTI file or zip of one DICOM series"),
               example: bool = Form(False, description="use the bundled example CT instead of a file"),
               output_type: str = Form(NIFTI, description=f"one of {', '.join(OUTPUT_TYPES)}"),
               combined: bool = Form(False), statistics: bool = Form(False), preview: bool = Form(False),
               probabilities: bool = Form(False)) -> dict:
        prompt_list = parse_prompts(prompts, settings)
        if output_type not in OUTPUT_TYPES:
            raise HTTPException(400, f"field 'output_type': {output_type[:40]!r}; expected one of "
                                     f"{', '.join(OUTPUT_TYPES)}.")
        if (file is None) == (not example):
            raise HTTPException(400, "fields 'file'/'example': send either a file or example=true.")
        try:
            job_id = jobs.reserve()
        except QueueFullError as error:
            raise HTTPException(429, str(error), headers={"Retry-After": "30"}) from None
        options = OutputOptions(combined, statistics, preview, probabilities, output_type)
        try:
            prediction_job, ending = _stored_case(predictor, jobs.folder(job_id), file, prompt_list, options,
                                                  settings)
            return jobs.status(jobs.submit(job_id, prediction_job, options, ending))
        except USER_ERRORS as error:
            jobs.discard(job_id)
            raise HTTPException(400, str(error).replace(str(jobs.folder(job_id)) + "/", "")) from None
        except QueueFullError as error:
            raise HTTPException(429, str(error), headers={"Retry-After": "30"}) from None

    @app.get("/jobs/{job_id}")
    def status(record: JobRecord = Depends(job_record)) -> dict:
        return jobs.status(record)

    @app.get("/jobs/{job_id}/outputs/{name:path}")
    def output(name: str, record: JobRecord = Depends(job_record)) -> FileResponse:
        path = jobs.output_file(record, name)
        if path is None:
            raise HTTPException(404, f"output {name[:80]!r}: not among this job's outputs {record.outputs[:8]}; "
                                     f"see GET /jobs/{record.job_id}.")
        return FileResponse(path, filename=path.name)

    @app.get("/jobs/{job_id}/image")
    def image(record: JobRecord = Depends(job_record)) -> FileResponse:
        folder = jobs.folder(record.job_id)
        source = folder / record.input_path
        if source.is_dir():
            viewer = folder / INPUT / VIEWER_IMAGE
            if not viewer.is_file():
                sitk.WriteImage(read_dicom_series(source), str(viewer))
            source = viewer
        return FileResponse(source, filename=source.name)

    return app


def _stored_case(predictor: OpenVocabPredictor, folder: Path, file: Optional[UploadFile], prompts: List[str],
                 options: OutputOptions, settings: ServerSettings):
    """Store the upload (or the example) in the job folder and check it as the command line does."""
    input_folder = folder / INPUT
    if file is None:
        input_folder.mkdir()
        case_path = input_folder / f"{CASE_NAME}.nii.gz"
        shutil.copyfile(EXAMPLE_CT, case_path)
    else:
        upload = folder / UPLOAD_NAME
        with upload.open("wb") as target:
            shutil.copyfileobj(file.file, target)
        case_path = store_upload(upload, input_folder, settings.upload)
    (job,) = predictor.make_jobs(case_path, prompts)
    if options.output_type in DICOM_WRITERS:
        require_dicom_series([job.case], options.output_type)
    return job, job.case.output_ending(predictor.model.dataset_json["file_ending"])
