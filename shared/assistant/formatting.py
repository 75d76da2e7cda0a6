"""The model's Markdown as WhatsApp text, in messages WhatsApp accepts.

WhatsApp has its own marks (*bold*, _italic_, ~strike~, ```mono```) and no headings, tables
or links, and refuses a text body over 4,096 characters (Graph error 100). Code spans are
left as they are: WhatsApp shows them, and asterisks inside them are not formatting.
"""

from __future__ import annotations

import re

LIMIT = 4096
_CODE = re.compile(r"```.*?```|`[^`\n]+`", re.DOTALL)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n")


def to_whatsapp(markdown: str) -> str:
    kept: list[str] = []

    def keep(match: re.Match[str]) -> str:
        kept.append(match.group(0))
        return f"\x00{len(kept) - 1}\x00"

    text = _CODE.sub(keep, markdown)
    text = re.sub(r"<[^>\n]+>", "", text)  # HTML tags
    text = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", text)  # images: their alt text
    text = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", lambda m: m[2] if m[1] == m[2] else f"{m[1]} ({m[2]})", text)
    text = _tables(text)
    text = re.sub(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", r"**\1**", text, flags=re.MULTILINE)
    text = re.sub(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1", "\x01\\2\x01", text)  # bold, marked for now
    text = re.sub(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])", r"_\1_", text)  # *italic*
    text = re.sub(r"~~(?=\S)(.+?)(?<=\S)~~", r"~\1~", text)
    text = text.replace("\x01", "*")
    text = re.sub(r"^(\s*)[*+]\s+", r"\1- ", text, flags=re.MULTILINE)  # bullets
    text = re.sub(r"[ \t]+$", "", text, flags=re.MULTILINE)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return re.sub(r"\x00(\d+)\x00", lambda m: kept[int(m[1])], text).strip()


def _tables(text: str) -> str:
    """A Markdown table becomes one line per row: "Header: value | Header: value"."""
    lines = text.split("\n")
    out: list[str] = []
    index = 0
    while index < len(lines):
        is_table = (
            index + 1 < len(lines)
            and lines[index].strip().startswith("|")
            and re.fullmatch(r"\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*", lines[index + 1])
        )
        if not is_table:
            out.append(lines[index])
            index += 1
            continue
        headers = [cell.strip() for cell in lines[index].strip().strip("|").split("|")]
        index += 2
        while index < len(lines) and lines[index].strip().startswith("|"):
            cells = [cell.strip() for cell in lines[index].strip().strip("|").split("|")]
            pairs = [f"{h}: {c}" if h else c for h, c in zip(headers, cells, strict=False) if c]
            out.append("- " + " | ".join(pairs))
            index += 1
    return "\n".join(out)


def split_for_whatsapp(text: str, limit: int = LIMIT, max_parts: int = 2) -> list[str]:
    """At most `max_parts` messages of at most `limit` characters, cut at sentence ends; what
    still does not fit is shortened at a word, with an ellipsis."""
    if not text.strip():
        raise ValueError("an empty reply is never sent")
    rest = text.strip()
    parts: list[str] = []
    while rest and len(parts) < max_parts - 1 and len(rest) > limit:
        cut = max((m.start() for m in _SENTENCE_END.finditer(rest, 0, limit) if m.start() > 0), default=0)
        if cut == 0:
            cut = rest.rfind(" ", 0, limit) if rest.rfind(" ", 0, limit) > 0 else limit
        parts.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    if len(rest) > limit:
        room = limit - 1
        cut = rest.rfind(" ", 0, room)
        rest = rest[: cut if cut > room // 2 else room].rstrip() + "…"
    parts.append(rest)
    return [part for part in parts if part]
