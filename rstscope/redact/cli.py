"""``rstscope redact``: the click command (registered lazily by rstscope.cli)."""

from __future__ import annotations

import sys

import click

from rstscope.errors import UsageError
from rstscope.redact.redact import load_key, new_key, parse_key_hex, redact_capture


@click.command()
@click.argument("infile", metavar="IN", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("-o", "--output", "outfile", required=True,
              type=click.Path(dir_okay=False, allow_dash=True),
              help="Redacted capture to write ('-' for stdout; a .gz name is gzipped).")
@click.option("--key", "keyfile", type=click.Path(dir_okay=False),
              help="Crypto-PAn key file: 32 raw bytes or 64 hex digits.  "
                   "The same key maps addresses the same way in every file.")
@click.option("--key-hex", "key_hex", metavar="HEX",
              help="The key as 64 hex digits (visible in the process list: prefer --key).")
@click.option("--keep-tls-headers", is_flag=True,
              help="Keep each TLS record header (5 bytes, plus the handshake type) "
                   "so TLS-based evidence (ClientHello then RST) survives.")
def redact(infile: str, outfile: str, keyfile: str | None, key_hex: str | None,
           keep_tls_headers: bool) -> None:
    """Write a shareable copy of capture IN.

    Payloads are cut after the TCP header (frames look snaplen-truncated; IP
    lengths stay, so the analysis is unchanged), IPv4/IPv6 addresses are
    anonymised prefix-preserving with Crypto-PAn, MAC addresses are zeroed, and
    pcapng comments, interface names and other metadata blocks are dropped.
    Without a key a random one-time key is used: addresses then cannot be
    matched across files.
    """
    if keyfile and key_hex:
        raise UsageError("give --key or --key-hex, not both")
    if keyfile:
        key = load_key(keyfile)
    elif key_hex:
        key = parse_key_hex(key_hex)
    else:
        key = new_key()
    src = sys.stdin.buffer if infile == "-" else infile
    dst = sys.stdout.buffer if outfile == "-" else outfile
    stats = redact_capture(src, dst, key, keep_tls_headers=keep_tls_headers)
    if not (keyfile or key_hex):
        # Said after the run so that an error stays the only line on failure.
        click.echo("rstscope: no --key given: used a random one-time key "
                   "(addresses will not match across files)", err=True)
    for w in stats.warnings:
        click.echo(f"rstscope: warning: {w}", err=True)
    blanked = sum(stats.blanked.values())
    click.echo(
        f"rstscope: redacted {stats.frames} frames ({stats.tcp_segments} TCP), "
        f"{stats.addresses_v4} IPv4 and {stats.addresses_v6} IPv6 addresses anonymised, "
        f"{stats.bytes_in - stats.bytes_out} payload bytes removed"
        + (f", {blanked} frames of unsupported link types emptied" if blanked else ""),
        err=True,
    )
