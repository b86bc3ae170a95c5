"""Local runs: every email is written under `var/mail/` and announced by one printed line.

Each message becomes `<time>-<n>.eml` (the message as sent, open it in a mail program) and a
`.txt` of its text part. The printed line names the recipient, the subject and the first link,
decoded: quoted-printable never wraps a link that has to be clicked from the terminal.
"""

import re
import sys
import time
from collections.abc import Sequence
from itertools import count
from pathlib import Path
from typing import Any

from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend

FIRST_LINK = re.compile(r"https?://[^\s<>\"')]+")
_sequence = count(1)


class LocalMailBackend(BaseEmailBackend):
    def __init__(self, *, folder: str | Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.folder = Path(folder)

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        self.folder.mkdir(parents=True, exist_ok=True)
        for message in email_messages:
            stem = self.folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{next(_sequence):04d}"
            stem.with_suffix(".eml").write_bytes(message.message().as_bytes())
            text = str(message.body)
            headers = f"To: {', '.join(message.to)}\nSubject: {message.subject}\n\n"
            stem.with_suffix(".txt").write_text(headers + text)
            link = FIRST_LINK.search(text)
            print(
                f"✉ {', '.join(message.to)} · {message.subject}"
                + (f" · {link.group(0)}" if link else "")
                + f"  ({stem.with_suffix('.txt')})",
                file=sys.stdout,
                flush=True,
            )
        return len(email_messages)
