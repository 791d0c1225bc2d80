"""Logging plumbing: expected domain errors (not found, invalid input, conflicts...) are answers,
not faults, so they are logged as one INFO line without a traceback."""
import logging

from services.common.errors import DomainError


class ExpectedErrors(logging.Filter):
    def filter(self, record):
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, DomainError):
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg = "%s answered %s: %s"
            record.args = (_worker(record), type(exc).__name__, exc.message)
            record.exc_info = record.exc_text = None
        return True


def _worker(record):
    args = record.args if isinstance(record.args, tuple) else ()
    return args[0] if args else "worker"
