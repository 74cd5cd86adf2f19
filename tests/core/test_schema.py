from core.schema import head_revision, migrate, schema_differences


def test_migrations_describe_the_models_exactly(engine):
    # autogenerate compares the migrated test database (SQLite or PostgreSQL) with the models
    assert schema_differences(engine) == []


def test_a_second_migrate_is_a_no_op(engine):
    head = head_revision()
    assert migrate(engine) == (head, head)
