"""Parsing real files the tests write: every format's text and structure, and every bad file
refused with a reason a shop owner understands, without the memory the file asks for."""

from __future__ import annotations

import os
import time
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from docx.enum.text import WD_BREAK

from shared.knowledge.documents import MAX_DOCUMENT_BYTES
from shared.knowledge.parsing import (
    MAX_LOADED_BYTES,
    MAX_MEMBERS,
    MAX_ROWS,
    Block,
    ParsedDocument,
    UnreadableDocument,
    parse,
)
from tests.knowledge import files

PASSWORD = "password-protected: upload an unprotected copy"


def texts(document: ParsedDocument, section: int = 0) -> list[str]:
    return [block.text for block in document.sections[section].blocks]


def refusal(path: Path, name: str) -> str:
    with pytest.raises(UnreadableDocument) as refused:
        parse(path, name)
    return refused.value.reason


@pytest.fixture
def peak_memory() -> Iterator[Callable[[], int]]:
    """The Python heap's peak since the test started (tracemalloc), in bytes."""
    tracemalloc.start()
    try:
        yield lambda: tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# -- PDF ----------------------------------------------------------------------------------


def test_a_pdf_is_a_section_per_page_with_its_page_number(tmp_path: Path) -> None:
    path = files.pdf(tmp_path / "faq.pdf", ["Pets are welcome on the terrace.", "", "Booking fee Rp 250.000."])
    parsed = parse(path, "faq.pdf")
    assert (parsed.kind, parsed.pages, parsed.rows) == ("pdf", 3, None)
    assert [(s.location, s.heading, texts_of(s.blocks)) for s in parsed.sections] == [
        ("page 1", None, ["Pets are welcome on the terrace."]),
        ("page 3", None, ["Booking fee Rp 250.000."]),  # page 2 is a drawing: nothing, but the numbers hold
    ]


def texts_of(blocks: tuple[Block, ...]) -> list[str]:
    return [block.text for block in blocks]


def test_a_pdf_with_a_user_password_is_refused(tmp_path: Path) -> None:
    path = files.pdf(tmp_path / "locked.pdf", ["Secret prices"], user_password="open sesame")
    assert refusal(path, "locked.pdf") == PASSWORD


def test_a_pdf_with_only_an_owner_password_is_read(tmp_path: Path) -> None:
    """Restrictions on printing or copying: every viewer opens it without asking, so do we."""
    path = files.pdf(tmp_path / "restricted.pdf", ["Opening hours 07.00-22.00"], user_password="")
    assert texts(parse(path, "restricted.pdf")) == ["Opening hours 07.00-22.00"]


def test_a_scanned_pdf_has_no_text_found(tmp_path: Path) -> None:
    assert refusal(files.scanned_pdf(tmp_path / "scan.pdf"), "scan.pdf") == "no text found: is it a scanned image?"


