"""A throw-away certificate authority for tests: the CA, a server certificate for loopback
and client certificates (PEM and PFX), written to a test's directory."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Issued:
    """A certificate and its key as files: ``cert`` (PEM), ``key`` (PEM), ``bundle``
    (key + certificate in one PEM), ``pfx`` (PKCS12, password ``pfx_password``)."""

    cert: Path
    key: Path
    bundle: Path
    pfx: Path
    pfx_password: str
    certificate: x509.Certificate

    @property
    def cert_pem(self) -> bytes:
        """The certificate in PEM."""
        return self.cert.read_bytes()

    @property
    def sha1_thumbprint(self) -> str:
        """The SHA-1 thumbprint in hex, as the Azure portal shows it."""
        return self.certificate.fingerprint(hashes.SHA1()).hex().upper()


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class TestCA:
    """A CA created for one test; ``issue`` signs server or client certificates."""

    __test__ = False  # not a test class

    def __init__(self, directory: Path, name: str = "p2c test CA") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._key = _key()
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.cert = directory / "ca.pem"
        self.cert.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, *, server: bool = False, signed_by_me: bool = True) -> Issued:
        """A certificate for ``name`` (server: for 127.0.0.1 and localhost); with
        ``signed_by_me=False`` a self-signed one this CA does not vouch for."""
        key = _key()
        now = datetime.datetime.now(datetime.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(self.certificate.subject if signed_by_me else _name(name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server:
            names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        certificate = builder.sign(self._key if signed_by_me else key, hashes.SHA256())
        return self._write(name, key, certificate)

    def _write(self, name: str, key: rsa.RSAPrivateKey, certificate: x509.Certificate) -> Issued:
        cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        password = f"{name}-pfx-password"
        pfx = pkcs12.serialize_key_and_certificates(
            name.encode(),
            key,
            certificate,
            None,
            serialization.BestAvailableEncryption(password.encode()),
        )
        paths = {suffix: self.directory / f"{name}.{suffix}" for suffix in ("crt", "key", "pem")}
        paths["crt"].write_bytes(cert_pem)
        paths["key"].write_bytes(key_pem)
        paths["pem"].write_bytes(key_pem + cert_pem)
        pfx_path = self.directory / f"{name}.pfx"
        pfx_path.write_bytes(pfx)
        return Issued(paths["crt"], paths["key"], paths["pem"], pfx_path, password, certificate)
