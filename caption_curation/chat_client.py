"""Minimal client for OpenAI-compatible chat-completions servers (OpenAI, vLLM, Ollama, ...), stdlib only.

Retries 429, 5xx, timeouts and dropped connections with exponential backoff and full jitter
(honouring a numeric Retry-After). 401/403/404 mean a wrong key, URL or model name: they raise
``ChatServerMisconfigured`` at once, since every further report would fail the same way. Other 4xx
fail the one request.

The API key is sent only in the Authorization header. Every message this module produces (and the
raw text it hands back) goes through ``redact`` first, so a server echoing the header cannot leak the
key into logs, the cache or the outputs.
"""
from __future__ import annotations

import http.client
import json
import logging
import random
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable, Optional

from nnunetv2_openvocab.user_errors import UserError

log = logging.getLogger(__name__)

_RETRYABLE_STATUS = {408, 409, 429}
_MISCONFIGURED_STATUS = {401, 403, 404}
_BODY_EXCERPT_CHARS = 300
_READ_CHUNK_BYTES = 1 << 16


class ChatRequestFailed(RuntimeError):
    """No answer for this request: retries exhausted or a non-retryable HTTP status."""


class ChatServerMisconfigured(UserError, ChatRequestFailed):
    """The server refuses every request (bad key, URL or model): stop instead of failing each report."""


class MalformedChatResponse(ValueError):
    """HTTP 200 whose body is not a chat-completions response; ``raw`` keeps the (redacted) body."""

    def __init__(self, message: str, raw: str):
        super().__init__(message)
        self.raw = raw


class _TransientError(Exception):
    def __init__(self, reason: str, retry_after_s: Optional[float] = None):
        super().__init__(reason)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 6
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0

    def delay_s(self, retry_index: int, retry_after_s: Optional[float]) -> float:
        """Full jitter: uniform in [0, base * 2**retry_index], capped; never below the server's Retry-After."""
        backoff = random.uniform(0.0, min(self.max_delay_s, self.base_delay_s * 2**retry_index))
        return min(self.max_delay_s, max(backoff, retry_after_s or 0.0))


def _retry_after_s(headers) -> Optional[float]:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:  # an HTTP date: fall back to our own backoff
        return None


class ChatCompletionsClient:
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: Optional[str] = None,
        timeout_s: float = 120.0,
        retry: RetryPolicy = RetryPolicy(),
        json_mode: bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self._api_key = api_key or None
        self.timeout_s = timeout_s
        self.retry = retry
        self.json_mode = json_mode
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"ChatCompletionsClient(url={self.url!r}, model={self.model!r})"

    def redact(self, text: str) -> str:
        return text.replace(self._api_key, "[redacted]") if self._api_key and text else text

    def complete(self, messages: list[dict]) -> str:
        """The assistant message content for ``messages``, after as many retries as the policy allows."""
        body = {"model": self.model, "messages": messages, "temperature": 0}
        if self.json_mode:
            body["response_format"] = {"type": "json_object"}
        payload = json.dumps(body).encode("utf-8")
        for retry_index in range(self.retry.max_retries + 1):
            try:
                return self._content_of(self._post(payload))
            except _TransientError as error:
                if retry_index == self.retry.max_retries:
                    raise ChatRequestFailed(
                        f"{self.url}: gave up after {retry_index + 1} attempt(s), last error: {error}"
                    ) from None
                delay = self.retry.delay_s(retry_index, error.retry_after_s)
                log.debug("retrying %s in %.2f s after: %s", self.url, delay, error)
                self._sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")

    def _post(self, payload: bytes) -> bytes:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(self.url, data=payload, headers=headers, method="POST")
        try:
            deadline = time.monotonic() + self.timeout_s
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return self._read_before(response, deadline)
        except urllib.error.HTTPError as error:
            excerpt = self.redact(error.read(_BODY_EXCERPT_CHARS).decode("utf-8", "replace"))
            reason = f"HTTP {error.code} from {self.url}: {excerpt}"
            if error.code in _RETRYABLE_STATUS or error.code >= 500:
                raise _TransientError(reason, _retry_after_s(error.headers)) from None
            if error.code in _MISCONFIGURED_STATUS:
                raise ChatServerMisconfigured(
                    f"{reason}; check --base-url, --model and the API key environment variable"
                ) from None
            raise ChatRequestFailed(reason) from None
        except (TimeoutError, socket.timeout) as error:
            raise _TransientError(f"timed out after {self.timeout_s} s ({error})") from None
        except urllib.error.URLError as error:
            raise _TransientError(f"cannot reach {self.url}: {self.redact(str(error.reason))}") from None
        except (ConnectionError, http.client.HTTPException) as error:
            raise _TransientError(f"connection to {self.url} broke: {type(error).__name__}") from None

    def _read_before(self, response, deadline: float) -> bytes:
        """The whole body, or a timeout once ``deadline`` passes: a server that trickles an endless answer keeps
        every gap under the socket timeout, so the total time is bounded here, chunk by chunk."""
        chunks = []
        while True:
            chunk = response.read1(_READ_CHUNK_BYTES)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            if time.monotonic() > deadline:
                raise TimeoutError(f"the answer was still arriving after {self.timeout_s} s")

    def _content_of(self, body: bytes) -> str:
        text = self.redact(body.decode("utf-8", "replace"))
        try:
            content = json.loads(text)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError, RecursionError):  # RecursionError: absurd nesting
            raise MalformedChatResponse("response body is not a chat-completions JSON object", raw=text) from None
        if not isinstance(content, str):
            raise MalformedChatResponse("choices[0].message.content is not a string", raw=text)
        return content
