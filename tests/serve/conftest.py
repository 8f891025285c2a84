"""The suite's template run (sim LLM, real LMDB, real sandbox), rolled out once, whose kept tasks are served."""

from __future__ import annotations

import datetime
import ipaddress
import shutil
from pathlib import Path

import pytest

import msgspec

from scaleenv._runner import EngineOptions
from tests.conftest import TEMPLATE, copy_log, roll_out

SERVE_RUN = msgspec.structs.replace(TEMPLATE, episodes_per_task=1)
OPTIONS = EngineOptions(progress=False, sync=False)


@pytest.fixture(scope="session")
def base_run(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return roll_out(copy_log(template, tmp_path_factory.mktemp("serve_base") / "log"), SERVE_RUN.episodes_per_task)


@pytest.fixture
def run_log(base_run: Path, tmp_path: Path) -> Path:
    """A private copy of the run (serving appends to it)."""
    path = tmp_path / "log"
    shutil.copytree(base_run, path, ignore=shutil.ignore_patterns("writer.lock"))
    return path


def self_signed(tmp: Path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key (PEM files in ``tmp``), for the TLS tests."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)
