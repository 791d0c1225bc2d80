"""The only HTTP surface: REST API under /api/v1, webhooks, public reports."""
from gateway.app import create_app  # noqa: F401
