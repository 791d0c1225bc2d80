"""The campaigns service (nameko entrypoints; thin)."""
from services.common.db import Database
from services.common import service as base  # a module, so `nameko run` finds only this class


class CampaignsService(base.ServiceBase):
    name = "campaigns"
    db = Database("campaigns")
