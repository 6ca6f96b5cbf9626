"""nnUNetv2_openvocab_serve over real HTTP on loopback: concurrent jobs equal the command line voxel for voxel,
bad inputs get one-line 4xx answers, and a server killed mid-job reports the job failed after a restart.

The issue asks for 20 concurrent jobs on the bundled CT; a full-CT prediction takes ~15 s on 2 CPU cores, so
the 20 jobs run on two small crops of that real CT (48 x 56 x 48 voxels, different prompts each), keeping this
file at a few minutes. The kill test uses the whole CT, so the job is surely still running when it is killed.
"""
from __future__ import annotations

import io
import json
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from nnunetv2_openvocab.example_dataset import EXAMPLE_CT
from nnunetv2_openvocab.server.jobs import RESTARTED
from nnunetv2_openvocab.server.launch import ServerSetupError, api_key_from_environment
from dicom_series import write_ct_series
from server_process import running_server, wait_for_job

KEY_VARIABLE, KEY = "OPENVOCAB_TEST_API_KEY", "test-key-7f3a"
# SimpleITK (x, y, z) index slices: 48 x 56 x 48 voxels, two 48^3 tiles of the test model each
CROPS = {"upper_right": (slice(10, 58), slice(20, 76), slice(40, 88)),
         "upper_left": (slice(68, 116), slice(20, 76), slice(40, 88))}
CROP_PROMPTS = {"upper_right": ["liver", "right kidney"], "upper_left": ["spleen", "renal organs", "left kidney"]}
JOBS = 20


def one_line_4xx(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and "Traceback" not in detail, detail
    return detail


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("crops")
    ct = sitk.ReadImage(str(EXAMPLE_CT))
    paths = {}
    for name, (x, y, z) in CROPS.items():
        paths[name] = folder / f"{name}.nii.gz"
        sitk.WriteImage(ct[x, y, z], str(paths[name]))
    return paths


@pytest.fixture(scope="module")
def server(trained_openvocab_model, tmp_path_factory):
    work = tmp_path_factory.mktemp("server") / "jobs"
    with running_server(trained_openvocab_model.model_folder, work, trained_openvocab_model.folders.env,
                        ["--api-key-env", KEY_VARIABLE, "--max-upload-mb", "8"], {KEY_VARIABLE: KEY}) as process:
        yield process


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120) as client:
        yield client


def submit(client: httpx.Client, path: Path, prompts) -> dict:
    response = client.post("/jobs", files={"file": ("scan.nii.gz", path.read_bytes())},
                           data={"prompts": json.dumps(prompts)})
    assert response.status_code == 202, response.text
    return response.json()


def read_mask(data: bytes, folder: Path) -> sitk.Image:
    path = folder / "mask.nii.gz"
    path.write_bytes(data)
    return sitk.ReadImage(str(path))


def test_twenty_concurrent_jobs_equal_the_command_line_voxel_for_voxel(client, crops, trained_openvocab_model,
                                                                      tmp_path):
    jobs_file = tmp_path / "jobs.json"
    jobs_file.write_text(json.dumps({"jobs": [{"image": str(crops[n]), "prompts": CROP_PROMPTS[n]} for n in crops]}))
    trained_openvocab_model.folders.run("nnUNetv2_openvocab_predict", "--prompts-file", str(jobs_file), "-o",
                                        str(tmp_path / "cli"), "-m", str(trained_openvocab_model.model_folder),
                                        "-f", "all", "-device", "cpu", "--disable_progress_bar")
    names = [list(crops)[i % 2] for i in range(JOBS)]
    with ThreadPoolExecutor(JOBS) as pool:
        submitted = list(pool.map(lambda name: submit(client, crops[name], CROP_PROMPTS[name]), names))
    assert len({job["job_id"] for job in submitted}) == JOBS
    for name, job in zip(names, submitted):
        status = wait_for_job(client, job["job_id"])
        assert status["state"] == "done", status
        assert [r["prompt"] for r in status["results"]] == CROP_PROMPTS[name]
        for result in status["results"]:
            served = read_mask(client.get(f"/jobs/{job['job_id']}/outputs/{result['mask']}").content, tmp_path)
            cli = sitk.ReadImage(str(tmp_path / "cli" / result["mask"].replace("case_", f"{name}_", 1)))
            assert served.GetSize() == cli.GetSize() and served.GetOrigin() == cli.GetOrigin()
            assert np.array_equal(sitk.GetArrayFromImage(served), sitk.GetArrayFromImage(cli)), (name, result)
            assert result["presence"]["voxels"] == int(sitk.GetArrayFromImage(cli).sum())
    liver = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "cli" / "upper_right_liver.nii.gz")))
    assert liver.sum() > 0, "the crop should show liver, else the comparison proves little"


