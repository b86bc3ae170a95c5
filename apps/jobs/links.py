"""Reading a paste of Sora share links: which lines become jobs, and what is wrong with the rest.

Only public share links (`https://sora.chatgpt.com/p/s_<32 hex>`, optional query) are
accepted. Kie itself only checks "starts with sora.chatgpt.com", so everything stricter here
catches typos before any credit is held. One video is one link however it was copied (with
or without `https://`, capitals, a `#fragment`, a trailing slash, tracking parameters), so
that pasting it again is recognised rather than charged again.
"""

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit

MAX_LINK_LENGTH = 500
SORA_HOST = "sora.chatgpt.com"
_SHARE_PATH = re.compile(r"/p/s_[0-9a-f]{32}")
_QUERY = re.compile(r"[^#\s]*")
# The only query parameter a share page reads (its share token); Sora ignores the rest
# (utm_*, ref, …), so they are dropped and do not make one video look like two.
SHARE_PARAMETER = "psh"


@dataclass(frozen=True)
class LineError:
    number: int  # 1-based, as a person counts the lines they pasted
    text: str
    message: str


@dataclass
class PasteResult:
    links: list[str] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)
    # Lines repeating an earlier one: each video is sent once, and the person is told so.
    duplicates: list[LineError] = field(default_factory=list)


def count_nonblank_lines(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.strip())


def parse_pasted_links(text: str) -> PasteResult:
    result = PasteResult()
    first_seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        link, problem = check_share_link(line)
        if problem:
            result.errors.append(LineError(number, _excerpt(line), problem))
        elif (page := share_page(link)) in first_seen:
            result.duplicates.append(
                LineError(
                    number,
                    _excerpt(line),
                    f"The same video as line {first_seen[page]}: it is sent once.",
                )
            )
        else:
            first_seen[page] = number
            result.links.append(link)
    return result


def check_share_link(text: str) -> tuple[str, str]:
    """Returns (normalised link, "") for a usable share link, else ("", a plain-words reason)."""
    if len(text) > MAX_LINK_LENGTH:
        return (
            "",
            f"This line is longer than {MAX_LINK_LENGTH} characters; a share link is shorter.",
        )
    if any(char.isspace() for char in text):
        return "", "This line has spaces inside it. Paste one link per line."
    if "://" not in text and text.lower().startswith(SORA_HOST):
        text = "https://" + text
    try:
        parts = urlsplit(text)
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return "", "This is not a valid web address."
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not host:
        return (
            "",
            "This is not a web address. Paste a Sora share link (https://sora.chatgpt.com/p/s_…).",
        )
    if host != SORA_HOST:
        if SORA_HOST in host or "sora" in host:
            return "", f"The address is not {SORA_HOST}. Check the link: it may be a look-alike."
        return "", f"This is not a Sora link. Only links to {SORA_HOST} can be processed."
    if scheme != "https":
        return "", "Sora share links start with https://."
    if parts.username or parts.password or port not in (None, 443):
        return "", f"This link has an unusual form. Copy the share link from {SORA_HOST} again."
    # Ids are lowercase hex: a link copied or typed in capitals is the same video, and so is
    # one with a trailing slash.
    path = parts.path.lower().removesuffix("/")
    if path.startswith("/d/"):
        return "", (
            "This is a draft link, which only you can open. Publish the video in Sora and "
            "paste its share link (…/p/s_…)."
        )
    if not _SHARE_PATH.fullmatch(path):
        return "", (
            "This is not a video share link. It should look like "
            "https://sora.chatgpt.com/p/s_ followed by 32 letters and digits."
        )
    if not _QUERY.fullmatch(parts.query):
        return "", "The part after “?” in this link is not valid."
    # The fragment (#…) never reaches the server; dropping it keeps duplicates recognisable.
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k == SHARE_PARAMETER])
    link = f"https://{SORA_HOST}{path}" + (f"?{query}" if query else "")
    if len(link) > MAX_LINK_LENGTH:  # "https://" may have been added above
        return "", f"This link is over {MAX_LINK_LENGTH} characters; a share link is shorter."
    return link, ""


def share_page(link: str) -> str:
    """The share page a normalised link opens, without its share token: the video itself."""
    return link.split("?", 1)[0]


def _excerpt(line: str, limit: int = 120) -> str:
    return line if len(line) <= limit else line[: limit - 1] + "…"
