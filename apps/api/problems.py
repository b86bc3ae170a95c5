"""Errors as `application/problem+json` (RFC 9457): every kind of refusal has its own stable
`type`, a short `title`, and a `detail` in the same plain words the web pages use."""

import json
from typing import Any

from django.http import HttpResponse

from apps.refusals import Refused

CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "urn:unmark:problem:"


class Problem(Exception):
    """Raised anywhere under the API; answered as a problem document, nothing else done."""

    def __init__(
        self,
        status: int,
        kind: str,
        title: str,
        detail: str = "",
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.kind = kind
        self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra

    @classmethod
    def refused(cls, refusal: Refused) -> "Problem":
        """What the app refuses, in the API's terms: the same code and words the pages use."""
        return cls(
            refusal.status,
            refusal.code,
            refusal.title,
            refusal.message,
            headers=dict(refusal.headers),
            **refusal.extra,
        )

    def response(self) -> HttpResponse:
        document: dict[str, Any] = {
            "type": TYPE_BASE + self.kind,
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            document["detail"] = self.detail
        document.update(self.extra)
        response = HttpResponse(json.dumps(document), status=self.status, content_type=CONTENT_TYPE)
        for name, value in self.headers.items():
            response[name] = value
        return response


def not_found(what: str = "Not found.") -> Problem:
    # The same answer whether the thing is another team's or does not exist at all.
    return Problem(404, "not-found", "Not found", what)
