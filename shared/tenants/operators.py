"""`scripts/admin`: make someone a platform operator, or stop them being one.

The `platform_operator` custom claim is set here, with the Admin SDK and the project's own
credentials: no API a tenant can call sets it. Against the running `scripts/dev` (its
`.local/dev.json`) unless GOOGLE_CLOUD_PROJECT names a real project.

    scripts/admin grant ops@example.com [--password P]   create the login if needed (local: with P)
    scripts/admin revoke ops@example.com                 take the claim away and end their sessions
    scripts/admin list                                   every operator
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from shared.api.auth import OPERATOR_CLAIM


def _use_local_stack(state_dir: Path) -> None:
    info = json.loads((state_dir / "dev.json").read_text())
    os.environ["FIREBASE_AUTH_EMULATOR_HOST"] = info["firebase_auth_emulator_host"]
    os.environ["GOOGLE_CLOUD_PROJECT"] = info["project"]


def grant(email: str, password: str | None) -> dict[str, Any]:
    from firebase_admin import auth

    from shared.api.auth import firebase_app

    app = firebase_app()
    try:
        record = auth.get_user_by_email(email, app=app)
    except auth.UserNotFoundError:
        record = auth.create_user(email=email, password=password, email_verified=password is not None, app=app)
    claims = dict(record.custom_claims or {})
    claims[OPERATOR_CLAIM] = True
    auth.set_custom_user_claims(record.uid, claims, app=app)
    return {"email": email, "uid": record.uid, "operator": True}


def revoke(email: str) -> dict[str, Any]:
    from firebase_admin import auth

    from shared.api.auth import firebase_app

    app = firebase_app()
    record = auth.get_user_by_email(email, app=app)
    claims = {k: v for k, v in (record.custom_claims or {}).items() if k != OPERATOR_CLAIM}
    auth.set_custom_user_claims(record.uid, claims or None, app=app)
    auth.revoke_refresh_tokens(record.uid, app=app)
    return {"email": email, "uid": record.uid, "operator": False}


def operators() -> list[dict[str, Any]]:
    from firebase_admin import auth

    from shared.api.auth import firebase_app

    return [
        {"email": user.email, "uid": user.uid}
        for user in auth.list_users(app=firebase_app()).iterate_all()
        if (user.custom_claims or {}).get(OPERATOR_CLAIM) is True
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/admin", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--state-dir", type=Path, default=Path(".local"), help="the local stack's state (scripts/dev)")
    commands = parser.add_subparsers(dest="command", required=True)
    granting = commands.add_parser("grant", help="make EMAIL a platform operator")
    granting.add_argument("email")
    granting.add_argument("--password", help="for a new login of the local Auth emulator only")
    commands.add_parser("revoke", help="EMAIL is no longer an operator").add_argument("email")
    commands.add_parser("list", help="every operator")
    args = parser.parse_args(argv)
    if not os.environ.get("GOOGLE_CLOUD_PROJECT"):
        if not (args.state_dir / "dev.json").exists():
            parser.error("set GOOGLE_CLOUD_PROJECT for a real project, or start scripts/dev first")
        _use_local_stack(args.state_dir)
    if args.command == "grant":
        result: Any = grant(args.email, args.password)
    elif args.command == "revoke":
        result = revoke(args.email)
    else:
        result = operators()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
