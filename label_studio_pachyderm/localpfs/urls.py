"""ModifyFile ``add_file`` from a URL: the server fetches the content itself, as pachd does.

pachd (``putFileURL`` in src/server/pfs/server/url.go, pachyderm 2.12) GETs ``http``
and ``https`` URLs, refuses a response with status 400 or above with ``error retrieving
content from "<url>": <status>`` and appends the body to the file, like raw content.
Other schemes name object storage (s3://, gs://, ...), which this server has none of.
"""
from __future__ import annotations

import http.client
import urllib.error
import urllib.parse
import urllib.request
from typing import Callable, Iterator

from . import errors

CHUNK = 1024 * 1024
TIMEOUT = 60  # seconds without a byte from the remote server


def fetch_url(url: str, is_active: Callable[[], bool] = lambda: True) -> Iterator[bytes]:
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ('http', 'https'):
        raise errors.Unimplemented(f'localpfs fetches http and https URLs only; {scheme or "a URL without a"} '
                                   f'scheme names object storage, which it does not have')
    request = urllib.request.Request(url, method='GET', headers={'User-Agent': 'localpfs'})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT)  # noqa: S310 - the scheme is checked above
    except urllib.error.HTTPError as exc:
        exc.close()
        raise errors.Unknown(f'error retrieving content from "{url}": {exc.code} {http.client.responses.get(exc.code, exc.reason)}') from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, 'reason', exc)
        raise errors.Unknown(f'Get "{url}": {reason}') from None
    with response:
        while is_active():
            try:
                chunk = response.read(CHUNK)
            except OSError as exc:
                raise errors.Unknown(f'error reading content from "{url}": {exc}') from None
            if not chunk:
                return
            yield chunk
