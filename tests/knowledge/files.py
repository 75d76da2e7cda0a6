"""Real files for the parsing tests and the benchmark, written on the spot (no binary fixtures).

Most are made with the libraries the shops' software resembles (fpdf2, python-docx, openpyxl);
the ones no library writes (a sheet XML of a million rows, a deflate bomb, OLE containers) are
put together byte by byte, cheaply: the bomb's compressed stream is one flushed segment
repeated, so 2 GB of "unpacked" content costs a CRC pass and no compression time.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import docx
from fpdf import FPDF
from fpdf.enums import EncryptionMethod
from openpyxl import Workbook
from PIL import Image

SHEET_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
SHEET_MEMBER = "xl/worksheets/sheet1.xml"


def pdf(path: Path, pages: Sequence[str], *, user_password: str | None = None, owner_password: str = "owner") -> Path:  # noqa: S107 (a fixture)
    """One page per string; an empty string is a page with a drawing and no text."""
    document = FPDF()
    if user_password is not None:
        document.set_encryption(owner_password, user_password, encryption_method=EncryptionMethod.AES_128)
    document.set_font("Helvetica", size=11)
    for text in pages:
        document.add_page()
        if text:
            document.multi_cell(0, 6, text)
        else:
            document.rect(20, 20, 60, 40, style="F")
    document.output(str(path))
    return path


def scanned_pdf(path: Path) -> Path:
    """What a scanner makes: a page that is a photo, and one more with only drawings."""
    photo = io.BytesIO()
    Image.new("RGB", (120, 80), (200, 180, 150)).save(photo, format="PNG")
    document = FPDF()
    document.add_page()
    document.image(photo, x=10, y=10, w=120)
    document.add_page()
    document.line(10, 10, 100, 100)
    document.output(str(path))
    return path


def word(path: Path, build: Callable[[object], None]) -> Path:
    """A DOCX: `build` receives the python-docx Document to fill."""
    document = docx.Document()
    build(document)
    document.save(str(path))
    return path


def workbook(
    path: Path, sheets: dict[str, Sequence[Sequence[object]]], merges: dict[str, list[str]] | None = None
) -> Path:
    """An XLSX with these sheets (rows of values, None for an empty cell) and merged ranges."""
    book = Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(list(row))
        for cells in (merges or {}).get(title, []):
            sheet.merge_cells(cells)
    book.save(path)
    return path


def sheet_xml(
    rows: Iterable[str], *, dimension: str | None = None, end: str = "</sheetData></worksheet>"
) -> Iterable[bytes]:
    """A worksheet part from <row> elements, in pieces (written as it is generated)."""
    head = f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns="{SHEET_NS}">'
    if dimension:
        head += f'<dimension ref="{dimension}"/>'
    yield (head + "<sheetData>").encode()
    batch: list[str] = []
    for row in rows:
        batch.append(row)
        if len(batch) == 10_000:
            yield "".join(batch).encode()
            batch.clear()
    yield ("".join(batch) + end).encode()


def inline_row(number: int, *values: str | int) -> str:
    cells = []
    for column, value in zip("ABCDEFGHIJ", values, strict=False):
        ref = f"{column}{number}"
        if isinstance(value, int):
            cells.append(f'<c r="{ref}"><v>{value}</v></c>')
        else:
            cells.append(f'<c r="{ref}" t="inlineStr"><is><t>{value}</t></is></c>')
    return f'<row r="{number}">{"".join(cells)}</row>'


def xlsx_with_sheet(path: Path, pieces: Iterable[bytes], *, extra: dict[str, bytes] | None = None) -> Path:
    """A valid workbook (openpyxl's package) whose one sheet is the given XML, streamed into the zip."""
    template = io.BytesIO()
    book = Workbook()
    book.active.title = "Data"
    book.save(template)
    with zipfile.ZipFile(template) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            if info.filename != SHEET_MEMBER:
                target.writestr(info.filename, source.read(info))
        for name, data in (extra or {}).items():
            target.writestr(name, data)
        member = zipfile.ZipInfo(SHEET_MEMBER)
        member.compress_type = zipfile.ZIP_DEFLATED
        with target.open(member, "w", force_zip64=True) as stream:
            for piece in pieces:
                stream.write(piece)
    return path


def rewrite(path: Path, member: str, change: Callable[[bytes], bytes]) -> Path:
    """The same package with one member's content changed (a content type, say)."""
    data = path.read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            content = source.read(info)
            target.writestr(info.filename, change(content) if info.filename == member else content)
    return path


def bomb(path: Path, kind: str, unpacked: int = 2_000_000_000) -> Path:
    """A DOCX or XLSX whose main XML is one cell (paragraph) of `unpacked` bytes of "A":
    about 2 MB on disk; a reader that trusted it would build a 2 GB string."""
    template = io.BytesIO()
    if kind == "xlsx":
        Workbook().save(template)
        member = SHEET_MEMBER
        head = f'<worksheet xmlns="{SHEET_NS}"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>'.encode()
        tail = b"</t></is></c></row></sheetData></worksheet>"
    else:
        docx.Document().save(template)
        member = "word/document.xml"
        ns = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
        head = f'<w:document xmlns:w="{ns}"><w:body><w:p><w:r><w:t>'.encode()
        tail = b"</w:t></w:r></w:p></w:body></w:document>"
    block = b"A" * (1024 * 1024)
    repeats, rest = divmod(unpacked - len(head) - len(tail), len(block))
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = compressor.compress(head) + compressor.flush(zlib.Z_FULL_FLUSH)
    segment = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)  # the same bytes each time
    finish = compressor.compress(block[:rest] + tail) + compressor.flush()
    crc = zlib.crc32(head)
    for _ in range(repeats):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(block[:rest] + tail, crc)
    members = []
    with zipfile.ZipFile(template) as source:
        for info in source.infolist():
            if info.filename != member:
                data = source.read(info)
                packed = zlib.compressobj(6, zlib.DEFLATED, -15)
                body = packed.compress(data) + packed.flush()
                members.append((info.filename, zlib.crc32(data), len(data), len(body), [body]))
    chunks = [start, *([segment] * repeats), finish]
    members.append((member, crc, unpacked, sum(len(c) for c in chunks), chunks))
    _write_zip(path, members)
    return path


