"""Plumbing every service uses: config, database, outbox, idempotent handlers, errors, context."""
