"""Container health check: exit 0 when GET http://127.0.0.1:<port><path> answers 2xx, else 1.

Used by the image's HEALTHCHECK (/healthz: the process lives) and by compose/k8s for readiness
(/readyz: Triton ready and every routed model loaded). Standard library only: it runs in the image.
Usage: python healthcheck.py [/path] (port from DEPLOYLAB_GATEWAY_PORT, default 8080).
"""

from __future__ import annotations

import os
import sys
import urllib.request


def main() -> int:
    path = sys.argv[1] if len(sys.argv) > 1 else "/healthz"
    port = os.environ.get("DEPLOYLAB_GATEWAY_PORT", "8080")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as response:
            return 0 if 200 <= response.status < 300 else 1
    except OSError as error:  # URLError, HTTPError (4xx/5xx) and timeouts are all OSError
        print(f"unhealthy: {path}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
