"""Registry names for TLS and HTTP/2 numbers (IANA TLS parameters, RFC 8446, RFC 9113)."""

from __future__ import annotations

from typing import Final

TLS_CONTENT_TYPES: Final = {
    20: "change_cipher_spec",
    21: "alert",
    22: "handshake",
    23: "application_data",
    24: "heartbeat",
}

TLS_ALERTS: Final = {
    0: "close_notify",
    10: "unexpected_message",
    20: "bad_record_mac",
    21: "decryption_failed",
    22: "record_overflow",
    40: "handshake_failure",
    42: "bad_certificate",
    43: "unsupported_certificate",
    44: "certificate_revoked",
    45: "certificate_expired",
    46: "certificate_unknown",
    47: "illegal_parameter",
    48: "unknown_ca",
    49: "access_denied",
    50: "decode_error",
    51: "decrypt_error",
    70: "protocol_version",
    71: "insufficient_security",
    80: "internal_error",
    86: "inappropriate_fallback",
    90: "user_canceled",
    100: "no_renegotiation",
    109: "missing_extension",
    110: "unsupported_extension",
    112: "unrecognized_name",
    113: "bad_certificate_status_response",
    115: "unknown_psk_identity",
    116: "certificate_required",
    120: "no_application_protocol",
}

TLS_VERSIONS: Final = {
    0x0300: "SSLv3",
    0x0301: "TLSv1.0",
    0x0302: "TLSv1.1",
    0x0303: "TLSv1.2",
    0x0304: "TLSv1.3",
}

H2_FRAME_TYPES: Final = {
    0: "DATA",
    1: "HEADERS",
    2: "PRIORITY",
    3: "RST_STREAM",
    4: "SETTINGS",
    5: "PUSH_PROMISE",
    6: "PING",
    7: "GOAWAY",
    8: "WINDOW_UPDATE",
    9: "CONTINUATION",
}

H2_ERRORS: Final = {
    0: "NO_ERROR",
    1: "PROTOCOL_ERROR",
    2: "INTERNAL_ERROR",
    3: "FLOW_CONTROL_ERROR",
    4: "SETTINGS_TIMEOUT",
    5: "STREAM_CLOSED",
    6: "FRAME_SIZE_ERROR",
    7: "REFUSED_STREAM",
    8: "CANCEL",
    9: "COMPRESSION_ERROR",
    10: "CONNECT_ERROR",
    11: "ENHANCE_YOUR_CALM",
    12: "INADEQUATE_SECURITY",
    13: "HTTP_1_1_REQUIRED",
}

#: TLS 1.3 (and 1.2 AEAD) hides an alert inside a record of 2 alert bytes + 1 inner
#: type byte + a 16-byte AEAD tag; without keys a 19-byte final record is alert-sized.
TLS13_ALERT_RECORD_LEN: Final = 19


def content_type_name(ct: int) -> str:
    return TLS_CONTENT_TYPES.get(ct, f"content_type_{ct}")


def alert_name(desc: int) -> str:
    return TLS_ALERTS.get(desc, f"alert_{desc}")


def tls_version_name(v: int) -> str:
    return TLS_VERSIONS.get(v, f"0x{v:04x}")


def h2_error_name(code: int) -> str:
    return H2_ERRORS.get(code, f"0x{code:x}")


def h2_type_name(t: int) -> str:
    return H2_FRAME_TYPES.get(t, f"type_{t}")
