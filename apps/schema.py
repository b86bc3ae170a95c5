"""Schema changes made while the app keeps running: the one place migrations learn how.

`AddIndexConcurrently` builds an index on PostgreSQL with CREATE INDEX CONCURRENTLY, which
lets inserts and updates go on while it reads the table (a plain CREATE INDEX holds them back
until it is done: minutes, on a large table). Its migration must say `atomic = False`, since
PostgreSQL builds such an index only outside a transaction. Elsewhere (SQLite) it is a plain
`AddIndex`. Either way the migration state is the same as `AddIndex`'s.
"""

from django.contrib.postgres import operations
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import ProjectState


class AddIndexConcurrently(operations.AddIndexConcurrently):
    def database_forwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.AddIndex.database_forwards(
                self, app_label, schema_editor, from_state, to_state
            )

    def database_backwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.AddIndex.database_backwards(
                self, app_label, schema_editor, from_state, to_state
            )
