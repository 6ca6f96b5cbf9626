"""ChatCompletionsClient against a real loopback HTTP server with scripted behaviour.

``ScriptedChatServer`` is also used by test_caption_llm_decomposer.py and test_caption_curate_command.py.
"""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional

import pytest

from caption_curation.chat_client import (
    ChatCompletionsClient,
    ChatRequestFailed,
    ChatServerMisconfigured,
    MalformedChatResponse,
    RetryPolicy,
)

API_KEY = "sk-test-SECRET-4f9c2e81d7"
FAST_RETRY = RetryPolicy(max_retries=3, base_delay_s=0.01, max_delay_s=0.05)
REPORT_PREFIX = "Radiology report:\n"


@dataclass
class Reply:
    """What the server does with one request: answer (status/body/headers), after an optional delay."""

    status: int = 200
    content: Optional[str] = None  # assistant message content, wrapped in a chat-completions body
    body: Optional[str] = None  # raw body instead of a chat-completions body
    headers: dict = field(default_factory=dict)
    delay_s: float = 0.0
    hold: Optional[threading.Event] = None  # wait for this event before answering (a request left in flight)


def captions_answer(report_text: str) -> str:
    """A well-formed answer: one caption per report line."""
    lines = [line.strip() for line in report_text.splitlines() if line.strip()]
    return json.dumps({"captions": [{"caption": line.rstrip("."), "source_sentence": line} for line in lines]})


def good_reply(report_text: str, attempt: int) -> Reply:
    return Reply(content=captions_answer(report_text))


class ScriptedChatServer:
    """Chat-completions server on 127.0.0.1 (free port); ``script(report_text, attempt) -> Reply``.

    ``received`` counts requests per report, ``answered`` the ones it finished answering with 200.
    """

    def __init__(self, script: Callable[[str, int], Reply] = good_reply):
        self.script = script
        self.received: Counter = Counter()
        self.answered: Counter = Counter()
        self.authorization: list[str] = []
        self.bodies: list[dict] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self) -> "ScriptedChatServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                report = body["messages"][-1]["content"].removeprefix(REPORT_PREFIX)
                with server._lock:
                    server.received[report] += 1
                    attempt = server.received[report]
                    server.authorization.append(self.headers.get("Authorization", ""))
                    server.bodies.append(body)
                reply = server.script(report, attempt)
                if reply.hold is not None:
                    reply.hold.wait()
                time.sleep(reply.delay_s)
                if reply.body is not None:
                    payload = reply.body
                elif reply.content is not None:
                    payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply.content}}]})
                else:
                    payload = json.dumps({"error": {"message": "scripted error"}})
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload.encode())))
                    self.end_headers()
                    self.wfile.write(payload.encode())
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client gave up (timeout): nothing was answered
                if reply.status == 200:
                    with server._lock:
                        server.answered[report] += 1

        return Handler


MESSAGES = [{"role": "user", "content": REPORT_PREFIX + "Liver is normal."}]


def make_client(server: ScriptedChatServer, **kwargs) -> ChatCompletionsClient:
    options = {"api_key": API_KEY, "timeout_s": 5.0, "retry": FAST_RETRY}
    options.update(kwargs)
    return ChatCompletionsClient(server.url, "test-model", **options)


def test_good_answer_sends_model_messages_json_mode_and_bearer_key():
    with ScriptedChatServer() as server:
        content = make_client(server).complete(MESSAGES)
    assert json.loads(content)["captions"][0]["caption"] == "Liver is normal"
    assert server.authorization == [f"Bearer {API_KEY}"]
    body = server.bodies[0]
    assert body["model"] == "test-model" and body["messages"] == MESSAGES
    assert body["response_format"] == {"type": "json_object"}


def test_no_key_sends_no_authorization_header():
    with ScriptedChatServer() as server:
        make_client(server, api_key=None).complete(MESSAGES)
    assert server.authorization == [""]


