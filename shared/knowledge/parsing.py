"""Reading an uploaded document into located blocks of text, or saying plainly why not.

The admin's file name only claims a type: the content is sniffed (magic bytes, the parts of
an Office ZIP) and a mismatch is refused with both names, since a "PDF" that is really a Word
file is usually the wrong upload. Every refusal is an UnreadableDocument whose reason is
shown to the admin as the document's failure reason, so it is written for a shop owner.

Memory stays bounded by the file's size, whatever the file claims:
- DOCX/XLSX are ZIPs: the central directory is checked before anything is unpacked (entry
  count, sizes, compression ratios). zipfile stops a member at its declared size (and fails
  its CRC), so the declared sizes are what can be unpacked at most.
- Worksheets are streamed (openpyxl read-only) and refused once MAX_ROWS data rows or
  MAX_CELLS cells have been read; python-docx and openpyxl's shared strings hold their parts
  whole, so those parts together are capped at MAX_LOADED_BYTES.
- Text and CSV are decoded line by line; a CSV cell is at most csv.field_size_limit()
  (128 KiB), which also stops an unclosed quote from swallowing the file.
- pypdf caps what one stream may inflate to (its LimitReachedError is a refusal here).

Decisions the issue left open:
- An encrypted PDF that opens with the empty password (an owner password that only
  restricts printing or copying) is parsed: any viewer shows its text without asking.
- Macro workbooks (.xlsm, or an .xlsx holding xl/vbaProject.bin) are parsed: openpyxl reads
  cells only and never loads or runs VBA (keep_vba stays False). Macro-enabled Word files
  (.docm) are refused: python-docx does not open them.
- Spreadsheet numbers are written as stored, not as displayed: integers without ".0"
  (9500.0 -> "9500"), other floats with Excel's 15 significant digits (0.1 + 0.2 -> "0.3"),
  dates as ISO 8601. Display formats (thousand separators, currency, percent) are not
  applied: "#,##0" shows 9,500 or 9.500 depending on the viewer's locale, so digits are the
  unambiguous choice. A number the shop typed as text ("9.500") stays as typed. A formula is
  its cached value; a file never recalculated by a spreadsheet program has none (empty).
- A table's header is its first non-blank row, with two exceptions seen in shops' sheets:
  up to TITLE_ROWS leading rows holding one value each (a title above the table, often merged
  across it) followed by a row of several non-numeric labels are the table's title (the
  sheet's heading); and a first row with a number in it is data, so the table has no header.
- Hidden sheets are read like the others; DOCX headers, footers, footnotes and text boxes
  are not read (they repeat or decorate the body).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import struct
import zipfile
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import IO, Any

import docx
import pypdf
from docx.table import Table
from docx.text.paragraph import Paragraph
from openpyxl import load_workbook
from openpyxl.utils.cell import range_boundaries

from shared.knowledge.documents import MAX_DOCUMENT_BYTES, MAX_DOCUMENT_MB

MAX_ROWS = 100_000  # data rows per document (XLSX, CSV, and table rows of a DOCX or Markdown file)
MAX_CELLS = 5_000_000  # cells read per document, blank ones included: what streaming a sheet costs
MAX_MEMBERS = 10_000  # entries of an Office ZIP
MAX_UNPACKED_BYTES = 1024 * 1024 * 1024  # all members of an Office ZIP, unpacked
MAX_LOADED_BYTES = 128 * 1024 * 1024  # members a library holds whole: all of a DOCX, all but an XLSX's sheets
MAX_RATIO = 100  # unpacked/packed, per member and overall (Apache POI's default); a deflate bomb is ~1000
TITLE_ROWS = 3
_RATIO_FLOOR = 1024 * 1024  # smaller members may compress as well as they like
_SNIFF_BYTES = 64 * 1024
_READ_BYTES = 1024 * 1024

Cell = tuple[str, Hashable | None]  # text, and the merged range it belongs to (None: not merged)


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
    heading: str | None  # DOCX/Markdown heading path ("Menu > Drinks"), a sheet's title rows
    blocks: tuple[Block, ...]


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    kind: str  # pdf | docx | xlsx | csv | txt | md
    sections: tuple[Section, ...]
    pages: int | None  # PDFs
    rows: int | None  # XLSX/CSV data rows (header and title rows excluded)


@dataclass(frozen=True, slots=True)
class _Content:
    """What the bytes are: `kind` is a parser's name, or None for what cannot be read."""

    kind: str | None
    what: str  # "a Word document (DOCX)", for reasons
    advice: str = ""


