"""What Unmark says about a cleaned video: the manifest definition handed to c2pa's Builder.

The story every result tells, whichever provider cleaned it:
- its parent ingredient is the original (with the original's own manifest inside, when it
  had one; c2pa reads that from the original's file);
- `c2pa.opened` the original, then `c2pa.edited` it: "visible watermark removed", by the
  provider named in `edited_by`;
- the picture is AI-generated media (IPTC's trainedAlgorithmicMedia), as the original was;
- the claim generator is this product and its version, "Unmark/<version>".

Kept free of I/O so the definition can be read and tested on its own.
"""

import functools
import tomllib
from typing import Any

from django.conf import settings

PRODUCT = "Unmark"
# The label that ties the `c2pa.opened` action to the parent ingredient (c2pa replaces it with
# the ingredient assertion's own label when signing).
PARENT_LABEL = "original"
EDIT_DESCRIPTION = "visible watermark removed"
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


@functools.cache
def product_version() -> str:
    """The version in pyproject.toml, which ships with the app (the Docker image copies it)."""
    try:
        with (settings.BASE_DIR / "pyproject.toml").open("rb") as handle:
            return str(tomllib.load(handle)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        # A manifest without a version is still true; refusing to sign over it would not be.
        return "unknown"


def claim_generator() -> dict[str, str]:
    """c2pa's `claim_generator_info`: read back as "Unmark/<version>"."""
    return {"name": PRODUCT, "version": product_version()}


def parent_ingredient(title: str, media_type: str) -> dict[str, Any]:
    """The original as the parent. Added from the original's file, c2pa fills in the rest
    (its own manifest, if any); alone, it describes an original we never had (link jobs)."""
    return {
        "title": title,
        "format": media_type,
        "relationship": "parentOf",
        "label": PARENT_LABEL,
    }


def manifest_definition(
    *, edited_by: str, ingredients: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The manifest for a cleaned result; `ingredients` holds the parent when it is described
    rather than read from a file."""
    definition: dict[str, Any] = {
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.opened",
                            "parameters": {"ingredientIds": [PARENT_LABEL]},
                        },
                        {
                            "action": "c2pa.edited",
                            "description": EDIT_DESCRIPTION,
                            "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                            "softwareAgent": {"name": edited_by},
                        },
                    ]
                },
            }
        ],
    }
    if ingredients:
        definition["ingredients"] = ingredients
    return definition