@pytest.mark.parametrize(
    "content",
    [b"%PDF-1.4\n1 0 obj <<>> garbage", b"%PDF-1.7\n" + os.urandom(2000)],
    ids=["garbage", "random"],
)
def test_a_corrupt_pdf_is_refused_as_damaged(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.pdf"
    path.write_bytes(content)
    assert refusal(path, "broken.pdf").startswith("the PDF is damaged and could not be read")


# -- DOCX ---------------------------------------------------------------------------------


def menu(document: Any) -> None:
    document.add_heading("Kopi Nusantara menu", level=0)
    document.add_paragraph("Prices include tax.")
    document.add_heading("Drinks", level=1)
    document.add_heading("Coffee", level=2)
    document.add_paragraph("Beans roasted in Bandung.")
    table = document.add_table(rows=4, cols=3)
    for row, values in zip(
        table.rows,
        [
            ("Drink", "Size", "Price (Rp)"),
            ("Kopi susu", "Regular", "28.000"),
            ("", "Large", "32.000"),
            ("Americano", "", ""),
        ],
        strict=True,
    ):
        for cell, value in zip(row.cells, values, strict=True):
            cell.text = value
    table.cell(1, 0).merge(table.cell(2, 0))  # one "Kopi susu" cell for both sizes
    table.cell(3, 1).merge(table.cell(3, 2)).text = "sold out"  # one cell across Size and Price
    document.add_paragraph("Ask for oat milk.")  # after the table, and still after it
    document.add_heading("Tea", level=2)
    paragraph = document.add_paragraph("Teh tarik")
    paragraph.add_run().add_break(WD_BREAK.LINE)
    paragraph.add_run("Teh poci")
    document.add_heading("Opening hours", level=1)
    document.add_paragraph("Every day.")


def test_a_docx_keeps_headings_as_section_titles_and_its_body_in_order(tmp_path: Path) -> None:
    parsed = parse(files.word(tmp_path / "menu.docx", menu), "menu.docx")
    assert (parsed.kind, parsed.pages, parsed.rows) == ("docx", None, None)
    assert [(s.location, s.heading, texts_of(s.blocks)) for s in parsed.sections] == [
        ("", "Kopi Nusantara menu", ["Prices include tax."]),
        (
            "",
            "Kopi Nusantara menu > Drinks > Coffee",
            [
                "Beans roasted in Bandung.",
                "Drink: Kopi susu | Size: Regular | Price (Rp): 28.000",
                "Drink: Kopi susu | Size: Large | Price (Rp): 32.000",
                "Drink: Americano | Size / Price (Rp): sold out",
                "Ask for oat milk.",
            ],
        ),
        ("", "Kopi Nusantara menu > Drinks > Tea", ["Teh tarik\nTeh poci"]),
        ("", "Kopi Nusantara menu > Opening hours", ["Every day."]),
    ]
    rows = [b.atomic for b in parsed.sections[1].blocks]
    assert rows == [False, True, True, True, False]


def test_a_docx_table_under_a_merged_title_row_keeps_its_real_header(tmp_path: Path) -> None:
    def build(document: Any) -> None:
        table = document.add_table(rows=3, cols=2)
        table.cell(0, 0).merge(table.cell(0, 1)).text = "Laundry prices"
        table.cell(1, 0).text, table.cell(1, 1).text = "Service", "Price (Rp)"
        table.cell(2, 0).text, table.cell(2, 1).text = "Wash and iron", "9.500"

    parsed = parse(files.word(tmp_path / "prices.docx", build), "prices.docx")
    assert texts(parsed) == ["Laundry prices", "Service: Wash and iron | Price (Rp): 9.500"]


def test_a_docx_without_text_is_refused(tmp_path: Path) -> None:
    def build(document: Any) -> None:
        document.add_paragraph("   ")
        document.add_table(rows=2, cols=2)

    reason = refusal(files.word(tmp_path / "blank.docx", build), "blank.docx")
    assert reason.startswith("no text found: the document has no paragraphs or tables with text")


def test_a_macro_enabled_word_document_is_refused(tmp_path: Path) -> None:
    path = files.word(tmp_path / "macro.docm", lambda document: document.add_paragraph("hello"))
    files.rewrite(
        path,
        "[Content_Types].xml",
        lambda xml: xml.replace(
            b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
            b"application/vnd.ms-word.document.macroEnabled.main+xml",
        ),
    )
    assert refusal(path, "macro.docm") == "the file is a macro-enabled Word document (DOCM): save it as .docx"


# -- XLSX ---------------------------------------------------------------------------------


def test_every_sheet_is_paired_with_its_own_header_row(tmp_path: Path) -> None:
    path = files.workbook(
        tmp_path / "harga.xlsx",
        {
            "Laundry": [
                ["Service", "Unit", "Price (Rp)"],
                ["Wash and iron", "per kg", "9.500"],
                [None, None, None],
                ["Dry cleaning, suit", "per piece", 45000],
                ["Bed cover\nking size", None, 35000.0],
            ],
            "Drinks": [[], [], [None, "Drink", "Price", "Note"], [None, "Kopi susu", 28000, "best seller"]],
        },
    )
    parsed = parse(path, "harga.xlsx")
    assert (parsed.kind, parsed.rows) == ("xlsx", 4)
    assert [(s.location, s.heading) for s in parsed.sections] == [("sheet Laundry", None), ("sheet Drinks", None)]
    assert texts(parsed, 0) == [
        "Service: Wash and iron | Unit: per kg | Price (Rp): 9.500",
        "Service: Dry cleaning, suit | Unit: per piece | Price (Rp): 45000",
        "Service: Bed cover king size | Price (Rp): 35000",
    ]
    assert texts(parsed, 1) == ["Drink: Kopi susu | Price: 28000 | Note: best seller"]
    assert all(block.atomic for section in parsed.sections for block in section.blocks)


def test_merged_cells_give_each_covered_cell_the_top_left_value(tmp_path: Path) -> None:
    path = files.workbook(
        tmp_path / "menu.xlsx",
        {
            "Menu": [
                ["Category", "Drink", "Size", "Price"],
                ["Coffee", "Kopi susu", "Regular", 28000],
                [None, "Kopi susu", "Large", 32000],
                [None, "Americano", "seasonal, ask us", None],
                ["Tea", "Teh tarik", "Regular", 18000],
            ]
        },
        {"Menu": ["A2:A4", "C4:D4"]},
    )
    assert texts(parse(path, "menu.xlsx")) == [
        "Category: Coffee | Drink: Kopi susu | Size: Regular | Price: 28000",
        "Category: Coffee | Drink: Kopi susu | Size: Large | Price: 32000",
        "Category: Coffee | Drink: Americano | Size / Price: seasonal, ask us",
        "Category: Tea | Drink: Teh tarik | Size: Regular | Price: 18000",
    ]


def test_title_rows_above_the_table_become_the_sheets_heading(tmp_path: Path) -> None:
    path = files.workbook(
        tmp_path / "laundry.xlsx",
        {
            "Prices": [
                ["LAUNDRY KILAT", None, None],
                ["Jl. Kemang Raya 5, open 08-20"],
                [],
                ["Service", "Unit", "Price (Rp)"],
                ["Wash and iron", "per kg", 9500],
                ["Service", "Unit", "Price (Rp)"],  # the header repeated further down
                ["Express", "per kg", 15000],
            ]
        },
        {"Prices": ["A1:C1"]},
    )
    parsed = parse(path, "laundry.xlsx")
    assert parsed.sections[0].heading == "LAUNDRY KILAT — Jl. Kemang Raya 5, open 08-20"
    assert texts(parsed) == [
        "Service: Wash and iron | Unit: per kg | Price (Rp): 9500",
        "Service: Express | Unit: per kg | Price (Rp): 15000",
    ]
    assert parsed.rows == 2


def test_a_sheet_starting_with_numbers_has_no_header_row(tmp_path: Path) -> None:
    path = files.workbook(tmp_path / "raw.xlsx", {"Data": [["Wash", 9500], ["Iron", 7000]]})
    assert texts(parse(path, "raw.xlsx")) == ["Wash | 9500", "Iron | 7000"]


def test_a_single_label_over_a_row_of_values_is_the_header_not_a_title(tmp_path: Path) -> None:
    path = files.workbook(tmp_path / "menu.xlsx", {"Menu": [["Menu"], ["Kopi susu", "28.000"], ["Teh", "18.000"]]})
    parsed = parse(path, "menu.xlsx")
    assert parsed.sections[0].heading is None
    assert texts(parsed) == ["Menu: Kopi susu | 28.000", "Menu: Teh | 18.000"]


def test_values_are_written_as_stored_and_integers_without_a_decimal_point(tmp_path: Path) -> None:
    path = files.workbook(
        tmp_path / "types.xlsx",
        {
            "Types": [
                ["Text", "Integer", "Whole float", "Float", "Sum", "Date", "Time", "Flag"],
                ["9.500", 9500, 9500.0, 12.5, 0.1 + 0.2, datetime(2025, 3, 1), datetime(2025, 3, 1, 14, 30), True],
            ]
        },
    )
    assert texts(parse(path, "types.xlsx")) == [
        "Text: 9.500 | Integer: 9500 | Whole float: 9500 | Float: 12.5 | Sum: 0.3 | Date: 2025-03-01"
        " | Time: 2025-03-01 14:30 | Flag: TRUE"
    ]


def test_formulas_give_their_cached_values(tmp_path: Path) -> None:
    rows = [
        files.inline_row(1, "Item", "Kg", "Price", "Total"),
        '<row r="2"><c r="A2" t="inlineStr"><is><t>Wash</t></is></c><c r="B2"><v>2</v></c><c r="C2"><v>9500</v></c>'
        '<c r="D2"><f>B2*C2</f><v>19000</v></c></row>',
        # never calculated:
        '<row r="3"><c r="A3" t="inlineStr"><is><t>Iron</t></is></c><c r="D3"><f>B3*C3</f></c></row>',
    ]
    path = files.xlsx_with_sheet(tmp_path / "totals.xlsx", files.sheet_xml(rows))
    assert texts(parse(path, "totals.xlsx")) == ["Item: Wash | Kg: 2 | Price: 9500 | Total: 19000", "Item: Iron"]


def test_a_dimension_claiming_the_whole_grid_costs_nothing(tmp_path: Path) -> None:
    """Read-only sheets pad every row to the claimed <dimension>: a million rows of 16,384 cells."""
    rows = [files.inline_row(1, "Item", "Price"), files.inline_row(2, "Wash", 9500)]
    path = files.xlsx_with_sheet(tmp_path / "claims.xlsx", files.sheet_xml(rows, dimension="A1:XFD1048576"))
    assert texts(parse(path, "claims.xlsx")) == ["Item: Wash | Price: 9500"]


@pytest.mark.parametrize("name", ["macros.xlsm", "macros.xlsx"])
def test_a_macro_workbook_is_read_and_its_macros_ignored(tmp_path: Path, name: str) -> None:
    path = files.workbook(tmp_path / name, {"Prices": [["Service", "Price"], ["Wash", 9500]]})
    if name.endswith(".xlsm"):
        files.rewrite(
            path,
            "[Content_Types].xml",
            lambda xml: xml.replace(
                b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
                b"application/vnd.ms-excel.sheet.macroEnabled.main+xml",
            ),
        )
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("xl/vbaProject.bin", b'Attribute VB_Name = "Module1"\nSub Auto_Open(): Shell "calc": End Sub')
    parsed = parse(path, name)
    assert (parsed.kind, texts(parsed)) == ("xlsx", ["Service: Wash | Price: 9500"])


def test_a_workbook_without_text_is_refused(tmp_path: Path) -> None:
    path = files.workbook(tmp_path / "empty.xlsx", {"Sheet1": [], "Sheet2": [[None, None]]})
    assert refusal(path, "empty.xlsx") == "no text found: every sheet of the workbook is empty"


@pytest.fixture(scope="session")
def million_rows(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,000,000 data rows, then the XML breaks off: a reader that went past the cap would fail
    on the broken end instead of stopping at the cap."""
    rows = (
        files.inline_row(n, "Item", "Price") if n == 1 else files.inline_row(n, f"item {n}", n)
        for n in range(1, 1_000_002)
    )
    pieces = files.sheet_xml(
        rows, dimension="A1:B1000001", end='<row r="1000002"><c r="A1000002" t="inlineStr"><is><t>'
    )
    return files.xlsx_with_sheet(tmp_path_factory.mktemp("rows") / "million.xlsx", pieces)


def test_a_million_rows_are_refused_at_the_cap_while_streaming(million_rows: Path) -> None:
    assert million_rows.stat().st_size < MAX_DOCUMENT_BYTES
    assert refusal(million_rows, "million.xlsx") == "too many rows (more than 100,000): split the workbook"


def test_rows_up_to_the_cap_are_read(tmp_path: Path) -> None:
    rows = (files.inline_row(n, "Item") if n == 1 else files.inline_row(n, f"item {n}") for n in range(1, MAX_ROWS + 2))
    path = files.xlsx_with_sheet(tmp_path / "full.xlsx", files.sheet_xml(rows))
    parsed = parse(path, "full.xlsx")
    assert parsed.rows == MAX_ROWS
    assert texts(parsed)[-1] == f"Item: item {MAX_ROWS + 1}"


# -- zip bombs and other archives -----------------------------------------------------------


@pytest.fixture(scope="session", params=["xlsx", "docx"])
def zip_bomb(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    kind: str = request.param
    return files.bomb(tmp_path_factory.mktemp("bomb") / f"bomb.{kind}", kind), kind


def test_a_zip_bomb_is_refused_without_unpacking_it(zip_bomb: tuple[Path, str], peak_memory: Callable[[], int]) -> None:
    path, kind = zip_bomb
    with zipfile.ZipFile(path) as archive:  # what it claims: 2 GB from about 2 MB
        assert sum(info.file_size for info in archive.infolist()) > 1_900_000_000
    assert path.stat().st_size < 3 * 1024 * 1024
    reason = refusal(path, f"bomb.{kind}")
    assert reason.startswith("the file unpacks to more than 100 times its size")
    assert peak_memory() < 8 * 1024 * 1024


def test_parts_held_in_memory_are_capped_in_total(tmp_path: Path) -> None:
    """Compressible only tenfold, so no bomb: but python-docx would hold it all."""
    path = files.word(tmp_path / "huge.docx", lambda document: document.add_paragraph("hello"))
    filler = b"".join(os.urandom(8).hex().encode() + b"a" * 48 for _ in range(16_384))  # 1 MiB
    with (
        zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
        archive.open("word/media/padding.bin", "w") as member,
    ):
        for _ in range(MAX_LOADED_BYTES // len(filler) + 1):
            member.write(filler)
    assert path.stat().st_size < MAX_DOCUMENT_BYTES
    assert refusal(path, "huge.docx").startswith("the file's contents are too large to read (over 128 MB unpacked")


def test_an_archive_of_too_many_parts_is_refused_before_it_is_listed(tmp_path: Path) -> None:
    path = files.workbook(tmp_path / "parts.xlsx", {"Prices": [["Service"], ["Wash"]]})
    with zipfile.ZipFile(path, "a") as archive:
        for number in range(MAX_MEMBERS):
            archive.writestr(f"xl/media/empty{number}.bin", b"")
    assert refusal(path, "parts.xlsx").startswith("the file has too many parts (more than 10,000)")


def test_a_plain_zip_is_not_a_document(tmp_path: Path) -> None:
    path = tmp_path / "photos.docx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("menu.txt", "hello")
    assert refusal(path, "photos.docx") == (
        "the file is named .docx but is a ZIP archive: upload the documents inside it one by one"
    )


def test_a_truncated_office_file_is_damaged(tmp_path: Path) -> None:
    path = files.workbook(tmp_path / "cut.xlsx", {"Prices": [["Service"], ["Wash"]]})
    path.write_bytes(path.read_bytes()[:-100])
    assert refusal(path, "cut.xlsx") == (
        "the file is named .xlsx but is a damaged or incomplete ZIP/Office file: save it again and upload it again"
    )


# -- CSV, TXT, Markdown -------------------------------------------------------------------


def test_a_csv_keeps_commas_and_line_breaks_inside_quoted_cells(tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    path.write_text(
        'Service,Price\r\n"Dry cleaning, suit",45.000\r\n"Bed cover\r\nking",35.000\r\n,\r\n', encoding="utf-8"
    )
    parsed = parse(path, "prices.csv")
    assert (parsed.kind, parsed.rows, parsed.sections[0].location) == ("csv", 2, "")
    assert texts(parsed) == ["Service: Dry cleaning, suit | Price: 45.000", "Service: Bed cover king | Price: 35.000"]


@pytest.mark.parametrize(
    ("content", "encoding"),
    [
        ("Layanan;Harga\nCuci, setrika;9,500\nCafé latte;28,000\n", "utf-8"),
        ("Layanan;Harga\nCuci, setrika;9,500\nCafé latte;28,000\n", "utf-8-sig"),
        ("Layanan;Harga\nCuci, setrika;9,500\nCafé latte;28,000\n", "cp1252"),
        ("Layanan\tHarga\nCuci, setrika\t9,500\nCafé latte\t28,000\n", "utf-16"),
    ],
    ids=["semicolons", "bom", "cp1252", "utf-16-tabs"],
)
def test_a_csv_delimiter_and_encoding_are_sniffed(tmp_path: Path, content: str, encoding: str) -> None:
    path = tmp_path / "harga.csv"
    path.write_bytes(content.encode(encoding))
    assert texts(parse(path, "harga.csv")) == [
        "Layanan: Cuci, setrika | Harga: 9,500",
        "Layanan: Café latte | Harga: 28,000",
    ]


def test_a_csv_with_an_unclosed_quote_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "broken.csv"
    path.write_text('Service,Note\nWash,"starts here\n' + "and never ends " * 10_000)
    assert refusal(path, "broken.csv").startswith("the CSV file could not be read at line")


def test_csv_rows_are_capped(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_text("Item,Price\n" + "".join(f"item {n},{n}\n" for n in range(MAX_ROWS + 1)))
    assert refusal(path, "big.csv") == "too many rows (more than 100,000): split the file"


def test_a_text_file_is_paragraphs(tmp_path: Path) -> None:
    path = tmp_path / "note.txt"
    path.write_bytes("Harga naik 1 Januari.\nBerlaku di semua cabang.\n\n\n  \nTerima kasih — café.".encode("cp1252"))
    parsed = parse(path, "note.txt")
    assert (parsed.kind, texts(parsed)) == (
        "txt",
        ["Harga naik 1 Januari.\nBerlaku di semua cabang.", "Terima kasih — café."],
    )


def test_markdown_headings_tables_and_code(tmp_path: Path) -> None:
    path = tmp_path / "faq.md"
    path.write_text(
        "Kopi Nusantara\n==============\n\nWelcome.\n\n## Delivery\nWe deliver *daily*.\n\n---\n\n"
        "### Fees\n| Area | Fee (Rp) |\n|:-----|---:|\n| Kemang | 10.000 |\n| Blok M \\| Senayan | 15.000 |\n\n"
        "```\n# not a heading\n```\n# Wi-Fi #\nAsk the barista.\n",
        encoding="utf-8",
    )
    parsed = parse(path, "faq.md")
    assert [(s.heading, texts_of(s.blocks)) for s in parsed.sections] == [
        ("Kopi Nusantara", ["Welcome."]),
        ("Kopi Nusantara > Delivery", ["We deliver *daily*."]),
        (
            "Kopi Nusantara > Delivery > Fees",
            [
                "Area: Kemang | Fee (Rp): 10.000",
                "Area: Blok M | Senayan | Fee (Rp): 15.000",
                "```\n# not a heading\n```",
            ],
        ),
        ("Wi-Fi", ["Ask the barista."]),
    ]
    assert [b.atomic for b in parsed.sections[2].blocks] == [True, True, False]


def test_a_blank_text_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "blank.txt"
    path.write_text("\n   \n\t\n")
    assert refusal(path, "blank.txt") == "no text found: the file is blank"


def test_a_text_file_with_binary_data_further_in_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"Menu\n" * 20_000 + b"\x00\x01\x02")  # past the 64 KiB that are sniffed
    assert refusal(path, "notes.txt").startswith("the file is not text (it contains binary data)")


def test_a_text_file_in_no_known_encoding_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"Menu \x81\x8d\xc3\x28")  # invalid UTF-8, and bytes cp1252 leaves undefined
    assert refusal(path, "notes.txt") == (
        "the file is not readable text (unknown character encoding): save it as UTF-8"
    )


# -- what the file is, whatever its name says ---------------------------------------------


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "menu.pdf").touch()
    assert refusal(tmp_path / "menu.pdf", "menu.pdf") == "the file is empty"


def test_a_file_over_the_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.pdf"
    with path.open("wb") as file:
        file.truncate(MAX_DOCUMENT_BYTES + 1)  # sparse: no time, no disk
    assert refusal(path, "big.pdf") == "the file is 50.0 MB; the limit is 50 MB per file"


def test_contents_and_names_that_disagree_are_refused_with_both(tmp_path: Path) -> None:
    word_file = files.word(tmp_path / "menu.docx", lambda document: document.add_paragraph("hello"))
    pdf_file = files.pdf(tmp_path / "faq.pdf", ["hello"])
    sheet = files.workbook(tmp_path / "prices.xlsx", {"Prices": [["Service"], ["Wash"]]})
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert refusal(word_file, "menu.pdf") == (
        "the file is named .pdf but is a Word document (DOCX): rename it to .docx, or upload the right file"
    )
    assert (
        refusal(pdf_file, "faq.docx")
        == "the file is named .docx but is a PDF: rename it to .pdf, or upload the right file"
    )
    assert refusal(sheet, "prices.docx").startswith("the file is named .docx but is an Excel workbook (XLSX)")
    assert refusal(text, "prices.xlsx") == "the file is named .xlsx but is a text file"


def test_a_file_without_a_known_extension_is_judged_by_its_content(tmp_path: Path) -> None:
    sheet = files.workbook(tmp_path / "document", {"Prices": [["Service", "Price"], ["Wash", 9500]]})
    assert texts(parse(sheet, "price list")) == ["Service: Wash | Price: 9500"]  # also what ingest's temp file is
    text = tmp_path / "notes.log"
    text.write_text("Closed on Sunday.")
    assert parse(text, "notes.log").kind == "txt"


@pytest.mark.parametrize(
    ("streams", "name", "reason"),
    [
        (["EncryptedPackage", "EncryptionInfo"], "prices.xlsx", PASSWORD),
        (["EncryptedPackage", "EncryptionInfo"], "menu.docx", PASSWORD),
        (
            ["WordDocument", "1Table"],
            "menu.doc",
            "the file is an old Word document (.doc): open it in Word and save it as .docx",
        ),
        (
            ["Workbook"],
            "prices.xlsx",
            "the file is named .xlsx but is an old Excel workbook (.xls): open it in Excel and save it as .xlsx",
        ),
    ],
)
def test_ole_files_say_what_they_are(tmp_path: Path, streams: list[str], name: str, reason: str) -> None:
    assert refusal(files.ole(tmp_path / name, *streams), name) == reason


@pytest.mark.parametrize(
    ("content", "name", "reason"),
    [
        (
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
            "menu.pdf",
            "the file is named .pdf but is an image (PNG): photos and scans are not read: "
            "upload the text as PDF, DOCX or TXT",
        ),
        (b"{\\rtf1\\ansi Menu}", "menu.txt", "the file is named .txt but is an RTF document: save it as .docx or PDF"),
        (
            b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 64,
            "notes.txt",
            "the file is named .txt but is binary data of an unknown kind: "
            "upload a PDF, DOCX, XLSX, CSV, TXT or MD file",
        ),
    ],
)
def test_other_contents_are_named_in_the_reason(tmp_path: Path, content: bytes, name: str, reason: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert refusal(path, name) == reason


def test_parsing_is_quick_enough_for_the_suite(tmp_path: Path) -> None:
    """A guard against an accidental quadratic: 5,000 rows with merges parse well under a second or two."""
    rows = [["Category", "Item", "Price"]] + [["Group" if n % 10 == 0 else None, f"item {n}", n] for n in range(5_000)]
    merges = [f"A{n + 2}:A{n + 11}" for n in range(0, 5_000, 10)]
    path = files.workbook(tmp_path / "merged.xlsx", {"Items": rows}, {"Items": merges})
    started = time.perf_counter()
    parsed = parse(path, "merged.xlsx")
    assert parsed.rows == 5_000
    assert texts(parsed)[9] == "Category: Group | Item: item 9 | Price: 9"
    assert time.perf_counter() - started < 5


def test_no_file_handle_is_left_open(tmp_path: Path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    for name, make in {
        "a.xlsx": lambda p: files.workbook(p, {"S": [["A"], ["b"]]}),
        "a.docx": lambda p: files.word(p, lambda d: d.add_paragraph("x")),
        "a.pdf": lambda p: files.pdf(p, ["x"]),
    }.items():
        parse(make(tmp_path / name), name)
    assert len(os.listdir("/proc/self/fd")) == before
