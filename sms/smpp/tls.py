"""SMPP over TLS: the server's certificate, given or generated once, and its SSL context.

A simulator has no certificate of its own, so when `smpp.tls_cert` / `smpp.tls_key` are not
given a self-signed pair is generated into the data directory on first start (key and
certificate files 0600) and reused afterwards: an ESME that pinned its SHA-256 fingerprint keeps
trusting it across restarts. The files are written under temporary names and renamed into
place, so several processes starting at once never read a half-written pair.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

CERT_FILE = "smpp-tls-cert.pem"
KEY_FILE = "smpp-tls-key.pem"
VALID_DAYS = 3650


class TlsError(Exception):
    """A certificate or key that cannot be loaded or generated; the message says which."""


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path

    def fingerprint(self) -> str:
        """SHA-256 of the certificate (DER), as `AB:CD:...`: what `openssl x509 -fingerprint
        -sha256` prints and what a client pins."""
        return fingerprint(self.cert)


def fingerprint(cert: Path) -> str:
    try:
        der = ssl.PEM_cert_to_DER_cert(cert.read_text(encoding="ascii"))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise TlsError(f"cannot read the certificate {cert}: {e}") from e
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """A server-side context: TLS 1.2 or newer, no client certificate asked for."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(files.cert, files.key)
    except (OSError, ssl.SSLError) as e:
        raise TlsError(f"cannot load {files.cert} with {files.key}: {e}") from e
    return context


def self_signed(directory: Path, host: str) -> TlsFiles:
    """The pair kept in `directory`, generated on first use for `host` (and localhost)."""
    files = TlsFiles(directory / CERT_FILE, directory / KEY_FILE)
    if files.cert.exists() and files.key.exists():
        return files
    directory.mkdir(parents=True, exist_ok=True)
    cert_pem, key_pem = _generate(host)
    suffix = f".{os.getpid()}.tmp"
    # The key first: a certificate in place always has its key beside it.
    for path, data in ((files.key, key_pem), (files.cert, cert_pem)):
        tmp = path.with_name(path.name + suffix)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    return files


def _generate(host: str) -> tuple[bytes, bytes]:
    # Imported here: only a server that generates its own pair needs the package loaded.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ussdsim SMSC")])
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    try:
        address = ipaddress.ip_address(host)
        if not address.is_unspecified and x509.IPAddress(address) not in names:
            names.append(x509.IPAddress(address))
    except ValueError:
        if host and host != "localhost":
            names.append(x509.DNSName(host))
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem
