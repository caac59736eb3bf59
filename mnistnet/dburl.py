"""Database URLs that can be shown, logged and sent to Dask workers without their password, and
the worker's way back to the real one (its MNISTNET_DB_URL). Standard library only.

A URL is split as SQLAlchemy 2 splits it (the pattern below is sqlalchemy.engine.url's), not
with urllib.parse.urlsplit: SQLAlchemy lets an unencoded password hold '/', '?' or '#', where
urlsplit would end the host there and leave the rest of the password in the "public" URL.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from urllib.parse import unquote_plus

HIDDEN = "***"
DB_URL_ENV = "MNISTNET_DB_URL"
SECRET_QUERY_KEYS = ("password", "sslpassword")  # libpq's, which psycopg takes from the query too
_URL = re.compile(r"""
    (?P<name>[\w\+]+)://
    (?:
        (?P<username>[^:/]*)
        (?::(?P<password>[^@]*))?
    @)?
    (?:
        (?:
            \[(?P<ipv6host>[^/\?]+)\] |
            (?P<ipv4host>[^/:\?]+)
        )?
        (?::(?P<port>[^/\?]*))?
    )?
    (?:/(?P<database>[^\?]*))?
    (?:\?(?P<query>.*))?
    """, re.X)


def _secret_spans(url: str) -> list[tuple[int, int]]:
    """Where `url` holds a secret: [(start, end)] of its password and of the values of its
    password query parameters, in order; empty ones left out."""
    if not isinstance(url, str) or (m := _URL.match(url)) is None:
        # The bad value is not shown: it may hold a password.
        raise ValueError("a database URL must look like dialect+driver://user:password@host:port/database "
                         "or sqlite:///path")
    spans = [m.span("password")] if m.group("password") else []
    if m.group("query") is not None:
        start = m.start("query")
        for part in m.group("query").split("&"):  # parse_qsl's separator, as SQLAlchemy reads it
            key, eq, value = part.partition("=")
            if eq and value and unquote_plus(key).lower() in SECRET_QUERY_KEYS:
                spans.append((start + len(key) + 1, start + len(part)))
            start += len(part) + 1
    return spans


def public_url(url: str) -> str:
    """`url` with each password (user:PASSWORD@ and ?password=) replaced by ***; the rest is kept
    byte for byte, so the public forms of two URLs are equal only if the URLs differ at most in
    their passwords. ValueError (not naming the URL) if it is not a database URL."""
    for start, end in reversed(_secret_spans(url)):
        url = url[:start] + HIDDEN + url[end:]
    return url


def hides_password(url: str) -> bool:
    """Whether `url` is a public URL whose password was replaced by ***."""
    return any(url[start:end] == HIDDEN for start, end in _secret_spans(url))


def resolve_url(public: str, env: Mapping[str, str] = os.environ) -> str:
    """The URL a worker connects to for a task's `public` URL: `public` itself if it hides no
    password, else MNISTNET_DB_URL from `env` when that names the same database (the same URL
    but for its password). ValueError otherwise; its message never holds a password."""
    if not hides_password(public):
        return public
    private = env.get(DB_URL_ENV)
    if not private:
        raise ValueError(f"the task's database {public} has a password that is not sent to workers, "
                         f"so this worker needs {DB_URL_ENV} set to that database's full URL")
    try:
        shown = public_url(private)
    except ValueError:
        shown = None
    if shown != public:
        raise ValueError(f"the task's database is {public} but this worker's {DB_URL_ENV} is "
                         f"{shown or 'not a database URL'}; set it to the full URL of {public}")
    return private
