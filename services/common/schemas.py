"""Write the JSON Schemas of the native models to ``schemas/``.

    python -m services.common.schemas          # rewrite the files
    python -m services.common.schemas --check  # exit 1 when a committed file is stale

The committed schemas are generated, never edited by hand; a test runs --check.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from services.rules.model import Event

ROOT = Path(__file__).resolve().parents[2]

MODELS = {"event.schema.json": Event}


def render(model: type) -> str:
    schema = model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    stale = []
    for name, model in MODELS.items():
        path = ROOT / "schemas" / name
        text = render(model)
        if "--check" in argv:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print(f"stale schemas (run python -m services.common.schemas): {', '.join(stale)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
