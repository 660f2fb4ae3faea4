"""Alembic's entry point: run the migrations on the connection `migrate()` passes in."""

from alembic import context

from grader.server.db import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
