"""Mutual TLS for the embedded Dask cluster: one fresh certificate per cluster, written where only
this user can read it, so only processes holding it may talk to the scheduler or the workers.

Imports distributed (and, through Security.temporary, cryptography); like cluster.py, never
imported by `import mnistnet`. Without this the scheduler takes any local connection, and a
Dask client can run pickled code as the server's user.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from distributed.security import Security


@dataclass(frozen=True)
class Credentials:
    """PEM files of one cluster. The CA is the certificate itself (self-signed), and every role
    (scheduler, workers, clients) presents that certificate: TLS on both sides, so a peer
    without it is refused whichever side it plays."""

    folder: str
    ca_file: str
    cert_file: str
    key_file: str

    def _tls_args(self) -> list[str]:
        return ["--protocol", "tls", "--tls-ca-file", self.ca_file,
                "--tls-cert", self.cert_file, "--tls-key", self.key_file]

    def scheduler_args(self) -> list[str]:
        """Flags for `python -m distributed.cli.dask_scheduler`, beside `--host 127.0.0.1 --port 0`:
        the scheduler listens on tls://127.0.0.1:PORT."""
        return self._tls_args()

    def worker_args(self) -> list[str]:
        """Flags for `python -m distributed.cli.dask_worker tls://...`: the worker's own
        listener is TLS too (a worker also runs what it is sent)."""
        return self._tls_args()

    def security(self) -> Security:
        """For `distributed.Client(address, security=...)`; it reads the files when it connects,
        so they must stay until the client is closed."""
        files = {"tls_ca_file": self.ca_file}
        for role in ("client", "scheduler", "worker"):
            files |= {f"tls_{role}_cert": self.cert_file, f"tls_{role}_key": self.key_file}
        return Security(require_encryption=True, **files)


def _write_private(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    os.fchmod(fd, 0o600)  # the mode of os.open applies only to a file it creates
    with os.fdopen(fd, "w") as f:
        f.write(text)


def make_credentials(folder: str) -> Credentials:
    """A new key and self-signed certificate (RSA 2048, valid a year) as ca.pem, cert.pem and
    key.pem in `folder` (created if missing; made 0700, the files 0600) -> their paths."""
    os.makedirs(folder, mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    temp = Security.temporary()  # in memory: tls_ca_file, tls_*_cert and tls_*_key are PEM text
    creds = Credentials(folder, *(os.path.join(folder, n) for n in ("ca.pem", "cert.pem", "key.pem")))
    _write_private(creds.ca_file, temp.tls_ca_file)
    _write_private(creds.cert_file, temp.tls_client_cert)
    _write_private(creds.key_file, temp.tls_client_key)
    return creds


def load_credentials(folder: str) -> Credentials:
    """The credentials make_credentials wrote into `folder` (a cluster shared by several lab
    servers: mnistnet.share). ValueError naming the folder if a file is missing."""
    creds = Credentials(folder, *(os.path.join(folder, n) for n in ("ca.pem", "cert.pem", "key.pem")))
    missing = [os.path.basename(f) for f in (creds.ca_file, creds.cert_file, creds.key_file) if not os.path.isfile(f)]
    if missing:
        raise ValueError(f"the cluster's TLS folder {folder!r} lacks {', '.join(missing)}")
    return creds