def zip_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("slice.dcm", b"\0" * (64 * 1024 ** 2))  # 64 MB of zeros pack into ~64 KB
    return buffer.getvalue()


def nifti_bytes(image: sitk.Image, folder: Path) -> bytes:
    path = folder / "image.nii.gz"
    sitk.WriteImage(image, str(path))
    return path.read_bytes()


def test_bad_inputs_get_a_one_line_4xx_and_the_server_stays_up(client, server, crops, tmp_path):
    crop = sitk.ReadImage(str(crops["upper_right"]), sitk.sitkFloat32)
    nan_crop = sitk.GetArrayFromImage(crop)
    nan_crop[5, 5, 5:9] = np.nan
    nan_image = sitk.GetImageFromArray(nan_crop)
    nan_image.CopyInformation(crop)
    uploads = {
        "not a NIfTI": (b"name,value\nliver,1\n" * 50, 400, "not a NIfTI"),
        "zip bomb": (zip_bomb(), 400, "unpacks to"),
        "2D image": (nifti_bytes(crop[:, :, 10], tmp_path), 400, "2D image"),
        "NaN voxels": (nifti_bytes(nan_image, tmp_path), 400, "NaN"),
        "too large": (b"\0" * (9 * 1024 ** 2), 413, "over the server's limit"),
    }
    for what, (data, status, expected) in uploads.items():
        response = client.post("/jobs", files={"file": ("../../etc/passwd", data)}, data={"prompts": '["liver"]'})
        assert expected in one_line_4xx(response, status), what
    many = client.post("/jobs", data={"prompts": json.dumps([f"organ {i}" for i in range(10_000)]), "example": "true"})
    assert "10000 prompts" in one_line_4xx(many, 413)
    assert "10000 prompts" in one_line_4xx(client.post("/ground", json={"prompts": ["liver"] * 10_000}), 413)
    for headers in ({"Authorization": "Bearer wrong"}, {}):
        response = httpx.post(f"{server.url}/ground", json={"prompts": ["liver"]}, headers=headers)
        assert "bearer token" in one_line_4xx(response, 401)
    unknown = client.get("/jobs/0123456789abcdef0123456789abcdef/outputs/..%2F..%2Fjob.json")
    one_line_4xx(unknown, 404)
    assert client.get("/health").json()["status"] == "ok"
    assert not any(server.work_folder.rglob("*passwd*"))


def test_ground_without_an_image(client):
    answer = client.post("/ground", json={"prompts": ["liver", "renal organs", "banana"]}).json()["prompts"]
    routes = {a["prompt"]: (a["route"], a["labels"]) for a in answer}
    assert routes["liver"] == ("label", ["liver"])
    assert routes["renal organs"] == ("union", ["kidney_left", "kidney_right"])
    assert routes["banana"][0] == "text" and answer[2]["nearest"], answer[2]


def test_job_outputs_are_only_listed_names(client, crops):
    job = wait_for_job(client, submit(client, crops["upper_left"], ["spleen"])["job_id"])
    assert job["state"] == "done" and "prompt_report.json" in job["outputs"]
    assert client.get(f"/jobs/{job['job_id']}/outputs/prompt_report.json").json()["prompts"][0]["prompt"] == "spleen"
    one_line_4xx(client.get(f"/jobs/{job['job_id']}/outputs/..%2Fjob.json"), 404)
    one_line_4xx(client.get(f"/jobs/{job['job_id']}/outputs/../job.json"), 404)


