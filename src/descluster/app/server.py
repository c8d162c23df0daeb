"""Starting the labelling web app: listen first, open the session in the background.

``descluster serve OUT`` (:func:`serve`) opens the engine on a results folder
(``OUT/labels.sqlite``, WAL, every answer committed before the response: see
:mod:`descluster.labelling.store`) and serves, to this machine only unless
``--host`` says otherwise, and only with the printed token
(:mod:`descluster.app.security`), the pages and API of :mod:`descluster.app.views`.

Opening the session reads ``clusters.csv``, hashes the image paths and folds the
decisions log (seconds at 400,000 rows), so :func:`serve` binds its socket and prints
the URL first and :class:`AppLoader` opens the session in a background thread. The
object identities of the rows are not derived then: ``ResultsData.identities``
(:mod:`descluster.labelling.spaces`) derives them from the paths on first use, which
only an identity task makes (creating one, or its refits and questions).
Until it is ready, :class:`LoadingGate` answers every page with a small
"loading N images" page that reloads itself each second (``503`` with
``Retry-After``) and every API call with ``503`` and a JSON ``error``; when
opening fails, pages show the error (``500``) and the terminal gets one
``descluster: error:`` line. This module imports only the standard library at
start; NumPy, pandas, scikit-learn, Starlette and the engine are imported by the
loading thread.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from functools import lru_cache
from pathlib import Path

from ..errors import ParameterError
from .security import AccessControl, make_token, static_file

__all__ = ["create_app", "serve", "AppLoader", "LoadingGate", "ServedApp", "count_rows", "template_env",
           "RETRY_AFTER_S"]

log = logging.getLogger("descluster")

#: Seconds a client is asked to wait (``Retry-After``, and the loading page's reload).
RETRY_AFTER_S = 1
#: Path prefixes answered with JSON (not the loading page) while the session opens.
API_PREFIXES = ("/api/", "/thumb/", "/export/")


@lru_cache(maxsize=1)
def template_env():
    """The app's Jinja2 environment: package ``templates/``, autoescaped, undefined names an error."""
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("descluster.app", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined)


def count_rows(results) -> int | None:
    """Data rows of ``RESULTS/clusters.csv`` by counting its line ends (for the loading page), or None.

    A count, not a parse: a path holding a quoted line break would count twice. None when the
    file cannot be read.
    """
    try:
        with open(Path(results) / "clusters.csv", "rb") as fh:
            lines, last = 0, b"\n"
            while chunk := fh.read(1 << 22):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
    except OSError:
        return None
    return max(0, lines + (last != b"\n") - 1)


