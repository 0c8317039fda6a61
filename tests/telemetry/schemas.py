"""Validate Auto API level 13 payloads against HM's own JSON schemas in ../shared/hm-api.

The schemas' ``$ref``s point at highmobility.github.io / raw.githubusercontent.com URLs; they are
resolved to the local copies, never fetched.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource
from referencing.jsonschema import DRAFT7

REPO = Path(__file__).resolve().parents[2]
HM_API_DIR = Path(os.environ.get("HM_API_DIR", REPO.parent / "shared" / "hm-api"))
SCHEMA_DIR = HM_API_DIR / "auto-api-json-schema"
JANUS_DIR = HM_API_DIR / "specs" / "json-schema"

REST = "main"  # one object per property
STREAM = "all-properties-multiple"  # every property a list (MQTT v2)


def available() -> bool:
    return (SCHEMA_DIR / REST / "L13" / "capabilities").is_dir() and (
        SCHEMA_DIR / STREAM / "L13" / "capabilities"
    ).is_dir()


def _retriever(variant: str):
    base = SCHEMA_DIR / variant / "L13"

    def retrieve(uri: str) -> Resource:
        marker = "/L13/"
        if marker not in uri:
            raise NoSuchResource(ref=uri)
        local = base / uri.split(marker, 1)[1].split("#", 1)[0]
        if not local.is_file():
            raise NoSuchResource(ref=uri)
        # HM declares "https://json-schema.org/draft-07/schema", which is not a known dialect id.
        return DRAFT7.create_resource(json.loads(local.read_text()))

    return retrieve


@cache
def _capability_validator(variant: str, capability: str) -> Draft7Validator:
    path = SCHEMA_DIR / variant / "L13" / "capabilities" / f"{capability}.schema.json"
    schema = json.loads(path.read_text())
    registry: Registry = Registry(retrieve=_retriever(variant))
    return Draft7Validator(schema, registry=registry, format_checker=Draft7Validator.FORMAT_CHECKER)


def capability_errors(capabilities: dict[str, Any], variant: str) -> list[str]:
    """Schema errors for every capability object of a payload (one schema per capability)."""
    errors: list[str] = []
    for name, body in capabilities.items():
        path = SCHEMA_DIR / variant / "L13" / "capabilities" / f"{name}.schema.json"
        if not path.is_file():
            errors.append(f"{name}: not an Auto API L13 capability")
            continue
        for error in _capability_validator(variant, name).iter_errors(body):
            errors.append(f"{name}.{'.'.join(map(str, error.absolute_path))}: {error.message}")
    return errors


def rest_errors(payload: dict[str, Any]) -> list[str]:
    meta = {"request_id", "vin", "brand"}
    return capability_errors({k: v for k, v in payload.items() if k not in meta}, REST)


def stream_errors(envelope: dict[str, Any]) -> list[str]:
    """Errors against HM's MQTT v2 envelope (janus/0002) and the all-properties-multiple schemas."""
    janus = json.loads((JANUS_DIR / "janus" / "0002" / "spec.json").read_text())
    auto_api = json.loads((JANUS_DIR / "auto-api" / "0002" / "spec.json").read_text())
    registry: Registry = Registry().with_resource(
        "/json-schema/auto-api/0002/spec.json", Resource.from_contents(auto_api)
    )
    errors = [
        f"envelope.{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in Draft7Validator(janus, registry=registry).iter_errors(envelope)
    ]
    return errors + capability_errors(envelope.get("data") or {}, STREAM)
