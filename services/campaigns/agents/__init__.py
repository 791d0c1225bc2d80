"""Writer and reviewer agents: what they produce from a brief, and the providers that do the work."""


class AgentFailure(Exception):
    """An agent could not produce its output (provider down, bad answer). The message is safe to
    store on the draft: it never contains the API key."""
