"""What a video's Content Credentials say, in the few facts the product shows.

c2pa's manifest store is a large JSON document; the job page and the API need five answers:
who signed it, whether the signature holds (and is trusted), whether the original had its own
credentials, whether it is marked as AI-made, and what was done. `Credentials` holds those,
made once when a result is signed (store `as_json()` with the job: reading a large video back
costs a pass over the whole file) or by `read_credentials` for any file.
"""

import json
import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import c2pa

from apps.provenance import sdk
from apps.provenance.formats import video_media_type

logger = logging.getLogger(__name__)

# The IPTC digital source types that say a picture was made by a generative model.
AI_SOURCE_TYPES = frozenset(
    {
        "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia",
        "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia",
    }
)
TRUSTED, VALID, INVALID = "Trusted", "Valid", "Invalid"


@dataclass(frozen=True)
class Credentials:
    """The facts the product shows about a video's Content Credentials."""

    signed_by: str  # the signing certificate's common name
    issuer: str  # the organisation the signing certificate names: the claim's signer, which
    # C2PA tools show as "issued by" (the operator in production)
    signed_at: datetime | None  # only with a timestamp authority; else None
    claim_generator: str  # what made the manifest: "Unmark/0.1.0"
    original_title: str | None  # the parent ingredient's title
    original_had_credentials: bool  # the parent ingredient carried its own manifest
    ai_generated: bool  # some action says trainedAlgorithmicMedia (or composite with it)
    actions: tuple[str, ...]  # of the active manifest, in order: ("c2pa.opened", "c2pa.edited")
    validation_state: str  # c2pa's verdict: "Trusted", "Valid" (not trusted) or "Invalid"
    problems: tuple[str, ...]  # c2pa's failure codes, e.g. ("signingCredential.untrusted",)

    @property
    def valid(self) -> bool:
        """Intact and correctly signed, whether or not the signer is trusted."""
        return self.validation_state in (TRUSTED, VALID)

    @property
    def trusted(self) -> bool:
        """Valid, and signed by a certificate that chains to a trust anchor."""
        return self.validation_state == TRUSTED

    def as_json(self) -> dict[str, Any]:
        """Plain JSON types, to keep with the job (a JSONField) or answer in the API."""
        data = asdict(self)
        data["signed_at"] = self.signed_at.isoformat() if self.signed_at else None
        data["actions"], data["problems"] = list(self.actions), list(self.problems)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Credentials":
        signed_at = data.get("signed_at")
        return cls(
            **{
                **data,
                "signed_at": datetime.fromisoformat(signed_at) if signed_at else None,
                "actions": tuple(data["actions"]),
                "problems": tuple(data["problems"]),
            }
        )


def read_credentials(path: Path) -> Credentials | None:
    """The Content Credentials of the video at `path` (validated: a pass over the whole file),
    or None when it has none, or none c2pa can make sense of. Any file name will do: the type
    is told from the content."""
    media_type = video_media_type(path)
    if media_type is None:
        return None
    try:
        with sdk.context() as context, path.open("rb") as stream:
            reader = c2pa.Reader.try_create(media_type, stream, None, context)
            if reader is None:
                return None
            with reader:
                return summarise(reader.get_validation_state(), reader.json())
    except c2pa.C2paError as exc:
        logger.warning("unreadable content credentials", extra={"error": str(exc)})
        return None


def summarise(validation_state: str | None, store_json: str) -> Credentials:
    """`Credentials` from c2pa's manifest store JSON (`Reader.json()`)."""
    store = json.loads(store_json)
    manifests: dict[str, Any] = store.get("manifests", {})
    active = manifests.get(store.get("active_manifest", ""), {})
    signature = active.get("signature_info", {})
    parent = next(
        (i for i in active.get("ingredients", []) if i.get("relationship") == "parentOf"), None
    )
    time = signature.get("time")
    return Credentials(
        signed_by=signature.get("common_name", ""),
        issuer=signature.get("issuer", ""),
        signed_at=datetime.fromisoformat(time) if time else None,
        claim_generator=_claim_generator(active),
        original_title=parent.get("title") if parent else None,
        original_had_credentials=bool(parent and parent.get("active_manifest")),
        ai_generated=any(
            action.get("digitalSourceType") in AI_SOURCE_TYPES
            for manifest in manifests.values()
            for action in _actions(manifest)
        ),
        actions=tuple(action.get("action", "") for action in _actions(active)),
        validation_state=validation_state or INVALID,
        problems=tuple(status["code"] for status in store.get("validation_status", [])),
    )


def _actions(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Every action of a manifest's actions assertions (c2pa.actions or c2pa.actions.v2)."""
    return [
        action
        for assertion in manifest.get("assertions", [])
        if assertion.get("label", "").startswith("c2pa.actions")
        for action in assertion.get("data", {}).get("actions", [])
    ]


def _claim_generator(manifest: dict[str, Any]) -> str:
    for info in manifest.get("claim_generator_info", []):
        name, version = info.get("name", ""), info.get("version", "")
        return f"{name}/{version}" if version else name
    return str(manifest.get("claim_generator", ""))
