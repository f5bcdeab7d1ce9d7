"""`python -m deploylab.services.dashboards [--check]`: regenerate (or verify) the committed dashboard
JSON and the Kubernetes PrometheusRule derived from the Prometheus rule files."""

from __future__ import annotations

import argparse
import sys

from .prometheus_rule import MANIFEST, render_prometheus_rule
from .render import DASHBOARD_DIR, stale_files, write_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploylab.services.dashboards", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 when a committed file is stale")
    args = parser.parse_args(argv)
    rule_text = render_prometheus_rule()
    if args.check:
        stale = [f"{DASHBOARD_DIR.name}/{name}" for name in stale_files()]
        if not MANIFEST.is_file() or MANIFEST.read_text() != rule_text:
            stale.append(str(MANIFEST.name))
        for name in stale:
            print(f"stale: {name} (run `python -m deploylab.services.dashboards`)", file=sys.stderr)
        return 1 if stale else 0
    for path in write_all():
        print(f"wrote {path}")
    MANIFEST.parent.mkdir(parents=True, exist_ok=True)
    MANIFEST.write_text(rule_text)
    print(f"wrote {MANIFEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