_CLAIMS = {"pdf": "pdf", "docx": "docx", "xlsx": "xlsx", "xlsm": "xlsx", "csv": "csv", "txt": "txt", "md": "md"}
_CLAIMS |= {"markdown": "md"}
_TEXT_KINDS = ("csv", "txt", "md")
_DESCRIPTIONS = {
    "pdf": "a PDF",
    "docx": "a Word document (DOCX)",
    "xlsx": "an Excel workbook (XLSX)",
    "text": "a text file",
}
_FORMATS = "PDF, DOCX, XLSX, CSV, TXT or MD"
_MAGIC = (  # (prefix, what, advice) for what we recognise but cannot read
    (b"{\\rtf", "an RTF document", "save it as .docx or PDF"),
    (b"\x89PNG", "an image (PNG)", "photos and scans are not read: upload the text as PDF, DOCX or TXT"),
    (b"\xff\xd8\xff", "an image (JPEG)", "photos and scans are not read: upload the text as PDF, DOCX or TXT"),
    (b"GIF8", "an image (GIF)", "images are not read: upload the text as PDF, DOCX or TXT"),
    (b"BM", "an image (BMP)", "images are not read: upload the text as PDF, DOCX or TXT"),
    (b"II*\x00", "an image (TIFF)", "images are not read: upload the text as PDF, DOCX or TXT"),
    (b"MM\x00*", "an image (TIFF)", "images are not read: upload the text as PDF, DOCX or TXT"),
    (b"\x1f\x8b", "a compressed archive (gzip)", "upload the documents inside it one by one"),
    (b"Rar!", "a compressed archive (RAR)", "upload the documents inside it one by one"),
    (b"7z\xbc\xaf\x27\x1c", "a compressed archive (7z)", "upload the documents inside it one by one"),
)
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_OLE_STREAMS = (  # directory entry names (UTF-16LE) that tell an OLE compound file's kind, first match wins
    ("EncryptedPackage", "", ""),  # a password-protected DOCX/XLSX: refused as such
    ("WordDocument", "an old Word document (.doc)", "open it in Word and save it as .docx"),
    ("Workbook", "an old Excel workbook (.xls)", "open it in Excel and save it as .xlsx"),
    ("Book", "an old Excel workbook (.xls)", "open it in Excel and save it as .xlsx"),
    ("PowerPoint Document", "a PowerPoint presentation (.ppt)", "save it as PDF"),
)
_OFFICE_TYPES = (  # main part content types in [Content_Types].xml
    (b"wordprocessingml.document.main+xml", _Content("docx", _DESCRIPTIONS["docx"])),
    (
        b"ms-word.document.macroEnabled.main+xml",
        _Content(None, "a macro-enabled Word document (DOCM)", "save it as .docx"),
    ),
    (b"wordprocessingml.template.main+xml", _Content(None, "a Word template (DOTX)", "save it as .docx")),
    (b"ms-word.template.macroEnabledTemplate.main+xml", _Content(None, "a Word template (DOTM)", "save it as .docx")),
    (b"spreadsheetml.sheet.main+xml", _Content("xlsx", _DESCRIPTIONS["xlsx"])),
    (b"ms-excel.sheet.macroEnabled.main+xml", _Content("xlsx", "an Excel workbook with macros (XLSM)")),
    (b"spreadsheetml.template.main+xml", _Content("xlsx", "an Excel template (XLTX)")),
    (b"ms-excel.template.macroEnabled.main+xml", _Content("xlsx", "an Excel template with macros (XLTM)")),
    (b"ms-excel.sheet.binary.macroEnabled.main", _Content(None, "an Excel binary workbook (XLSB)", "save it as .xlsx")),
    (b"presentationml", _Content(None, "a PowerPoint presentation (PPTX)", "save it as PDF")),
)
_CONTENT_TYPE = re.compile(rb'ContentType="([^"]+)"')
_ODF = (
    (b"application/vnd.oasis.opendocument.text", "an OpenDocument text (ODT)", "save it as .docx"),
    (b"application/vnd.oasis.opendocument.spreadsheet", "an OpenDocument spreadsheet (ODS)", "save it as .xlsx"),
)
_MERGE_CELL = re.compile(rb'<(?:\w+:)?mergeCell\b[^>]*?\bref="([A-Za-z]+[0-9]+:[A-Za-z]+[0-9]+)"')
_HEADING_STYLE = re.compile(r"Heading ([1-9])")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BLANK_LINES = re.compile(r"\n{3,}")
_NUMERIC = re.compile(r"[-+]?(?:rp\.?\s?|[$€£])?[0-9][0-9.,]*%?")
_MD_HEADING = re.compile(r" {0,3}(#{1,6})(?:\s+(.*?))?(?:\s+#+)?\s*")
_MD_UNDERLINE = re.compile(r" {0,3}(=+|-+)\s*")
_MD_RULE = re.compile(r" {0,3}([-*_])(?:\s*\1){2,}\s*")
_MD_TABLE_RULE = re.compile(r"\s*\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)*\|?\s*")
_MD_FENCE = re.compile(r" {0,3}(```+|~~~+)")
_MD_PIPE = re.compile(r"(?<!\\)\|")


