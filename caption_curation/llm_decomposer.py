"""LLM backend: ask a chat-completions server for each distinct report's captions, through the cache.

Reports are deduplicated by cache key first (CT-RATE has several reconstructions per report), so
the number of requests is the number of distinct, not yet cached reports. Every finished request is
cached before the next result is accepted, successful or not: a malformed answer or a request that
failed after all retries becomes a recorded failure, which a rerun does not ask again unless
``retry_failed`` is set. Only ``ChatServerMisconfigured`` (wrong key/URL/model) stops the run.
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor, as_completed

from tqdm import tqdm

from caption_curation.caption_cache import (
    STATUS_MALFORMED,
    STATUS_OK,
    STATUS_REQUEST_FAILED,
    CachedAnswer,
    CaptionCache,
    cache_key,
)
from caption_curation.caption_prompt import CaptionPrompt
from caption_curation.captions import ReportCaptions
from caption_curation.chat_client import (
    ChatCompletionsClient,
    ChatRequestFailed,
    ChatServerMisconfigured,
    MalformedChatResponse,
)
from caption_curation.llm_answer import MalformedAnswer, parse_caption_answer
from caption_curation.reports import Report

log = logging.getLogger(__name__)


class LLMDecomposer:
    def __init__(
        self,
        client: ChatCompletionsClient,
        prompt: CaptionPrompt,
        cache: CaptionCache,
        workers: int = 8,
        retry_failed: bool = False,
    ):
        self.client = client
        self.prompt = prompt
        self.cache = cache
        self.workers = workers
        self.retry_failed = retry_failed

    def _key(self, report: Report) -> str:
        return cache_key(report.report_level_text, self.client.model, self.prompt.cache_id)

    def _ask(self, key: str, report_text: str) -> CachedAnswer:
        def record(status: str, captions=(), error: str = "", raw: str = "") -> CachedAnswer:
            return CachedAnswer(key, self.client.model, self.prompt.cache_id, status, tuple(captions), error, raw)

        try:
            answer = self.client.complete(self.prompt.messages(report_text))
        except ChatServerMisconfigured:
            raise
        except MalformedChatResponse as error:
            result = record(STATUS_MALFORMED, error=str(error), raw=error.raw)
        except ChatRequestFailed as error:
            result = record(STATUS_REQUEST_FAILED, error=str(error))
        else:
            try:
                result = record(STATUS_OK, captions=parse_caption_answer(answer))
            except MalformedAnswer as error:
                result = record(STATUS_MALFORMED, error=str(error), raw=self.client.redact(answer))
        self.cache.append(result)
        return result

    def decompose_all(self, reports: list[Report]) -> list[ReportCaptions]:
        answers = self.cache.load()
        text_of_key = {}
        for report in reports:
            text_of_key.setdefault(self._key(report), report.report_level_text)
        to_ask = [
            key
            for key in text_of_key
            if key not in answers or (self.retry_failed and answers[key].status != STATUS_OK)
        ]
        log.info(
            "%d reports, %d distinct, %d already answered in the cache, %d to ask %s",
            len(reports), len(text_of_key), len(text_of_key) - len(to_ask), len(to_ask), self.client.url,
        )
        if to_ask:
            self._ask_all(to_ask, text_of_key, answers)
        self.cache.close()
        results = []
        for report in reports:
            answer = answers[self._key(report)]
            failure = None if answer.status == STATUS_OK else f"{answer.status}: {answer.error}"
            results.append(ReportCaptions(report=report, captions=list(answer.captions), failure=failure))
        return results

    def _ask_all(self, keys: list[str], text_of_key: dict[str, str], answers: dict[str, CachedAnswer]) -> None:
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            futures = [pool.submit(self._ask, key, text_of_key[key]) for key in keys]
            try:
                for future in tqdm(as_completed(futures), total=len(futures), desc="LLM captions", unit="report"):
                    answer = future.result()
                    answers[answer.key] = answer
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
