"""RPC to the services from the (threaded, not monkey-patched) Flask process: one long-lived
ClusterRpcProxy per thread, so reply queues are not churned per request, each call with a timeout."""
import threading

from nameko.standalone.rpc import ClusterRpcProxy


class RpcPool:
    def __init__(self):
        self.config = None
        self.timeout = 30
        self._local = threading.local()

    def init_app(self, app):
        self.config = {"AMQP_URI": app.config["AMQP_URI"], "serializer": "json"}
        self.timeout = float(app.config.get("RPC_TIMEOUT", 30))

    def _proxy(self):
        proxy = getattr(self._local, "proxy", None)
        if proxy is None:
            holder = ClusterRpcProxy(self.config, timeout=self.timeout)
            proxy = holder.start()
            self._local.holder, self._local.proxy = holder, proxy
        return proxy

    def reset(self):
        """Drop this thread's proxy (after a broker error) so the next call reconnects."""
        holder = getattr(self._local, "holder", None)
        self._local.proxy = self._local.holder = None
        if holder is not None:
            try:
                holder.stop()
            except Exception:
                pass

    def __getattr__(self, service):
        if service.startswith("_") or service in ("config", "timeout"):
            raise AttributeError(service)
        return getattr(self._proxy(), service)


rpc = RpcPool()
