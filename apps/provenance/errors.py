"""The one error signing raises, so the pipeline has a single thing to catch.

While signing is on, no unsigned result may be delivered: whatever goes wrong (an unreadable
result, keys that stopped loading, c2pa refusing the manifest, a full disk) ends as
`SigningFailed`, and the caller fails the job and refunds it. Its message is written for the
job's log and for staff; it names no secret.
"""


class SigningFailed(Exception):
    """The result could not be signed; nothing was written to the destination."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
