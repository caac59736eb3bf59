"""The repository itself: what git must never take in."""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("path", [".streamlit/secrets.toml", "secrets.toml", "deploy/secrets.toml"])
def test_secrets_files_are_ignored_by_git(path):
    """The README tells people to put their login's client secret in .streamlit/secrets.toml."""
    assert (ROOT / ".git").exists(), "the tests run in a git checkout (CI clones the repository)"
    out = subprocess.run(["git", "check-ignore", "--no-index", "-v", path], cwd=ROOT, capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0, f"git would take in {path}: {out.stdout}{out.stderr}"
    tracked = subprocess.run(["git", "ls-files", "--", path], cwd=ROOT, capture_output=True, text=True, check=True)
    assert tracked.stdout == ""
