"""Documents to text a tenant's customers can be answered from, or a reason they cannot.

Spreadsheet and table rows are written with their column headers ("Service: Wash and iron |
Unit: per kg | Price (Rp): 9.500") and marked atomic, so the chunker never cuts one in half
and a row read alone still says what each value is. Each sheet has its own header row.

What arrives is checked before it is parsed: the content must be what its name says (magic
bytes, not the extension), and Office files are zip archives whose declared sizes and ratios
are checked first, so a small file that would expand to gigabytes is refused without the
memory. Nothing in a file is executed (openpyxl never runs macros).
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from defusedxml import ElementTree

MAX_UNCOMPRESSED_BYTES = 300 * 1024 * 1024  # what an Office file may expand to, in all
MAX_RATIO = 100  # per member: text XML compresses ~10x; bombs compress thousands of times
MAX_ROWS = 100_000  # data rows per document
_KINDS = {"pdf": "PDF", "docx": "Word document (DOCX)", "xlsx": "Excel workbook (XLSX)", "text": "text file"}
_EXTENSIONS = {"pdf": "pdf", "docx": "docx", "xlsx": "xlsx", "xlsm": "xlsx", "csv": "text", "txt": "text", "md": "text"}


class UnreadableDocument(Exception):
    """The reason is shown to the tenant admin as the document's failure reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Block:
    text: str
    atomic: bool  # a spreadsheet/CSV row or a table row: never split by the chunker


@dataclass(frozen=True, slots=True)
class Section:
    location: str  # "page 3", "sheet Prices", "" for flowing text
    heading: str | None
    blocks: tuple[Block, ...]


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    kind: str  # pdf | docx | xlsx | csv | txt | md
    sections: tuple[Section, ...]
    pages: int | None
    rows: int | None


def parse(path: Path, file_name: str) -> ParsedDocument:
    extension = file_name.rsplit(".", 1)[-1].lower() if "." in file_name else ""
    claimed = _EXTENSIONS.get(extension)
    if claimed is None:
        raise UnreadableDocument("unsupported file type: upload PDF, DOCX, XLSX, CSV, TXT or Markdown")
    size = path.stat().st_size
    if size == 0:
        raise UnreadableDocument("the file is empty")
    with path.open("rb") as file:
        head = file.read(8)
    actual = _sniff(path, head)
    if actual != claimed:
        found = _KINDS.get(actual, "a file of another kind")
        raise UnreadableDocument(f"the file is named .{extension} but is {found}: upload it with its real extension")
    if actual == "pdf":
        document = _pdf(path)
    elif actual == "docx":
        document = _docx(path)
    elif actual == "xlsx":
        document = _xlsx(path)
    else:
        document = _text(path, extension)
    if not any(block.text.strip() for section in document.sections for block in section.blocks):
        raise UnreadableDocument("no text found in the file")
    return document


def _sniff(path: Path, head: bytes) -> str:
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise UnreadableDocument(
            "this is an old Word/Excel format (.doc/.xls): save it as .docx or .xlsx and upload again"
        )
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
        except zipfile.BadZipFile as error:
            raise UnreadableDocument("the file is damaged (a broken zip archive)") from error
        if "word/document.xml" in names:
            return "docx"
        if "xl/workbook.xml" in names:
            return "xlsx"
        return "zip"
    with path.open("rb") as file:
        sample = file.read(64 * 1024)
    if b"\0" in sample:
        return "binary"
    return "text"


def _check_archive(path: Path) -> None:
    """Refuse zip bombs from the central directory alone, before anything is inflated."""
    with zipfile.ZipFile(path) as archive:
        total = 0
        for member in archive.infolist():
            total += member.file_size
            ratio = member.file_size / max(member.compress_size, 1)
            if member.file_size > 1024 * 1024 and ratio > MAX_RATIO:
                raise UnreadableDocument(
                    f"the file expands to far more than it weighs ({member.filename}: {ratio:.0f}x): refused"
                )
        if total > MAX_UNCOMPRESSED_BYTES:
            raise UnreadableDocument(
                f"the file expands to {total // 1048576} MB; at most {MAX_UNCOMPRESSED_BYTES // 1048576} MB is read"
            )


