"""How c2pa-python is set up here: one place for the SDK settings signing and reading share.

Each choice below fixes something the SDK's defaults would get wrong for this product:

- No network while reading. People's originals may carry a manifest that points elsewhere
  (a remote manifest, OCSP responders): fetching those from a worker would let an upload
  make our servers call any address. Only the timestamp authority, when the operator names
  one, is ever called.
- Never the whole video in memory. c2pa copies the asset to an intermediate stream before
  hashing it, kept in memory up to 512 MB by default: over `SPOOL_MB` it goes to a temporary
  file in `TMPDIR` instead (two, for a moment, with the Merkle chunks below: keep twice the
  largest result free there). And c2pa hashes a video's samples (the `mdat` box) in blocks of
  up to 256 MB, two at a time, unless asked to hash them as a Merkle tree of fixed-size
  chunks: with `MERKLE_CHUNK_KB` chunks, signing and validating a 500 MB video takes about
  20 MB of memory instead of about 500 MB (bench/signing.py). The tree's leaves go in small
  `uuid` boxes after the samples (about 250 bytes per chunk, so 2 KB for a 30 MB export),
  which players skip (the tests and the bench decode every frame and packet to check).
- The certificate purposes (EKUs) c2pa-rs itself lists for claim signers. With its default
  settings, c2pa-rs 0.91 refuses certificates made for documentSigning or C2PA claim signing
  (`signingCredential.invalid: certificate missing required EKU`, at signing and reading);
  an operator's certificate may well be one of those.
- No thumbnails: c2pa makes none for video, and an ingredient's would only add bytes.

Contexts are made per call: they are cheap, and a c2pa object made before a worker process
forks cannot be used in the child.
"""

from typing import Any

import c2pa
from django.conf import settings

# The in-memory limit of c2pa's intermediate copy of an asset, in MB.
SPOOL_MB = 16
# The size of the chunks a video's samples are hashed in, in KB: the memory a signing needs,
# against 250 bytes added to the file per chunk. 0 hashes them whole (bench/signing.py compares).
MERKLE_CHUNK_KB = 4096

# id-kp-emailProtection, id-kp-documentSigning, Microsoft's C2PA signing, c2pa-kp-claimSigning.
CLAIM_SIGNING_EKUS = (
    "1.3.6.1.5.5.7.3.4",
    "1.3.6.1.5.5.7.3.36",
    "1.3.6.1.4.1.311.76.59.1.9",
    "1.3.6.1.4.1.62558.2.1",
)


def sdk_settings(*, claim_generator: dict[str, str] | None = None) -> dict[str, Any]:
    """The SDK settings (c2pa's JSON settings schema) for reading, or for signing when
    `claim_generator` names the product."""
    trust: dict[str, str] = {"trust_config": "\n".join(CLAIM_SIGNING_EKUS) + "\n"}
    if settings.C2PA_TRUST_ANCHORS:
        trust["trust_anchors"] = settings.C2PA_TRUST_ANCHORS
    builder: dict[str, Any] = {"thumbnail": {"enabled": False}}
    if claim_generator is not None:
        builder["claim_generator_info"] = claim_generator
    core: dict[str, Any] = {"backing_store_memory_threshold_in_mb": SPOOL_MB}
    if MERKLE_CHUNK_KB:
        core["merkle_tree_chunk_size_in_kb"] = MERKLE_CHUNK_KB
    return {
        "version": 1,
        "trust": trust,
        "verify": {
            "verify_after_reading": True,
            "verify_after_sign": True,
            "verify_trust": True,
            "remote_manifest_fetch": False,
            "ocsp_fetch": False,
        },
        "core": core,
        "builder": builder,
    }


def context(*, claim_generator: dict[str, str] | None = None) -> c2pa.Context:
    """A fresh c2pa Context with `sdk_settings`; close it (or use `with`) when done."""
    return c2pa.Context.from_dict(sdk_settings(claim_generator=claim_generator))
