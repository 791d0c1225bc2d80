"""Service-to-service RPC with a deadline (nameko 2.14's in-service RpcProxy has none)."""
import eventlet

from services.common.errors import DomainError


class RpcTimeout(DomainError):
    code = "upstream_timeout"


def call(proxy, method, *args, timeout=30, **kwargs):
    """`call(self.contacts_rpc, "resolve_segment", ctx, ...)`: raises RpcTimeout after `timeout` s."""
    with eventlet.Timeout(timeout, RpcTimeout(f"{method} did not answer in {timeout}s")):
        return getattr(proxy, method)(*args, **kwargs)
