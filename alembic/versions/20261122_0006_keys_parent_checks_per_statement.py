"""PostgreSQL: the references from ``keys`` to ``products`` and ``import_batches`` are
checked once per statement instead of once per row.

A foreign key is checked by a row trigger: for every key inserted, PostgreSQL runs a
locked lookup of the product and of the import batch. On a bulk import that was most of
the server's work: 49 µs of server CPU a key with both checks, 19 µs with them checked per
statement (``bench/import_keys.py``, 300,000 keys, same run). The guarantee stays in the
database and stays the same; only the moment of the check moves:

- ``keys_parents_exist`` (AFTER INSERT, FOR EACH STATEMENT, with the statement's new rows
  as a transition table): locks each distinct product and import batch the new keys name
  (``FOR KEY SHARE``, as a foreign-key check does, so nobody deletes them before this
  transaction ends) and raises ``foreign_key_violation`` (SQLSTATE 23503) naming the
  constraint if any is missing. A ``COPY`` of 5,000 keys of one product costs two locked
  lookups instead of 10,000.
- ``keys_parents_exist_on_update`` (BEFORE UPDATE OF product_id, import_batch_id, per
  row): the same for an update that changes either column. Claims and deliveries do not
  name these columns, so the trigger never fires for them.
- ``products_keys_restrict`` and ``import_batches_keys_restrict`` (BEFORE DELETE OR
  UPDATE OF id, per row): refuse to delete (or renumber) a product or import batch that
  keys still name, as the foreign key's ``NO ACTION`` did. The row lock the delete takes
  waits for any transaction still inserting keys for it; the check then sees them.

Not covered, as with any trigger: ``TRUNCATE products`` alone (keyshop never truncates;
a foreign key would have refused it). The other references from ``keys`` (order line,
provider purchase) are written a few at a time and keep their foreign keys. SQLite keeps
all of its foreign keys: its checks are cheap and its imports are not the bulk path.

The models still declare both foreign keys (SQLite's tables and the ORM's joins use
them); ``alembic/filters.py`` leaves these two out of the PostgreSQL comparison.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (column on keys, parent table, the foreign key's name): the names stay those of the
# constraints they replace, so errors read the same.
CHECKED = (
    ("product_id", "products", "fk_keys_product_id_products"),
    ("import_batch_id", "import_batches", "fk_keys_import_batch_id_import_batches"),
)


def _child_check(column: str, parent: str, constraint: str, rows: str) -> str:
    """plpgsql: lock the parents ``rows`` (a query of keys rows) name, then raise if one
    is missing. The second query takes a new snapshot after the locks were granted."""
    return f"""
    PERFORM 1 FROM {parent} p
     WHERE p.id IN (SELECT DISTINCT k.{column} FROM {rows} k WHERE k.{column} IS NOT NULL)
     ORDER BY p.id FOR KEY SHARE OF p;
    SELECT k.{column} INTO missing FROM {rows} k
     WHERE k.{column} IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.id = k.{column})
     LIMIT 1;
    IF FOUND THEN
      RAISE EXCEPTION 'insert or update on table "keys" violates foreign key constraint "{constraint}"'
        USING ERRCODE = 'foreign_key_violation', TABLE = 'keys', CONSTRAINT = '{constraint}',
              DETAIL = format('Key ({column})=(%s) is not present in table "{parent}".', missing);
    END IF;"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for _column, _parent, constraint in CHECKED:
        op.drop_constraint(constraint, "keys", type_="foreignkey")

    inserted = "".join(_child_check(c, p, n, "new_keys") for c, p, n in CHECKED)
    op.execute(f"""
CREATE FUNCTION keys_parents_exist() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
  missing bigint;
BEGIN{inserted}
  RETURN NULL;
END
$fn$""")
    op.execute(
        "CREATE TRIGGER keys_parents_exist AFTER INSERT ON keys "
        "REFERENCING NEW TABLE AS new_keys FOR EACH STATEMENT "
        "EXECUTE FUNCTION keys_parents_exist()"
    )

    # One row: the same checks over a one-row set, only for a column the update changes.
    updated = "".join(
        _child_check(c, p, n, f"(SELECT NEW.{c} AS {c} WHERE NEW.{c} IS DISTINCT FROM OLD.{c})")
        for c, p, n in CHECKED
    )
    op.execute(f"""
CREATE FUNCTION keys_parents_exist_on_update() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
  missing bigint;
BEGIN{updated}
  RETURN NEW;
END
$fn$""")
    op.execute(
        "CREATE TRIGGER keys_parents_exist_on_update "
        "BEFORE UPDATE OF product_id, import_batch_id ON keys "
        "FOR EACH ROW EXECUTE FUNCTION keys_parents_exist_on_update()"
    )

    for column, parent, constraint in CHECKED:
        op.execute(f"""
CREATE FUNCTION {parent}_keys_restrict() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.id IS NOT DISTINCT FROM OLD.id THEN
    RETURN NEW;
  END IF;
  IF EXISTS (SELECT 1 FROM keys WHERE keys.{column} = OLD.id) THEN
    RAISE EXCEPTION 'update or delete on table "{parent}" violates foreign key constraint "{constraint}" on table "keys"'
      USING ERRCODE = 'foreign_key_violation', TABLE = '{parent}', CONSTRAINT = '{constraint}',
            DETAIL = format('Key (id)=(%s) is still referenced from table "keys".', OLD.id);
  END IF;
  IF TG_OP = 'DELETE' THEN
    RETURN OLD;
  END IF;
  RETURN NEW;
END
$fn$""")
        op.execute(
            f"CREATE TRIGGER {parent}_keys_restrict BEFORE DELETE OR UPDATE OF id ON {parent} "
            f"FOR EACH ROW EXECUTE FUNCTION {parent}_keys_restrict()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for _column, parent, _constraint in CHECKED:
        op.execute(f"DROP TRIGGER IF EXISTS {parent}_keys_restrict ON {parent}")
        op.execute(f"DROP FUNCTION IF EXISTS {parent}_keys_restrict()")
    op.execute("DROP TRIGGER IF EXISTS keys_parents_exist_on_update ON keys")
    op.execute("DROP FUNCTION IF EXISTS keys_parents_exist_on_update()")
    op.execute("DROP TRIGGER IF EXISTS keys_parents_exist ON keys")
    op.execute("DROP FUNCTION IF EXISTS keys_parents_exist()")
    for column, parent, constraint in CHECKED:
        op.create_foreign_key(constraint, "keys", parent, [column], ["id"])
