"""What every nameko service class mixes in: the outbox relay timer and a health ping."""
from nameko.rpc import rpc
from nameko.timer import timer


class ServiceBase:
    """Subclasses declare `name` and `db = Database(name)`."""

    @timer(interval=1)
    def relay_outbox(self):
        # Events are normally published right after their transaction commits; this catches
        # whatever a crash between commit and publish left behind. Every replica runs it; the
        # relay's SKIP LOCKED keeps them from publishing the same row twice.
        self.db.relay()

    @timer(interval=3600)
    def purge_outbox(self):
        # Published events and handled-event marks are kept a week, then deleted, so neither
        # table grows without bound.
        self.db.purge()

    @rpc
    def ping(self):
        return {"service": self.name, "ok": True}
