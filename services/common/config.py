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
