"""Key material and small helpers for the credential tests."""

import json

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.db import connection


def pem_of(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_pem_of(key) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def p256_key():
    return ec.generate_private_key(ec.SECP256R1())


def p256_pem() -> str:
    return pem_of(p256_key())


def p384_pem() -> str:
    return pem_of(ec.generate_private_key(ec.SECP384R1()))


def rsa_pem() -> str:
    return pem_of(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def console_json(pem: str, key_id: str = "2ba7e3b4-4d4c-4ef2-9a37-2b1b5e0c3a11") -> str:
    return json.dumps({"id": key_id, "private_key": pem, "created_at": "2026-01-01T00:00:00Z"})


def raw_column(model, pk, column: str) -> str:
    """The value as stored in the database, bypassing the field's decryption."""
    table = connection.ops.quote_name(model._meta.db_table)
    col = connection.ops.quote_name(column)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {col} FROM {table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]
