"""Helpers shared by the browser tests."""

HTMX_BUSY = ".htmx-request, .htmx-swapping, .htmx-settling, .htmx-added"


def htmx_idle(page) -> None:
    """Wait until htmx has no request in flight and has processed swapped-in content.

    htmx binds the attributes of new content only when it settles (20 ms after the swap);
    a control found before then exists but does not yet answer its events.
    """
    page.wait_for_function(f"() => !document.querySelector({HTMX_BUSY!r})")