def parse(path: Path, file_name: str) -> ParsedDocument:
    """Read the file at `path`; `file_name` is the uploaded name, whose extension is only a claim."""
    size = path.stat().st_size
    if size == 0:
        raise UnreadableDocument("the file is empty")
    if size > MAX_DOCUMENT_BYTES:
        raise UnreadableDocument(f"the file is {size / 1048576:.1f} MB; the limit is {MAX_DOCUMENT_MB} MB per file")
    extension = file_name.rsplit(".", 1)[-1].lower() if "." in file_name else ""
    claimed = _CLAIMS.get(extension)
    content = _sniff(path, size)
    named = f"the file is named .{extension} but is " if claimed else "the file is "
    if content.kind is None:
        raise UnreadableDocument(f"{named}{content.what}: {content.advice}")
    if content.kind == "text":
        kind = claimed if claimed in _TEXT_KINDS else "txt" if claimed is None else None
    else:
        kind = content.kind if claimed in (None, content.kind) else None
    if kind is None:
        rename = "" if content.kind == "text" else f": rename it to .{content.kind}, or upload the right file"
        raise UnreadableDocument(f"{named}{content.what}{rename}")
    return _PARSERS[kind](path)


# -- what the bytes are -------------------------------------------------------------------


def _sniff(path: Path, size: int) -> _Content:
    with path.open("rb") as file:
        head = file.read(_SNIFF_BYTES)
    if b"%PDF-" in head[:1024]:  # the header may follow some junk; readers accept it within 1 KiB
        return _Content("pdf", _DESCRIPTIONS["pdf"])
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _sniff_zip(path, size)
    if head.startswith(_OLE):
        return _sniff_ole(path)
    for prefix, what, advice in _MAGIC:
        if head.startswith(prefix):
            return _Content(None, what, advice)
    if head[8:12] == b"WEBP" or head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1"):
        return _Content(None, "an image", "photos and scans are not read: upload the text as PDF, DOCX or TXT")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or b"\x00" not in head:
        return _Content("text", _DESCRIPTIONS["text"])
    return _Content(None, "binary data of an unknown kind", f"upload a {_FORMATS} file")


def _sniff_ole(path: Path) -> _Content:
    """Old Office files and password-protected new ones are both OLE compound files."""
    names = [name.encode("utf-16-le") for name, _, _ in _OLE_STREAMS]
    found = _find(path, names)
    for (name, what, advice), needle in zip(_OLE_STREAMS, names, strict=True):
        if needle in found:
            if name == "EncryptedPackage":
                raise UnreadableDocument("password-protected: upload an unprotected copy")
            return _Content(None, what, advice)
    return _Content(None, "an old Office file", "save it as .docx or .xlsx")


def _find(path: Path, needles: Sequence[bytes]) -> set[bytes]:
    """Which of `needles` occur in the file, reading it a block at a time."""
    found: set[bytes] = set()
    keep = max(len(needle) for needle in needles) - 1
    previous = b""
    with path.open("rb") as file:
        while block := file.read(_READ_BYTES):
            window = previous + block
            found.update(needle for needle in needles if needle in window)
            previous = window[-keep:]
    return found


