"""Crypto-PAn: prefix-preserving IP address anonymisation (Xu, Fan, Ammar, Moon, ICNP 2002).

Two addresses that share a k-bit prefix map to two addresses that share a
k-bit prefix, and nothing more, so subnets stay comparable while the real
addresses are hidden.  The mapping is a function of a 32-byte key only: the
same key gives the same mapping in every file and every run.

Construction (per the paper): the first 16 key bytes are an AES-128 key K,
the last 16 are encrypted with K to make a 128-bit pad P.  Output bit i is
input bit i XOR the most significant bit of AES_K(a[0:i] || P[i:128]), where
a[0:i] are the first i bits of the address.  IPv4 addresses occupy the top 32
bits of the 128-bit block (as in the reference implementation), so published
IPv4 test vectors apply; IPv6 uses all 128 bits.
"""

from __future__ import annotations

import ipaddress
from typing import Final

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

KEY_LEN: Final = 32
_CACHE_MAX: Final = 1 << 16  # addresses; a capture rarely has more distinct ones


class CryptoPAn:
    """An anonymiser bound to one key.  Results are cached (bounded)."""

    __slots__ = ("_encryptor_key", "_pad", "_cache4", "_cache6")

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_LEN:
            raise ValueError(f"Crypto-PAn key must be {KEY_LEN} bytes, got {len(key)}")
        self._encryptor_key = bytes(key[:16])
        self._pad = int.from_bytes(self._ecb(bytes(key[16:])), "big")
        self._cache4: dict[int, int] = {}
        self._cache6: dict[int, int] = {}

    def _ecb(self, blocks: bytes) -> bytes:
        # ECB is correct here: Crypto-PAn uses AES as a pseudorandom function on
        # independent single blocks, never as a mode of encryption for data.
        enc = Cipher(algorithms.AES(self._encryptor_key), modes.ECB()).encryptor()
        return enc.update(blocks) + enc.finalize()

    def _flip_bits(self, addr128: int, nbits: int) -> int:
        """The nbits-long one-time pad for an address placed at the top of 128 bits."""
        blocks = bytearray()
        for i in range(nbits):
            keep = ((1 << i) - 1) << (128 - i) if i else 0  # top i bits of the address
            block = (addr128 & keep) | (self._pad & ~keep & ((1 << 128) - 1))
            blocks += block.to_bytes(16, "big")
        # One AES call over all blocks (ECB is blockwise) is much faster than nbits calls.
        out = self._ecb(bytes(blocks))
        flips = 0
        for i in range(nbits):
            flips = (flips << 1) | (out[16 * i] >> 7)
        return flips

    def anonymize_v4(self, addr: int) -> int:
        """Anonymise a 32-bit IPv4 address given as an integer."""
        hit = self._cache4.get(addr)
        if hit is None:
            hit = addr ^ self._flip_bits(addr << 96, 32)
            if len(self._cache4) >= _CACHE_MAX:
                self._cache4.clear()
            self._cache4[addr] = hit
        return hit

    def anonymize_v6(self, addr: int) -> int:
        """Anonymise a 128-bit IPv6 address given as an integer."""
        hit = self._cache6.get(addr)
        if hit is None:
            hit = addr ^ self._flip_bits(addr, 128)
            if len(self._cache6) >= _CACHE_MAX:
                self._cache6.clear()
            self._cache6[addr] = hit
        return hit

    def anonymize_bytes(self, raw: bytes) -> bytes:
        """Anonymise a packed address: 4 bytes (IPv4) or 16 bytes (IPv6)."""
        if len(raw) == 4:
            return self.anonymize_v4(int.from_bytes(raw, "big")).to_bytes(4, "big")
        if len(raw) == 16:
            return self.anonymize_v6(int.from_bytes(raw, "big")).to_bytes(16, "big")
        raise ValueError(f"an address is 4 or 16 bytes, got {len(raw)}")

    def anonymize(self, addr: str) -> str:
        """Anonymise a text address (IPv4 or IPv6)."""
        ip = ipaddress.ip_address(addr)
        return str(ipaddress.ip_address(self.anonymize_bytes(ip.packed)))