class AppLoader:
    """Opens the :class:`~descluster.app.views.LabellingApp` (and its routes), in a thread or at once.

    Parameters
    ----------
    open_app : callable
        ``open_app() -> LabellingApp``; may raise (a :class:`~descluster.errors.DesclusterError`
        naming the file, or anything else).
    n_images : int, optional
        Rows being loaded, shown on the loading page.
    report : callable, optional
        ``report(message)`` called once with the one-line failure text when opening fails.

    Attributes
    ----------
    state : {"loading", "ready", "failed"}
    error : str or None
        The failure text (:func:`descluster.cli.failure_message`) when ``state == "failed"``.
    labelling : LabellingApp or None
        Set when ready.
    asgi : starlette.applications.Starlette or None
        The app's routes (:func:`~descluster.app.views.build_routes`), set when ready.
    n_images : int or None
    started : float
        ``time.monotonic()`` at creation.
    """

    def __init__(self, open_app, n_images: int | None = None, report=None):
        self._open = open_app
        self.n_images = n_images
        self._report = report
        self.state = "loading"
        self.error: str | None = None
        self.labelling = None
        self.asgi = None
        self.started = time.monotonic()
        self._done = threading.Event()
        self._closed = False
        self._lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def load(self, warm: bool = False, raise_errors: bool = False) -> None:
        """Open the app now (in this thread); then load the space, graph and map ahead when ``warm``.

        Raises
        ------
        BaseException
            Whatever opening raised, only when ``raise_errors`` (``state`` is ``"failed"`` either way).
        """
        try:
            from .views import build_routes

            labelling = self._open()
            asgi = build_routes(labelling)
        except BaseException as exc:  # noqa: BLE001 - every failure is shown on the page, not a traceback
            from ..cli import failure_message

            self.error = failure_message(exc)
            self.state = "failed"
            self._done.set()
            if self._report is not None:
                self._report(self.error)
            if raise_errors:
                raise
            return
        with self._lock:
            if self._closed:  # the server stopped while the session was opening
                labelling.close()
                self._done.set()
                return
            self.labelling, self.asgi, self.state = labelling, asgi, "ready"
        self._done.set()
        if warm:
            labelling.warm()

    def start(self) -> threading.Thread:
        """Open the app in a daemon thread (then warm it); returns the thread."""
        self.thread = threading.Thread(target=self.load, kwargs={"warm": True}, name="descluster-load", daemon=True)
        self.thread.start()
        return self.thread

    def wait(self, timeout: float | None = None) -> bool:
        """Block until opening has finished (ready or failed); False on timeout."""
        return self._done.wait(timeout)

    def close(self) -> None:
        """Close the session if it is open; one that finishes opening later is closed at once."""
        with self._lock:
            self._closed = True
            labelling = self.labelling
        if labelling is not None:
            labelling.close()


class LoadingGate:
    """ASGI app in front of the routes: passes every request on once the loader is ready.

    Before that: ``/static/<name>`` as usual; paths under :data:`API_PREFIXES` get JSON
    (``503`` + ``Retry-After`` with ``{"error", "loading": true, "n_images"}`` while loading,
    ``500`` with ``{"error", "loading": false}`` after a failure); every other path gets the
    ``loading.html`` page (``503``, reloading itself every :data:`RETRY_AFTER_S` s) or the failure
    page (``500``). Other scope types (lifespan) are ignored until ready.

    Parameters
    ----------
    loader : AppLoader
    """

    def __init__(self, loader: AppLoader):
        self.loader = loader

    async def __call__(self, scope, receive, send):
        asgi = self.loader.asgi
        if asgi is not None:
            return await asgi(scope, receive, send)
        if scope["type"] != "http":
            return None
        import json

        L = self.loader
        path = scope.get("path", "/")
        failed = L.state == "failed"
        headers = [] if failed else [(b"retry-after", str(RETRY_AFTER_S).encode())]
        status = 500 if failed else 503
        if path.startswith("/static/"):
            got = static_file(path[len("/static/"):])
            if got is None:
                return await _respond(send, 404, b"not found", "text/plain; charset=utf-8")
            return await _respond(send, 200, got[0], got[1], [(b"cache-control", b"private, max-age=60")])
        what = f"{L.n_images:,} images" if L.n_images is not None else "the images"
        if path.startswith(API_PREFIXES):
            if failed:
                doc = {"error": f"the labelling session could not be opened: {L.error}", "loading": False}
            else:
                doc = {"error": f"the labelling session is still loading {what}; retry in {RETRY_AFTER_S} s",
                       "loading": True, "n_images": L.n_images}
            return await _respond(send, status, json.dumps(doc).encode(), "application/json", headers)
        html = template_env().get_template("loading.html").render(
            failed=failed, error=L.error or "", what=what, refresh=RETRY_AFTER_S,
            elapsed=round(time.monotonic() - L.started))
        return await _respond(send, status, html.encode("utf-8"), "text/html; charset=utf-8", headers)


async def _respond(send, status: int, body: bytes, media: str, extra=()) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", media.encode("latin-1")), (b"content-length", str(len(body)).encode()),
                            *extra]})
    await send({"type": "http.response.body", "body": body})


