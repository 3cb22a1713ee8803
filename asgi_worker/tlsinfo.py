"""The ASGI ``tls`` scope extension: what a TLS connection tells the app, built once per connection.

The dict follows the ASGI TLS extension (asgiref ``specs/tls.rst``): ``server_cert`` (PEM, from the
worker's ``certfile``), ``client_cert_chain`` (PEM strings, the client's certificate first),
``client_cert_name`` (the subject as an RFC 4514 string), ``client_cert_error`` (always None: a
client certificate that fails verification fails the handshake, so no request ever sees one),
``tls_version`` (``0x0304`` for TLS 1.3) and ``cipher_suite`` (the IANA number, ``0x1301`` for
``TLS_AES_128_GCM_SHA256``). It is built when the connection is made, after the handshake, and
shared by the connection's requests.
"""

from __future__ import annotations

import ssl
from typing import Any

_TLS_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
# RFC 4514 section 3: the attribute types with a short name; others are written by OID.
_SHORT_NAMES = {
    "commonName": "CN", "localityName": "L", "stateOrProvinceName": "ST",
    "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C",
    "streetAddress": "STREET", "domainComponent": "DC", "userId": "UID",
}
_OIDS = {"emailAddress": "1.2.840.113549.1.9.1", "serialNumber": "2.5.4.5",
         "title": "2.5.4.12", "surname": "2.5.4.4", "givenName": "2.5.4.42",
         "initials": "2.5.4.43", "generationQualifier": "2.5.4.44",
         "dnQualifier": "2.5.4.46", "pseudonym": "2.5.4.65", "businessCategory": "2.5.4.15",
         "postalCode": "2.5.4.17", "name": "2.5.4.41"}
# OpenSSL cipher name -> IANA cipher suite number, per SSLContext (the same few per worker).
_CIPHER_IDS: dict[int, dict[str, int]] = {}


def tls_extension(ssl_object: Any, context: ssl.SSLContext | None,
                  server_cert: str | None) -> dict[str, Any]:
    """The ``tls`` extension dict of a connection whose handshake is done."""
    chain = client_cert_chain(ssl_object)
    cipher = ssl_object.cipher()
    return {
        "server_cert": server_cert,
        "client_cert_chain": chain,
        "client_cert_name": client_cert_name(ssl_object) if chain else None,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": cipher_suite(context, cipher[0]) if cipher else None,
    }


def client_cert_chain(ssl_object: Any) -> list[str]:
    """The client's certificates as PEM, its own first; empty when it sent none.

    Python 3.13+ gives the whole chain the client sent; before that only its own certificate.
    """
    get_chain = getattr(ssl_object, "get_unverified_chain", None)
    if get_chain is not None:
        chain = get_chain() or []
        return [ssl.DER_cert_to_PEM_cert(cert) for cert in chain if isinstance(cert, bytes)]
    der = ssl_object.getpeercert(binary_form=True)
    return [ssl.DER_cert_to_PEM_cert(der)] if der else []


def client_cert_name(ssl_object: Any) -> str | None:
    """The client certificate's subject as an RFC 4514 string (``CN=x,O=y,C=z``)."""
    cert = ssl_object.getpeercert()
    if not cert:
        return None  # not verified (cert_reqs=CERT_NONE): Python does not decode it
    return rfc4514_name(cert.get("subject", ()))


def rfc4514_name(subject: Any) -> str:
    """An RFC 4514 string from ``getpeercert()``'s subject: RDNs last first, escaped."""
    rdns = []
    for rdn in reversed(subject):
        rdns.append("+".join(f"{_attribute_type(name)}={_escape(value)}" for name, value in rdn))
    return ",".join(rdns)


def _attribute_type(name: str) -> str:
    return _SHORT_NAMES.get(name) or _OIDS.get(name) or name


def _escape(value: str) -> str:
    """RFC 4514 section 2.4: special characters, a leading '#' or space, a trailing space."""
    last = len(value) - 1
    out = []
    for index, char in enumerate(value):
        if char in ',+"\\<>;' or (index == 0 and char in "# ") or (index == last and char == " "):
            out.append("\\" + char)
        elif char == "\x00":
            out.append("\\00")
        else:
            out.append(char)
    return "".join(out)


def cipher_suite(context: ssl.SSLContext | None, name: str) -> int | None:
    """The IANA number of an OpenSSL cipher name (the low 16 bits of OpenSSL's id)."""
    if context is None:
        return None
    ids = _CIPHER_IDS.get(id(context))
    if ids is None:
        ids = {c["name"]: c["id"] & 0xFFFF for c in context.get_ciphers()}
        _CIPHER_IDS[id(context)] = ids
    return ids.get(name)


def read_server_cert(certfile: str | None) -> str | None:
    """The first certificate of ``certfile`` as PEM text, or None when there is none."""
    if not certfile:
        return None
    try:
        with open(certfile, encoding="ascii", errors="replace") as file:
            text = file.read()
    except OSError:
        return None
    begin = text.find("-----BEGIN CERTIFICATE-----")
    end_marker = "-----END CERTIFICATE-----"
    end = text.find(end_marker, begin)
    if begin < 0 or end < 0:
        return None
    return text[begin:end + len(end_marker)] + "\n"
