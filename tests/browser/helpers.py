"""Helpers shared by the browser tests."""

from tests.factories import PASSWORD

HTMX_BUSY = ".htmx-request, .htmx-swapping, .htmx-settling, .htmx-added"


def htmx_idle(page) -> None:
    """Wait until htmx has no request in flight and has processed swapped-in content.

    htmx binds the attributes of new content only when it settles (20 ms after the swap);
    a control found before then exists but does not yet answer its events.
    """
    page.wait_for_function(f"() => !document.querySelector({HTMX_BUSY!r})")


def sign_in(page, email: str, landing: str | None = None, password: str = PASSWORD) -> None:
    """Sign in through the login form; wait for `landing` (a URL glob) or for leaving /login."""
    page.goto("/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("main button[type=submit]")
    if landing:
        page.wait_for_url(landing)
    else:
        page.wait_for_url(lambda url: "/login" not in url)


def no_horizontal_scroll(page) -> bool:
    """The page fits the viewport's width (nothing to scroll sideways)."""
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
