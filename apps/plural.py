"""Counted words in the app's copy: "1 credit", "1,000 credits". Plural rules come from
`ngettext`, so a sentence never says "1 credits" or "1 video need"."""

from django.utils.translation import ngettext


def credits(count: int) -> str:
    return ngettext("%(count)s credit", "%(count)s credits", abs(count)) % {"count": f"{count:,}"}


def videos(count: int) -> str:
    return ngettext("%(count)s video", "%(count)s videos", count) % {"count": f"{count:,}"}
