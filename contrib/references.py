"""Write the API references that buildfarm.common.client ships (common/references/*.json)
from the route declarations, as the master serves them at ``/references/<service>/v1/api.json``::

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


def main() -> None:
    for service in CATALOG.services:
        path = os.path.join(FOLDER, f"{service.name}.json")
        with open(path, "w", encoding="utf-8") as f:
            f.write(reference_text(service))
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
