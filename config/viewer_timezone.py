"""Shows times in the viewer's own time zone.

`static/js/app.js` stores the browser's zone (`Intl…timeZone`, e.g. `Europe/Paris`) in the
`tz` cookie; pages name the zone next to every time, so UTC (before the cookie exists, or
without JavaScript) is never mistaken for local time.
"""

from collections.abc import Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

COOKIE = "tz"
_KNOWN = frozenset(available_timezones())


def viewer_timezone_middleware(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    def middleware(request: HttpRequest) -> HttpResponse:
        name = request.COOKIES.get(COOKIE, "")
        if name in _KNOWN:  # a cookie is the visitor's input: only real zone names count
            try:
                timezone.activate(ZoneInfo(name))
            except ZoneInfoNotFoundError:
                timezone.deactivate()
        else:
            timezone.deactivate()
        return get_response(request)

    return middleware
