"""Issue 11 §2: stale temporary files of a killed run are removed by the next write of the same destination, a
running writer's are not, and foreign hidden files are never touched; the real curation command shows it."""
from __future__ import annotations

import fcntl
import os

import pytest

from nnunetv2_openvocab.commands.curate_captions import main as curate_main
from nnunetv2_openvocab.atomic_files import OutputWriteError, atomic_path, write_text_atomic
from test_caption_curate_command import small_radlex, write_ct_rate_csv  # noqa: F401 (fixture)


def test_only_unheld_temporaries_of_the_destination_are_removed(tmp_path):
    killed = tmp_path / ".report.ab12cd34.tmp.json"
    running = tmp_path / ".report.zz99yy88.tmp.json"
    others = [tmp_path / ".summary.ab12cd34.tmp.json", tmp_path / ".report.tmp.json", tmp_path / "report.ab12cd34.tmp.json"]
    for path in (killed, running, *others):
        path.write_text("partial")
    held = os.open(running, os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)  # as a writer in another process holds its temporary file
    try:
        write_text_atomic(tmp_path / "report.json", "{}")
    finally:
        os.close(held)
    assert not killed.exists() and running.exists() and all(path.exists() for path in others)
    assert (tmp_path / "report.json").read_text() == "{}"
    assert oct((tmp_path / "report.json").stat().st_mode & 0o777) == "0o644"


def test_an_empty_nifti_never_lands_and_its_temporary_name_is_short(tmp_path):
    with pytest.raises(OutputWriteError, match="case_liver.nii.gz: the written file is incomplete"):
        with atomic_path(tmp_path / "case_liver.nii.gz") as temporary:
            assert temporary.name.startswith(".case_liver.") and temporary.name.endswith(".tmp.nii.gz")
            assert len(temporary.name) == len("case_liver.nii.gz") + 14
            temporary.write_bytes(b"")  # what ITK leaves behind on a full disk
    assert list(tmp_path.iterdir()) == []


def test_rerun_of_curation_removes_its_stale_manifest_temporaries(tmp_path, small_radlex):
    out = tmp_path / "out"
    out.mkdir()
    stale = [out / ".manifest.jsonl.ab12cd34.tmp.jsonl", out / ".manifest.ab12cd34.tmp.jsonl"]
    foreign = out / ".mine.tmp.jsonl"
    for path in (*stale, foreign):
        path.write_bytes(b"x" * 1000)
    reports = write_ct_rate_csv(tmp_path / "reports.csv", ["Liver has a 3 mm cyst.", "Spleen is normal."])
    curate_main(["--reports", str(reports), "--out", str(out), "--radlex", str(small_radlex), "--processes", "1"])
    assert not any(path.exists() for path in stale) and foreign.exists()
