"""The operator decides which environment variables an agent may name as its key
(AGENT_API_KEY_ENVS) and, when set, which endpoints may be called (AGENT_ALLOWED_BASE_URLS); checked
when an agent is saved and again when it is called."""
import pytest

from services.campaigns.agents import AgentFailure, providers

SECRETS = {"DATABASE_URL": "postgresql://app:hunter2@db/outreach", "OPENAI_API_KEY": "sk-ok-123456",
           "LOCAL_LLM_KEY": "local-key"}


def agent(**kw):
    return dict({"name": "Gala writer", "provider": "openai_compatible", "model": "m",
                 "base_url": "https://llm.example.com/v1", "api_key_env": None}, **kw)


def test_only_openai_api_key_is_allowed_unless_the_operator_lists_more():
    assert providers.allowed_key_envs({}) == ["OPENAI_API_KEY"]
    assert providers.allowed_key_envs({"AGENT_API_KEY_ENVS": " LOCAL_LLM_KEY ,OPENAI_API_KEY,"}) == [
        "LOCAL_LLM_KEY", "OPENAI_API_KEY"]
    assert providers.settings_errors(agent(api_key_env="DATABASE_URL"), {}) == {"api_key_env": [
        "DATABASE_URL is not an allowed key variable; allowed: OPENAI_API_KEY "
        "(the operator lists them in AGENT_API_KEY_ENVS)"]}
    assert providers.settings_errors(agent(api_key_env="LOCAL_LLM_KEY"),
                                     {"AGENT_API_KEY_ENVS": "LOCAL_LLM_KEY"}) == {}


def test_a_disallowed_key_variable_is_never_read_at_call_time():
    with pytest.raises(AgentFailure) as err:
        providers.client_for(agent(api_key_env="DATABASE_URL"), environ=SECRETS)
    assert "api_key_env DATABASE_URL is not allowed" in str(err.value)
    assert "hunter2" not in str(err.value)
    env = dict(SECRETS, AGENT_API_KEY_ENVS="LOCAL_LLM_KEY")
    assert providers.client_for(agent(api_key_env="LOCAL_LLM_KEY"), environ=env).api_key == "local-key"


def test_without_a_key_variable_the_default_is_used_only_while_it_is_allowed():
    assert providers.client_for(agent(), environ=SECRETS).api_key == "sk-ok-123456"
    env = dict(SECRETS, AGENT_API_KEY_ENVS="LOCAL_LLM_KEY")
    assert providers.client_for(agent(), environ=env).api_key is None


def test_with_an_endpoint_allow_list_only_those_endpoints_are_called():
    env = dict(SECRETS, AGENT_ALLOWED_BASE_URLS="https://llm.example.com/, http://localhost:11434/v1")
    assert providers.base_url_allowed("https://llm.example.com/v1", env)
    assert providers.base_url_allowed("http://localhost:11434/v1/", env)
    assert not providers.base_url_allowed("https://llm.example.com.attacker.net/v1", env)
    assert not providers.base_url_allowed("http://127.0.0.1:8399/v1", env)
    assert providers.base_url_allowed("http://127.0.0.1:8399/v1", SECRETS)  # no list: any URL
    assert providers.settings_errors(agent(base_url="http://127.0.0.1:8399/v1"), env) == {"base_url": [
        "this endpoint is not allowed; allowed: https://llm.example.com, http://localhost:11434/v1 "
        "(the operator lists them in AGENT_ALLOWED_BASE_URLS)"]}
    with pytest.raises(AgentFailure) as err:
        providers.client_for(agent(base_url="http://127.0.0.1:8399/v1"), environ=env)
    assert "base_url is not allowed" in str(err.value)
