"""Passwords, sign-in with a shared rate limit, revocable sessions, the login audit."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask_login import UserMixin

from app import clock
from app.models import LoginEvent, Staff, StaffSession, StaffStore, Store

_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 10


class SignInError(Exception):
    """A failed sign-in; `reason` is a stable code, the message is for people."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def hash_password(password: str) -> str:
    """Hash a password with Argon2id."""
    return _hasher.hash(password)


def verify_password(staff: Staff, password: str) -> bool:
    """Check a password, upgrading the hash when the parameters changed."""
    try:
        _hasher.verify(staff.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    if _hasher.check_needs_rehash(staff.password_hash):
        staff.password_hash = _hasher.hash(password)
        staff.save(only=[Staff.password_hash])
    return True


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class SessionUser(UserMixin):
    """The signed-in staff member as Flask-Login sees it: a staff row plus one session."""

    staff: Staff
    session_token: str

    def get_id(self) -> str:
        return self.session_token

    def __getattr__(self, name):
        return getattr(self.staff, name)

    @property
    def id(self) -> int:
        return self.staff.id

    @property
    def is_owner(self) -> bool:
        return self.staff.role == "owner"

    @property
    def is_manager(self) -> bool:
        return self.staff.role in ("manager", "owner")


def load_session_user(token: str) -> SessionUser | None:
    """Flask-Login loader: a live session of an active staff member, else nobody."""
    row = (
        StaffSession.select(StaffSession, Staff)
        .join(Staff)
        .where(StaffSession.token_hash == _digest(token), StaffSession.revoked_at.is_null())
        .first()
    )
    if row is None or not row.staff.active:
        return None
    now = clock.now()
    if now - row.last_seen_at > timedelta(minutes=5):
        StaffSession.update(last_seen_at=now).where(StaffSession.id == row.id).execute()
    return SessionUser(row.staff, token)


def recent_failures(email: str, ip: str, now: datetime, window_minutes: int) -> int:
    """Failed sign-ins in the window for this email or this address (shared by all processes)."""
    since = now - timedelta(minutes=window_minutes)
    by_email = (
        LoginEvent.select()
        .where(LoginEvent.email == email, LoginEvent.success == False, LoginEvent.at >= since)  # noqa: E712
        .count()
    )
    by_ip = (
        LoginEvent.select()
        .where(LoginEvent.ip == ip, LoginEvent.success == False, LoginEvent.at >= since)  # noqa: E712
        .count()
        if ip
        else 0
    )
    return max(by_email, by_ip // 4)


def sign_in(
    email: str,
    password: str,
    ip: str,
    user_agent: str,
    now: datetime,
    max_failures: int = 5,
    window_minutes: int = 15,
) -> SessionUser:
    """Check credentials under the rate limit, open a session, record the attempt."""
    email = (email or "").strip().lower()
    ua = (user_agent or "")[:300]
    if recent_failures(email, ip, now, window_minutes) >= max_failures:
        LoginEvent.create(
            email=email, ip=ip, user_agent=ua, success=False, reason="rate_limited", at=now
        )
        raise SignInError("rate_limited")
    staff = Staff.get_or_none(Staff.email == email)
    if staff is None or not verify_password(staff, password or ""):
        LoginEvent.create(
            email=email,
            staff=staff,
            ip=ip,
            user_agent=ua,
            success=False,
            reason="bad_credentials",
            at=now,
        )
        raise SignInError("bad_credentials")
    if not staff.active:
        LoginEvent.create(
            email=email, staff=staff, ip=ip, user_agent=ua, success=False, reason="inactive", at=now
        )
        raise SignInError("inactive")
    token = secrets.token_urlsafe(32)
    StaffSession.create(
        token_hash=_digest(token),
        staff=staff,
        created_at=now,
        last_seen_at=now,
        ip=ip,
        user_agent=ua,
    )
    LoginEvent.create(email=email, staff=staff, ip=ip, user_agent=ua, success=True, at=now)
    Staff.update(last_login_at=now).where(Staff.id == staff.id).execute()
    return SessionUser(staff, token)


def sign_out(user: SessionUser, now: datetime) -> None:
    """Revoke this browser's session so a copied cookie stops working."""
    StaffSession.update(revoked_at=now).where(
        StaffSession.token_hash == _digest(user.session_token), StaffSession.revoked_at.is_null()
    ).execute()


def change_password(staff: Staff, current: str, new: str, now: datetime) -> None:
    """Change a password and revoke every session of this staff member."""
    if not verify_password(staff, current):
        raise SignInError("bad_credentials")
    validate_password(new)
    set_password(staff, new, now)


def validate_password(password: str) -> None:
    """Reject passwords that are too short."""
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise ValueError(f"Password must be at least {MIN_PASSWORD_LENGTH} characters.")


def set_password(staff: Staff, password: str, now: datetime) -> None:
    """Set a password and end all sessions."""
    staff.password_hash = hash_password(password)
    staff.password_changed_at = now
    staff.save(only=[Staff.password_hash, Staff.password_changed_at])
    StaffSession.update(revoked_at=now).where(
        StaffSession.staff == staff, StaffSession.revoked_at.is_null()
    ).execute()


def create_staff(
    email: str, name: str, role: str, stores: list[Store], password: str | None = None
) -> tuple[Staff, str]:
    """Add a login in the given stores; returns it with its password (generated when not given)."""
    if role not in ("employee", "manager", "owner"):
        raise ValueError(f"Unknown role {role!r}")
    password = password or secrets.token_urlsafe(12)
    validate_password(password)
    staff = Staff.create(
        email=email.strip().lower(), name=name, role=role, password_hash=hash_password(password)
    )
    for store in stores:
        StaffStore.get_or_create(staff=staff, store=store)
    return staff, password