def _write_zip(path: Path, members: Sequence[tuple[str, int, int, int, Sequence[bytes]]]) -> None:
    """A plain (non-Zip64) archive of already deflated members: (name, crc, size, packed size, data)."""
    directory = []
    with path.open("wb") as file:
        for name, crc, size, packed, chunks in members:
            encoded = name.encode()
            offset = file.tell()
            file.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, packed, size, len(encoded), 0))
            file.write(encoded)
            for piece in chunks:
                file.write(piece)
            directory.append(
                struct.pack(
                    "<IHHHHHHIIIHHHHHII",
                    0x02014B50,
                    20,
                    20,
                    0,
                    8,
                    0,
                    0x21,
                    crc,
                    packed,
                    size,
                    len(encoded),
                    0,
                    0,
                    0,
                    0,
                    0,
                    offset,
                )
                + encoded
            )
        start = file.tell()
        for entry in directory:
            file.write(entry)
        length = file.tell() - start
        file.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(directory), len(directory), length, start, 0))


def ole(path: Path, *streams: str) -> Path:
    """Enough of an OLE compound file (old .doc/.xls, or an encrypted DOCX/XLSX) to be told
    apart: its signature, and directory entries with these stream names."""
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 16 + struct.pack("<HHH", 0x3E, 3, 0xFFFE)
    entries = b"".join(
        (name.encode("utf-16-le") + b"\x00\x00").ljust(64, b"\x00") + struct.pack("<H", 2 * len(name) + 2) + b"\x02"
        for name in ("Root Entry", *streams)
    )
    path.write_bytes(header.ljust(512, b"\x00") + entries.ljust(4096, b"\x00"))
    return path


def noise_jpeg(seed: int, width: int = 640, height: int = 480) -> io.BytesIO:
    """A photo-like image that does not compress (a brochure's pictures)."""
    import random

    generator = random.Random(seed)
    image = Image.frombytes("RGB", (width, height), generator.randbytes(width * height * 3))
    data = io.BytesIO()
    image.save(data, format="JPEG", quality=90)
    data.seek(0)
    return data
