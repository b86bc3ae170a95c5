"""One family for everything the app refuses to do as asked — not enough credits, a monthly
limit reached, a file that is not a video, no service to clean it — so the web pages and the
API tell people the same thing in the same words.

A refusal changes nothing: whoever raises it has created, held and kept nothing. Each kind
carries a stable `code` (the API's problem type, `urn:unmark:problem:<code>`), the HTTP
status and short title the API answers with, and `message`, the plain words a person reads.
The dashboard turns one into a form error (`apps.jobs.views`), the API into a problem document
(`apps.api.problems`): each in one place. It sits under every app, so any of them can refuse.
"""

from typing import Any, ClassVar


class Refused(Exception):
    code: ClassVar[str] = "refused"
    status: ClassVar[int] = 400
    title: ClassVar[str] = "Refused"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        # Figures a program may want besides the words (the API adds them to the problem).
        self.extra = extra

    # Headers the API answers with (a Retry-After where waiting helps).
    headers: ClassVar[dict[str, str]] = {}