def _sniff_zip(path: Path, size: int) -> _Content:
    damaged = _Content(None, "a damaged or incomplete ZIP/Office file", "save it again and upload it again")
    try:
        entries = _zip_entries(path, size)
    except (OSError, struct.error):
        return damaged
    if entries is None:
        return damaged
    if entries > MAX_MEMBERS:
        raise UnreadableDocument(
            f"the file has too many parts (more than {MAX_MEMBERS:,}) to be a normal document: "
            "save it again from Word or Excel"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            _check_unpacked(infos, size)
            content = _office_kind(archive, infos)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, NotImplementedError):
        return damaged
    streamed = "xl/worksheets/" if content.kind == "xlsx" else None
    loaded = sum(i.file_size for i in infos if not (streamed and i.filename.startswith(streamed)))
    if content.kind is not None and loaded > MAX_LOADED_BYTES:
        raise UnreadableDocument(
            f"the file's contents are too large to read (over {MAX_LOADED_BYTES // 1048576} MB unpacked, "
            "not counting worksheets): split it into smaller files"
        )
    return content


def _zip_entries(path: Path, size: int) -> int | None:
    """The entry count of the end-of-central-directory record, read before zipfile builds
    an object per entry (a 50 MB ZIP of empty entries would be a million of them)."""
    with path.open("rb") as file:
        tail_length = min(size, 65535 + 22)
        file.seek(size - tail_length)
        tail = file.read(tail_length)
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < 22:
            return None
        entries: int = struct.unpack_from("<H", tail, at + 10)[0]
        locator = at - 20
        if entries == 0xFFFF and locator >= 0 and tail[locator : locator + 4] == b"PK\x06\x07":
            (offset,) = struct.unpack_from("<Q", tail, locator + 8)
            file.seek(offset)
            record = file.read(56)
            if record[:4] != b"PK\x06\x06" or len(record) < 56:
                return None
            entries = struct.unpack_from("<Q", record, 32)[0]
    return entries


def _check_unpacked(infos: Sequence[zipfile.ZipInfo], size: int) -> None:
    bomb = UnreadableDocument(
        f"the file unpacks to more than {MAX_RATIO} times its size, which only a damaged or malicious file does: "
        "it was not opened; save it again from Word or Excel"
    )
    total = 0
    for info in infos:
        if info.file_size > _RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise bomb
        total += info.file_size
    if total > _RATIO_FLOOR and total > MAX_RATIO * size:
        raise bomb
    if total > MAX_UNPACKED_BYTES:
        raise UnreadableDocument(
            f"the file's contents are too large to read (over {MAX_UNPACKED_BYTES // 1048576:,} MB unpacked): "
            "split it into smaller files"
        )


def _office_kind(archive: zipfile.ZipFile, infos: Sequence[zipfile.ZipInfo]) -> _Content:
    names = {info.filename: info for info in infos}
    types = names.get("[Content_Types].xml")
    if types is not None and types.file_size <= _READ_BYTES:
        declared = set(_CONTENT_TYPE.findall(archive.read(types)))
        for suffix, content in _OFFICE_TYPES:
            if any(suffix in declared_type for declared_type in declared):
                return content
    mimetype = names.get("mimetype")
    if mimetype is not None and mimetype.file_size <= 256:
        kind = archive.read(mimetype)
        for prefix, what, advice in _ODF:
            if kind.startswith(prefix):
                return _Content(None, what, advice)
    return _Content(None, "a ZIP archive", "upload the documents inside it one by one")


# -- PDF ----------------------------------------------------------------------------------


