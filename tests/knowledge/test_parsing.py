"""Parsing and chunking real files the tests write: every format, and every bad file refused
with a reason a shop owner understands."""

from __future__ import annotations

import tracemalloc
import zipfile
from pathlib import Path

import docx
import pytest
from fpdf import FPDF
from openpyxl import Workbook
from pypdf import PdfReader, PdfWriter

from shared.knowledge.chunking import chunk
from shared.knowledge.parsing import MAX_ROWS, UnreadableDocument, parse


def pdf(path: Path, pages: list[str]) -> Path:
    document = FPDF()
    document.set_font("Helvetica", size=12)
    for text in pages:
        document.add_page()
        if text:
            document.multi_cell(0, 8, text)
        else:
            document.rect(20, 20, 50, 50, style="F")  # a drawing and no text, like a scan
    document.output(str(path))
    return path


def price_workbook(path: Path) -> Path:
    workbook = Workbook()
    laundry = workbook.active
    laundry.title = "Laundry"
    laundry.append(["Service", "Unit", "Price (Rp)"])
    laundry.append(["Wash and iron", "per kg", "9.500"])
    laundry.append([None, None, None])  # a blank row
    laundry.append(["Dry cleaning, suit", "per piece", 45000])
    laundry.append(["Bed cover\nking size", "per piece", 35000])
    drinks = workbook.create_sheet("Drinks")
    drinks.append(["Category", "Drink", "Price"])
    drinks.append(["Coffee", "Kopi susu", 28000])
    drinks.append([None, "Americano", 25000])
    drinks.merge_cells("A2:A3")
    workbook.save(path)
    return path


def test_an_xlsx_gives_every_sheet_with_its_own_headers(tmp_path: Path) -> None:
    parsed = parse(price_workbook(tmp_path / "prices.xlsx"), "prices.xlsx")
    assert parsed.rows == 5
    laundry, drinks = parsed.sections
    assert laundry.location == "sheet Laundry"
    assert [b.text for b in laundry.blocks] == [
        "Service: Wash and iron | Unit: per kg | Price (Rp): 9.500",
        "Service: Dry cleaning, suit | Unit: per piece | Price (Rp): 45000",
        "Service: Bed cover king size | Unit: per piece | Price (Rp): 35000",
    ]
    assert all(b.atomic for b in laundry.blocks)
    assert [b.text for b in drinks.blocks] == [
        "Category: Coffee | Drink: Kopi susu | Price: 28000",
        "Category: Coffee | Drink: Americano | Price: 25000",  # the merged cell covers both rows
    ]


def test_a_csv_keeps_commas_and_line_breaks_inside_cells(tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    path.write_text('Service,Price\n"Dry cleaning, suit",45.000\n"Bed cover\nking",35.000\n\n', encoding="utf-8")
    parsed = parse(path, "prices.csv")
    assert [b.text for b in parsed.sections[0].blocks] == [
        "Service: Dry cleaning, suit | Price: 45.000",
        "Service: Bed cover king | Price: 35.000",
    ]
    assert parsed.rows == 2


def test_a_docx_keeps_headings_and_tables_with_their_header_row(tmp_path: Path) -> None:
    document = docx.Document()
    document.add_heading("Seasonal drinks", level=1)
    document.add_paragraph("Until the end of the rainy season.")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "Drink", "Price (Rp)"
    row = table.add_row().cells
    row[0].text, row[1].text = "Es Kopi Pandan", "30.000"
    document.add_heading("Opening hours", level=1)
    document.add_paragraph("Every day 07.00-22.00.")
    document.save(str(tmp_path / "menu.docx"))
    parsed = parse(tmp_path / "menu.docx", "menu.docx")
    drinks, hours = parsed.sections
    assert drinks.heading == "Seasonal drinks"
    assert [b.text for b in drinks.blocks] == [
        "Until the end of the rainy season.",
        "Drink: Es Kopi Pandan | Price (Rp): 30.000",
    ]
    assert (hours.heading, hours.blocks[0].text) == ("Opening hours", "Every day 07.00-22.00.")
    [first, second] = chunk(parsed, "menu.docx")
    assert first.text.startswith("[menu.docx · Seasonal drinks]\n")
    assert "Es Kopi Pandan | Price (Rp): 30.000" in first.text
    assert second.heading == "Opening hours"


def test_a_pdf_keeps_its_page_numbers(tmp_path: Path) -> None:
    parsed = parse(pdf(tmp_path / "faq.pdf", ["Pets are welcome.", "Booking fee Rp 250.000."]), "faq.pdf")
    assert parsed.pages == 2
    assert [(s.location, s.blocks[0].text) for s in parsed.sections] == [
        ("page 1", "Pets are welcome."),
        ("page 2", "Booking fee Rp 250.000."),
    ]
    assert chunk(parsed, "faq.pdf")[1].text == "[faq.pdf · page 2]\nBooking fee Rp 250.000."


def test_markdown_and_text(tmp_path: Path) -> None:
    (tmp_path / "faq.md").write_text(
        "# Wi-Fi\nFree, ask the barista.\n\n| Day | Open |\n|---|---|\n| Sunday | 08.00 |\n"
    )
    parsed = parse(tmp_path / "faq.md", "faq.md")
    [section] = parsed.sections
    assert section.heading == "Wi-Fi"
    assert [b.text for b in section.blocks] == ["Free, ask the barista.", "Day: Sunday | Open: 08.00"]
    (tmp_path / "note.txt").write_bytes("Harga naik 1 Januari.\n\nTerima kasih.".encode("cp1252"))
    assert [b.text for b in parse(tmp_path / "note.txt", "note.txt").sections[0].blocks] == [
        "Harga naik 1 Januari.",
        "Terima kasih.",
    ]


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.pdf", b"", "the file is empty"),
        ("menu.pdf", b"just text\n", "named .pdf but is text file"),
        ("old.xlsx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "old Word/Excel format"),
        ("broken.pdf", b"%PDF-1.4\n1 0 obj <<>> garbage", "damaged"),
        ("photo.txt", b"\x89PNG\r\n\x1a\n\0\0\0", "named .txt but is a file of another kind"),
        ("menu.exe", b"MZ", "unsupported file type"),
    ],
)
def test_bad_files_are_refused_with_a_reason(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UnreadableDocument) as refused:
        parse(path, name)
    assert reason in refused.value.reason


