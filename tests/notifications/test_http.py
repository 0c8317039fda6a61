"""The HTTP seam of outgoing webhooks: which addresses and URLs are refused, and TLS verified
against the host name while connecting to the address that was checked."""

from __future__ import annotations

import datetime
import ipaddress
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from notifications import http
from tests.notifications.receiver import start_receiver


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("172.16.5.4", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.10.1", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "not a public"),
        ("::ffff:127.0.0.1", "loopback"),
        ("0.0.0.0", "not a unicast"),
        ("224.0.0.1", "not a unicast"),
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("100.100.100.200", "cloud metadata"),
    ],
)
def test_addresses_that_are_refused(address, words):
    problem = http.address_problem(ipaddress.ip_address(address), allow_private=False)
    assert problem and words in problem


def test_public_addresses_are_allowed():
    for address in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"):
        assert http.address_problem(ipaddress.ip_address(address), allow_private=False) is None


def test_allowing_private_addresses_never_allows_metadata():
    assert http.address_problem(ipaddress.ip_address("10.0.0.1"), allow_private=True) is None
    assert http.address_problem(ipaddress.ip_address("127.0.0.1"), allow_private=True) is None
    assert "metadata" in http.address_problem(
        ipaddress.ip_address("169.254.169.254"), allow_private=True
    )


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://example.com/", "must start with https://"),
        ("https://user:pw@example.com/", "must not contain a user name"),
        ("https:///path", "must name a host"),
        ("not a url", "must start with https://"),
    ],
)
def test_urls_that_are_refused(url, words):
    assert words in http.url_problem(url)


def test_https_is_required_outside_debug(settings):
    settings.OUTGOING_WEBHOOKS_REQUIRE_HTTPS = True
    assert "must use https://" in http.url_problem("http://example.com/hooks")
    assert http.url_problem("https://example.com/hooks") is None
    with pytest.raises(http.RefusedError):
        http.post("http://example.com/hooks", b"{}", {})


def test_an_unresolvable_host_is_a_transient_error():
    with pytest.raises(http.TransientError, match="could not be resolved"):
        http.resolve("https://no-such-host.invalid/hooks")


def test_a_closed_port_is_a_transient_error():
    receiver = start_receiver()
    port = receiver.port
    receiver.close()
    with pytest.raises(http.TransientError, match="Could not connect"):
        http.post(f"http://127.0.0.1:{port}/hooks", b"{}", {})


# --- TLS ------------------------------------------------------------------------------------------


def _certificate(tmp_path, name: str):
    """A CA, and a certificate it signed for `name`: (CA file, server TLS context)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "FleetPortal test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file = tmp_path / "server.pem"
    cert_file.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file)
    return ca_file, context


def test_tls_is_verified_against_the_host_name_on_the_checked_address(tmp_path, settings):
    ca_file, context = _certificate(tmp_path, "localhost")
    settings.OUTGOING_WEBHOOKS_CA_FILE = str(ca_file)
    receiver = start_receiver(tls_context=context)
    try:
        answer = http.post(f"https://localhost:{receiver.port}/hooks", b"{}", {})
        assert answer.status == 200
        assert receiver.received[0].header("Host") == f"localhost:{receiver.port}"
        # The same server under a name its certificate does not carry: refused by TLS.
        with pytest.raises(http.TransientError, match="TLS"):
            http.post(f"https://127.0.0.1:{receiver.port}/hooks", b"{}", {})
    finally:
        receiver.close()


def test_an_unknown_certificate_authority_is_refused(tmp_path, settings):
    _ca_file, context = _certificate(tmp_path, "localhost")
    settings.OUTGOING_WEBHOOKS_CA_FILE = ""
    receiver = start_receiver(tls_context=context)
    try:
        with pytest.raises(http.TransientError, match="TLS"):
            http.post(f"https://localhost:{receiver.port}/hooks", b"{}", {})
    finally:
        receiver.close()
