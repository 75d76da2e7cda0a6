"""Parsed documents into chunks of about `size` characters, each saying where it comes from.

A recursive splitter: text too long for one chunk is cut at paragraph breaks, then lines,
then sentence ends, then words, and the pieces of one cut share `overlap` characters (whole
paragraphs and rows are packed side by side without repeating anything). Atomic
blocks (rows) are never cut: a row longer than `size` is a chunk of its own. Chunks never
cross a section, so each has one page or sheet and heading, written first in its text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.knowledge.parsing import Block, ParsedDocument

_SEPARATORS = ("\n\n", "\n", r"(?<=[.!?])\s+", " ")


@dataclass(frozen=True, slots=True)
class Chunk:
    index: int
    text: str
    location: str
    heading: str | None


def chunk(document: ParsedDocument, document_name: str, size: int = 500, overlap: int = 50) -> list[Chunk]:
    chunks: list[Chunk] = []
    for section in document.sections:
        source = " · ".join(part for part in (document_name, section.location, section.heading) if part)
        for body in _pack(section.blocks, size, overlap):
            chunks.append(Chunk(len(chunks), f"[{source}]\n{body}", section.location, section.heading))
    return chunks


def _pack(blocks: tuple[Block, ...], size: int, overlap: int) -> list[str]:
    """Whole rows and split paragraphs, packed greedily up to `size`."""
    pieces: list[tuple[str, bool]] = []
    for block in blocks:
        if block.atomic or len(block.text) <= size:
            pieces.append((block.text, block.atomic))
        else:
            pieces.extend((part, False) for part in _split(block.text, size, overlap, 0))
    bodies: list[str] = []
    current: list[str] = []
    length = 0
    for text, _ in pieces:
        if current and length + 1 + len(text) > size:
            bodies.append("\n".join(current))
            current, length = [], 0
        current.append(text)
        length += len(text) + 1
    if current:
        bodies.append("\n".join(current))
    return [body.strip() for body in bodies if body.strip()]


def _split(text: str, size: int, overlap: int, level: int) -> list[str]:
    if len(text) <= size:
        return [text]
    if level >= len(_SEPARATORS):
        step = max(size - overlap, 1)
        return [text[start : start + size] for start in range(0, len(text), step)]
    parts = [p for p in re.split(_SEPARATORS[level], text) if p.strip()]
    if len(parts) == 1:
        return _split(text, size, overlap, level + 1)
    out: list[str] = []
    current = ""
    for part in parts:
        for piece in _split(part, size, overlap, level + 1) if len(part) > size else [part]:
            if current and len(current) + 1 + len(piece) > size:
                out.append(current)
                tail = current[-overlap:].lstrip() if overlap else ""
                current = f"{tail} {piece}" if tail and len(tail) + 1 + len(piece) <= size else piece
            else:
                current = f"{current} {piece}" if current else piece
    if current:
        out.append(current)
    return out
