"""The contacts service (nameko entrypoints; thin)."""
from services.common.db import Database
from services.common import service as base  # a module, so `nameko run` finds only this class


class ContactsService(base.ServiceBase):
    name = "contacts"
    db = Database("contacts")