@pytest.mark.parametrize("status", [429, 500, 503])
def test_retries_rate_limits_and_server_errors(status):
    def script(report, attempt):
        return Reply(status=status, headers={"Retry-After": "0"}) if attempt <= 2 else good_reply(report, attempt)

    with ScriptedChatServer(script) as server:
        content = make_client(server).complete(MESSAGES)
    assert json.loads(content)["captions"]
    assert sum(server.received.values()) == 3


def test_retries_an_answer_slower_than_the_timeout():
    def script(report, attempt):
        return Reply(content=captions_answer(report), delay_s=1.0 if attempt == 1 else 0.0)

    with ScriptedChatServer(script) as server:
        start = time.perf_counter()
        content = make_client(server, timeout_s=0.3).complete(MESSAGES)
        elapsed = time.perf_counter() - start
    assert json.loads(content)["captions"]
    assert sum(server.received.values()) == 2
    assert elapsed < 1.0  # the slow answer was abandoned, not awaited


def test_gives_up_after_max_retries_without_leaking_the_key():
    # a server that echoes the Authorization header into its error body
    def script(report, attempt):
        return Reply(status=500, body=json.dumps({"error": f"bad request with Bearer {API_KEY}"}))

    with ScriptedChatServer(script) as server:
        with pytest.raises(ChatRequestFailed) as failure:
            make_client(server).complete(MESSAGES)
    assert sum(server.received.values()) == FAST_RETRY.max_retries + 1
    assert "HTTP 500" in str(failure.value)
    assert API_KEY not in str(failure.value) and API_KEY not in repr(failure.value)


@pytest.mark.parametrize("status", [401, 403, 404])
def test_misconfiguration_stops_at_once(status):
    with ScriptedChatServer(lambda report, attempt: Reply(status=status)) as server:
        with pytest.raises(ChatServerMisconfigured, match="--base-url"):
            make_client(server).complete(MESSAGES)
    assert sum(server.received.values()) == 1


def test_other_client_errors_fail_the_request_without_retry():
    with ScriptedChatServer(lambda report, attempt: Reply(status=400)) as server:
        with pytest.raises(ChatRequestFailed) as failure:
            make_client(server).complete(MESSAGES)
    assert not isinstance(failure.value, ChatServerMisconfigured)
    assert sum(server.received.values()) == 1


def test_malformed_body_keeps_the_raw_text_redacted():
    broken = '{"choices": [{"message": ' + f'"{API_KEY}"'
    with ScriptedChatServer(lambda report, attempt: Reply(body=broken)) as server:
        with pytest.raises(MalformedChatResponse) as failure:
            make_client(server).complete(MESSAGES)
    assert failure.value.raw.startswith('{"choices"')
    assert API_KEY not in failure.value.raw
    assert sum(server.received.values()) == 1


def test_unreachable_server_is_retried_then_fails():
    with ScriptedChatServer() as server:
        url = server.url
    client = ChatCompletionsClient(url, "m", retry=RetryPolicy(max_retries=1, base_delay_s=0.01))
    with pytest.raises(ChatRequestFailed, match="2 attempt"):
        client.complete(MESSAGES)


def test_client_repr_hides_the_key():
    client = ChatCompletionsClient("http://127.0.0.1:9/v1", "m", api_key=API_KEY)
    assert API_KEY not in repr(client) and API_KEY not in str(vars(client).get("url"))


def test_backoff_is_jittered_capped_and_honours_retry_after():
    policy = RetryPolicy(max_retries=6, base_delay_s=1.0, max_delay_s=8.0)
    delays = [policy.delay_s(5, None) for _ in range(200)]
    assert all(0.0 <= d <= 8.0 for d in delays) and len(set(delays)) > 100
    assert all(0.0 <= policy.delay_s(0, None) <= 1.0 for _ in range(50))
    assert policy.delay_s(0, 3.0) == 3.0
    assert policy.delay_s(0, 100.0) == 8.0
