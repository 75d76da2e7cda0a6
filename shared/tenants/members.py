"""A tenant's staff: invite, change role or outlet, remove.

Our users table is the truth. From it, after every change:
- the Firebase user's custom claims (tenant_id, role, outlet_id) are set, for dashboards;
- `tenants/{tenant}/staff/{uid}` in Firestore is written, or deleted on removal: the
  Firestore rules read it, so a removed member's still-valid ID token reads nothing;
- the user's refresh tokens are revoked when a role, an outlet or the membership changes, and
  the staff APIs verify tokens with the revocation check, so an old token no longer acts.

An invite creates the Firebase user (no password) and returns an email sign-in link: sending
it is the caller's business (no email sender here).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared.api.auth import firebase_app
from shared.cloud import firestore
from shared.cloud.settings import settings
from shared.db import platform
from shared.db.models import Conversation, Outlet, User
from shared.db.tenancy import tenant_session

log = logging.getLogger(__name__)


class MemberError(Exception):
    """A change the rules refuse; `status` says how (404, 409)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Invited:
    member: dict[str, Any]
    sign_in_link: str | None
    created: bool  # False: already staff here (a retried invite); nothing changed


def member_view(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "display_name": user.display_name,
        "role": user.role,
        "outlet_id": user.outlet_id,
        "created_at": user.created_at,
    }


def list_members(tenant_id: uuid.UUID) -> list[dict[str, Any]]:
    with tenant_session(tenant_id) as session:
        users = session.scalars(select(User).order_by(User.created_at, User.id))
        return [member_view(u) for u in users]


def _check_outlet(session: Session, role: str, outlet_id: uuid.UUID | None) -> None:
    if outlet_id is not None and role != "agent":
        raise MemberError(409, "only an agent is scoped to one outlet")
    if outlet_id is not None and session.get(Outlet, outlet_id) is None:
        raise MemberError(404, "no such outlet")


def invite(
    tenant_id: uuid.UUID,
    email: str,
    display_name: str | None,
    role: str,
    outlet_id: uuid.UUID | None = None,
    *,
    password: str | None = None,  # only the local demo's logins have one
) -> Invited:
    from firebase_admin import auth

    app = firebase_app()
    email = email.strip().lower()
    try:
        record = auth.get_user_by_email(email, app=app)
    except auth.UserNotFoundError:
        record = None
    if record is not None:
        known = platform.user_for_firebase_uid(record.uid)
        if known is not None and known.tenant_id != tenant_id:
            raise MemberError(409, "this email is staff of another business; use another address")
        if known is not None:
            with tenant_session(tenant_id) as session:
                user = session.get_one(User, known.user_id)
            sync(tenant_id, user)  # a retried invite leaves claims and membership right
            return Invited(member_view(user), _sign_in_link(email), created=False)
        if record.disabled:
            auth.update_user(record.uid, disabled=False, app=app)
    else:
        record = auth.create_user(
            email=email, display_name=display_name, password=password, email_verified=password is not None, app=app
        )
    with tenant_session(tenant_id) as session:
        _check_outlet(session, role, outlet_id)
        user = User(
            tenant_id=tenant_id,
            firebase_uid=record.uid,
            email=email,
            display_name=display_name,
            role=role,
            outlet_id=outlet_id,
        )
        session.add(user)
        session.flush()
        session.refresh(user)
    sync(tenant_id, user)
    log.info("staff invited", extra={"user_id": str(user.id), "role": role})
    return Invited(member_view(user), _sign_in_link(email), created=True)


def _sign_in_link(email: str) -> str | None:
    from firebase_admin import auth

    action = auth.ActionCodeSettings(url=settings().dashboard_url, handle_code_in_app=True)
    try:
        return str(auth.generate_sign_in_with_email_link(email, action, app=firebase_app()))
    except Exception as error:  # email-link sign-in not enabled in the project: the invite still stands
        log.warning("no sign-in link: %s", type(error).__name__)
        return None


def _owners(session: Session) -> int:
    return len(list(session.scalars(select(User.id).where(User.role == "owner"))))


def change(tenant_id: uuid.UUID, user_id: uuid.UUID, actor_role: str, changes: dict[str, Any]) -> dict[str, Any]:
    """A new `role` and/or `outlet_id` (an agent's scope; None: every outlet). What is not in
    `changes` stays as it was."""
    with tenant_session(tenant_id) as session:
        user = session.get(User, user_id, with_for_update=True)
        if user is None:
            raise MemberError(404, "no such staff member")
        new_role = changes.get("role") or user.role
        if "owner" in (user.role, new_role) and actor_role != "owner":
            raise MemberError(409, "only an owner may make or change an owner")
        if user.role == "owner" and new_role != "owner" and _owners(session) <= 1:
            raise MemberError(409, "a business keeps at least one owner")
        new_outlet = changes.get("outlet_id", user.outlet_id) if new_role == "agent" else None
        _check_outlet(session, new_role, new_outlet)
        user.role, user.outlet_id = new_role, new_outlet
        session.flush()
        session.refresh(user)
    sync(tenant_id, user, revoke=True)
    return member_view(user)


def remove(tenant_id: uuid.UUID, user_id: uuid.UUID, actor_role: str) -> None:
    """Out of the business: row gone, their conversations back in the queue, login disabled,
    every session revoked, the Firestore membership gone."""
    from firebase_admin import auth

    with tenant_session(tenant_id) as session:
        user = session.get(User, user_id, with_for_update=True)
        if user is None:
            raise MemberError(404, "no such staff member")
        if user.role == "owner" and actor_role != "owner":
            raise MemberError(409, "only an owner may remove an owner")
        if user.role == "owner" and _owners(session) <= 1:
            raise MemberError(409, "a business keeps at least one owner")
        session.execute(
            update(Conversation).where(Conversation.assigned_user_id == user_id).values(assigned_user_id=None)
        )
        session.delete(user)
        uid = user.firebase_uid
    app = firebase_app()
    firestore.client().document(staff_path(tenant_id, uid)).delete()
    try:
        auth.set_custom_user_claims(uid, None, app=app)
        auth.update_user(uid, disabled=True, app=app)
        auth.revoke_refresh_tokens(uid, app=app)
    except auth.UserNotFoundError:
        pass  # deleted in Firebase already: nothing left to end
    log.info("staff removed", extra={"user_id": str(user_id)})


def staff_path(tenant_id: uuid.UUID, firebase_uid: str) -> str:
    return f"tenants/{tenant_id}/staff/{firebase_uid}"


def sync(tenant_id: uuid.UUID, user: User, *, revoke: bool = False) -> None:
    """Claims and the Firestore membership from the users row; revoke old sessions if asked."""
    from firebase_admin import auth

    claims: dict[str, Any] = {"tenant_id": str(tenant_id), "role": user.role}
    if user.outlet_id is not None:
        claims["outlet_id"] = str(user.outlet_id)
    app = firebase_app()
    firestore.client().document(staff_path(tenant_id, user.firebase_uid)).set(
        {"role": user.role, "outlet_id": str(user.outlet_id) if user.outlet_id else None, "user_id": str(user.id)}
    )
    auth.set_custom_user_claims(user.firebase_uid, claims, app=app)
    if revoke:
        auth.revoke_refresh_tokens(user.firebase_uid, app=app)
