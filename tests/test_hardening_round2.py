"""Issue 22 §6, §7, §9 (LLM time bound), §10 (other scripts, control characters), §11 (symlinked
sub-folders): bad input found by trying the commands as a new user would. Each case is one line naming the
file and exit 1 (or a refusal before any output), never a traceback and never a silent wrong result. Fuzzing of the JSON inputs is in test_json_input_fuzz.py; the cases
here are the ones the issue lists."""
from __future__ import annotations

import http.server
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from caption_curation.chat_client import ChatCompletionsClient, ChatRequestFailed, MalformedChatResponse, RetryPolicy
from caption_curation.llm_answer import MalformedAnswer, parse_caption_answer
from nnunetv2_openvocab.commands.check_dataset import main as check_dataset_main
from nnunetv2_openvocab.commands.compare import main as compare_main
from nnunetv2_openvocab.commands.curate_captions import main as curate_main
from nnunetv2_openvocab.commands.demo import main as demo_main
from nnunetv2_openvocab.commands.embed import main as embed_main
from nnunetv2_openvocab.evaluation.prompt_sets import load_prompt_set
from nnunetv2_openvocab.evaluation.unseen_prompts import load_unseen_prompt_set
from nnunetv2_openvocab.inference.embedding_export import read_prompts_file
from nnunetv2_openvocab.inference.input_images import CaseInput, InputImageError, check_case
from nnunetv2_openvocab.inference.model_loading import load_trained_model
from nnunetv2_openvocab.inference.outputs.prompt_report import PromptAssessment, PromptReport, write_prompt_report
from nnunetv2_openvocab.inference.prompt_jobs import load_prompts_file, validate_prompts
from nnunetv2_openvocab.output_folder import OutputFolderError, check_inputs_outside, check_output_folder
from nnunetv2_openvocab.prompts.prompt_text import prompt_slug
from nnunetv2_openvocab.prompts.validation import validate_dataset
from nnunetv2_openvocab.text.embedding_bank import EmbeddingBankError, load_embedding_bank
from nnunetv2_openvocab.user_errors import USER_ERRORS
from test_caption_curate_command import write_ct_rate_csv
from test_compare_command import evaluations  # noqa: F401 (fixture)
from test_hardening_commands import exits_with_one_line

DEEP = "[" * 100_000 + "]" * 100_000
HUGE = "9" * 5_000
UNWRITABLE_ROOT = Path("/sys/openvocab_unwritable")  # sysfs refuses new folders, even to root


def unwritable(name: str) -> Path:
    """A missing sub-folder of a folder nobody may write into (chmod does not stop root, sysfs does)."""
    try:
        UNWRITABLE_ROOT.mkdir()
    except OSError:
        return UNWRITABLE_ROOT / name
    UNWRITABLE_ROOT.rmdir()
    pytest.skip("no read-only folder on this machine")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_bank(path: Path, embeddings: np.ndarray, prompts=("liver", "spleen")) -> Path:
    np.savez(path, prompts=np.array(list(prompts)), embeddings=embeddings.astype(np.float16),
             text_encoder=np.array("minilm"), fingerprint=np.array("ab" * 32), format=np.array(1))
    return path


# ---- §6 unwritable outputs --------------------------------------------------------------------------------------
def test_unwritable_output_of_compare_is_one_line(evaluations, capsys):  # noqa: F811
    line = exits_with_one_line(compare_main, [str(evaluations / "eval_a"), str(evaluations / "eval_b"), "-o",
                                              str(unwritable("compare"))], capsys, "nnUNetv2_openvocab_compare")
    assert "openvocab_unwritable" in line


def test_unwritable_output_of_curate_captions_is_one_line(tmp_path, capsys):
    reports = write_ct_rate_csv(tmp_path / "reports.csv", ["The liver is normal."])
    line = exits_with_one_line(curate_main, ["--reports", str(reports), "--out", str(unwritable("captions")),
                                             "--no-balance"], capsys, "nnUNetv2_openvocab_curate_captions")
    assert "openvocab_unwritable" in line


def test_unwritable_demo_folder_is_one_line(capsys):
    line = exits_with_one_line(demo_main, ["--output", str(unwritable("demo"))], capsys, "nnUNetv2_openvocab_demo")
    assert "openvocab_unwritable" in line


def test_dangling_symlink_as_output_folder_is_refused(tmp_path):
    (tmp_path / "out").symlink_to(tmp_path / "gone")
    with pytest.raises(OutputFolderError, match="does not exist"):
        check_output_folder(tmp_path / "out")


@pytest.mark.parametrize("target", ["elsewhere", "missing"])
def test_symlinked_sub_folder_of_the_output_folder_is_refused(tmp_path, target):
    """§11: o/combined linked to another folder would take our files there."""
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "combined").symlink_to(tmp_path / target)
    with pytest.raises(OutputFolderError, match="combined"):
        check_output_folder(tmp_path / "out")


