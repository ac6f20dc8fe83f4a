"""Who may see and change what: stores, customers, follow-ups."""

from functools import wraps

from flask import abort
from flask_login import current_user, login_required

from app.models import Customer, FollowUp, Staff, StaffStore, Store


def store_ids(staff: Staff) -> list[int]:
    """Ids of the stores a staff member works in (every store for an owner)."""
    if staff.role == "owner":
        return [s.id for s in Store.select(Store.id)]
    return [
        m.store_id for m in StaffStore.select(StaffStore.store).where(StaffStore.staff == staff.id)
    ]


def visible_stores(staff: Staff):
    """The stores this staff member may see, as a query."""
    if staff.role == "owner":
        return Store.select().order_by(Store.name)
    return Store.select().join(StaffStore).where(StaffStore.staff == staff.id).order_by(Store.name)


def visible_customers(staff: Staff):
    """Customers of the stores this staff member works in."""
    return Customer.select().where(Customer.store.in_(store_ids(staff)))


def customer_or_404(staff: Staff, customer_id: int) -> Customer:
    """A customer this staff member may see, or 404 (never a hint that it exists)."""
    customer = Customer.get_or_none(Customer.id == customer_id)
    if customer is None or customer.store_id not in store_ids(staff):
        abort(404)
    return customer


def visible_followups(staff: Staff):
    """An employee's own follow-ups; a manager's stores' follow-ups; all for an owner."""
    query = FollowUp.select()
    if staff.role == "employee":
        return query.where(FollowUp.assignee == staff.id)
    if staff.role == "manager":
        return query.where(FollowUp.store.in_(store_ids(staff)))
    return query


def followup_or_404(staff: Staff, followup_id: int) -> FollowUp:
    """A follow-up this staff member may work on, or 404."""
    followup = visible_followups(staff).where(FollowUp.id == followup_id).first()
    if followup is None:
        abort(404)
    return followup


def role_required(*roles: str):
    """Allow only signed-in staff with one of the roles; others get 403."""

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


manager_required = role_required("manager", "owner")
owner_required = role_required("owner")