def test_a_full_queue_answers_429_and_a_killed_server_reports_unfinished_jobs_failed(trained_openvocab_model, crops,
                                                                                     tmp_path):
    work, env = tmp_path / "jobs", trained_openvocab_model.folders.env
    with running_server(trained_openvocab_model.model_folder, work, env, ["--max-queued", "1"]) as first:
        with httpx.Client(base_url=first.url, timeout=120) as client:
            finished = wait_for_job(client, submit(client, crops["upper_right"], ["liver"])["job_id"])
            mask = client.get(f"/jobs/{finished['job_id']}/outputs/case_liver.nii.gz").content
            running = submit(client, EXAMPLE_CT, ["liver", "spleen", "aorta"])["job_id"]
            while client.get(f"/jobs/{running}").json()["state"] != "running":
                time.sleep(0.05)
            queued = submit(client, crops["upper_left"], ["spleen"])["job_id"]
            refused = client.post("/jobs", files={"file": ("x.nii.gz", crops["upper_left"].read_bytes())},
                                  data={"prompts": '["spleen"]'})
            assert "queue is full" in one_line_4xx(refused, 429)
            assert client.get(f"/jobs/{running}").json()["state"] == "running", "the CT job ended before the kill"
            first.kill()
    with running_server(trained_openvocab_model.model_folder, work, env) as second:
        with httpx.Client(base_url=second.url, timeout=120) as client:
            for job_id in (running, queued):
                status = client.get(f"/jobs/{job_id}").json()
                assert status["state"] == "failed" and status["error"] == RESTARTED and status["outputs"] == []
                one_line_4xx(client.get(f"/jobs/{job_id}/outputs/case_liver.nii.gz"), 404)
                assert not (work / job_id / "partial").exists() and not (work / job_id / "out").exists()
            assert client.get(f"/jobs/{finished['job_id']}/outputs/case_liver.nii.gz").content == mask


def test_the_server_refuses_a_public_address_without_a_key(monkeypatch):
    assert api_key_from_environment(None, "127.0.0.1") is None
    with pytest.raises(ServerSetupError, match="--api-key-env"):
        api_key_from_environment(None, "0.0.0.0")
    monkeypatch.setenv(KEY_VARIABLE, "")
    with pytest.raises(ServerSetupError, match="unset or empty"):
        api_key_from_environment(KEY_VARIABLE, "0.0.0.0")
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    assert api_key_from_environment(KEY_VARIABLE, "0.0.0.0") == KEY


def test_a_zipped_dicom_series_gives_the_masks_of_the_same_scan_as_nifti(client, crops, tmp_path):
    series = tmp_path / "series"
    write_ct_series(sitk.ReadImage(str(crops["upper_right"])), series)
    archive = tmp_path / "series.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in sorted(series.iterdir(), reverse=True):  # member order must not matter
            bundle.write(path, f"../{path.name}")
    from_dicom = wait_for_job(client, submit(client, archive, ["liver"])["job_id"])
    from_nifti = wait_for_job(client, submit(client, crops["upper_right"], ["liver"])["job_id"])
    assert from_dicom["state"] == from_nifti["state"] == "done", (from_dicom, from_nifti)
    masks = [sitk.GetArrayFromImage(read_mask(client.get(f"/jobs/{job['job_id']}/outputs/{job['results'][0]['mask']}")
                                              .content, tmp_path)) for job in (from_dicom, from_nifti)]
    assert masks[1].sum() > 0 and np.array_equal(masks[0], masks[1])
    viewer_image = read_mask(client.get(f"/jobs/{from_dicom['job_id']}/image").content, tmp_path)
    assert viewer_image.GetSize() == sitk.ReadImage(str(crops["upper_right"])).GetSize()
    response = client.post("/jobs", files={"file": ("s.zip", archive.read_bytes())},
                           data={"prompts": '["liver"]', "output_type": "dicom_seg"})
    segmentation = wait_for_job(client, response.json()["job_id"])
    (name,) = [output for output in segmentation["outputs"] if output.endswith(".dcm")]
    dataset = pydicom.dcmread(io.BytesIO(client.get(f"/jobs/{segmentation['job_id']}/outputs/{name}").content))
    assert dataset.Modality == "SEG" and dataset.SegmentSequence[0].SegmentLabel == "liver"
