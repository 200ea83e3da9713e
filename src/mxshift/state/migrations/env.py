"""Alembic environment: runs with the connection mxshift hands it (see state/db.py)."""

from alembic import context

from mxshift.state.models import Base

config = context.config
target_metadata = Base.metadata

connection = config.attributes.get("connection")
if connection is None:  # e.g. `alembic` CLI during development
    from sqlalchemy import create_engine

    connection = create_engine(config.get_main_option("sqlalchemy.url")).connect()

context.configure(connection=connection, target_metadata=target_metadata,
                  render_as_batch=True, transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
