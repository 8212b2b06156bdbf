"""The SQLite state file: connection, schema, migrations and all SQL."""
