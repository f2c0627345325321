"""TLS material checked in Python before gRPC sees it: gRPC aborts the whole process on half a key pair.

A client certificate without its key (or the reverse) makes gRPC's C core fail an assertion and abort (SIGABRT:
in a notebook the kernel dies); a CA or certificate that is not PEM makes every connection fail later with
"cannot reach etcd". Both are told here, at once, as what they are.
"""

from __future__ import annotations

import os
import ssl
import tempfile

from ...errors import CertificateError, ConfigurationError

__all__ = ["check_tls_material", "is_certificate_failure"]

_TLS_WORDS = ("ssl", "tls", "certificate", "handshake", "tsi_", "x509", "cert verify")


def check_tls_material(url: str, ca: bytes | None, cert: bytes | None, key: bytes | None) -> None:
    """Refuse half a key pair (:class:`ConfigurationError`) and unusable PEM (:class:`CertificateError`)."""
    if bool(cert) != bool(key):
        have, lack = ("ETCD_AUTH_CLIENT_CERT", "ETCD_AUTH_CLIENT_KEY") if cert else (
            "ETCD_AUTH_CLIENT_KEY", "ETCD_AUTH_CLIENT_CERT")
        raise ConfigurationError(f"etcd at {url}: a client certificate needs its key ({have} is set, {lack} is "
                                 "not); set both for mutual TLS, or neither")
    if ca:
        try:
            ssl.create_default_context(cadata=ca.decode("ascii", "replace"))
        except (ssl.SSLError, ValueError) as exc:
            raise CertificateError("etcd", url,
                                   f"the CA (ETCD_AUTH_CA) holds no usable PEM certificate: {exc}") from None
    if cert and key:
        with tempfile.TemporaryDirectory(prefix="dynamo_nb-tls-") as tmp:
            paths = []
            for name, data in (("cert.pem", cert), ("key.pem", key)):
                path = os.path.join(tmp, name)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                paths.append(path)
            try:
                ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(*paths)
            except ssl.SSLError as exc:
                raise CertificateError("etcd", url, "the client certificate and key (ETCD_AUTH_CLIENT_CERT/KEY) "
                                       f"are not a usable PEM pair: {exc}") from None


def is_certificate_failure(details: str) -> bool:
    """Whether a connection error's text is about TLS (a wrong CA, a refused certificate), not reachability."""
    text = details.lower()
    return any(word in text for word in _TLS_WORDS)