# ---- §6 dataset.json, banks, summaries -----------------------------------------------------------------------
def raw_dataset(folder: Path, labels: str, cases: int = 1) -> Path:
    for index in range(cases):
        write(folder / "labelsTr" / f"case_{index}.nii.gz", "")
        write(folder / "imagesTr" / f"case_{index}_0000.nii.gz", "")
    (folder / "labelsTr").mkdir(parents=True, exist_ok=True)
    (folder / "imagesTr").mkdir(parents=True, exist_ok=True)
    write(folder / "dataset.json", '{"channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": %s}, '
                                   '"numTraining": %d, "file_ending": ".nii.gz", "text_prompts": {"liver": ["liver"]}}'
          % (labels, cases))
    return folder


@pytest.mark.parametrize("value, words", [(HUGE, "number too long"), ("9" * 4_000, "not a non-negative integer")],
                         ids=["5000_digits", "4000_digits"])
def test_huge_label_value_is_a_problem_not_a_traceback(tmp_path, value, words):
    problems = validate_dataset(raw_dataset(tmp_path / "Dataset501_X", value))
    assert any(words in str(problem) and "dataset.json" in str(problem) for problem in problems), problems
    assert all(len(str(problem)) < 400 for problem in problems)


def test_dataset_with_zero_cases_is_not_ready(tmp_path, capsys):
    """§6/§7: check_dataset called a dataset without cases "OK", and planning then failed inside nnU-Net."""
    folder = raw_dataset(tmp_path / "Dataset501_X", "1", cases=0)
    assert check_dataset_main(["-d", str(folder)]) == 1
    assert "0 training cases" in capsys.readouterr().out


@pytest.mark.parametrize("content, words", [
    (b"", "not a readable"),
    (None, "vectors have 3 values"),
])
def test_empty_bank_and_wrong_width_are_refused(tmp_path, content, words):
    path = tmp_path / "bank.npz"
    if content is None:
        bank = load_embedding_bank(write_bank(path, np.ones((2, 3))))
        with pytest.raises(EmbeddingBankError, match=words):
            bank.check_encoder("ab" * 32, "minilm", 384)
    else:
        path.write_bytes(content)
        with pytest.raises(EmbeddingBankError, match=words):
            load_embedding_bank(path)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_bank_is_refused(tmp_path, value):
    """§7: an all-NaN bank predicted empty masks with exit 0 and wrote bare NaN into prompt_report.json."""
    embeddings = np.ones((2, 8))
    embeddings[1] = value
    with pytest.raises(EmbeddingBankError, match="'spleen'.*NaN or infinite"):
        load_embedding_bank(write_bank(tmp_path / "bank.npz", embeddings))


@pytest.mark.parametrize("change", [
    lambda s: s.update(per_case={"case": "a"}),
    lambda s: s.update(settings=None),
    lambda s: [row.pop("case") for row in s["per_case"]],
    lambda s: s["per_case"][0].update(dice="high"),
])
def test_malformed_summary_in_compare_is_one_line(evaluations, tmp_path, capsys, change):  # noqa: F811
    broken = tmp_path / "broken"
    broken.mkdir()
    summary = json.loads((evaluations / "eval_a" / "summary.json").read_text(encoding="utf-8"))
    change(summary)
    write(broken / "summary.json", json.dumps(summary))
    line = exits_with_one_line(compare_main, [str(broken), str(evaluations / "eval_b"), "-o",
                                              str(tmp_path / "out")], capsys, "nnUNetv2_openvocab_compare")
    assert "summary.json" in line and not (tmp_path / "out").exists()


# ---- §6 deeply nested JSON and folders given as JSON files ------------------------------------------------------
READERS = {
    "predict --prompts-file": lambda path: load_prompts_file(path, ".nii.gz", ("liver",)),
    "embed --prompts-file": read_prompts_file,
    "evaluate --prompts-file": lambda path: load_prompt_set(path, ("liver",)),
    "eval_unseen --set": load_unseen_prompt_set,
}


@pytest.mark.parametrize("reader", READERS, ids=list(READERS))
@pytest.mark.parametrize("content, words", [(DEEP, "nested too deeply"), ('{"jobs": %s}' % HUGE, "too long")],
                         ids=["deep", "huge"])
def test_deep_or_huge_json_inputs_are_one_line(tmp_path, reader, content, words):
    path = write(tmp_path / "input.json", content)
    with pytest.raises(USER_ERRORS) as error:
        READERS[reader](path)
    assert words in str(error.value) and str(path) in str(error.value)


@pytest.mark.parametrize("reader", READERS, ids=list(READERS))
def test_folder_as_json_input_is_one_line(tmp_path, reader):
    folder = tmp_path / "prompts.json"
    folder.mkdir()
    with pytest.raises(USER_ERRORS, match="is a folder|not a file|neither a file"):
        READERS[reader](folder)