def _pdf(path: Path) -> ParsedDocument:
    damaged = "the PDF is damaged and could not be read: open it and save or print it to a new PDF"
    try:
        reader = pypdf.PdfReader(path)
        if reader.is_encrypted and reader.decrypt("") == pypdf.PasswordType.NOT_DECRYPTED:
            raise UnreadableDocument("password-protected: upload an unprotected copy")
        pages = list(reader.pages)
    except UnreadableDocument:
        raise
    except pypdf.errors.LimitReachedError as error:
        raise UnreadableDocument("the PDF is too complex to read safely: print it to a new PDF") from error
    except MemoryError:
        raise
    except Exception as error:  # pypdf raises many kinds (ValueError, KeyError...) on broken files
        raise UnreadableDocument(damaged) from error
    sections = []
    broken = 0
    for number, page in enumerate(pages, start=1):
        try:
            text = _clean(page.extract_text())
        except MemoryError:
            raise
        except Exception:  # one broken page (or a stream over pypdf's limits) does not lose the others
            broken += 1
            continue
        if text:
            sections.append(Section(f"page {number}", None, (Block(text, atomic=False),)))
    if not sections:
        raise UnreadableDocument(damaged if broken else "no text found: is it a scanned image?")
    return ParsedDocument("pdf", tuple(sections), pages=len(pages), rows=None)


def _clean(text: str) -> str:
    lines = (line.rstrip() for line in _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n")).split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


# -- DOCX ---------------------------------------------------------------------------------


def _docx(path: Path) -> ParsedDocument:
    try:
        with path.open("rb") as file:
            document = docx.Document(file)
        sections = _Sections()
        headings: list[tuple[int, str]] = []
        budget = _Budget("document")
        for item in document.iter_inner_content():
            if isinstance(item, Paragraph):
                text = _clean(item.text)
                level = _heading_level(item)
                if level is not None and text:
                    headings = _nest(headings, level, _one_line(text))
                    sections.start("", " > ".join(title for _, title in headings))
                elif text:
                    sections.add(Block(text, atomic=False))
            else:
                titles, blocks = _tabulate(_table_rows(item), budget)
                if titles:
                    sections.add(Block(" — ".join(titles), atomic=False))
                sections.extend(blocks)
    except UnreadableDocument:
        raise
    except MemoryError:
        raise
    except Exception as error:
        reason = "the Word document is damaged and could not be read: open it in Word and save it again"
        raise UnreadableDocument(reason) from error
    result = sections.result()
    if not result:
        raise UnreadableDocument("no text found: the document has no paragraphs or tables with text (only images?)")
    return ParsedDocument("docx", result, pages=None, rows=None)


def _heading_level(paragraph: Paragraph) -> int | None:
    """Heading 1..9 are levels 1..9 and Title is 0, also for a custom style based on one of them."""
    style = paragraph.style
    for _ in range(5):  # base_style chains are short; a cycle in a broken file must not hang
        if style is None:
            return None
        name = style.name or ""
        if name == "Title":
            return 0
        if match := _HEADING_STYLE.fullmatch(name):
            return int(match[1])
        style = style.base_style
    return None


def _nest(headings: list[tuple[int, str]], level: int, title: str) -> list[tuple[int, str]]:
    """The outline after a heading of `level`: its parents, then it (a section is named by its path)."""
    return [(depth, text) for depth, text in headings if depth < level] + [(level, title)]


def _table_rows(table: Table) -> Iterator[list[Cell]]:
    """A merged cell is the same <w:tc> in each grid column (and row) it covers: that is its span."""
    for row in table.rows:
        yield [(_one_line(cell.text), cell._tc) for cell in row.cells]


# -- XLSX ---------------------------------------------------------------------------------


def _xlsx(path: Path) -> ParsedDocument:
    budget = _Budget("workbook")
    sections = []
    try:
        with zipfile.ZipFile(path) as archive, path.open("rb") as file:
            workbook = load_workbook(file, read_only=True, data_only=True, keep_links=False)
            try:
                for sheet in workbook.worksheets:
                    merges = _merged_ranges(archive, sheet._worksheet_path)  # the sheet's part in the ZIP
                    titles, blocks = _tabulate(_sheet_rows(sheet, merges, budget), budget)
                    if blocks:
                        sections.append(Section(f"sheet {sheet.title}", " — ".join(titles) or None, tuple(blocks)))
            finally:
                workbook.close()
    except UnreadableDocument:
        raise
    except MemoryError:
        raise
    except Exception as error:
        reason = "the Excel workbook is damaged and could not be read: open it in Excel and save it again"
        raise UnreadableDocument(reason) from error
    if not sections:
        raise UnreadableDocument("no text found: every sheet of the workbook is empty")
    return ParsedDocument("xlsx", tuple(sections), pages=None, rows=budget.rows)


def _merged_ranges(archive: zipfile.ZipFile, member: str) -> list[tuple[int, int, int, int]]:
    """(min_col, min_row, max_col, max_row) of each <mergeCell>: read-only worksheets do not
    expose them, so the sheet XML is scanned a block at a time (markup cannot occur in cell
    text, where "<" is escaped)."""
    ranges = []
    previous = b""
    with archive.open(member) as stream:
        while block := stream.read(_READ_BYTES):
            window = previous + block
            end = 0
            if b"mergeCell" in window:
                for match in _MERGE_CELL.finditer(window):
                    ranges.append(range_boundaries(match[1].decode("ascii")))
                    end = match.end()
            previous = window[max(end, len(window) - 512) :]
    return ranges


def _sheet_rows(sheet: Any, merges: list[tuple[int, int, int, int]], budget: _Budget) -> Iterator[list[Cell]]:
    """The sheet's non-blank rows, each merged range's cells all holding its top-left value."""
    sheet.reset_dimensions()  # else every row is padded to the <dimension> the file claims
    merges = sorted(merges, key=lambda bounds: bounds[1])
    upcoming = 0
    active: list[int] = []
    values: dict[int, str] = {}
    for number, raw in enumerate(sheet.iter_rows(values_only=True), start=1):
        cells: list[Cell] = [(_cell_text(value), None) for value in raw]
        own = any(text for text, _ in cells)  # a row only continuing a merge from above is blank
        while upcoming < len(merges) and merges[upcoming][1] <= number:
            active.append(upcoming)
            upcoming += 1
        if active:
            active = [index for index in active if merges[index][3] >= number]
            for index in active:
                min_col, min_row, max_col, _ = merges[index]
                if number == min_row:
                    values[index] = cells[min_col - 1][0] if min_col <= len(cells) else ""
                if len(cells) < max_col:
                    cells.extend([("", None)] * (max_col - len(cells)))
                cells[min_col - 1 : max_col] = [(values[index], index)] * (max_col - min_col + 1)
        budget.read(len(cells))
        if own:
            yield cells


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return _one_line(value)
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.15g}"
    if isinstance(value, datetime):
        if value.time() == time():
            return value.date().isoformat()
        return value.isoformat(" ", "minutes" if value.second == 0 else "seconds")
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    return _one_line(str(value))


