"""nnUNetv2_openvocab_curate_captions end to end: offline on the real reports, sharding, and the openai
backend against the scripted loopback server, including a kill -9 in the middle of a run."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from caption_curation.curate import LLMSettings, curate_captions
from nnunetv2_openvocab.commands.curate_captions import main
from test_caption_llm_client import API_KEY, Reply, ScriptedChatServer, good_reply

SHARED_DATA = Path(
    os.environ.get("OPENVOCAB_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")
)
REAL_REPORTS = SHARED_DATA / "ct_rate_reports" / "train.csv"
OUTPUT_FILES = {"captions.csv", "manifest.jsonl", "failures.jsonl", "caption_stats.json", "top_captions.png",
                "top_organs.png", "captions_per_report.png"}


@pytest.fixture
def small_radlex(tmp_path) -> Path:
    """A few RadLex terms: building the 40k-term default would dominate these tests' run time."""
    path = tmp_path / "radlex_terms.txt"
    path.write_text("liver\nheart\nspleen\npleural effusion\ncyst\n", encoding="utf-8")
    return path


def read_manifest(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def read_captions_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def write_ct_rate_csv(path: Path, findings: list[str], volumes: list[str] | None = None) -> Path:
    volumes = volumes or [f"train_{i}_a_1.nii.gz" for i in range(1, len(findings) + 1)]
    pd.DataFrame({"VolumeName": volumes, "Findings_EN": findings,
                  "Impressions_EN": ["No pleural effusion."] * len(findings)}).to_csv(path, index=False)
    return path


@pytest.mark.skipif(not REAL_REPORTS.is_file(), reason="shared CT-RATE reports not available")
def test_offline_run_on_the_real_reports_writes_every_output(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--reports", str(REAL_REPORTS), "--out", str(out), "--volume-root", "/data/ct_rate", "--no-balance"]
    main(argv)
    assert "800 reports (0 failed)" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == OUTPUT_FILES

    manifest = read_manifest(out / "manifest.jsonl")
    assert len(manifest) == 800 and all(set(entry) == {"volume", "report", "captions"} for entry in manifest)
    assert manifest[0]["volume"] == "/data/ct_rate/train_1"
    assert manifest[0]["report"].startswith("Trachea, both main bronchi are open.")
    assert "Thoracic CT examination within normal limits" not in manifest[0]["report"]  # findings only
    rows = read_captions_csv(out / "captions.csv")
    assert list(rows[0]) == ["volume", "caption", "matched_terms", "source_sentence"]
    assert sum(len(entry["captions"]) for entry in manifest) == len(rows)
    first_rows = [row for row in rows if row["volume"] == "/data/ct_rate/train_1"]
    assert [row["caption"] for row in first_rows] == manifest[0]["captions"]
    assert all(row["matched_terms"] and row["source_sentence"] for row in rows)
    effusion_row = next(row for row in first_rows if row["caption"].startswith("Pleural effusion"))
    assert "pleural effusion" in effusion_row["matched_terms"].split("|")

    stats = json.loads((out / "caption_stats.json").read_text(encoding="utf-8"))
    assert stats["reports"] == 800 and stats["failed_reports"] == 0
    assert stats["captions_per_report"]["after_filter"]["mean"] < stats["captions_per_report"]["before_filter"]["mean"]
    assert len(stats["top_captions"]) == 100 and len(stats["top_organs"]) == 20
    assert stats["top_organs"][0]["organ"] == "lung"
    assert stats["run"]["backend"] == "offline" and len(stats["run"]["input_problems"]) > 0
    assert (out / "failures.jsonl").read_text(encoding="utf-8") == ""


def test_shards_split_the_reports_without_overlap_and_rerun_identically(tmp_path, small_radlex):
    findings = [f"Liver has a {i} mm cyst. Heart is normal." for i in range(30)]
    csv_path = write_ct_rate_csv(tmp_path / "reports.csv", findings)
    seen: list[str] = []
    for shard in range(3):
        summary = curate_captions(csv_path, tmp_path / "out", radlex=small_radlex, shard=shard, num_shards=3)
        assert summary.output_dir == tmp_path / "out" / f"shard-{shard:03d}-of-003"
        assert {p.name for p in summary.output_dir.iterdir()} == OUTPUT_FILES
        volumes = [entry["volume"] for entry in read_manifest(summary.output_dir / "manifest.jsonl")]
        assert volumes
        seen += volumes
    assert sorted(seen) == sorted(f"train_{i}_a_1.nii.gz" for i in range(1, 31))

    shard_dir = tmp_path / "out" / "shard-000-of-003"
    before = {p.name: p.read_bytes() for p in shard_dir.iterdir() if p.suffix != ".png"}
    curate_captions(csv_path, tmp_path / "out", radlex=small_radlex, shard=0, num_shards=3)
    assert before == {p.name: p.read_bytes() for p in shard_dir.iterdir() if p.suffix != ".png"}


def test_llm_shards_share_the_cache_and_an_unsharded_run_merges_without_requests(tmp_path, small_radlex, monkeypatch):
    monkeypatch.setenv("CAPTION_TEST_KEY", API_KEY)
    findings = [f"The liver has a {i} mm cyst." for i in range(12)]
    csv_path = write_ct_rate_csv(tmp_path / "reports.csv", findings)
    with ScriptedChatServer() as server:
        llm = LLMSettings(base_url=server.url, model="test-model", api_key_env="CAPTION_TEST_KEY", workers=2)
        for shard in range(2):
            curate_captions(csv_path, tmp_path / "out", backend="openai", llm=llm, radlex=small_radlex,
                            shard=shard, num_shards=2)
        assert sum(server.received.values()) == 12
        merged = curate_captions(csv_path, tmp_path / "out", backend="openai", llm=llm, radlex=small_radlex,
                                 balance=None)
        assert sum(server.received.values()) == 12  # everything came from the shards' cache files
    assert set(server.authorization) == {f"Bearer {API_KEY}"}
    assert merged.output_dir == tmp_path / "out" and merged.reports == 12 and merged.failed_reports == 0
    assert sorted(p.name for p in (tmp_path / "out" / "llm_cache").iterdir()) == [
        "answers.shard-000-of-002.jsonl", "answers.shard-001-of-002.jsonl"]  # the merge run wrote no answers
    # one caption per report: the findings are captioned, the impression is not (it is not sent)
    assert [len(entry["captions"]) for entry in read_manifest(merged.output_dir / "manifest.jsonl")] == [1] * 12


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--backend", "openai"], "--backend openai needs --base-url and --model"),
        (["--shard", "3", "--num-shards", "3"], "need num_shards >= 1 and 0 <= shard < num_shards"),
    ],
)
def test_bad_arguments_are_rejected(tmp_path, capsys, argv, message):
    csv_path = write_ct_rate_csv(tmp_path / "reports.csv", ["Liver is normal."])
    with pytest.raises((SystemExit, ValueError)) as error:
        main(["--reports", str(csv_path), "--out", str(tmp_path / "out"), *argv])
    assert message in capsys.readouterr().err + str(error.value)


