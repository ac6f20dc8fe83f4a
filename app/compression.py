"""gzip for the web UI's responses (pages, fragments, CSS, JS, SVG) when the client accepts it.

Staff open Today on patchy mobile data: htmx, the stylesheet and the page shrink to about a
third on the wire. Static files are compressed once per version (ETag) and kept in memory.
The JSON API is left as it is: integrators' clients and test tools read it byte for byte.
"""

import gzip
from collections import OrderedDict

from flask import Flask, Response, request

COMPRESSIBLE = {
    "text/html",
    "text/css",
    "text/javascript",
    "application/javascript",
    "image/svg+xml",
}
MIN_BYTES = 500
LEVEL = 6
_static_cache: OrderedDict[tuple[str, str], bytes] = OrderedDict()
STATIC_CACHE_SIZE = 64


def _accepts_gzip() -> bool:
    accepted = request.accept_encodings
    return "gzip" in accepted and accepted["gzip"] > 0


def _static_body(resp: Response) -> bytes:
    """The compressed body of a static file, compressed once per path and ETag."""
    etag = resp.get_etag()[0] or ""
    key = (request.path, etag)
    body = _static_cache.get(key) if etag else None
    if body is not None:
        close = getattr(resp.response, "close", None)
        if close is not None:
            close()  # the file send_file opened is not read: close it now
    else:
        body = gzip.compress(resp.get_data(), LEVEL, mtime=0)
        if etag:
            _static_cache[key] = body
            while len(_static_cache) > STATIC_CACHE_SIZE:
                _static_cache.popitem(last=False)
    return body


def compress(resp: Response) -> Response:
    """Compress a finished response in place when it is text, large enough and not streamed."""
    resp.vary.add("Accept-Encoding")
    if (
        resp.status_code != 200
        or resp.mimetype not in COMPRESSIBLE
        or "Content-Encoding" in resp.headers
        or request.method == "HEAD"
        or not _accepts_gzip()
    ):
        return resp
    static = request.endpoint == "static"
    if resp.direct_passthrough and static:
        resp.direct_passthrough = False  # a file from send_file: read it to compress it
    elif resp.is_streamed:
        return resp  # CSV exports and other generators stay streamed
    if (resp.content_length or 0) < MIN_BYTES and len(resp.get_data()) < MIN_BYTES:
        return resp
    body = _static_body(resp) if static else gzip.compress(resp.get_data(), LEVEL)
    resp.set_data(body)
    resp.headers["Content-Encoding"] = "gzip"
    resp.headers.pop("Accept-Ranges", None)
    return resp


def init_app(app: Flask) -> None:
    """Compress every eligible response of the app."""
    app.after_request(compress)
