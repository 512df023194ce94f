"""Write the API references that buildfarm.common.client ships (common/references/*.json)
from the route declarations, as the master serves them at ``/references/<service>/v1/api.json``,
and the exchange references (``<service>-exchanges.json``, served at
``/references/<service>/v1/exchanges.json`` with the default exchange prefix)::

    python contrib/references.py

``tests/unit/test_api_references.py`` fails when a shipped file differs from what this makes.
"""

import json
import os

from buildfarm.master.apicatalog import CATALOG

FOLDER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "common", "references")


def reference_text(service) -> str:
    """A reference as the shipped file holds it (sorted keys, indented, a final newline)."""
    return json.dumps(CATALOG.reference(service.name), indent=2, sort_keys=True) + "\n"


def exchanges_text(exchanges) -> str:
    """An exchange reference as the shipped file holds it."""
    return json.dumps(CATALOG.exchanges_reference(exchanges.service), indent=2, sort_keys=True) + "\n"


def main() -> None:
    files = [(f"{service.name}.json", reference_text(service)) for service in CATALOG.services]
    files += [(f"{e.service}-exchanges.json", exchanges_text(e)) for e in CATALOG.exchanges]
    for name, text in files:
        path = os.path.join(FOLDER, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
