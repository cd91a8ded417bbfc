"""compose.yaml's certificate step, ``hookpost self-signed-certificate``, run as Compose runs it
(tests/deploy/test_nginx.py then serves HTTPS with what it made)."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.deploy.test_deploy_files import make_certificate_as_compose_does


def test_the_first_start_makes_a_certificate_and_key_for_this_host(tmp_path: Path) -> None:
    folder = tmp_path / "tls"

    result = make_certificate_as_compose_does(folder)

    assert result.returncode == 0, result.stderr
    assert "Made a self-signed certificate" in result.stdout
    certificate = x509.load_pem_x509_certificate((folder / "fullchain.pem").read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    assert stat.S_IMODE((folder / "privkey.pem").stat().st_mode) == 0o600  # the key: its owner only
    assert sorted(path.name for path in folder.iterdir()) == ["fullchain.pem", "privkey.pem"]


def test_a_later_start_keeps_the_certificate_there(tmp_path: Path) -> None:
    folder = tmp_path / "tls"
    assert make_certificate_as_compose_does(folder).returncode == 0
    before = {path.name: path.read_bytes() for path in folder.iterdir()}

    result = make_certificate_as_compose_does(folder)

    assert result.returncode == 0, result.stderr
    assert "Kept the certificate already in" in result.stdout
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before


def test_a_certificate_put_there_by_hand_is_never_replaced(tmp_path: Path) -> None:
    folder = tmp_path / "tls"
    folder.mkdir()
    (folder / "fullchain.pem").write_text("a real certificate\n")
    (folder / "privkey.pem").write_text("its key\n")

    assert make_certificate_as_compose_does(folder).returncode == 0

    assert (folder / "fullchain.pem").read_text() == "a real certificate\n"
    assert (folder / "privkey.pem").read_text() == "its key\n"


def test_a_half_written_pair_is_made_again(tmp_path: Path) -> None:
    """A key without its certificate (a start cut short) is not a pair nginx can use."""
    folder = tmp_path / "tls"
    folder.mkdir()
    (folder / "privkey.pem").write_text("left over\n")

    assert make_certificate_as_compose_does(folder).returncode == 0

    certificate = x509.load_pem_x509_certificate((folder / "fullchain.pem").read_bytes())
    key = serialization.load_pem_private_key((folder / "privkey.pem").read_bytes(), password=None)
    assert certificate.public_key() == key.public_key()  # the pair belongs together
