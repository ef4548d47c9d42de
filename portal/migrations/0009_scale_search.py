"""Indexes for the history at millions of rows (docs/scale.md).

The trigram GIN indexes exist on PostgreSQL only, so they are added by a guarded RunPython and
stay out of the model state: SQLite (the demo default) migrates and searches with LIKE."""

from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

# (model, column, index name): what the search matches with icontains, i.e. UPPER(col) LIKE UPPER(%s).
TRIGRAM_INDEXES = [
    ("release", "error", "release_error_trgm"),
    ("dataset", "name", "dataset_name_trgm"),
    ("mapping", "name", "mapping_name_trgm"),
]


def add_trigram_indexes(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for model_name, column, name in TRIGRAM_INDEXES:
        # Django's GinIndex(OpClass(Upper(...))) renders "(UPPER(col) gin_trgm_ops)" in parentheses,
        # which PostgreSQL refuses, so the statement is written out.
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS "{name}" ON "portal_{model_name}" USING gin (UPPER("{column}") gin_trgm_ops)'
        )


def remove_trigram_indexes(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for _model_name, _column, name in TRIGRAM_INDEXES:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')


class Migration(migrations.Migration):
    dependencies = [("portal", "0008_security_token_expiry")]

    operations = [
        TrigramExtension(),  # does nothing outside PostgreSQL
        migrations.RunPython(add_trigram_indexes, remove_trigram_indexes),
        migrations.AddIndex(
            model_name="release",
            index=models.Index(fields=["mapping", "-created_at", "-id"], name="release_history_mapping"),
        ),
        migrations.AddIndex(
            model_name="releasestep",
            index=models.Index(fields=["remote_ref"], name="step_remote_ref", opclasses=["varchar_pattern_ops"]),
        ),
    ]
