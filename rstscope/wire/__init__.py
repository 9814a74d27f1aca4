"""The wire-format layer: capture containers and link layers, written once.

Everything that reads or writes pcap/pcapng bytes (``ingest``'s readers,
``live``'s rotating writer, ``redact``'s copier, the test and benchmark
capture builders) takes its block codec, constants and link-layer tables from
here, so the three of them cannot drift apart again:

- :mod:`rstscope.wire.pcap`: the classic libpcap file and record headers;
- :mod:`rstscope.wire.pcapng`: pcapng block types, options, the block codec
  and the one :class:`~rstscope.wire.pcapng.Interface` description;
- :mod:`rstscope.wire.linktypes`: link types, VLAN TPIDs and the first step
  of every supported link layer, as tables;
- :mod:`rstscope.wire.opener`: paths, ``-`` (stdin) and file objects as one
  byte stream, gunzipped by magic, keeping what decompressed before damage.

Only the standard library and numpy: ``core`` stays pure and ``wire`` stays
at the bottom of the import graph.
"""
