"""Public database URLs (password hidden) and a worker's way back to the real one. SQLAlchemy is
the independent reference: a public URL must parse to the same user, host, port, database and
query as the real one, with *** where the password was."""

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from mnistnet.dburl import hides_password, public_url, resolve_url

SECRET = "s3cr%40t%2F%3F"  # s3cr@t/? percent-encoded
CASES = [  # (url, its public form)
    ("postgresql+psycopg://u:secret@127.0.0.1:5432/db", "postgresql+psycopg://u:***@127.0.0.1:5432/db"),
    (f"postgresql+psycopg://u:{SECRET}@db.example:5432/db", "postgresql+psycopg://u:***@db.example:5432/db"),
    ("postgresql+psycopg://u:pa/ss?#x@host/db", "postgresql+psycopg://u:***@host/db"),  # unencoded
    ("postgresql+psycopg://u:secret@[::1]:5432/db", "postgresql+psycopg://u:***@[::1]:5432/db"),
    ("postgresql+psycopg://u:secret@[2001:db8::7]/db?sslmode=require",
     "postgresql+psycopg://u:***@[2001:db8::7]/db?sslmode=require"),
    ("postgresql+psycopg://u@127.0.0.1/db", "postgresql+psycopg://u@127.0.0.1/db"),
    ("postgresql+psycopg://u:@127.0.0.1/db", "postgresql+psycopg://u:@127.0.0.1/db"),
    ("postgresql+psycopg:///db?host=/run/postgresql", "postgresql+psycopg:///db?host=/run/postgresql"),
    ("postgresql+psycopg://u@h/db?sslmode=require&password=secret&Password=x",
     "postgresql+psycopg://u@h/db?sslmode=require&password=***&Password=***"),
    ("postgresql+psycopg://u:secret@h/db?sslpassword=hunter2", "postgresql+psycopg://u:***@h/db?sslpassword=***"),
    ("sqlite:////tmp/store.sqlite3", "sqlite:////tmp/store.sqlite3"),
    ("sqlite:///relative/a:b@c.sqlite3", "sqlite:///relative/a:b@c.sqlite3"),
    ("sqlite://", "sqlite://"),
]
ROOT = Path(__file__).resolve().parent.parent
PASSWORDS = ("secret", SECRET, "s3cr@t", "pa/ss", "hunter2")


@pytest.mark.parametrize("url, public", CASES)
def test_public_url(url, public):
    assert public_url(url) == public
    assert public_url(public) == public  # idempotent


@pytest.mark.parametrize("url, public", CASES)
def test_public_url_agrees_with_sqlalchemy(url, public):
    real, shown = make_url(url), make_url(public)
    assert (shown.username, shown.host, shown.port, shown.database) == \
           (real.username, real.host, real.port, real.database)
    assert shown.password == ("***" if real.password else real.password)
    assert {k: ("***" if "password" in k.lower() else v) for k, v in real.query.items()} == dict(shown.query)


def test_percent_encoded_password_is_hidden_whole():
    url = f"postgresql+psycopg://u:{SECRET}@h/db"
    assert make_url(url).password == "s3cr@t/?"
    assert not any(p in public_url(url) for p in (SECRET, "s3cr", "%40", "t%2F"))


@pytest.mark.parametrize("url, public", CASES)
def test_resolve_without_hidden_password_is_the_url_itself(url, public):
    if public == url:
        assert not hides_password(public)
        assert resolve_url(public, env={}) == public


@pytest.mark.parametrize("url, public", [c for c in CASES if c[0] != c[1]])
def test_resolve_finds_the_workers_url(url, public):
    assert hides_password(public)
    assert resolve_url(public, env={"MNISTNET_DB_URL": url}) == url


@pytest.mark.parametrize("env", [
    {},
    {"MNISTNET_DB_URL": ""},
    {"MNISTNET_DB_URL": "postgresql+psycopg://u:hunter2@127.0.0.1:5432/otherdb"},
    {"MNISTNET_DB_URL": "postgresql+psycopg://v:secret@127.0.0.1:5432/db"},
    {"MNISTNET_DB_URL": "sqlite:////tmp/store.sqlite3"},
    {"MNISTNET_DB_URL": "not a url with secret in it"},
])
def test_resolve_refuses_with_a_sentence_that_holds_no_password(env):
    public = "postgresql+psycopg://u:***@127.0.0.1:5432/db"
    with pytest.raises(ValueError, match="MNISTNET_DB_URL") as e:
        resolve_url(public, env=env)
    message = str(e.value)
    assert public in message
    assert not any(p in message for p in PASSWORDS)


def test_resolve_defaults_to_the_process_environment(monkeypatch):
    url = "postgresql+psycopg://u:secret@127.0.0.1:5432/db"
    monkeypatch.setenv("MNISTNET_DB_URL", url)
    assert resolve_url(public_url(url)) == url


@pytest.mark.parametrize("bad", ["", "u:secret@host/db", "://u:secret@h/db", None])
def test_not_a_url_is_refused_without_showing_it(bad):
    with pytest.raises(ValueError) as e:
        public_url(bad)
    assert "secret" not in str(e.value)


def test_standard_library_only():
    heavy = "{'sqlalchemy', 'dask', 'distributed'}"
    code = f"import sys, mnistnet.dburl; print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy}))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
