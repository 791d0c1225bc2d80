"""Event handlers that do not lose events. nameko acks and drops an event whose handler raised;
ours put it back on the queue (after a pause that grows with each attempt) so a database blip or
a slow peer does not lose it, and give up on it only after MAX_ATTEMPTS, logging it at ERROR as a
dead letter. An event whose payload the handler refuses (a DomainError: invalid, not found) is not
retried: it would fail the same way every time.

    from services.common.events import event_handler
    @event_handler("campaigns", "drafts_approved")

Handlers stay idempotent (tx.first_time), so a redelivered event changes nothing."""
import collections
import logging

import eventlet
from nameko.events import EventHandler

from services.common.errors import DomainError

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
MAX_PAUSE = 30


class ReliableEventHandler(EventHandler):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("requeue_on_error", True)
        super().__init__(*args, **kwargs)
        self.attempts = collections.Counter()

    def handle_message_processed(self, message, result=None, exc_info=None):
        body = message.payload if isinstance(message.payload, dict) else {}
        key = body.get("event_id") or message.delivery_tag
        if exc_info is None:
            self.attempts.pop(key, None)
            return self.queue_consumer.ack_message(message)
        exc = exc_info[1]
        if isinstance(exc, DomainError):
            log.warning("event %s %s.%s refused by %s: %s", key, self.source_service,
                        self.event_type, self.method_name, exc)
            self.attempts.pop(key, None)
            return self.queue_consumer.ack_message(message)
        self.attempts[key] += 1
        attempt = self.attempts[key]
        if attempt >= MAX_ATTEMPTS:
            log.error("dead letter: event %s %s.%s failed %d times in %s, giving up: %r payload=%s",
                      key, self.source_service, self.event_type, attempt, self.method_name, exc,
                      body)
            self.attempts.pop(key, None)
            return self.queue_consumer.ack_message(message)
        pause = min(2 ** attempt * 0.25, MAX_PAUSE)
        log.warning("event %s %s.%s failed in %s (attempt %d), retrying in %.1fs: %r", key,
                    self.source_service, self.event_type, self.method_name, attempt, pause, exc)
        eventlet.sleep(pause)
        self.queue_consumer.requeue_message(message)


event_handler = ReliableEventHandler.decorator