def _one_line(text: str) -> str:
    return " ".join(text.split())


# -- CSV, TXT, Markdown -------------------------------------------------------------------


def _csv(path: Path) -> ParsedDocument:
    budget = _Budget("file")
    with _open_text(path, newline="") as file:
        delimiter = _delimiter(file.read(_SNIFF_BYTES))
        file.seek(0)
        reader = csv.reader(file, delimiter=delimiter)
        try:
            titles, blocks = _tabulate(([(_one_line(cell), None) for cell in record] for record in reader), budget)
        except csv.Error as error:
            raise UnreadableDocument(
                f"the CSV file could not be read at line {reader.line_num}: a quote is not closed, "
                f"or a cell is longer than {csv.field_size_limit():,} characters"
            ) from error
    if not blocks:
        raise UnreadableDocument("no text found: the file is blank")
    return ParsedDocument("csv", (Section("", " — ".join(titles) or None, tuple(blocks)),), None, budget.rows)


def _delimiter(sample: str) -> str:
    """The delimiter that splits the first rows into the most rows of one width (of several
    columns): "Wash;per kg;9,500" is three cells, not two."""
    if len(sample) == _SNIFF_BYTES and "\n" in sample:
        sample = sample[: sample.rindex("\n")]  # the last line may be cut short

    def score(delimiter: str) -> tuple[bool, int, int]:
        widths: list[int] = []
        reader = csv.reader(io.StringIO(sample), delimiter=delimiter)
        try:
            for record in reader:
                if any(cell.strip() for cell in record):
                    widths.append(len(record))
                if len(widths) == 50:
                    break
        except csv.Error:
            pass
        if not widths:
            return (False, 0, 0)
        width = max(set(widths), key=widths.count)
        return (width > 1, widths.count(width), width)

    return max((",", ";", "\t"), key=score)


