"""API blueprints, one module per service area."""