def _pdf(path: Path) -> ParsedDocument:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableDocument("password-protected: upload an unprotected copy")
        pages = [page.extract_text() or "" for page in reader.pages]
    except UnreadableDocument:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as error:
        if "encrypt" in str(error).lower() or "password" in str(error).lower():
            raise UnreadableDocument("password-protected: upload an unprotected copy") from error
        raise UnreadableDocument(
            "the PDF is damaged and cannot be read: export it again and upload the new copy"
        ) from error
    if not any(text.strip() for text in pages):
        raise UnreadableDocument("no text found: is it a scanned image? Upload a PDF with selectable text")
    sections = tuple(
        Section(f"page {number}", None, tuple(Block(p, False) for p in _paragraphs(text)))
        for number, text in enumerate(pages, start=1)
        if text.strip()
    )
    return ParsedDocument("pdf", sections, len(pages), None)


def _paragraphs(text: str) -> list[str]:
    return [part.strip() for part in re.split(r"\n\s*\n", text) if part.strip()]


def _row_text(headers: list[str], values: list[str]) -> str:
    parts = []
    for index, value in enumerate(values):
        if not value:
            continue
        header = headers[index] if index < len(headers) and headers[index] else ""
        parts.append(f"{header}: {value}" if header and header != value else value)
    return " | ".join(parts)


