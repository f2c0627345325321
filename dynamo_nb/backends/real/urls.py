"""Credentials in server URLs: taken out to be used, and never shown.

``nats://user:pass@host:4222`` and ``http://user:pass@host:2379`` carry secrets; every text a user or a log can
see (descriptions, reprs, warnings, error messages) uses :func:`redact` instead.

>>> redact("nats://alice:s3cret@127.0.0.1:4222")
'nats://alice:***@127.0.0.1:4222'
>>> redact("nats://tok3n@127.0.0.1:4222, nats://127.0.0.1:4223")
'nats://***@127.0.0.1:4222,nats://127.0.0.1:4223'
>>> split_credentials("http://root:pw@10.0.0.1:2379")
('http://10.0.0.1:2379', 'root', 'pw')
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["redact", "redact_text", "split_credentials"]


def _one(url: str) -> tuple[str, str | None, str | None, str]:
    """``(url without credentials, user, password, redacted url)`` for one URL."""
    text = url.strip()
    parts = urlsplit(text if "://" in text else f"//{text}")
    if "@" not in parts.netloc:
        return text, None, None, text
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, sep, password = userinfo.partition(":")
    clean = urlunsplit(parts._replace(netloc=hostport))
    shown = urlunsplit(parts._replace(netloc=f"{user}:***@{hostport}" if sep else f"***@{hostport}"))
    if "://" not in text:
        clean, shown = clean[2:], shown[2:]
    return clean, unquote(user), unquote(password) if sep else None, shown


def redact(urls: str) -> str:
    """One URL or a comma-separated list, with every password (or bare token) replaced by ``***``."""
    return ",".join(_one(u)[3] for u in urls.split(",") if u.strip())


def redact_text(text: str, urls: str) -> str:
    """``text`` with every credential of ``urls`` blanked out (for library messages that may quote them)."""
    for u in urls.split(","):
        _, user, password, _ = _one(u)
        for secret in (password, None if password is not None else user):
            if secret:
                text = text.replace(secret, "***")
    return text


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """``(url without credentials, user, password)``; user and password are None when the URL has none."""
    clean, user, password, _ = _one(url)
    return clean, user, password