def test_embed_with_a_folder_as_prompts_file_is_one_line(tmp_path, capsys):
    (tmp_path / "prompts.txt").mkdir()
    line = exits_with_one_line(embed_main, ["-m", str(tmp_path), "--prompts-file", str(tmp_path / "prompts.txt"),
                                            "-o", str(tmp_path / "bank.npz")], capsys, "nnUNetv2_openvocab_embed")
    assert "prompts.txt" in line


@pytest.mark.parametrize("name", ["plans.json", "dataset.json"])
def test_deeply_nested_model_json_is_one_line(tmp_path, name):
    for file in ("plans.json", "dataset.json"):
        write(tmp_path / "model" / file, DEEP if file == name else "{}")
    with pytest.raises(USER_ERRORS, match=f"{name}: brackets are nested too deeply"):
        load_trained_model(tmp_path / "model")


@pytest.mark.parametrize("answer, words", [(DEEP, "nested too deeply"), ('{"captions": [%s]}' % HUGE, "no JSON")],
                         ids=["deep", "huge"])
def test_llm_answer_nested_too_deeply_or_with_huge_numbers_is_malformed(answer, words):
    with pytest.raises(MalformedAnswer, match=words):
        parse_caption_answer(answer)


def test_llm_server_body_nested_too_deeply_is_malformed():
    with pytest.raises(MalformedChatResponse):
        ChatCompletionsClient("http://127.0.0.1:9", "model")._content_of(DEEP.encode())


# ---- §7 inputs checked before the first write -------------------------------------------------------------------
def test_constant_image_is_refused_by_the_up_front_check(tmp_path):
    """A constant image was refused only when its turn came, after other cases' outputs were written."""
    image = sitk.GetImageFromArray(np.full((4, 5, 6), -1024, np.int16))
    sitk.WriteImage(image, str(tmp_path / "flat_0000.nii.gz"))
    with pytest.raises(InputImageError, match="constant"):
        check_case(CaseInput("flat", (tmp_path / "flat_0000.nii.gz",)), 1)


def test_job_image_inside_the_output_folder_is_refused(tmp_path):
    image = write(tmp_path / "out" / "scans" / "ct_0000.nii.gz", "")
    with pytest.raises(OutputFolderError, match="inside -o"):
        check_inputs_outside(tmp_path / "out", [image])
    check_inputs_outside(tmp_path / "elsewhere", [image])


def test_os_errors_are_one_line(capsys):
    from nnunetv2_openvocab.user_errors import exit_on_user_error

    with pytest.raises(SystemExit) as exit_info:
        with exit_on_user_error("program"):
            os.mkdir(unwritable("x"))  # PermissionError: an OSError outside USER_ERRORS
    assert str(exit_info.value.code).startswith("program: error: ") and "openvocab_unwritable" in str(
        exit_info.value.code)


# ---- §9 bounded time per LLM request ----------------------------------------------------------------------------
class _TricklingHandler(http.server.BaseHTTPRequestHandler):
    """Answers with an endless body, one byte every 50 ms: every gap is far below any read timeout."""

    def do_POST(self):  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        try:
            while True:
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:  # the client gave up
            pass

    def log_message(self, *args):
        pass


def test_llm_request_that_trickles_forever_stops_at_the_timeout():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TricklingHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = ChatCompletionsClient(f"http://127.0.0.1:{server.server_address[1]}", "model", timeout_s=1.0,
                                   retry=RetryPolicy(max_retries=0))
    started = time.monotonic()
    try:
        with pytest.raises(ChatRequestFailed, match="still arriving after 1.0 s"):
            client.complete([{"role": "user", "content": "liver"}])
    finally:
        server.shutdown()
    assert time.monotonic() - started < 30  # it ends; before the change it ran until killed


# ---- §10 text that is not English, and control characters ------------------------------------------------------
def test_arabic_and_cjk_prompts_are_accepted_with_distinct_slugs():
    prompts = validate_prompts(["كبد", "肝臓", "肝脏", "foie"])
    slugs = [prompt_slug(prompt) for prompt in prompts]
    assert len(set(slugs)) == 4 and slugs[3] == "foie"
    assert slugs == [prompt_slug(prompt) for prompt in prompts]  # the same prompt always gets the same file


def test_control_characters_are_escaped_in_the_prompt_report(tmp_path):
    """ESC reached prompt_report.md raw: `cat` of the report recoloured or cleared the terminal."""
    prompt = "liver\x1b[2J\x07"
    report = PromptReport("minilm", 0.5, 0.7, 0.05, [PromptAssessment(prompt, "far", 0.1, [], ["far\x1b[31m"])])
    json_path, markdown_path = write_prompt_report(report, tmp_path)
    markdown = markdown_path.read_text(encoding="utf-8")
    assert "\x1b" not in markdown and "\x07" not in markdown and "liver\\x1b[2J\\x07" in markdown
    assert json.loads(json_path.read_text(encoding="utf-8"))["prompts"][0]["prompt"] == prompt  # JSON escapes itself
