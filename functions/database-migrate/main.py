"""database-migrate: ops call it after a deploy (README, "Deploy"); roles, grants and the
migrations to head on Cloud SQL, idempotently. Only var.operators may invoke it."""

import functions_framework

from shared.cloud import runtime
from shared.cloud.settings import settings
from shared.db.bootstrap import prepare_cloud_sql
from shared.db.engine import owner_engine


@functions_framework.http
@runtime.http_function("database-migrate", methods=("POST",))
def migrate_database(request):  # type: ignore[no-untyped-def]
    with owner_engine() as owner:
        return prepare_cloud_sql(owner, settings().db_name), 200