def run_cli(csv_path: Path, out: Path, server: ScriptedChatServer, radlex: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "nnunetv2_openvocab.commands.curate_captions", "--reports", str(csv_path), "--out", str(out),
               "--radlex", str(radlex),
               "--backend", "openai", "--base-url", server.url, "--model", "test-model", "--workers", "2",
               "--timeout", "20", "--max-retries", "2", "--volume-root", "/data", "--no-balance"]
    env = {**os.environ, "OPENAI_API_KEY": API_KEY, "NO_PROXY": "127.0.0.1,localhost"}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, encoding="utf-8", errors="replace")


def wait_until_quiet(server: ScriptedChatServer, quiet_s: float = 1.0) -> int:
    """Total requests received, once that number has not changed for ``quiet_s``."""
    count, since = sum(server.received.values()), time.monotonic()
    while time.monotonic() - since < quiet_s:
        time.sleep(0.05)
        if sum(server.received.values()) != count:
            count, since = sum(server.received.values()), time.monotonic()
    return count


def test_openai_backend_survives_kill_9_without_duplicate_requests_or_leaked_key(tmp_path, small_radlex):
    findings = [f"Report {i}: the liver has a {i} mm cyst." for i in range(16)]
    findings[5] = "PROSE report: the spleen is normal."
    # 16 distinct reports; the last two volumes repeat reports 0 and 1 (same study, other reconstruction)
    volumes = [f"train_{i}_a_1.nii.gz" for i in range(16)] + ["train_0_a_2.nii.gz", "train_1_a_2.nii.gz"]
    csv_path = write_ct_rate_csv(tmp_path / "reports.csv", findings + findings[:2], volumes)
    distinct_reports = 16
    answered_before_kill = 6
    in_flight = threading.Event()  # never set while the first run lives: requests after the 6th hang

    def answer(report: str, attempt: int) -> Reply:
        if report.startswith("PROSE"):  # a malformed answer that even echoes the key back
            return Reply(content=f"I cannot comply. Your header was Bearer {API_KEY}")
        return good_reply(report, attempt)

    def first_run_script(report: str, attempt: int) -> Reply:
        with order_lock:
            order.append(report)
            position = len(order)
        return answer(report, attempt) if position <= answered_before_kill else Reply(hold=in_flight)

    order: list[str] = []
    order_lock = threading.Lock()
    out = tmp_path / "out"
    cache_file = out / "llm_cache" / "answers.shard-000-of-001.jsonl"
    with ScriptedChatServer(first_run_script) as server:
        process = run_cli(csv_path, out, server, small_radlex)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            lines = cache_file.read_text(encoding="utf-8").splitlines() if cache_file.is_file() else []
            if len(lines) >= answered_before_kill and sum(server.received.values()) > answered_before_kill:
                break
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        first_output = "".join(process.communicate())
        assert process.returncode == -signal.SIGKILL
        received_in_first_run = wait_until_quiet(server)  # requests sent just before the kill may still arrive
        left_in_flight = received_in_first_run - answered_before_kill
        assert 1 <= left_in_flight <= 2  # at most --workers requests were unanswered when killed

        server.script = answer
        second = run_cli(csv_path, out, server, small_radlex)
        second_output = "".join(second.communicate(timeout=120))
        # 1 failure in 18 reports is above the default --max-failure-rate 0.05: outputs written, exit 1
        assert second.returncode == 1, second_output
        answered, received = server.answered.copy(), server.received.copy()
        in_flight.set()  # let the requests of the killed run finish (into closed sockets)

    # every distinct report was answered exactly once; only the killed in-flight requests were sent again
    assert len(answered) == distinct_reports and set(answered.values()) == {1}
    assert sum(received.values()) == distinct_reports + left_in_flight
    assert "18 reports (1 failed)" in second_output  # the PROSE report: one recorded failure
    assert "1 of 18 reports got no captions (5.6%), more than --max-failure-rate 0.05" in second_output

    manifest = read_manifest(out / "manifest.jsonl")
    assert len(manifest) == 17  # curated reports only
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {f["volume"] for f in failures} == {"train_5_a_1.nii.gz"}
    assert failures[0]["reason"].startswith("malformed")
    assert all(entry["captions"] for entry in manifest)
    by_volume = {entry["volume"]: entry["captions"] for entry in manifest}
    assert by_volume["/data/train_0_a_2.nii.gz"] == by_volume["/data/train_0_a_1.nii.gz"]
    cached = [json.loads(line) for line in cache_file.read_text(encoding="utf-8").splitlines() if line.strip().startswith("{")]
    assert any("I cannot comply" in record["raw"] for record in cached)  # raw answer kept for inspection

    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert any(path.suffix == ".png" for path in written)
    for path in written:
        assert API_KEY.encode() not in path.read_bytes(), f"API key leaked into {path}"
    assert API_KEY not in first_output + second_output
