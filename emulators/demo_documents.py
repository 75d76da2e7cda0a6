"""The demo café's documents as real files: an English price list (XLSX), a Word menu with a
table (DOCX) and a house-rules PDF. `scripts/upload --demo` writes and uploads them, so a
fresh `scripts/dev` can be tried end to end: "berapa harga house blend 250 g?"."""

from __future__ import annotations

from pathlib import Path

PRICE_LIST = (
    (
        "Beans",
        [
            ("Item", "Size", "Price (Rp)"),
            ("House Blend beans", "250 g", "85.000"),
            ("Gayo Single Origin beans", "250 g", "120.000"),
            ("Toraja Sapan beans", "200 g", "135.000"),
        ],
    ),
    (
        "Merchandise",
        [
            ("Item", "Price (Rp)", "Notes"),
            ("Tumbler, 500 ml", "150.000", "stainless, keeps ice 12 hours"),
            ("Tote bag", "65.000", "canvas, printed logo"),
        ],
    ),
)


def write(directory: Path) -> list[Path]:
    """The three files, written into `directory`."""
    from docx import Document
    from fpdf import FPDF
    from openpyxl import Workbook

    directory.mkdir(parents=True, exist_ok=True)
    workbook = Workbook()
    workbook.remove(workbook.active)
    for title, rows in PRICE_LIST:
        sheet = workbook.create_sheet(title)
        for row in rows:
            sheet.append(list(row))
    xlsx = directory / "price-list.xlsx"
    workbook.save(xlsx)

    document = Document()
    document.add_heading("Seasonal drinks", level=1)
    document.add_paragraph("Available until the end of the rainy season at every Kopi Nusantara outlet.")
    table = document.add_table(rows=1, cols=3)
    for cell, text in zip(table.rows[0].cells, ("Drink", "Price (Rp)", "Description"), strict=True):
        cell.text = text
    for drink in (
        ("Es Kopi Pandan", "30.000", "espresso, pandan syrup, fresh milk"),
        ("Hot Ginger Latte", "29.000", "espresso, ginger, palm sugar"),
    ):
        for cell, text in zip(table.add_row().cells, drink, strict=True):
            cell.text = text
    docx = directory / "seasonal-menu.docx"
    document.save(str(docx))

    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for page in (
        "House rules. Pets are welcome on the terrace. Smoking is allowed only in the garden area.",
        "Events. The upstairs room can be booked for up to 20 people; the booking fee is Rp 250.000 per 3 hours.",
    ):
        pdf.add_page()
        pdf.multi_cell(0, 8, page)
    faq = directory / "house-rules.pdf"
    pdf.output(str(faq))
    return [xlsx, docx, faq]
