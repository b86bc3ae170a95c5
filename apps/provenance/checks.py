"""The start-up check: a process that would sign with missing or broken keys does not start.

Finding out at the first finished job would fail (and refund) every job until someone looked;
finding out at start-up stops the deploy with a message that says what to fix. Call
`check_signing_keys()` once per process before any job is signed (`ProvenanceConfig.ready`
does it for every process that loads Django).

Beyond the checks of `keys`, it signs a tiny picture in memory, so anything else c2pa would
refuse about the certificate surfaces now. That trial asks no timestamp authority: start-up
must not wait on the network.
"""

import io

import c2pa
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from PIL import Image

from apps.provenance import local_ca, manifest, sdk
from apps.provenance.keys import SigningKeys, load_signing_keys


def check_signing_keys() -> None:
    """Raises `ImproperlyConfigured` with a plain message if results could not be signed.

    With `C2PA_SIGNING` off there is nothing to check. Outside production without configured
    keys, this makes the local test signer if it does not exist yet.
    """
    if not settings.C2PA_SIGNING:
        return
    keys = load_signing_keys()
    try:
        _trial_sign(keys)
    except c2pa.C2paError as exc:
        where = (
            f"the local test signer in {settings.C2PA_LOCAL_DIR}/{local_ca.BUNDLE_NAME}"
            if keys.local
            else "C2PA_CERT_CHAIN and C2PA_PRIVATE_KEY"
        )
        raise ImproperlyConfigured(
            f"Content Credentials: c2pa refuses to sign with {where}: {exc}"
        ) from exc


def _trial_sign(keys: SigningKeys) -> None:
    picture = io.BytesIO()
    Image.new("RGB", (8, 8)).save(picture, "PNG")
    picture.seek(0)
    info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, keys.cert_chain, keys.private_key, None)
    with (
        sdk.context(claim_generator=manifest.claim_generator()) as context,
        c2pa.Signer.from_info(info) as signer,
        c2pa.Builder({}, context) as builder,
    ):
        builder.set_intent(c2pa.C2paBuilderIntent.CREATE, c2pa.C2paDigitalSourceType.EMPTY)
        builder.sign(signer, "image/png", picture, io.BytesIO())
