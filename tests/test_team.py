"""Work management: bulk reassignment, switching staff off, nudges and the notice banner."""

from datetime import timedelta

from app import clock
from app.models import AuditLog, FollowUp, Notice, Staff, StaffSession
from tests.factories import login, make_customer, make_staff, make_store


def setup_store():
    store = make_store("kl", timezone="Asia/Kuala_Lumpur")
    aisyah = make_staff("employee", [store], name="Aisyah")
    mei = make_staff("employee", [store], name="Mei")
    lin = make_staff("employee", [store], name="Lin")
    manager = make_staff("manager", [store], name="Farah")
    now = clock.now()
    fus = []
    for i in range(4):
        c = make_customer(store)
        fus.append(
            FollowUp.create(
                store=store,
                customer=c,
                assignee=aisyah,
                due_at=now - timedelta(days=i + 1),
                open_customer=c.id,
            )
        )
    return store, aisyah, mei, lin, manager, fus


def test_selected_followups_move_to_the_chosen_employee(client):
    store, aisyah, mei, _lin, manager, fus = setup_store()
    login(client, manager)
    resp = client.post(
        "/team/followups/reassign",
        data={"ids": [fus[0].id, fus[1].id], "target": str(mei.id), "assignee": str(aisyah.id)},
    )
    assert resp.status_code == 200
    assert "2 follow-ups reassigned" in resp.get_data(as_text=True)
    owners = {f.id: f.assignee_id for f in FollowUp.select()}
    assert owners[fus[0].id] == mei.id and owners[fus[1].id] == mei.id
    assert owners[fus[2].id] == aisyah.id
    assert AuditLog.select().where(AuditLog.action == "followup.reassigned").exists()


def test_select_all_matching_round_robins_every_open_followup(client):
    store, aisyah, mei, lin, manager, fus = setup_store()
    login(client, manager)
    resp = client.post(
        "/team/followups/reassign",
        data={"all_matching": "1", "assignee": str(aisyah.id), "target": "round_robin"},
    )
    assert resp.status_code == 200
    counts = {}
    for f in FollowUp.select():
        counts[f.assignee_id] = counts.get(f.assignee_id, 0) + 1
    assert aisyah.id not in counts
    assert counts == {mei.id: 2, lin.id: 2}


def test_reassign_without_a_selection_answers_422_with_the_reason(client):
    store, aisyah, mei, _lin, manager, _fus = setup_store()
    login(client, manager)
    resp = client.post(
        "/team/followups/reassign", data={"target": str(mei.id)}, headers={"HX-Request": "true"}
    )
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert "Select at least one follow-up." in html and "<html" not in html


def test_filter_list_shows_only_overdue_work_of_one_person(client):
    store, aisyah, mei, _lin, manager, fus = setup_store()
    c = make_customer(store)
    FollowUp.create(
        store=store,
        customer=c,
        assignee=mei,
        due_at=clock.now() + timedelta(days=2),
        open_customer=c.id,
    )
    login(client, manager)
    html = client.get(f"/team/followups?assignee={mei.id}&overdue=1").get_data(as_text=True)
    assert "0 follow-ups match." in html
    html = client.get(f"/team/followups?assignee={aisyah.id}&overdue=1").get_data(as_text=True)
    assert "4 follow-ups match." in html


def test_switching_off_an_employee_hands_over_work_and_ends_sessions(client, app):
    store, aisyah, mei, _lin, manager, fus = setup_store()
    other = app.test_client()
    login(other, aisyah)
    assert StaffSession.select().where(StaffSession.staff == aisyah.id).count() == 1
    login(client, manager)
    page = client.get(f"/team/staff/{aisyah.id}/deactivate").get_data(as_text=True)
    assert "4 open follow-ups: where should they go?" in page
    resp = client.post(f"/team/staff/{aisyah.id}/deactivate", data={"target": str(mei.id)})
    assert resp.status_code == 303
    assert not Staff.get_by_id(aisyah.id).active
    assert FollowUp.select().where(FollowUp.assignee == mei.id).count() == 4
    assert (
        StaffSession.select()
        .where(StaffSession.staff == aisyah.id, StaffSession.revoked_at.is_null())
        .count()
        == 0
    )
    assert other.get("/today").status_code in (302, 401)


def test_switching_off_to_the_manager_queue_leaves_work_unassigned(client):
    store, aisyah, _mei, _lin, manager, _fus = setup_store()
    login(client, manager)
    client.post(f"/team/staff/{aisyah.id}/deactivate", data={"target": "queue"})
    assert FollowUp.select().where(FollowUp.assignee.is_null()).count() == 4


def test_switching_off_without_a_target_is_refused(client):
    store, aisyah, _mei, _lin, manager, _fus = setup_store()
    login(client, manager)
    resp = client.post(f"/team/staff/{aisyah.id}/deactivate", data={"target": ""})
    assert resp.status_code == 422
    assert Staff.get_by_id(aisyah.id).active


def test_nudge_shows_a_banner_to_the_employee_until_dismissed(client, app):
    store, aisyah, _mei, _lin, manager, _fus = setup_store()
    login(client, manager)
    resp = client.post(f"/team/staff/{aisyah.id}/nudge", headers={"HX-Request": "true"})
    assert resp.status_code == 200
    assert "4 overdue follow-ups" in resp.get_data(as_text=True)
    notice = Notice.get()
    assert notice.staff_id == aisyah.id and notice.sender_id == manager.id
    employee = app.test_client()
    login(employee, aisyah)
    page = employee.get("/today").get_data(as_text=True)
    assert "You have 4 overdue follow-ups" in page
    employee.post(f"/team/notices/{notice.id}/read", headers={"HX-Request": "true"})
    assert "You have 4 overdue follow-ups" not in employee.get("/today").get_data(as_text=True)


def test_manager_of_another_store_cannot_nudge_or_switch_off(client):
    store, aisyah, _mei, _lin, _manager, _fus = setup_store()
    other = make_store("bkk")
    stranger = make_staff("manager", [other])
    login(client, stranger)
    assert client.post(f"/team/staff/{aisyah.id}/nudge").status_code == 404
    assert (
        client.post(f"/team/staff/{aisyah.id}/deactivate", data={"target": "queue"}).status_code
        == 404
    )
