"""Redaction: shareable captures with payloads stripped and addresses anonymised."""

from rstscope.redact.cryptopan import CryptoPAn
from rstscope.redact.redact import (
    FrameRedactor,
    RedactStats,
    load_key,
    new_key,
    parse_key_hex,
    redact_capture,
)

__all__ = [
    "CryptoPAn",
    "FrameRedactor",
    "RedactStats",
    "load_key",
    "new_key",
    "parse_key_hex",
    "redact_capture",
]
