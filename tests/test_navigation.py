"""The main navigation: every section a role may use is one tap away, and every link works."""

import re

from tests.factories import login
from tests.world import build_world

MANAGER_SECTIONS = {
    "/today",
    "/customers",
    "/plans",
    "/team/followups",
    "/tags",
    "/messages",
    "/loyalty",
    "/dashboard",
    "/settings",
}


def _nav_links(html: str) -> set[str]:
    nav = re.search(r'<nav class="tabs"[^>]*>(.*?)</nav>', html, re.S)
    assert nav, "the page has no main navigation"
    return set(re.findall(r'href="([^"]+)"', nav.group(1)))


def test_manager_navigation_reaches_every_console_section_and_each_opens(app, client):
    world = build_world()
    login(client, world.manager_a)
    links = _nav_links(client.get("/today").get_data(as_text=True))
    assert links == MANAGER_SECTIONS
    for href in sorted(links):
        resp = client.get(href)
        assert resp.status_code == 200, href
        assert 'aria-current="page"' in resp.get_data(as_text=True), href


def test_employee_navigation_shows_only_today_and_clients(app, client):
    world = build_world()
    login(client, world.employee_a)
    assert _nav_links(client.get("/today").get_data(as_text=True)) == {"/today", "/customers"}
