"""Access control of the local labelling app: token, cookie, Host and Origin checks, static names.

The server prints one URL holding a random token (like Jupyter). The first
visit with ``?token=`` sets an ``HttpOnly``, ``SameSite=Strict`` cookie and
redirects to the same URL without the token (so it leaves the address bar and
the history); afterwards the cookie, or an ``X-Descluster-Token`` header, is
the credential. Every request needs it, compared in constant time
(:func:`hmac.compare_digest`). A state-changing request (any method but GET
and HEAD) is also refused when its ``Origin`` is not this server, or when the
browser says it is cross-site (``Sec-Fetch-Site``), and every request whose
``Host`` is not one of the server's own names is refused (DNS rebinding).
Refusals are ``403`` with a one-line text body.

Image and static files are never looked up by a client-given path:
thumbnails by row number (:mod:`descluster.app.views`, reading through
:class:`~descluster.io.images.ImageSource`, which refuses ``..``, absolute
paths and links leaving the image root), static files by name from a fixed
list (:func:`static_file`).
"""

from __future__ import annotations

import hmac
import secrets
from http.cookies import SimpleCookie
from importlib import resources
from urllib.parse import parse_qsl, urlencode, urlsplit

__all__ = ["TOKEN_COOKIE", "TOKEN_HEADER", "make_token", "AccessControl", "static_file", "STATIC_TYPES",
           "SECURITY_HEADERS"]

#: Cookie holding the access token after the first visit.
TOKEN_COOKIE = "descluster_token"
#: Header a script may send instead of the cookie.
TOKEN_HEADER = "x-descluster-token"
#: Methods that change nothing (no Origin check).
SAFE_METHODS = frozenset({"GET", "HEAD"})

#: Sent with every response: the page may load nothing but this server (Content-Security-Policy).
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
                                 b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]

#: Static files served by name, with their media type; nothing else is served from the package.
STATIC_TYPES = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}


def make_token() -> str:
    """A fresh random access token (43 URL-safe characters, 256 bits from :mod:`secrets`)."""
    return secrets.token_urlsafe(32)


def static_file(name: str) -> tuple[bytes, str] | None:
    """``(bytes, media type)`` of a packaged static file, or None for any name not in :data:`STATIC_TYPES`."""
    if name not in STATIC_TYPES:
        return None
    return (resources.files("descluster.app").joinpath("static", name).read_bytes(), STATIC_TYPES[name])


def _headers(scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


class AccessControl:
    """ASGI middleware enforcing the token, Host and Origin rules of the module docstring.

    Parameters
    ----------
    app : ASGI application
    token : str
        The access token (see :func:`make_token`); at least 16 characters.
    hosts : iterable of str
        Host names (without port) this server answers to, e.g. ``127.0.0.1``, ``localhost``;
        ``"*"`` accepts any (a server listening beyond loopback).

    Raises
    ------
    ValueError
        A token shorter than 16 characters.
    """

    def __init__(self, app, token: str, hosts=("127.0.0.1", "localhost", "::1")):
        if not isinstance(token, str) or len(token) < 16:
            raise ValueError("the access token must be a string of at least 16 characters")
        self.app = app
        self.token = token
        self.hosts = {h.lower().strip("[]") for h in hosts}

    def _valid(self, candidate: str | None) -> bool:
        return bool(candidate) and hmac.compare_digest(candidate.encode("utf-8"), self.token.encode("utf-8"))

    @staticmethod
    def _host_name(host: str) -> str:
        host = host.strip().lower()
        if host.startswith("["):
            return host[1:].split("]", 1)[0]
        return host.rsplit(":", 1)[0] if host.count(":") == 1 else host

    async def _send_text(self, send, status: int, text: str, extra=()) -> None:
        body = text.encode("utf-8")
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode())] + SECURITY_HEADERS + list(extra)})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = _headers(scope)
        host = headers.get("host", "")
        if "*" not in self.hosts and self._host_name(host) not in self.hosts:
            return await self._send_text(send, 403, f"refused: Host {host!r} is not this server")
        method = scope["method"].upper()
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed cookie header counts as none
            cookie = SimpleCookie()
        by_cookie = cookie[TOKEN_COOKIE].value if TOKEN_COOKIE in cookie else None
        by_header = headers.get(TOKEN_HEADER)
        if method in SAFE_METHODS and "token" in query:
            if not self._valid(query["token"]):
                return await self._send_text(send, 403, "refused: wrong access token (use the URL the server printed)")
            rest = urlencode([(k, v) for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"))
                              if k != "token"])
            location = scope.get("path", "/") + (f"?{rest}" if rest else "")
            set_cookie = f"{TOKEN_COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/".encode("latin-1")
            await send({"type": "http.response.start", "status": 303,
                        "headers": [(b"location", location.encode("latin-1")), (b"set-cookie", set_cookie),
                                    (b"content-length", b"0")] + SECURITY_HEADERS})
            await send({"type": "http.response.body", "body": b""})
            return
        if not (self._valid(by_cookie) or self._valid(by_header)):
            return await self._send_text(send, 403, "refused: this server needs its access token "
                                                    "(open the URL with ?token=... that `descluster serve` printed)")
        if method not in SAFE_METHODS:
            origin = headers.get("origin")
            if origin is not None:
                parts = urlsplit(origin)
                if parts.scheme not in ("http", "https") or parts.netloc.lower() != host.lower():
                    return await self._send_text(send, 403, f"refused: a change requested from another origin ({origin})")
            if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
                return await self._send_text(send, 403, "refused: a cross-site request may not change anything")

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message = dict(message)
                message["headers"] = list(message.get("headers", [])) + [h for h in SECURITY_HEADERS
                                                                         if h[0] not in present]
            await send(message)

        return await self.app(scope, receive, send_with_headers)
