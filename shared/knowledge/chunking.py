"""Parsed documents into chunks of at most `size` characters, each saying where it comes from.

A recursive splitter: a block too long for a chunk is cut at paragraph breaks, then line
breaks, then sentence ends, then spaces, and only a run without any of them is cut between
characters; the pieces are then packed greedily up to `size`. When flowing text continues
into the next chunk, that chunk starts with the previous one's last whole words (at most
`overlap` characters), so a sentence cut at the edge is readable on both sides.

Atomic blocks (spreadsheet, CSV and table rows) are never cut and never repeated as overlap:
each row already carries its column headers. A row longer than `size` is a chunk of its own.
Only an absurdly long row, over LONG_ROW times `size` (4,000 characters by default: someone's
whole FAQ pasted into one cell), is split after all, at its " | " cell boundaries first, then
like text: kept whole it would exceed what an embedding model reads (about 512 tokens) and
crowd every other source out of the reply's context.

Chunks never cross a section, so each has one location and heading; its text starts with
its source ("[harga.xlsx · sheet Prices]") and a line break, and `size` counts the body only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from shared.knowledge.parsing import Block, ParsedDocument

LONG_ROW = 8
_TEXT_LEVELS = (
    (re.compile(r"\n\s*\n"), "\n\n"),  # paragraphs
    (re.compile(r"\n"), "\n"),  # lines
    (re.compile(r"(?<=[.!?…])\s+"), " "),  # sentences
    (re.compile(r"\s+"), " "),  # words
)
_ROW_LEVELS = ((re.compile(r" \| "), " | "), *_TEXT_LEVELS[3:])

_Level = tuple[re.Pattern[str], str]


@dataclass(frozen=True, slots=True)
class Chunk:
    index: int
    text: str  # starts with its source, e.g. "[faq.pdf · page 2]", then a line break and the body
    location: str
    heading: str | None


@dataclass(frozen=True, slots=True)
class _Piece:
    joiner: str  # what separates it from the piece before it in the same chunk
    text: str
    atomic: bool


def chunk(document: ParsedDocument, document_name: str, size: int = 500, overlap: int = 50) -> list[Chunk]:
    """The document's chunks, numbered from 0 in document order."""
    if size < 1 or not 0 <= overlap < size:
        raise ValueError(f"need size >= 1 and 0 <= overlap < size, not size={size}, overlap={overlap}")
    chunks: list[Chunk] = []
    for section in document.sections:
        source = " · ".join(part for part in (document_name, section.location, section.heading) if part)
        for body in _pack(_pieces(section.blocks, size), size, overlap):
            chunks.append(Chunk(len(chunks), f"[{source}]\n{body}", section.location, section.heading))
    return chunks


def _pieces(blocks: Sequence[Block], size: int) -> list[_Piece]:
    pieces: list[_Piece] = []
    previous: Block | None = None
    for block in blocks:
        if not block.text.strip():
            continue
        joiner = "\n\n" if previous is not None and not (previous.atomic or block.atomic) else "\n"
        previous = block
        if block.atomic and len(block.text) <= LONG_ROW * size:
            pieces.append(_Piece(joiner, block.text, atomic=True))
            continue
        levels = _ROW_LEVELS if block.atomic else _TEXT_LEVELS
        for number, (inner, text) in enumerate(_split(block.text, size, levels)):
            pieces.append(_Piece(joiner if number == 0 else inner, text, atomic=False))
    return pieces


def _split(text: str, size: int, levels: Sequence[_Level]) -> list[tuple[str, str]]:
    """(joiner, fragment) pairs of at most `size` characters, cut at the coarsest level that does it."""
    text = text.strip()
    if len(text) <= size:
        return [("", text)] if text else []
    if not levels:
        return [("", text[start : start + size]) for start in range(0, len(text), size)]
    (pattern, joiner), finer = levels[0], levels[1:]
    fragments: list[tuple[str, str]] = []
    for part in pattern.split(text):
        for number, (inner, fragment) in enumerate(_split(part, size, finer)):
            fragments.append((joiner if number == 0 else inner, fragment))
    return fragments


def _pack(pieces: Sequence[_Piece], size: int, overlap: int) -> list[str]:
    bodies: list[str] = []
    body = ""
    flowing = 0  # where the trailing run of non-atomic text starts in `body`; -1 if it ends with a row
    for piece in pieces:
        if body and len(body) + len(piece.joiner) + len(piece.text) > size:
            bodies.append(body)
            carry = _tail(body[flowing:], overlap) if flowing >= 0 and not piece.atomic else ""
            body = carry if carry and len(carry) + len(piece.joiner) + len(piece.text) <= size else ""
            flowing = 0
        if piece.atomic:
            flowing = -1
        elif flowing < 0:
            flowing = len(body) + len(piece.joiner) if body else 0
        body = f"{body}{piece.joiner}{piece.text}" if body else piece.text
    if body:
        bodies.append(body)
    return bodies


def _tail(text: str, overlap: int) -> str:
    """The last whole words of `text`, at most `overlap` characters (a cut word if there is no space)."""
    if overlap == 0:
        return ""
    if len(text) <= overlap:
        return text.strip()
    tail = text[-overlap:]
    if not text[-overlap - 1].isspace() and (space := re.search(r"\s", tail)):
        tail = tail[space.end() :]
    return tail.strip()
