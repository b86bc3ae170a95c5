"""Content Credentials (C2PA) for cleaned results.

Every result Unmark delivers carries a signed C2PA manifest saying what it came from (the
original, as the parent ingredient, with its own credentials when it had them), what was done
(`c2pa.opened`, then `c2pa.edited`: "visible watermark removed"), that it is AI-generated
media, and that Unmark made the claim. The whole API:

    from apps.provenance import (
        Credentials, SigningFailed, check_signing_keys, read_credentials, sign_result,
    )

    credentials = sign_result(result, dest, original=original_path_or_None,
                              original_title="Sora video", edited_by="SoraWatermarkCleaner")
    credentials.as_json()            # keep with the job; Credentials.from_json(...) to show it
    read_credentials(path)           # Credentials | None, for any video
    check_signing_keys()             # at start-up: ImproperlyConfigured when keys are unusable

Settings (config/settings.py): C2PA_SIGNING, C2PA_CERT_CHAIN, C2PA_PRIVATE_KEY,
C2PA_TIMESTAMP_URL, C2PA_TRUST_ANCHORS, C2PA_LOCAL_DIR.
"""

from apps.provenance.checks import check_signing_keys
from apps.provenance.credentials import Credentials, read_credentials
from apps.provenance.errors import SigningFailed
from apps.provenance.signing import sign_result

__all__ = ["Credentials", "SigningFailed", "check_signing_keys", "read_credentials", "sign_result"]
