"""The message table: every label the app shows, in English and Korean (static/i18n/messages.json)."""

from __future__ import annotations

import json
import logging
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"
MESSAGES_PATH = STATIC_DIR / "i18n" / "messages.json"
DEFAULT_LANG = "en"


@cache
def load_messages(path: Path = MESSAGES_PATH) -> dict[str, dict[str, str]]:
    """Read the message table: ``{lang: {key: text}}``."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def languages() -> list[dict[str, str]]:
    """Items for the language picker: each language's own name."""
    return [{"title": table["language_name"], "value": lang} for lang, table in load_messages().items()]


def messages(lang: str) -> dict[str, str]:
    """The table for one language; keys missing there fall back to English."""
    tables = load_messages()
    base = tables[DEFAULT_LANG]
    if lang not in tables:
        log.warning("unknown language %r, using %s", lang, DEFAULT_LANG)
        return dict(base)
    return {**base, **tables[lang]}


def fmt(table: dict[str, str], key: str, **values: object) -> str:
    """Format one message with ``{name}`` placeholders."""
    text = table.get(key, key)
    for name, value in values.items():
        text = text.replace("{" + name + "}", str(value))
    return text
