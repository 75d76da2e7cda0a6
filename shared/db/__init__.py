"""Cloud SQL PostgreSQL access, with tenant isolation enforced by the database.

- `tenant_session(tenant_id)`: the way to read and write a tenant's data (shared/db/tenancy.py);
- `shared.db.platform`: the few cross-tenant lookups (webhook routing, sign-in, job loops);
- `shared.db.models`: the typed tables; `shared.db.migrate`: their migrations;
- `shared.db.bootstrap`: roles and database for the local runtime and the tests.
"""

from shared.db.engine import get_engine, reset_engine
from shared.db.tenancy import tenant_session

__all__ = ["get_engine", "reset_engine", "tenant_session"]