def _clean(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return re.sub(r"\s+", " ", str(value)).strip()


def _docx(path: Path) -> ParsedDocument:
    _check_archive(path)
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(str(path))
    except Exception as error:  # python-docx raises many kinds for a broken package
        raise UnreadableDocument("the Word document is damaged and cannot be read") from error
    sections: list[Section] = []
    heading: str | None = None
    blocks: list[Block] = []
    rows = 0

    def close() -> None:
        if blocks:
            sections.append(Section("", heading, tuple(blocks)))

    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            text = item.text.strip()
            style = (item.style.name if item.style is not None else "") or ""
            if text and (style.startswith("Heading") or style == "Title"):
                close()
                heading, blocks = text, []
            elif text:
                blocks.append(Block(text, False))
        elif isinstance(item, Table):
            table_rows = [[_clean(cell.text) for cell in row.cells] for row in item.rows]
            table_rows = [_distinct(row) for row in table_rows if any(row)]
            if not table_rows:
                continue
            headers, *body = table_rows
            if not body:
                blocks.append(Block(" | ".join(v for v in headers if v), True))
            for row in body:
                blocks.append(Block(_row_text(headers, row), True))
                rows += 1
    close()
    return ParsedDocument("docx", tuple(sections), None, rows or None)


def _distinct(row: list[str]) -> list[str]:
    """A merged cell repeats in every grid cell it covers: keep it once."""
    return [value if index == 0 or value != row[index - 1] else "" for index, value in enumerate(row)]


def _merged_ranges(path: Path) -> dict[str, list[tuple[int, int, int, int]]]:
    """Sheet name -> merged ranges (min_row, min_col, max_row, max_col), read from the sheet XML:
    read-only worksheets do not expose them."""
    from openpyxl.utils.cell import range_boundaries

    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    rel = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
    merged: dict[str, list[tuple[int, int, int, int]]] = {}
    with zipfile.ZipFile(path) as archive:
        workbook = ElementTree.fromstring(archive.read("xl/workbook.xml"))
        rels = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
        targets = {r.get("Id"): r.get("Target", "") for r in rels}
        for sheet in workbook.iterfind("m:sheets/m:sheet", ns):
            target = targets.get(sheet.get(rel), "")
            member = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
            if member not in archive.namelist():
                continue
            ranges = []
            with archive.open(member) as xml:
                for _, element in ElementTree.iterparse(xml):
                    if element.tag.endswith("}mergeCell") and element.get("ref"):
                        min_col, min_row, max_col, max_row = range_boundaries(str(element.get("ref")))
                        ranges.append((int(min_row or 1), int(min_col or 1), int(max_row or 1), int(max_col or 1)))
                    elif element.tag.endswith("}c"):
                        element.clear()
            merged[str(sheet.get("name"))] = ranges
    return merged


def _xlsx(path: Path) -> ParsedDocument:
    _check_archive(path)
    from openpyxl import load_workbook

    merged = _merged_ranges(path)
    try:
        workbook = load_workbook(path, read_only=True, data_only=True, keep_vba=False)
    except Exception as error:  # openpyxl raises many kinds for a broken workbook
        raise UnreadableDocument("the Excel workbook is damaged and cannot be read") from error
    sections: list[Section] = []
    rows = 0
    try:
        for sheet in workbook.worksheets:
            blocks: list[Block] = []
            headers: list[str] | None = None
            for values in _filled(sheet.iter_rows(values_only=True), merged.get(sheet.title, [])):
                if headers is None:
                    headers = values
                    continue
                rows += 1
                if rows > MAX_ROWS:
                    raise UnreadableDocument(f"too many rows (more than {MAX_ROWS:,}): split the workbook")
                blocks.append(Block(_row_text(headers, values), True))
            if blocks:
                sections.append(Section(f"sheet {sheet.title}", None, tuple(blocks)))
            elif headers:
                sections.append(
                    Section(f"sheet {sheet.title}", None, (Block(" | ".join(filter(None, headers)), True),))
                )
    finally:
        workbook.close()
    return ParsedDocument("xlsx", tuple(sections), None, rows)


def _filled(source: Iterator[tuple[object, ...]], merged: list[tuple[int, int, int, int]]) -> Iterator[list[str]]:
    """Non-blank rows as text, each cell of a merged range given the range's top-left value."""
    carried: dict[tuple[int, int], str] = {}
    for row_number, raw in enumerate(source, start=1):
        values = [_clean(value) for value in raw]
        for min_row, min_col, max_row, max_col in merged:
            if min_row <= row_number <= max_row:
                if row_number == min_row and min_col - 1 < len(values):
                    carried[(min_row, min_col)] = values[min_col - 1]
                top_left = carried.get((min_row, min_col), "")
                while len(values) < max_col:
                    values.append("")
                for column in range(min_col, max_col + 1):
                    values[column - 1] = values[column - 1] or top_left
        if any(values):
            yield values


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise UnreadableDocument("the text file is not in a readable encoding: save it as UTF-8")


def _text(path: Path, extension: str) -> ParsedDocument:
    text = _decode(path.read_bytes())
    if extension == "csv":
        return _csv(text)
    if extension == "md":
        return _markdown(text)
    return ParsedDocument("txt", (Section("", None, tuple(Block(p, False) for p in _paragraphs(text))),), None, None)


def _csv(text: str) -> ParsedDocument:
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    blocks: list[Block] = []
    headers: list[str] | None = None
    rows = 0
    for raw in csv.reader(io.StringIO(text), dialect):
        values = [_clean(value) for value in raw]
        if not any(values):
            continue
        if headers is None:
            headers = values
            continue
        rows += 1
        if rows > MAX_ROWS:
            raise UnreadableDocument(f"too many rows (more than {MAX_ROWS:,}): split the file")
        blocks.append(Block(_row_text(headers, values), True))
    return ParsedDocument("csv", (Section("", None, tuple(blocks)),), None, rows)


def _markdown(text: str) -> ParsedDocument:
    sections: list[Section] = []
    heading: str | None = None
    paragraph: list[str] = []
    blocks: list[Block] = []
    table: list[list[str]] = []

    def flush_paragraph() -> None:
        if paragraph:
            blocks.append(Block("\n".join(paragraph), False))
            paragraph.clear()

    def flush_table() -> None:
        rows = [row for row in table if not all(re.fullmatch(r":?-{2,}:?", cell) for cell in row if cell)]
        if rows:
            headers, *body = rows
            blocks.extend(Block(_row_text(headers, row), True) for row in body)
        table.clear()

    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|") and stripped.endswith("|"):
            flush_paragraph()
            table.append([_clean(cell) for cell in stripped.strip("|").split("|")])
            continue
        flush_table()
        if match := re.match(r"#{1,6}\s+(.*)", stripped):
            flush_paragraph()
            if blocks:
                sections.append(Section("", heading, tuple(blocks)))
            heading, blocks = match.group(1).strip(), []
        elif not stripped:
            flush_paragraph()
        else:
            paragraph.append(stripped)
    flush_paragraph()
    flush_table()
    if blocks:
        sections.append(Section("", heading, tuple(blocks)))
    return ParsedDocument("md", tuple(sections), None, None)
