"""An uploaded case -> one input path in the job's folder, under names the server chooses.

Accepted: a NIfTI file (gzipped or plain, recognised by its bytes, not its name) or a zip of one DICOM series.
The uploaded name is never used: the file becomes ``case.nii.gz`` / ``case.nii``, the zip's members
``series/slice_00000.dcm``, ``series/slice_00001.dcm``, ... in the zip's order (SimpleITK sorts the slices by
position). A zip is checked from its central directory before anything is extracted: member count, total
declared size and compression ratio (a zip bomb is refused without inflating it); extraction then reads at most
the declared size of each member (zipfile stops there), so a lying header cannot fill the disk either.
"""
from __future__ import annotations

import gzip
import shutil
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from nnunetv2_openvocab.user_errors import UserError

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
NIFTI1_MAGICS = (b"n+1\x00", b"ni1\x00")  # at byte 344 of a NIfTI-1 header
NIFTI2_MAGIC = b"n+2\x00"  # at byte 4 of a NIfTI-2 header
CASE_NAME = "case"  # outputs are named <case>_<prompt-slug>.nii.gz
SERIES_FOLDER = "series"


class UploadError(UserError, ValueError):
    """The upload is not a case the server takes; the message names the field and the fix."""


@dataclass(frozen=True)
class UploadLimits:
    max_upload_bytes: int = 512 * 1024 ** 2
    max_unpacked_bytes: int = 2 * 1024 ** 3
    max_zip_members: int = 4000
    max_compression_ratio: float = 200.0  # CT slices compress ~3:1; zip bombs 1000:1 and more


def _is_nifti_header(header: bytes) -> bool:
    return header[344:348] in NIFTI1_MAGICS or header[4:8] == NIFTI2_MAGIC


def _gunzipped_header(path: Path) -> bytes:
    try:
        with gzip.open(path, "rb") as stream:
            return stream.read(348)
    except (OSError, EOFError):
        return b""


def store_upload(upload: Path, input_folder: Path, limits: UploadLimits) -> Path:
    """Move the uploaded bytes in ``upload`` into ``input_folder``; returns the case path (file or series folder)."""
    with upload.open("rb") as stream:
        head = stream.read(348)
    input_folder.mkdir(parents=True, exist_ok=True)
    if head.startswith(ZIP_MAGIC):
        return _unpack_dicom_zip(upload, input_folder / SERIES_FOLDER, limits)
    if head.startswith(GZIP_MAGIC) and _is_nifti_header(_gunzipped_header(upload)):
        target = input_folder / f"{CASE_NAME}.nii.gz"
    elif _is_nifti_header(head):
        target = input_folder / f"{CASE_NAME}.nii"
    else:
        raise UploadError("field 'file': not a NIfTI file (.nii/.nii.gz) or a zip of one DICOM series; "
                          "convert the CT to NIfTI or zip its DICOM folder.")
    shutil.move(upload, target)
    return target


def _unpack_dicom_zip(upload: Path, folder: Path, limits: UploadLimits) -> Path:
    try:
        archive = zipfile.ZipFile(upload)
    except zipfile.BadZipFile:
        raise UploadError("field 'file': a damaged zip archive; zip the DICOM series folder again.") from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if not members:
            raise UploadError("field 'file': the zip holds no files; zip the folder of one DICOM series.")
        if len(members) > limits.max_zip_members:
            raise UploadError(f"field 'file': the zip holds {len(members)} files, more than the "
                              f"{limits.max_zip_members} slices one series may have; send one series per job.")
        unpacked = sum(m.file_size for m in members)
        packed = max(sum(m.compress_size for m in members), 1)
        if unpacked > limits.max_unpacked_bytes or unpacked / packed > limits.max_compression_ratio:
            raise UploadError(f"field 'file': the zip unpacks to {unpacked} bytes ({unpacked / packed:.0f}x its size); "
                              f"the limits are {limits.max_unpacked_bytes} bytes and "
                              f"{limits.max_compression_ratio:.0f}x. Send the DICOM series itself.")
        folder.mkdir(parents=True)
        try:
            for index, member in enumerate(members):
                with archive.open(member) as source, (folder / f"slice_{index:05d}.dcm").open("wb") as target:
                    shutil.copyfileobj(source, target)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
            raise UploadError(f"field 'file': cannot unpack the zip ({error}); zip the DICOM series folder again "
                              f"with plain deflate.") from None
    upload.unlink()
    return folder