class ServedApp(AccessControl):
    """The access-controlled app (:class:`~descluster.app.security.AccessControl` over a :class:`LoadingGate`).

    Attributes
    ----------
    loader : AppLoader
    labelling : LabellingApp or None
        The loader's app (None until it is ready).
    token : str
    """

    def __init__(self, loader: AppLoader, token: str, hosts):
        super().__init__(LoadingGate(loader), token, hosts=hosts)
        self.loader = loader

    @property
    def labelling(self):
        return self.loader.labelling


def create_app(results, images=None, db=None, token: str | None = None, hosts=None, refit: str = "background",
               background: bool = False, open_app=None, report=None) -> ServedApp:
    """The ASGI app: the labelling routes behind the loading gate and the access rules.

    Parameters
    ----------
    results : str or PathLike
        A ``descluster run`` results folder.
    images, db, refit
        See :class:`~descluster.app.views.LabellingApp`.
    token : str, optional
        Access token (default a fresh :func:`~descluster.app.security.make_token`).
    hosts : iterable of str, optional
        Host names accepted in the ``Host`` header (default loopback names).
    background : bool
        Open the session in a background thread (:meth:`AppLoader.start`) and answer with the
        loading state meanwhile; default False: opened before returning.
    open_app : callable, optional
        ``open_app() -> LabellingApp`` instead of opening ``results`` (tests).
    report : callable, optional
        ``report(message)`` on a failure to open (see :class:`AppLoader`).

    Returns
    -------
    ServedApp
        ``.token``, ``.loader`` and ``.labelling`` on it.

    Raises
    ------
    CaseError, LabellingError
        From the session, when not ``background``.
    """
    if open_app is None:
        def open_app():
            from .views import LabellingApp

            return LabellingApp(results, images=images, db=db, refit=refit)
    loader = AppLoader(open_app, n_images=count_rows(results), report=report)
    app = ServedApp(loader, token or make_token(), hosts=hosts or ("127.0.0.1", "localhost", "::1"))
    if background:
        loader.start()
    else:
        loader.load(raise_errors=True)
    return app


def _loopback(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


def _print_error(message: str) -> None:
    print(f"descluster: error: {message}", file=sys.stderr, flush=True)


def serve(results, host: str = "127.0.0.1", port: int = 8765, images=None, token: str | None = None) -> int:
    """Listen on ``host:port``, print the URL with the access token, then open the session in the background.

    Returns 0 when stopped (Ctrl-C), 2 when the session could not be opened (its error was printed as
    one ``descluster: error:`` line and shown on the pages until then).

    Raises
    ------
    ParameterError
        Bad port or the address is in use.
    CaseError
        ``results`` is not a results folder or lacks a file the session opens
        (:func:`~descluster.labelling.spaces.check_results_folder`), before anything listens.
    """
    if not 0 < int(port) < 65536:
        raise ParameterError(f"--port {port}: must be within 1..65535")
    from ..labelling.spaces import check_results_folder

    check_results_folder(results)  # a missing folder or file fails now (exit 2), not after listening
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port)))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ParameterError(f"--host {host} --port {port}: cannot listen there ({exc.strerror}); "
                             "give another --port") from exc
    hosts = ["127.0.0.1", "localhost", "::1", host]
    if not _loopback(host):
        hosts = ["*"]  # reachable under any name of this machine: the token is the only guard
        print(f"warning: listening on {host}, reachable from other machines (the token is still required)")
    asgi = create_app(results, images=images, token=token, hosts=hosts, background=True, report=_print_error)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    n = asgi.loader.n_images
    count = f"{n:,} images; " if n is not None else ""
    print(f"descluster serve: {Path(results)} ({count}the session opens in the background)")
    print(f"open: http://{shown}:{port}/?token={asgi.token}", flush=True)
    import uvicorn

    config = uvicorn.Config(asgi, host=host, port=int(port), log_level="warning", access_log=False, lifespan="off")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        asgi.loader.close()
        sock.close()
    return 2 if asgi.loader.state == "failed" else 0
