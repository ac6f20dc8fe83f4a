"""A small two-store world for access tests: who is who, and what belongs where."""

from dataclasses import dataclass
from datetime import timedelta

from app import clock
from app.models import FollowUp, Plan
from tests.factories import make_customer, make_staff, make_store


@dataclass
class World:
    store_a: object
    store_b: object
    employee_a: object
    employee_a2: object
    manager_a: object
    manager_b: object
    owner: object
    customer_a: object
    customer_b: object
    followup_a: object
    followup_a2: object
    plan_a: object


def build_world() -> World:
    """Store A (Kuala Lumpur salon) and store B (Bangkok pet clinic) with staff and data."""
    store_a = make_store(
        "kl", name="Bunga Beauty KL", timezone="Asia/Kuala_Lumpur", region="MY", currency="MYR"
    )
    store_b = make_store(
        "bkk", name="Happy Paws Bangkok", timezone="Asia/Bangkok", region="TH", currency="THB"
    )
    employee_a = make_staff("employee", [store_a], email="aisyah@example.test", name="Aisyah")
    employee_a2 = make_staff("employee", [store_a], email="mei@example.test", name="Mei Ling")
    manager_a = make_staff("manager", [store_a], email="farah@example.test", name="Farah")
    manager_b = make_staff("manager", [store_b], email="somchai@example.test", name="Somchai")
    owner = make_staff("owner", [], email="owner@example.test", name="Owner")
    customer_a = make_customer(store_a, name="小红", phone="+60123456789")
    customer_b = make_customer(store_b, name="สมหญิง", phone="+66812345678")
    plan_a = Plan.create(
        store=store_a,
        name="Second visit",
        template="second_visit",
        type="behaviour",
        status="active",
    )
    now = clock.now()
    followup_a = FollowUp.create(
        store=store_a,
        customer=customer_a,
        plan=plan_a,
        assignee=employee_a,
        due_at=now + timedelta(hours=1),
        open_customer=customer_a.id,
        script="Hi 小红",
    )
    other = make_customer(store_a, name="Nurul", phone="+60129876543")
    followup_a2 = FollowUp.create(
        store=store_a,
        customer=other,
        plan=plan_a,
        assignee=employee_a2,
        due_at=now + timedelta(hours=2),
        open_customer=other.id,
        script="Hi Nurul",
    )
    return World(
        store_a,
        store_b,
        employee_a,
        employee_a2,
        manager_a,
        manager_b,
        owner,
        customer_a,
        customer_b,
        followup_a,
        followup_a2,
        plan_a,
    )
