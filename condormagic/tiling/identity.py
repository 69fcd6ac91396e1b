"""What identifies a remote source's content, for the run id: what its server says of it.

A local file is identified by its path, size and modification time (see
:class:`~condormagic.tiling.source.Source`). For a file behind a URL (``/vsicurl/``,
``https://``) the server is asked once, with a ``HEAD`` request, for its ``ETag``,
``Last-Modified`` and ``Content-Length``; for a local archive read through ``/vsizip/``,
``/vsitar/`` or ``/vsigzip/``, the archive's own size and modification time stand for it.
Other virtual file systems (object stores that need credentials) are identified by path
only, which the README says.
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request

_URL = re.compile(r"^(?:/vsicurl(?:_streaming)?/)?(https?://.+)$")
_ARCHIVE = re.compile(r"^/vsi(?:zip|tar|gzip|7z)/(.+?\.(?:zip|tar|tar\.gz|tgz|gz|7z))(?:/|$)", re.IGNORECASE)
HEADERS = ("ETag", "Last-Modified", "Content-Length")


def remote_identity(path: str, timeout: float) -> dict | None:
    """What is known of the content behind ``path`` without reading it, or ``None``.

    Raises ``TimeoutError`` when a server does not answer within ``timeout`` seconds.
    """
    url = _URL.match(path)
    if url:
        return _http_identity(url.group(1), timeout)
    archive = _ARCHIVE.match(path)
    if archive and os.path.exists(archive.group(1)):
        stat = os.stat(archive.group(1))
        return {"archive": os.path.abspath(archive.group(1)), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    return None


def _http_identity(url: str, timeout: float) -> dict | None:
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) only, by _URL
            found = {h: response.headers.get(h) for h in HEADERS if response.headers.get(h)}
    except TimeoutError:
        raise
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise TimeoutError(str(exc.reason)) from None
        return None  # GDAL's own open says what is wrong with the URL
    except (OSError, ValueError):
        return None
    return found or None