def test_a_docx_named_xlsx_is_refused(tmp_path: Path) -> None:
    document = docx.Document()
    document.add_paragraph("hello")
    document.save(str(tmp_path / "a.docx"))
    with pytest.raises(UnreadableDocument, match=r"named \.xlsx but is Word document"):
        parse(tmp_path / "a.docx", "prices.xlsx")


def test_encrypted_and_scanned_pdfs(tmp_path: Path) -> None:
    writer = PdfWriter(clone_from=PdfReader(pdf(tmp_path / "plain.pdf", ["secret prices"])))
    writer.encrypt(user_password="pw", owner_password="owner")
    writer.write(tmp_path / "locked.pdf")
    with pytest.raises(UnreadableDocument) as locked:
        parse(tmp_path / "locked.pdf", "locked.pdf")
    assert locked.value.reason == "password-protected: upload an unprotected copy"
    with pytest.raises(UnreadableDocument) as scanned:
        parse(pdf(tmp_path / "scan.pdf", ["", ""]), "scan.pdf")
    assert scanned.value.reason.startswith("no text found: is it a scanned image?")


def test_a_zip_bomb_is_refused_before_it_is_inflated(tmp_path: Path) -> None:
    path = price_workbook(tmp_path / "bomb.xlsx")
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive, archive.open("xl/padding.xml", "w") as member:
        chunk_of_zeros = b"0" * (1024 * 1024)
        for _ in range(400):  # 400 MB of zeros, about 0.4 MB compressed
            member.write(chunk_of_zeros)
    assert path.stat().st_size < 3 * 1024 * 1024
    tracemalloc.start()
    with pytest.raises(UnreadableDocument, match="expands"):
        parse(path, "bomb.xlsx")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 20 * 1024 * 1024


def test_rows_are_capped_while_streaming(tmp_path: Path) -> None:
    path = tmp_path / "huge.xlsx"
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Rows")
    sheet.append(["Item", "Price"])
    for number in range(MAX_ROWS + 10):
        sheet.append([f"item {number * 7919 % 1000003}", number * 31])
    workbook.save(path)
    with pytest.raises(UnreadableDocument, match=r"too many rows \(more than 100,000\)"):
        parse(path, "huge.xlsx")


def test_a_macro_workbook_is_read_and_its_macro_never_runs(tmp_path: Path) -> None:
    path = price_workbook(tmp_path / "macros.xlsm")
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("xl/vbaProject.bin", b'Sub AutoOpen(): Shell "rm -rf /": End Sub')
    parsed = parse(path, "macros.xlsm")
    assert parsed.rows == 5  # the cells, and nothing else: openpyxl never executes VBA


def test_chunks_respect_size_and_never_split_a_row(tmp_path: Path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Rates"
    sheet.append(["Service", "Unit", "Price (Rp)"])
    for number in range(60):
        sheet.append([f"Service number {number}", "per kg", f"{number}.000"])
    workbook.save(tmp_path / "rates.xlsx")
    parsed = parse(tmp_path / "rates.xlsx", "rates.xlsx")
    chunks = chunk(parsed, "rates.xlsx", size=200, overlap=20)
    assert len(chunks) > 5
    rows = [line for c in chunks for line in c.text.splitlines()[1:]]
    assert rows == [b.text for b in parsed.sections[0].blocks]  # every row once, whole, in order
    assert all(len(c.text.split("\n", 1)[1]) <= 200 for c in chunks)
    assert all(c.text.startswith("[rates.xlsx · sheet Rates]\n") for c in chunks)


def test_long_prose_is_split_at_sentences_with_overlap(tmp_path: Path) -> None:
    sentences = [f"Sentence number {n} says something useful about the laundry." for n in range(40)]
    (tmp_path / "policy.txt").write_text(" ".join(sentences))
    chunks = chunk(parse(tmp_path / "policy.txt", "policy.txt"), "policy.txt", size=300, overlap=50)
    bodies = [c.text.split("\n", 1)[1] for c in chunks]
    assert all(len(body) <= 300 for body in bodies)
    assert all(f"Sentence number {n} " in " ".join(bodies) for n in range(40))
    assert bodies[1][:20] in bodies[0]  # neighbours share their edge
