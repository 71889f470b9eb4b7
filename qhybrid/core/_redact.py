"""Secrets out of messages: a URL's password never reaches a log, a report or a terminal."""

from __future__ import annotations

from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit


def _split(url: str) -> SplitResult | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        return None
    return parts if parts.scheme else None


def url_password(url: str) -> str | None:
    """The password in ``url`` (``scheme://user:password@host/...``), if any."""
    parts = _split(url)
    return None if parts is None else parts.password


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, as SQLAlchemy renders a URL with
    ``hide_password=True``; text that is not a URL is shown only up to its scheme."""
    parts = _split(url)
    if parts is None:
        scheme, sep, _rest = url.partition("://")
        return f"{scheme}{sep}..." if sep and scheme.isidentifier() else "<not a URL>"
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def redact_text(text: str, *urls: str) -> str:
    """``text`` with the password of each of ``urls`` replaced by ``***``."""
    for url in urls:
        password = url_password(url)
        if password:
            text = text.replace(password, "***").replace(unquote(password), "***")
    return text
