"""Signing a cleaned result: the video with a C2PA manifest, or `SigningFailed`.

c2pa-python streams: it reads the result in 8 KB blocks and writes the signed video to a
stream, hashing the samples in 4 MB chunks (`sdk.MERKLE_CHUNK_KB`), so a signing takes about
20 MB of memory whatever the video's size (bench/signing.py measures it). Frames and sound are
left as they are: the manifest goes in boxes of its own and the sample offsets are moved past
them.

The signed video is written next to `dest` under a hidden name and moved into place only once
it has been read back and validated, so `dest` is either a whole, signed video or untouched.
"""

import contextlib
import logging
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import c2pa
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from apps.provenance import manifest, sdk
from apps.provenance.credentials import Credentials, summarise
from apps.provenance.errors import SigningFailed
from apps.provenance.formats import MP4, video_media_type
from apps.provenance.keys import SigningKeys, load_signing_keys

logger = logging.getLogger(__name__)


def sign_result(
    result: Path,
    dest: Path,
    *,
    original: Path | IO[bytes] | None,
    original_title: str,
    edited_by: str,
) -> Credentials | None:
    """Writes `result` to `dest` with Content Credentials and returns what they say.

    - `original`: the video the person gave us (a path, or a seekable binary stream such as
      a storage file, which is read from its start and left open), or None when there was
      none (link jobs): the parent ingredient is then described by `original_title` alone.
      Only its manifest boxes are read, not its frames.
    - `original_title`: the parent's title, as the manifest will show it to anyone who gets
      the video (so prefer a neutral one over a person's file name).
    - `edited_by`: what removed the watermark (the provider), named in the `c2pa.edited`
      action.
    - `dest` may be `result` itself (signed in place). The signed copy is written in `dest`'s
      folder first (so it must exist, with room for one more copy of the video), and c2pa
      keeps up to two more in `TMPDIR` while it works.

    With `C2PA_SIGNING` off, `dest` gets an unsigned copy and the answer is None. Raises
    `SigningFailed` when the result cannot be signed; `dest` is then untouched.
    """
    if not settings.C2PA_SIGNING:
        try:
            _deliver_unsigned(result, dest)
        except OSError as exc:
            raise SigningFailed(f"The result could not be copied ({exc.strerror or exc}).") from exc
        return None
    try:
        keys = load_signing_keys()
    except ImproperlyConfigured as exc:
        raise SigningFailed(f"The signing keys cannot be used. {exc}") from exc
    try:
        media_type = video_media_type(result)
    except OSError as exc:
        raise SigningFailed(f"The result cannot be read ({exc.strerror or exc}).") from exc
    if media_type is None:
        raise SigningFailed(
            "The result is not an MP4 or QuickTime video, so it cannot carry Content Credentials."
        )
    started = time.monotonic()
    partial = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.signing")
    try:
        _sign(result, partial, media_type, keys, original, original_title, edited_by)
        credentials = _validated(partial, media_type)
        os.replace(partial, dest)
    except c2pa.C2paError as exc:
        raise SigningFailed(f"c2pa could not sign the result: {exc}") from exc
    except OSError as exc:
        raise SigningFailed(
            f"The signed result could not be written ({exc.strerror or exc})."
        ) from exc
    finally:
        partial.unlink(missing_ok=True)
    logger.info(
        "result signed",
        extra={
            "seconds": round(time.monotonic() - started, 3),
            "bytes": dest.stat().st_size,
            "local_signer": keys.local,
            "original_had_credentials": credentials.original_had_credentials,
        },
    )
    return credentials


def _sign(
    result: Path,
    partial: Path,
    media_type: str,
    keys: SigningKeys,
    original: Path | IO[bytes] | None,
    original_title: str,
    edited_by: str,
) -> None:
    info = c2pa.C2paSignerInfo(
        c2pa.C2paSigningAlg.ES256, keys.cert_chain, keys.private_key, keys.timestamp_url or None
    )
    with (
        sdk.context(claim_generator=manifest.claim_generator()) as context,
        c2pa.Signer.from_info(info) as signer,
        _builder(context, original, original_title, edited_by) as builder,
        result.open("rb") as source,
        # c2pa may read back what it wrote: the destination must be readable too.
        partial.open("w+b") as signed,
    ):
        builder.sign(signer, media_type, source, signed)


def _builder(
    context: c2pa.Context, original: Path | IO[bytes] | None, title: str, edited_by: str
) -> c2pa.Builder:
    """A Builder with the parent ingredient read from the original's file when there is one
    c2pa can read, else described by its title."""
    if original is not None:
        builder = c2pa.Builder(manifest.manifest_definition(edited_by=edited_by), context)
        try:
            with _stream(original) as stream:
                media_type = video_media_type(stream) or MP4
                builder.add_ingredient(
                    manifest.parent_ingredient(title, media_type), media_type, stream
                )
            return builder
        except (c2pa.C2paError, OSError) as exc:
            # The person's video was accepted as a video; that its own credentials are broken
            # (or not there to read) is no reason to fail their job. The parent is still named.
            builder.close()
            logger.warning(
                "original unreadable for content credentials; described by title only",
                extra={"error": str(exc)},
            )
    described = [manifest.parent_ingredient(title, MP4)]
    return c2pa.Builder(
        manifest.manifest_definition(edited_by=edited_by, ingredients=described), context
    )


@contextlib.contextmanager
def _stream(original: Path | IO[bytes]) -> Iterator[IO[bytes]]:
    if isinstance(original, Path):
        with original.open("rb") as handle:
            yield handle
    else:
        original.seek(0)
        yield original


def _validated(path: Path, media_type: str) -> Credentials:
    """What the signed file's credentials say, read back from disk: a result whose manifest
    does not validate (hashes, signature, certificate profile) is never delivered."""
    with (
        sdk.context() as context,
        path.open("rb") as stream,
        c2pa.Reader(media_type, stream, None, context) as reader,
    ):
        credentials = summarise(reader.get_validation_state(), reader.json())
    if not credentials.valid:
        raise SigningFailed(
            f"The signed result does not validate ({credentials.validation_state}: "
            f"{', '.join(credentials.problems) or 'no reason given'})."
        )
    return credentials


def _deliver_unsigned(result: Path, dest: Path) -> None:
    """Signing is off: `dest` gets the result as it is, whole or not at all."""
    if result.resolve() == dest.resolve():
        return
    partial = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.copying")
    try:
        shutil.copyfile(result, partial)
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)
