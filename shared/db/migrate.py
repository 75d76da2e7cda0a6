"""Run the Alembic migrations, configured in code so the repository needs no alembic.ini.

Migrations run as the owner role (DATABASE_ADMIN_URL), never as the application role:

    python -m shared.db.migrate upgrade [REVISION]      # default: head
    python -m shared.db.migrate downgrade REVISION      # e.g. -1 or base; no default on purpose
    python -m shared.db.migrate current
    python -m shared.db.migrate revision -m "add x" [--autogenerate]

Revisions are numbered 0001, 0002, ... so their order reads from the file names. Write the
SQL of a revision by hand (grants, row-level security); --autogenerate only drafts tables.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from shared.cloud.settings import settings
from shared.db.engine import normalize_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Shared by env.py and the test that proves the models match the migrated schema.
COMPARE_OPTIONS: dict[str, Any] = {"compare_type": True, "compare_server_default": True}


def alembic_config(admin_url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if admin_url is not None:
        config.attributes["url"] = normalize_url(admin_url)
    return config


def upgrade(admin_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(admin_url), revision)


def upgrade_with(owner: Engine, revision: str = "head") -> str | None:
    """Migrate over an engine of the owner role; return the revision the database is now at."""
    config = alembic_config()
    config.attributes["engine"] = owner
    command.upgrade(config, revision)
    with owner.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def downgrade(admin_url: str, revision: str) -> None:
    command.downgrade(alembic_config(admin_url), revision)


def next_revision_id(config: Config) -> str:
    numbers = [int(head) for head in ScriptDirectory.from_config(config).get_heads() if head.isdigit()]
    return f"{max(numbers, default=0) + 1:04d}"


def _admin_url() -> str:
    url = settings().database_admin_url
    if url is None:
        raise SystemExit("DATABASE_ADMIN_URL is not set: it is the owner role's URL (scripts/dev exports it)")
    return url.get_secret_value()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m shared.db.migrate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("upgrade").add_argument("revision", nargs="?", default="head")
    commands.add_parser("downgrade").add_argument("revision")
    commands.add_parser("current")
    revision = commands.add_parser("revision")
    revision.add_argument("-m", "--message", required=True)
    revision.add_argument("--autogenerate", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    if args.command == "upgrade":
        upgrade(_admin_url(), args.revision)
    elif args.command == "downgrade":
        downgrade(_admin_url(), args.revision)
    elif args.command == "current":
        command.current(alembic_config(_admin_url()), verbose=True)
    else:
        config = alembic_config(_admin_url() if args.autogenerate else None)
        command.revision(config, message=args.message, autogenerate=args.autogenerate, rev_id=next_revision_id(config))


if __name__ == "__main__":
    main(sys.argv[1:])