def _txt(path: Path) -> ParsedDocument:
    return _markup(path, "txt")


def _md(path: Path) -> ParsedDocument:
    return _markup(path, "md")


def _markup(path: Path, kind: str) -> ParsedDocument:
    """Paragraphs (blank-line separated); for Markdown also ATX and setext headings as section
    headings, fenced code kept whole, and pipe tables as header-paired rows."""
    sections = _Sections()
    budget = _Budget("file")
    paragraph: list[str] = []
    table: list[list[Cell]] | None = None
    fence: str | None = None
    headings: list[tuple[int, str]] = []
    markdown = kind == "md"

    def flush() -> None:
        nonlocal table
        text = _clean("\n".join(paragraph))
        paragraph.clear()
        if text:
            sections.add(Block(text, atomic=False))
        if table is not None:
            titles, blocks = _tabulate(table, budget)
            if titles:
                sections.add(Block(" — ".join(titles), atomic=False))
            sections.extend(blocks)
            table = None

    def heading(level: int, title: str) -> None:
        nonlocal headings
        flush()
        headings = _nest(headings, level, title)
        sections.start("", " > ".join(text for _, text in headings if text) or None)

    with _open_text(path, newline=None) as file:
        for raw in file:
            line = raw.rstrip()
            if not markdown:
                if line.strip():
                    paragraph.append(line)
                else:
                    flush()
                continue
            if fence is not None:
                paragraph.append(line)
                if line.lstrip().startswith(fence):
                    fence = None
                    flush()
                continue
            if table is not None:
                if "|" in line and line.strip():
                    table.append(_md_cells(line))
                    continue
                flush()
            if opening := _MD_FENCE.match(line):
                flush()
                fence = opening[1]
                paragraph.append(line)
            elif atx := _MD_HEADING.fullmatch(line):
                heading(len(atx[1]), (atx[2] or "").strip())
            elif paragraph and (underline := _MD_UNDERLINE.fullmatch(line)):
                title = " ".join(" ".join(paragraph).split())
                paragraph.clear()
                heading(1 if underline[1].startswith("=") else 2, title)
            elif paragraph and "|" in paragraph[-1] and "|" in line and _MD_TABLE_RULE.fullmatch(line):
                header = paragraph.pop()
                flush()
                table = [_md_cells(header)]
            elif not line.strip():
                flush()
            elif not paragraph and _MD_RULE.fullmatch(line):
                continue
            else:
                paragraph.append(line)
        flush()
    result = sections.result()
    if not result:
        raise UnreadableDocument("no text found: the file is blank")
    return ParsedDocument(kind, result, pages=None, rows=None)


def _md_cells(line: str) -> list[Cell]:
    inner = line.strip()
    inner = inner.removeprefix("|")
    if inner.endswith("|") and not inner.endswith("\\|"):
        inner = inner[:-1]
    return [(_one_line(cell.replace("\\|", "|")), None) for cell in _MD_PIPE.split(inner)]


def _open_text(path: Path, newline: str | None) -> IO[str]:
    """UTF-8 (with or without BOM), UTF-16 with a BOM, else cp1252 (Excel's CSV on Windows);
    checked over the whole file first, so that reading it later cannot fail half-way."""
    with path.open("rb") as file:
        head = file.read(4)
    if head.startswith(codecs.BOM_UTF8):
        candidates = ["utf-8-sig"]
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = ["utf-16"]
    else:
        candidates = ["utf-8", "cp1252"]
    for encoding in candidates:
        if (verdict := _decodes(path, encoding)) is not None:
            if not verdict:
                raise UnreadableDocument(f"the file is not text (it contains binary data): upload a {_FORMATS} file")
            return path.open(encoding=encoding, newline=newline)
    raise UnreadableDocument("the file is not readable text (unknown character encoding): save it as UTF-8")


def _decodes(path: Path, encoding: str) -> bool | None:
    """None: not this encoding; False: it decodes but holds NUL characters (binary); True: text."""
    decoder = codecs.getincrementaldecoder(encoding)()
    with path.open("rb") as file:
        try:
            while block := file.read(_READ_BYTES):
                if "\x00" in decoder.decode(block):
                    return False
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return None
    return True


# -- tables -------------------------------------------------------------------------------


