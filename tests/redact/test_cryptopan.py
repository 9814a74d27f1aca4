"""Crypto-PAn against published vectors and its defining property (prefix preservation)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rstscope.redact.cryptopan import CryptoPAn

# The key and a sample of the address pairs from the original Crypto-PAn
# distribution's sample trace (sample_trace_raw.dat / sample_trace_sanitized.dat).
REFERENCE_KEY = bytes([21, 34, 23, 141, 51, 164, 207, 128, 19, 10, 91, 22, 73, 144, 125, 16,
                       216, 152, 143, 131, 121, 121, 101, 39, 98, 87, 76, 45, 42, 132, 34, 2])
REFERENCE_V4 = [
    ("128.11.68.132", "135.242.180.132"),
    ("129.118.74.4", "134.136.186.123"),
    ("130.132.252.244", "133.68.164.234"),
    ("141.223.7.43", "141.167.8.160"),
    ("192.102.249.13", "252.138.62.131"),
    ("198.51.77.238", "249.18.186.254"),
    ("207.33.151.131", "241.1.233.131"),
    ("24.0.250.221", "100.15.198.226"),
    ("4.3.88.225", "124.60.155.63"),
    ("64.39.15.238", "0.219.7.41"),
]
# IPv6 over 128 bits, as produced by an independent implementation (Go, Yawning/cryptopan).
REFERENCE_V6 = [
    ("::1", "78ff:f001:9fc0:20df:8380:b1f1:704:ed"),
    ("::ffff", "78ff:f001:9fc0:20df:8380:b1f1:704:f838"),
    ("2001:db8::1", "4401:2bc:603f:d91d:27f:ff8e:e6f1:dc1e"),
    ("2001:db8::2", "4401:2bc:603f:d91d:27f:ff8e:e6f1:dc1c"),
]


@pytest.mark.parametrize(("raw", "expected"), REFERENCE_V4 + REFERENCE_V6)
def test_reference_vectors(raw: str, expected: str) -> None:
    assert CryptoPAn(REFERENCE_KEY).anonymize(raw) == expected


def test_same_key_same_mapping_across_instances() -> None:
    a, b = CryptoPAn(bytes(range(32))), CryptoPAn(bytes(range(32)))
    assert a.anonymize("192.0.2.7") == b.anonymize("192.0.2.7")
    assert CryptoPAn(bytes(32)).anonymize("192.0.2.7") != a.anonymize("192.0.2.7")


def test_bad_key_length() -> None:
    with pytest.raises(ValueError):
        CryptoPAn(b"short")


def _common_prefix(a: int, b: int, bits: int) -> int:
    x = a ^ b
    return bits - x.bit_length()


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_prefix_preserving_v4(a: int, b: int) -> None:
    c = CryptoPAn(REFERENCE_KEY)
    assert _common_prefix(c.anonymize_v4(a), c.anonymize_v4(b), 32) == _common_prefix(a, b, 32)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**128 - 1), st.integers(0, 128))
def test_prefix_preserving_v6(a: int, flip_at: int) -> None:
    # b shares exactly flip_at leading bits with a (or equals it when flip_at == 128).
    b = a if flip_at == 128 else a ^ (1 << (127 - flip_at))
    c = CryptoPAn(REFERENCE_KEY)
    assert _common_prefix(c.anonymize_v6(a), c.anonymize_v6(b), 128) == _common_prefix(a, b, 128)


def test_bijective_on_a_subnet() -> None:
    c = CryptoPAn(REFERENCE_KEY)
    net = ipaddress.ip_network("198.51.100.0/24")
    out = {c.anonymize(str(h)) for h in net}
    assert len(out) == 256
    # All of them share the anonymised /24 prefix.
    assert len({o.rsplit(".", 1)[0] for o in out}) == 1
