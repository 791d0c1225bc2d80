"""The identity service (nameko entrypoints; thin)."""
from services.common.db import Database
from services.common import service as base  # a module, so `nameko run` finds only this class


class IdentityService(base.ServiceBase):
    name = "identity"
    db = Database("identity")