class _Budget:
    """Counts what a document's tables cost while they stream, to refuse early."""

    def __init__(self, container: str) -> None:
        self.container = container
        self.rows = 0
        self.cells = 0

    def row(self) -> None:
        self.rows += 1
        if self.rows > MAX_ROWS:
            raise UnreadableDocument(f"too many rows (more than {MAX_ROWS:,}): split the {self.container}")

    def read(self, cells: int) -> None:
        self.cells += cells
        if self.cells > MAX_CELLS:
            raise UnreadableDocument(f"too many cells (more than {MAX_CELLS:,}): split the {self.container}")


def _tabulate(rows: Iterable[list[Cell]], budget: _Budget) -> tuple[list[str], list[Block]]:
    """Title rows, and each data row as one atomic "Header: value | Header: value" block."""
    titles: list[list[Cell]] = []
    header: list[Cell] | None = None
    blocks: list[Block] = []

    def data(row: list[Cell]) -> None:
        assert header is not None
        if header and _texts(row) == _texts(header):
            return  # the header repeated (a printed table's page break)
        if text := _row_text(header, row):
            budget.row()
            blocks.append(Block(text, atomic=True))

    for row in rows:
        values = _values(row)
        if not values:
            continue
        if header is not None:
            data(row)
        elif len(values) == 1 and len(titles) < TITLE_ROWS:
            titles.append(row)
        elif titles and (len(values) < 2 or any(_NUMERIC.fullmatch(value.casefold()) for value in values)):
            header, pending, titles = titles[0], [*titles[1:], row], []
            for earlier in pending:
                data(earlier)
        elif not titles and any(_NUMERIC.fullmatch(value.casefold()) for value in values):
            header = []
            data(row)
        else:
            header = row
    if header is None and titles:
        header, pending, titles = titles[0], titles[1:], []
        for earlier in pending:
            data(earlier)
    if header and not blocks:  # a lone row of labels is still text: keep it
        blocks.append(Block(" | ".join(_values(header)), atomic=True))
    return [_values(title)[0] for title in titles], blocks


def _values(row: Sequence[Cell]) -> list[str]:
    """The row's non-empty texts, a merged range's once."""
    values = []
    previous: Hashable | None = None
    for text, span in row:
        if span is not None and span is previous:
            continue
        previous = span
        if text:
            values.append(text)
    return values


def _texts(row: Sequence[Cell]) -> tuple[str, ...]:
    texts = [text for text, _ in row]
    while texts and not texts[-1]:
        texts.pop()
    return tuple(texts)


def _row_text(header: Sequence[Cell], row: Sequence[Cell]) -> str:
    """A merged range across columns is written once, under its columns' headers; a cell merged
    with its header cell (a header two rows tall) belongs to the header, not the row."""
    parts = []
    start = 0
    while start < len(row):
        text, span = row[start]
        end = start + 1
        if span is not None:
            while end < len(row) and row[end][1] is span:
                end += 1
        merged_with_header = span is not None and start < len(header) and header[start][1] is span
        if text and not merged_with_header:
            names = dict.fromkeys(name for name, _ in header[start:end] if name)
            parts.append(f"{' / '.join(names)}: {text}" if names else text)
        start = end
    return " | ".join(parts)


class _Sections:
    """Blocks gathered under the current (location, heading); empty sections are dropped."""

    def __init__(self) -> None:
        self._sections: list[Section] = []
        self._location = ""
        self._heading: str | None = None
        self._blocks: list[Block] = []

    def start(self, location: str, heading: str | None) -> None:
        self._flush()
        self._location, self._heading = location, heading

    def add(self, block: Block) -> None:
        self._blocks.append(block)

    def extend(self, blocks: Iterable[Block]) -> None:
        self._blocks.extend(blocks)

    def result(self) -> tuple[Section, ...]:
        self._flush()
        return tuple(self._sections)

    def _flush(self) -> None:
        if self._blocks:
            self._sections.append(Section(self._location, self._heading, tuple(self._blocks)))
            self._blocks = []


_PARSERS: dict[str, Callable[[Path], ParsedDocument]] = {
    "pdf": _pdf,
    "docx": _docx,
    "xlsx": _xlsx,
    "csv": _csv,
    "txt": _txt,
    "md": _md,
}
