"""The migrations are the schema's truth: an upgraded empty database equals the models."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from scm.extensions import db


def test_upgrade_on_an_empty_database_gives_exactly_the_models_schema(app):
    # The `app` database was built by `flask db upgrade` (see conftest), not by create_all().
    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, db.metadata)
        assert diff == [], diff
        tables = set(inspect(conn).get_table_names())
    assert set(db.metadata.tables) <= tables
    assert "alembic_version" in tables
