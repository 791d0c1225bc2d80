"""Who does an agent's work. `builtin` is deterministic and offline (writer.compose, reviewer.rules);
`openai_compatible` is any chat-completions HTTP endpoint (hosted, Ollama, vLLM), reached here."""
import os
import re
import time
from urllib.parse import urlsplit

import requests

from services.campaigns.agents import AgentFailure

PROVIDERS = ("builtin", "openai_compatible")
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
RETRYABLE = {408, 409, 429, 500, 502, 503, 504}


class ChatCompletions:
    """POST {base_url}/chat/completions with timeouts and retries; answers the message content."""

    def __init__(self, base_url, model, api_key=None, timeout=30.0, retries=2, backoff=0.5):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.host = urlsplit(base_url).netloc or base_url
        self.model, self.api_key = model, api_key
        self.timeout, self.retries, self.backoff = timeout, retries, backoff

    def complete(self, messages):
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        body = {"model": self.model, "messages": messages, "temperature": 0}
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * (2 ** (attempt - 1)))
            try:
                resp = requests.post(self.url, json=body, headers=headers, timeout=self.timeout)
            except requests.Timeout:
                last = f"no answer from {self.host} within {self.timeout:g}s"
                continue
            except requests.RequestException as err:
                last = f"could not reach {self.host} ({type(err).__name__})"
                continue
            if resp.status_code in RETRYABLE:
                last = f"{self.host} answered HTTP {resp.status_code}"
                continue
            if resp.status_code >= 400:
                raise AgentFailure(f"{self.host} refused the request: HTTP {resp.status_code}"
                                   f"{_error_text(resp)}")
            try:
                content = resp.json()["choices"][0]["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError):
                raise AgentFailure(f"{self.host} did not answer with a chat completion")
            if not isinstance(content, str) or not content.strip():
                raise AgentFailure(f"{self.host} answered with an empty message")
            return content
        attempts = self.retries + 1
        raise AgentFailure(f"model provider failed after {attempts} attempt"
                           f"{'s' if attempts != 1 else ''}: {last}")


def _error_text(resp):
    try:
        message = resp.json().get("error", {}).get("message", "")
    except (ValueError, AttributeError):
        message = ""
    # Never echo anything that looks like a key back into the draft.
    message = re.sub(r"(sk|key)[-_][A-Za-z0-9_\-]{6,}", "[redacted]", str(message))[:200]
    return f": {message}" if message else ""


def client_for(agent, environ=None):
    """The chat client of an openai_compatible agent; the key comes from the environment only."""
    environ = os.environ if environ is None else environ
    if not agent.get("base_url"):
        raise AgentFailure(f"agent {agent.get('name')!r} has no base_url")
    key = environ.get(agent.get("api_key_env") or DEFAULT_KEY_ENV) or None
    return ChatCompletions(
        agent["base_url"], agent.get("model") or "default", api_key=key,
        timeout=float(environ.get("AGENT_TIMEOUT", 30)),
        retries=int(environ.get("AGENT_RETRIES", 2)),
        backoff=float(environ.get("AGENT_BACKOFF", 0.5)),
    )
