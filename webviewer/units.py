"""Units shared by every layer: memory and sizes are reported in MB of 10**6 bytes, as the original report did."""

MB = 1_000_000
