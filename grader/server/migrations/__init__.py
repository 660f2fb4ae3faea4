"""Alembic migrations of the service's schema (run by `grader.server.db.migrate`)."""
