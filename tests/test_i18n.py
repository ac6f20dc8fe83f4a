"""Translations: every UI string translated in every language, placeholders intact, .mo compiled."""

import gettext
import io
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[1]
TRANSLATIONS = ROOT / "app" / "translations"
LOCALES = ["zh_Hans", "zh_Hant", "th", "ms"]
KEYWORDS = {
    "_": None,
    "gettext": None,
    "ngettext": (1, 2),
    "_l": None,
    "lazy_gettext": None,
}
PERCENT = re.compile(r"%(?:\((\w+)\))?[#0\- +]*\d*(?:\.\d+)?[sdrfiu%]")
BRACES = re.compile(r"\{(\w*)\}")

SIGN_IN = {
    "zh_Hans": "登录",
    "zh_Hant": "登入",
    "th": "เข้าสู่ระบบ",
    "ms": "Log masuk",
}


def _catalog(locale):
    with open(TRANSLATIONS / locale / "LC_MESSAGES" / "messages.po", "rb") as fh:
        return read_po(fh, locale=locale)


def _template():
    with open(TRANSLATIONS / "messages.pot", "rb") as fh:
        return read_po(fh)


def _ids(catalog):
    return {m.id if isinstance(m.id, str) else m.id[0]: m for m in catalog if m.id}


def _placeholders(text):
    named = sorted(m.group(0) for m in PERCENT.finditer(text))
    braces = sorted(BRACES.findall(text))
    return named, braces


@pytest.mark.parametrize("locale", LOCALES)
def test_every_ui_string_has_a_translation_in_each_language(locale):
    catalog = _ids(_catalog(locale))
    untranslated = []
    for msgid in _ids(_template()):
        entry = catalog.get(msgid)
        if entry is None or entry.fuzzy:
            untranslated.append(msgid)
            continue
        forms = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        if not forms or not all(f and f.strip() for f in forms):
            untranslated.append(msgid)
    assert untranslated == []


@pytest.mark.parametrize("locale", LOCALES)
def test_plural_strings_fill_every_plural_form_of_the_language(locale):
    catalog = _catalog(locale)
    for message in catalog:
        if message.id and message.pluralizable:
            assert len(message.string) == catalog.num_plurals, message.id
            assert all(message.string), message.id


@pytest.mark.parametrize("locale", LOCALES)
def test_translations_keep_the_placeholders_of_the_english_text(locale):
    wrong = []
    for message in _catalog(locale):
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        forms = message.string if isinstance(message.string, tuple) else (message.string,)
        expected = _placeholders(ids[-1])
        for form in forms:
            if form and _placeholders(form) != expected:
                wrong.append((ids[0], form))
            elif form and "%" in PERCENT.sub("", form):
                # A stray "%" breaks Jinja's always-on %-formatting of translated text.
                wrong.append((ids[0], form))
    assert wrong == []


def test_catalogue_template_holds_every_string_marked_in_the_code():
    method_map = [("**/templates/**.html", "jinja2"), ("**.py", "python")]
    found = set()
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
        str(ROOT / "app"), method_map=method_map, keywords=KEYWORDS
    ):
        found.add(message if isinstance(message, str) else message[0])
    missing = sorted(found - set(_ids(_template())))
    assert missing == [], "run ./scripts/i18n.sh and translate the new strings"


@pytest.mark.parametrize("locale", LOCALES)
def test_compiled_catalogues_match_the_translations(locale):
    catalog = _catalog(locale)
    fresh = io.BytesIO()
    write_mo(fresh, catalog)
    fresh.seek(0)
    expected = gettext.GNUTranslations(fresh)._catalog
    with open(TRANSLATIONS / locale / "LC_MESSAGES" / "messages.mo", "rb") as fh:
        compiled = gettext.GNUTranslations(fh)._catalog
    assert compiled == expected


@pytest.mark.parametrize("locale", LOCALES)
def test_sign_in_page_is_shown_in_the_chosen_language(client, locale):
    response = client.post("/language", data={"lang": locale})
    assert response.status_code in (200, 302, 303)
    page = client.get("/login").get_data(as_text=True)
    assert SIGN_IN[locale] in page
    assert ">Sign in<" not in page


def test_sign_in_page_follows_the_session_language(client):
    with client.session_transaction() as session:
        session["lang"] = "zh_Hant"
    page = client.get("/login").get_data(as_text=True)
    assert "登入" in page
    assert "Sign in" not in page


def test_sign_in_page_stays_english_without_a_choice(client):
    page = client.get("/login", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Sign in" in page


def test_traditional_chinese_is_not_a_copy_of_simplified():
    simplified = _ids(_catalog("zh_Hans"))
    traditional = _ids(_catalog("zh_Hant"))
    # Vocabulary that differs between mainland and Taiwan/Hong Kong usage.
    assert traditional["Sign in"].string == "登入"
    assert traditional["SMS"].string == "簡訊"
    assert traditional["Settings"].string == "設定"
    long_ids = [k for k, m in simplified.items() if isinstance(m.string, str) and len(m.string) > 8]
    same = [k for k in long_ids if traditional[k].string == simplified[k].string]
    # Only a few strings without any simplified/traditional difference may coincide.
    assert len(same) <= len(long_ids) // 20, same


CLIENT_FACING = ("portal.", "messages.unsubscribe")


def _pages(viewer):
    from tests.access_rules import ACCESS

    return [
        (endpoint, entry[1])
        for endpoint, entries in sorted(ACCESS.items())
        for entry in entries
        if entry[0] == "GET" and entry[2].get(viewer) == 200 and not endpoint.startswith("api.")
    ]


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("viewer", ["owner", "employee_a"])
def test_every_page_renders_in_each_language(app, locale, viewer):
    from tests.factories import login
    from tests.world import build_world

    world = build_world()
    client = app.test_client()
    login(client, getattr(world, viewer))
    client.post("/language", data={"lang": locale})
    broken = []
    for endpoint, url_fn in _pages(viewer):
        response = client.get(url_fn(world))
        response.get_data()  # consume streamed downloads (CSV) inside their request
        response.close()
        if response.status_code != 200:
            broken.append((endpoint, response.status_code))
        elif endpoint.startswith(CLIENT_FACING):
            continue  # shown in the client's language, not the viewer's
        elif response.mimetype == "text/html" and "<html" in response.get_data(as_text=True):
            page = response.get_data(as_text=True)
            if f'lang="{locale.replace("_", "-")}"' not in page:
                broken.append((endpoint, "not in the chosen language"))
    assert broken == []
