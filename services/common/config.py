"""Reads config.yml with nameko's `${VAR:default}` substitution, for services, the gateway and scripts."""
import os

import yaml
from nameko.cli.main import setup_yaml_parser

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_PATH = os.path.join(ROOT, "config.yml")

_parser_ready = False


def load_config(path=None):
    """The resolved config as a dict; `OUTREACH_CONFIG` names another file."""
    global _parser_ready
    if not _parser_ready:
        setup_yaml_parser()
        _parser_ready = True
    path = path or os.environ.get("OUTREACH_CONFIG") or DEFAULT_PATH
    with open(path) as f:
        return yaml.safe_load(f)


def database_url(config, service):
    """The DSN of one service: `<SERVICE>_DATABASE_URL`, else the shared `DATABASE_URL`."""
    urls = config.get("DATABASE_URLS") or {}
    return urls.get(service) or config["DATABASE_URL"]


INBOUND_EMAIL_MAX_BYTES = 25 * 1024 * 1024  # as common MTAs (Gmail, Microsoft 365) take


def inbound_email_max_bytes(config):
    """The largest raw inbound email accepted: INBOUND_EMAIL_MAX_BYTES, or 25 MB when it is unset
    or not a positive number. The gateway answers 413 above it; messaging refuses it too."""
    try:
        value = int(config.get("INBOUND_EMAIL_MAX_BYTES") or INBOUND_EMAIL_MAX_BYTES)
    except (TypeError, ValueError):
        return INBOUND_EMAIL_MAX_BYTES
    return value if value > 0 else INBOUND_EMAIL_MAX_BYTES


DEV_SECRET_PREFIX = "dev-only"


def check_secrets(config):
    """Refuse to run in production with the development secret key: provider credentials would be
    encrypted with a key anyone can read in this repository."""
    env = str(config.get("ENVIRONMENT") or "development").lower()
    if env == "production" and str(config.get("SECRET_KEY", "")).startswith(DEV_SECRET_PREFIX):
        raise SystemExit("SECRET_KEY is the development default: set SECRET_KEY (a random value "
                         "of 32+ bytes) before running with ENVIRONMENT=production")
