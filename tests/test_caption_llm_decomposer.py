"""LLMDecomposer end to end against the scripted loopback server: outcomes, request counts, cache reuse."""
from __future__ import annotations

import pytest

from caption_curation.caption_cache import CaptionCache
from caption_curation.caption_prompt import CaptionPrompt
from caption_curation.chat_client import ChatCompletionsClient, ChatServerMisconfigured
from caption_curation.llm_decomposer import LLMDecomposer
from caption_curation.reports import Report
from test_caption_llm_client import API_KEY, FAST_RETRY, Reply, ScriptedChatServer, good_reply


def _then_good(bad: Reply, bad_attempts: int):
    return lambda report, attempt: bad if attempt <= bad_attempts else good_reply(report, attempt)


# behaviour by the report's first word
BEHAVIOUR = {
    "GOOD": good_reply,
    "RATE": _then_good(Reply(status=429, headers={"Retry-After": "0"}), 2),
    "ERR": _then_good(Reply(status=500), 1),
    "SLOW": _then_good(Reply(content='{"captions": ["late"]}', delay_s=1.0), 1),
    "DOWN": lambda report, attempt: Reply(status=502),
    "BROKEN": lambda report, attempt: Reply(body='{"choices": [oops'),
    "PROSE": lambda report, attempt: Reply(content="I am sorry, I cannot produce captions."),
    "EMPTY": lambda report, attempt: Reply(content='{"captions": []}'),
}
EXPECTED_REQUESTS = {"GOOD": 1, "RATE": 3, "ERR": 2, "SLOW": 2, "DOWN": FAST_RETRY.max_retries + 1,
                     "BROKEN": 1, "PROSE": 1, "EMPTY": 1}
FAILING = {"DOWN": "request_failed", "BROKEN": "malformed", "PROSE": "malformed", "EMPTY": "malformed"}


def script(report: str, attempt: int) -> Reply:
    return BEHAVIOUR[report.split()[0]](report, attempt)


def make_reports() -> list[Report]:
    reports = [Report(f"vol_{name}", f"{name} Liver is normal.", "No pleural effusion.", i)
               for i, name in enumerate(BEHAVIOUR, start=1)]
    # a second reconstruction of the GOOD study: same report text, must not cost a second request
    return reports + [Report("vol_GOOD_b", reports[0].findings, reports[0].impression, len(reports) + 1)]


def make_decomposer(server, cache_dir, **kwargs) -> LLMDecomposer:
    client = ChatCompletionsClient(server.url, "test-model", api_key=API_KEY, timeout_s=0.3, retry=FAST_RETRY)
    return LLMDecomposer(client, CaptionPrompt.load(), CaptionCache(cache_dir), workers=4, **kwargs)


def test_every_report_ends_with_captions_or_a_recorded_failure(tmp_path):
    reports = make_reports()
    with ScriptedChatServer(script) as server:
        results = make_decomposer(server, tmp_path).decompose_all(reports)
    assert [r.report.volume for r in results] == [r.volume for r in reports]
    for result in results:
        name = result.report.findings.split()[0]
        if name in FAILING:
            assert not result.captions and result.failure.startswith(FAILING[name])
        else:
            assert result.failure is None
            # only the findings are sent: the impression ("No pleural effusion.") yields no caption
            assert [c.text for c in result.captions] in ([f"{name} Liver is normal"], ["late"])
    by_name = {text.split()[0]: count for text, count in server.received.items()}
    assert by_name == EXPECTED_REQUESTS
    cached = CaptionCache(tmp_path).load()
    assert len(cached) == len(BEHAVIOUR)
    raw_by_status = {a.raw for a in cached.values() if a.status == "malformed"}
    assert '{"choices": [oops' in raw_by_status and "I am sorry, I cannot produce captions." in raw_by_status
    assert all(API_KEY not in path.read_text(encoding="utf-8") for path in tmp_path.glob("*.jsonl"))


def test_rerun_asks_nothing_and_retry_failed_asks_only_failures(tmp_path):
    reports = make_reports()
    with ScriptedChatServer(script) as server:
        first = make_decomposer(server, tmp_path).decompose_all(reports)
        after_first = sum(server.received.values())
        second = make_decomposer(server, tmp_path).decompose_all(reports)
        assert sum(server.received.values()) == after_first
        assert [(r.captions, r.failure) for r in second] == [(r.captions, r.failure) for r in first]
        before_retry = server.received.copy()
        make_decomposer(server, tmp_path, retry_failed=True).decompose_all(reports)
    asked_again = {text.split()[0] for text in server.received if server.received[text] > before_retry[text]}
    assert asked_again == set(FAILING)


def test_misconfigured_server_stops_the_run(tmp_path):
    with ScriptedChatServer(lambda report, attempt: Reply(status=401)) as server:
        with pytest.raises(ChatServerMisconfigured):
            make_decomposer(server, tmp_path).decompose_all(make_reports())
