"""The urllib opener every download uses: what urllib does, less what a hostile server can abuse.

- A redirect is followed only to the host first asked (with `--mirror`, the mirror) or to a host the
  user allowed (`--allow-redirect HOST`); a port change and http → https stay allowed. A redirect from
  https to http, or to any scheme but http(s), is never followed. A refusal is one line: from where,
  to where, and what to do.
- The response head (status line and headers) must arrive within `head_deadline_s` of the request:
  the socket timeout bounds each read, so without it a server trickling one header byte every few
  seconds would hold the download forever. The body has its own rule (fetch.py: the stall window).
- A redirect's own body is not read (urllib would read all of it, however slowly it comes).
"""
from __future__ import annotations

import functools
import http.client
import socket
import threading
import urllib.request
from urllib.parse import urlsplit

from focusclip.core.errors import fail


def opener(url: str, allowed_hosts: tuple[str, ...], head_deadline_s: float) -> urllib.request.OpenerDirector:
    """An opener for one file: redirects checked against `url`'s host and `allowed_hosts`."""
    return urllib.request.build_opener(_Redirects(url, allowed_hosts), _HTTPHandler(head_deadline_s),
                                       _HTTPSHandler(head_deadline_s))


class _Redirects(urllib.request.HTTPRedirectHandler):
    def __init__(self, url: str, allowed_hosts: tuple[str, ...]):
        self.hosts = {(urlsplit(url).hostname or "").lower(), *(h.lower() for h in allowed_hosts)}

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        old, new = urlsplit(req.full_url), urlsplit(newurl)
        host = (new.hostname or "").lower()
        if new.scheme not in ("http", "https") or (old.scheme == "https" and new.scheme != "https"):
            fp.close()
            raise fail(f"the server redirected to {newurl}; a download is never moved from {old.scheme} to "
                       f"{new.scheme or 'no scheme'}, so it was not followed", req.full_url,
                       "use an https source or --mirror, or download the file by hand and pass --from")
        if host not in self.hosts:
            fp.close()
            raise fail(f"the server redirected to {newurl}, another host, so it was not followed", req.full_url,
                       f"if you trust {host}, rerun with --allow-redirect {host}; "
                       "or download the file by hand and pass --from")
        new_req = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new_req is not None:
            fp.close()          # urllib then reads nothing of the redirect's body
        return new_req


class _HeadDeadline:
    """Mixin for http.client connections: past `head_deadline_s` from the connection's start (TLS
    handshake included) without a response head, the socket is shut down and getresponse raises
    TimeoutError."""

    def __init__(self, *args, head_deadline_s: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.head_deadline_s = head_deadline_s
        self._fired = threading.Event()
        self._timer: threading.Timer | None = None

    def connect(self):
        self._timer = threading.Timer(self.head_deadline_s, self._cut)
        self._timer.daemon = True
        self._timer.start()
        try:
            super().connect()
        except BaseException:
            self._timer.cancel()
            raise

    def getresponse(self):
        try:
            return super().getresponse()
        except (OSError, http.client.HTTPException):
            if self._fired.is_set():
                raise TimeoutError(f"no response within {self.head_deadline_s:g} s") from None
            raise
        finally:
            if self._timer is not None:
                self._timer.cancel()

    def _cut(self) -> None:
        self._fired.set()
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _HTTPConnection(_HeadDeadline, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_HeadDeadline, http.client.HTTPSConnection):
    pass


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, head_deadline_s: float):
        super().__init__()
        self.head_deadline_s = head_deadline_s

    def http_open(self, req):
        return self.do_open(functools.partial(_HTTPConnection, head_deadline_s=self.head_deadline_s), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, head_deadline_s: float):
        super().__init__()
        self.head_deadline_s = head_deadline_s

    def https_open(self, req):
        return self.do_open(functools.partial(_HTTPSConnection, head_deadline_s=self.head_deadline_s), req,
                            context=self._context)
