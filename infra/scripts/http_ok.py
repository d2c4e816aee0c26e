"""Exit 0 if a loopback URL answers HTTP 200 (used by the start scripts' health checks)."""

import sys
import urllib.request

url = sys.argv[1]
if not url.startswith(("http://127.0.0.1", "http://localhost")):
    sys.exit(2)
try:
    with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (loopback only)
        sys.exit(0 if resp.status == 200 else 1)
except OSError:
    sys.exit(1)
