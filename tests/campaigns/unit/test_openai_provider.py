"""The openai_compatible provider speaks chat completions over HTTP, with timeouts, retries and a
clear failure. Tested against a small local server speaking the chat-completions wire format
(the model endpoint is a third party)."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from services.campaigns.agents import AgentFailure, providers, reviewer, writer

KEY = "sk-test-0123456789abcdef"


class ChatServer:
    """Answers POST /v1/chat/completions from a script of (status, content, delay) steps."""

    def __init__(self, script):
        self.script, self.requests = list(script), []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"),
                                        "body": body})
                status, content, delay = server.script.pop(0) if len(server.script) > 1 \
                    else server.script[0]
                time.sleep(delay)
                if status == 200:
                    payload = {"id": "chatcmpl-1", "object": "chat.completion", "model": body["model"],
                               "choices": [{"index": 0, "finish_reason": "stop",
                                            "message": {"role": "assistant", "content": content}}]}
                else:
                    payload = {"error": {"message": content, "type": "server_error"}}
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def chat_server():
    servers = []

    def start(*script):
        server = ChatServer(script)
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.close()


ENV = {"LOCAL_LLM_KEY": KEY, "AGENT_API_KEY_ENVS": "OPENAI_API_KEY, LOCAL_LLM_KEY", "AGENT_TIMEOUT": "1", "AGENT_RETRIES": "2", "AGENT_BACKOFF": "0.01"}
BRIEF = {"channel": "email", "organization": {"name": "Larkspur", "description": "Galas."},
         "goal": {"name": "Pilot", "description": "Offer a pilot"}, "instructions": "Be brief",
         "template": None, "contact": {"name": "Ada Byron", "email": "ada@example.org"}}


def agent(url, **kw):
    return dict({"name": "Gala writer", "type": "writer", "provider": "openai_compatible",
                 "base_url": url, "model": "llama3.1:8b", "api_key_env": "LOCAL_LLM_KEY",
                 "voice": "warm", "instructions": ""}, **kw)


def client(a):
    return providers.client_for(a, environ=ENV)


def test_writer_sends_a_chat_completion_and_reads_the_json_answer(chat_server):
    server = chat_server((200, '{"subject": "Ada, a pilot?", "preheader": "", "body": "Hi Ada, ..."}', 0))
    a = agent(server.url)
    out = writer.write(a, BRIEF, chat=client(a))
    assert out == {"subject": "Ada, a pilot?", "preheader": "", "body": "Hi Ada, ..."}
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == f"Bearer {KEY}"
    assert request["body"]["model"] == "llama3.1:8b"
    assert [m["role"] for m in request["body"]["messages"]] == ["system", "user"]
    assert json.loads(request["body"]["messages"][1]["content"])["recipient"]["name"] == "Ada Byron"


def test_a_subject_line_answer_is_accepted_too(chat_server):
    server = chat_server((200, "Subject: Hello Ada\n\nHi Ada,\nA pilot?", 0))
    a = agent(server.url)
    assert writer.write(a, BRIEF, chat=client(a)) == {
        "subject": "Hello Ada", "preheader": "", "body": "Hi Ada,\nA pilot?"}


def test_overloaded_endpoint_is_retried_until_it_answers(chat_server):
    server = chat_server((503, "overloaded", 0), (429, "slow down", 0), (200, '{"subject": "S", "body": "B"}', 0))
    a = agent(server.url)
    assert writer.write(a, BRIEF, chat=client(a))["body"] == "B"
    assert len(server.requests) == 3


def test_a_failing_endpoint_gives_a_clear_failure_without_the_key(chat_server):
    server = chat_server((500, f"internal error with key {KEY}", 0))
    a = agent(server.url)
    with pytest.raises(AgentFailure) as err:
        writer.write(a, BRIEF, chat=client(a))
    assert str(err.value) == f"model provider failed after 3 attempts: 127.0.0.1:{server.httpd.server_port} answered HTTP 500"
    assert KEY not in str(err.value)


def test_a_refused_request_is_not_retried_and_the_key_is_redacted(chat_server):
    server = chat_server((401, f"Incorrect API key provided: {KEY}", 0))
    a = agent(server.url)
    with pytest.raises(AgentFailure) as err:
        writer.write(a, BRIEF, chat=client(a))
    assert len(server.requests) == 1
    assert "HTTP 401" in str(err.value) and KEY not in str(err.value)


def test_a_slow_endpoint_times_out(chat_server):
    server = chat_server((200, '{"body": "late"}', 1.5))
    a = agent(server.url)
    with pytest.raises(AgentFailure) as err:
        writer.write(a, BRIEF, chat=client(a))
    assert "no answer from" in str(err.value) and "within 1s" in str(err.value)


def test_nobody_listening_is_a_failure_not_a_crash():
    a = agent("http://127.0.0.1:9/v1")
    with pytest.raises(AgentFailure) as err:
        writer.write(a, BRIEF, chat=client(a))
    assert "could not reach 127.0.0.1:9" in str(err.value)


def test_model_reviewer_reasons_join_the_rule_reasons(chat_server):
    server = chat_server((200, '{"verdict": "flag", "reasons": ["promises a discount"]}', 0))
    a = agent(server.url, type="reviewer", name="Gala reviewer")
    result = reviewer.review(a, "email", {"subject": "", "body": "20% off"}, BRIEF, chat=client(a))
    assert result == {"verdict": "flag",
                      "reasons": ["subject is missing", "reviewer model: promises a discount"]}


def test_model_reviewer_approval_keeps_a_clean_message_approved(chat_server):
    server = chat_server((200, '{"verdict": "approve", "reasons": []}', 0))
    a = agent(server.url, type="reviewer")
    result = reviewer.review(a, "email", {"subject": "Hi", "body": "Hello"}, BRIEF, chat=client(a))
    assert result == {"verdict": "approve", "reasons": []}
