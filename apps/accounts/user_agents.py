"""What a browser's User-Agent header means to the person reading their sessions: "Chrome on
Linux", not "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 …". A few families cover the
browsers people sign in with; anything else is named as unknown rather than guessed."""

import re

# First match wins: Edge, Opera and Samsung's browser say "Chrome" too, Chrome says "Safari".
BROWSERS = [
    (re.compile(r"\bEdg(e|A|iOS)?/"), "Edge"),
    (re.compile(r"\b(OPR|Opera)/"), "Opera"),
    (re.compile(r"\bSamsungBrowser/"), "Samsung Internet"),
    (re.compile(r"\b(Firefox|FxiOS)/"), "Firefox"),
    (re.compile(r"\b(HeadlessChrome|Chrome|CriOS|Chromium)/"), "Chrome"),
    (re.compile(r"\bVersion/[\d.]+.*\bSafari/"), "Safari"),
    (re.compile(r"^curl/"), "curl"),
]
# iPhones and iPads say "like Mac OS X", Android says "Linux": the specific ones first.
SYSTEMS = [
    (re.compile(r"\biPhone\b"), "iPhone"),
    (re.compile(r"\biPad\b"), "iPad"),
    (re.compile(r"\bAndroid\b"), "Android"),
    (re.compile(r"\bCrOS\b"), "ChromeOS"),
    (re.compile(r"\bWindows\b"), "Windows"),
    (re.compile(r"\bMac OS X\b|\bMacintosh\b"), "macOS"),
    (re.compile(r"\bLinux\b"), "Linux"),
]


def browser_name(user_agent: str) -> str:
    """The name people know: "Firefox on Windows", "Safari on iPhone", "Chrome"."""
    browser = next((name for pattern, name in BROWSERS if pattern.search(user_agent)), None)
    system = next((name for pattern, name in SYSTEMS if pattern.search(user_agent)), None)
    if browser and system:
        return f"{browser} on {system}"
    if browser or system:
        return browser or f"A browser on {system}"
    return "Unknown browser"
