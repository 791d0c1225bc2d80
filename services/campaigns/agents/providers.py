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


# --- operator policy: which key names and endpoints agents may use ----------------------------
#
# An agent names the environment variable that holds its key; the campaigns process reads it and
# sends it as a bearer token to the agent's base_url. Both are chosen by organization users, so the
# operator decides which variables may be named (AGENT_API_KEY_ENVS) and, optionally, which
# endpoints may receive them (AGENT_ALLOWED_BASE_URLS). Otherwise any member could name
# DATABASE_URL and point the agent at a server of theirs.

KEY_ENVS_VAR = "AGENT_API_KEY_ENVS"
BASE_URLS_VAR = "AGENT_ALLOWED_BASE_URLS"


def _names(value):
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def allowed_key_envs(environ=None):
    """The variable names an agent may use for its key (default: OPENAI_API_KEY only)."""
    environ = os.environ if environ is None else environ
    return _names(environ.get(KEY_ENVS_VAR, DEFAULT_KEY_ENV))


def allowed_base_urls(environ=None):
    """The URL prefixes an agent may call; empty means any http(s) URL."""
    environ = os.environ if environ is None else environ
    return [u.rstrip("/") for u in _names(environ.get(BASE_URLS_VAR, ""))]


def base_url_allowed(base_url, environ=None):
    allowed = allowed_base_urls(environ)
    if not allowed:
        return True
    url = (base_url or "").rstrip("/")
    # A prefix must end at a path boundary: https://api.example.com does not allow
    # https://api.example.com.attacker.net.
    return any(url == prefix or url.startswith(prefix + "/") for prefix in allowed)


def settings_errors(agent, environ=None):
    """{field: [message]} for key names and endpoints the operator has not allowed."""
    errors = {}
    key_env = agent.get("api_key_env")
    if key_env and key_env not in allowed_key_envs(environ):
        allowed = allowed_key_envs(environ)
        errors["api_key_env"] = [
            f"{key_env} is not an allowed key variable; allowed: "
            + (", ".join(allowed) if allowed else "none")
            + f" (the operator lists them in {KEY_ENVS_VAR})"]
    base_url = agent.get("base_url")
    if base_url and not base_url_allowed(base_url, environ):
        errors["base_url"] = [
            "this endpoint is not allowed; allowed: " + ", ".join(allowed_base_urls(environ))
            + f" (the operator lists them in {BASE_URLS_VAR})"]
    return errors


def client_for(agent, environ=None):
    """The chat client of an openai_compatible agent; the key comes from the environment only,
    and only from a variable the operator allowed, sent only to an endpoint the operator allowed.
    Checked here again at call time: a row saved before the policy (or edited in the database)
    must not leak a variable either."""
    environ = os.environ if environ is None else environ
    if not agent.get("base_url"):
        raise AgentFailure(f"agent {agent.get('name')!r} has no base_url")
    if not base_url_allowed(agent["base_url"], environ):
        raise AgentFailure(f"agent {agent.get('name')!r}: its base_url is not allowed "
                           f"({BASE_URLS_VAR}); an owner or admin must change it")
    key_env = agent.get("api_key_env")
    if key_env and key_env not in allowed_key_envs(environ):
        raise AgentFailure(f"agent {agent.get('name')!r}: api_key_env {key_env} is not allowed "
                           f"({KEY_ENVS_VAR}); an owner or admin must change it")
    if not key_env and DEFAULT_KEY_ENV in allowed_key_envs(environ):
        key_env = DEFAULT_KEY_ENV
    key = environ.get(key_env) or None if key_env else None
    return ChatCompletions(
        agent["base_url"], agent.get("model") or "default", api_key=key,
        timeout=float(environ.get("AGENT_TIMEOUT", 30)),
        retries=int(environ.get("AGENT_RETRIES", 2)),
        backoff=float(environ.get("AGENT_BACKOFF", 0.5)),
    )
