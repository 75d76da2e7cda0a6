"""The bilingual knowledge set the retrieval and answer benchmarks use: two tenants, a
laundry whose documents are in English and a café whose documents are in Indonesian, each
with an XLSX price list, a DOCX with headings and a table, and a PDF; questions in both
languages (the cross-language ones ask in the other language than the documents), and
questions nothing in the documents answers.

Each question names an `anchor` (text only its passage contains: what retrieval must find)
and the `fact` the reply must state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

LAUNDRY = "laundry"
CAFE = "cafe"

SHEETS = {
    LAUNDRY: (
        "laundry-prices.xlsx",
        {
            "Wash": [
                ["Service", "Unit", "Price (Rp)"],
                ["Wash and fold", "per kg", "7.000"],
                ["Wash and iron", "per kg", "9.500"],
                ["Iron only", "per kg", "6.000"],
                ["Express wash, ready in 6 hours", "per kg", "15.000"],
                ["Dry cleaning, suit", "per piece", "45.000"],
                ["Dry cleaning, dress", "per piece", "40.000"],
            ],
            "Special items": [
                ["Item", "Price (Rp)", "Ready in"],
                ["Bed cover, king size", "35.000", "3 days"],
                ["Blanket", "30.000", "3 days"],
                ["Curtains, per metre", "12.000", "4 days"],
                ["Sneakers cleaning", "50.000", "2 days"],
                ["Baby clothes, per kg", "11.000", "2 days"],
                ["Carpet, per square metre", "25.000", "5 days"],
            ],
        },
    ),
    CAFE: (
        "menu-kopi.xlsx",
        {
            "Kopi": [
                ["Menu", "Ukuran", "Harga (Rp)"],
                ["Kopi susu gula aren", "reguler", "22.000"],
                ["Americano", "reguler", "20.000"],
                ["Cappuccino", "reguler", "27.000"],
                ["Es kopi pandan", "reguler", "30.000"],
                ["Teh tarik", "reguler", "18.000"],
                ["Coklat panas", "reguler", "25.000"],
            ],
            "Makanan": [
                ["Menu", "Harga (Rp)", "Keterangan"],
                ["Roti bakar keju", "19.000", "roti tawar, keju cheddar, susu kental manis"],
                ["Nasi goreng kampung", "32.000", "dengan telur mata sapi dan kerupuk"],
                ["Pisang goreng", "15.000", "lima potong, dengan madu"],
                ["Croissant mentega", "24.000", "dipanggang setiap pagi"],
            ],
        },
    ),
}

WORD_DOCUMENTS = {
    LAUNDRY: (
        "laundry-services.docx",
        [
            (
                "Pickup and delivery",
                "Free pickup and delivery within 3 km for orders above 5 kg. Beyond 3 km the fee is Rp 10.000.",
            ),
            ("Opening hours", "Monday to Saturday 07.00 to 21.00, Sunday 09.00 to 17.00."),
            ("Payment", "We accept cash, QRIS, GoPay, OVO and bank transfer to BCA."),
            (
                "Stains",
                "Stubborn stains such as ink or oil are treated at no extra charge, but removal is not guaranteed.",
            ),
        ],
        (
            "Membership",
            [["Tier", "Monthly fee", "Discount"], ["Silver", "Rp 55.000", "10%"], ["Gold", "Rp 90.000", "20%"]],
        ),
    ),
    CAFE: (
        "info-kafe.docx",
        [
            ("Jam buka", "Setiap hari pukul 08.00 sampai 22.00; hari Jumat buka mulai pukul 13.00."),
            ("Wi-Fi", "Wi-Fi gratis untuk pelanggan, kata sandi tercetak di struk pembelian."),
            ("Reservasi", "Ruang atas bisa dipesan untuk acara hingga 20 orang dengan biaya Rp 250.000 per 3 jam."),
            ("Parkir", "Parkir motor gratis; parkir mobil di gedung sebelah dengan tarif Rp 5.000 per jam."),
        ],
        (
            "Biji kopi",
            [
                ["Biji", "Berat", "Harga"],
                ["House blend", "250 g", "Rp 85.000"],
                ["Gayo single origin", "250 g", "Rp 120.000"],
                ["Toraja Sapan", "200 g", "Rp 135.000"],
            ],
        ),
    ),
}

PDF_PAGES = {
    LAUNDRY: (
        "laundry-policies.pdf",
        [
            "Lost items. We compensate up to 10 times the washing price of a lost item, at most Rp 500.000.",
            "Damage. Damaged clothes must be reported within 24 hours of delivery.",
            "Uncollected items. Items not collected within 30 days are donated to charity.",
            "Minimum order. The minimum order is 3 kg.",
            "Detergent. We use a hypoallergenic detergent; fragrance-free on request.",
        ],
    ),
    CAFE: (
        "kebijakan-kafe.pdf",
        [
            "Hewan peliharaan. Hewan peliharaan boleh dibawa ke area teras.",
            "Merokok. Merokok hanya diizinkan di area taman.",
            "Pengiriman. Pesanan di atas Rp 200.000 gratis ongkos kirim dalam radius 5 km.",
            "Kartu member. Setiap 10 cap, gratis satu minuman reguler.",
            "Susu oat. Susu oat tersedia dengan tambahan Rp 6.000.",
        ],
    ),
}
DOCUMENT_LANGUAGE = {LAUNDRY: "en", CAFE: "id"}


@dataclass(frozen=True, slots=True)
class Question:
    tenant: str
    language: str
    text: str
    anchor: str | None  # None: nothing in the documents answers it
    fact: str | None

    @property
    def cross_language(self) -> bool:
        return self.anchor is not None and self.language != DOCUMENT_LANGUAGE[self.tenant]

    def stated_in(self, reply: str) -> bool:
        """The fact, as a whole number or phrase (5.000 is not in 15.000)."""
        assert self.fact is not None
        return re.search(rf"(?<![\w.]){re.escape(self.fact)}(?![\w])", reply, re.I) is not None


def _q(tenant: str, language: str, text: str, anchor: str, fact: str) -> Question:
    return Question(tenant, language, text, anchor, fact)


QUESTIONS = [
    # The laundry, in English (its documents' language).
    _q(LAUNDRY, "en", "How much is wash and iron per kg?", "Wash and iron", "9.500"),
    _q(LAUNDRY, "en", "What is the price for wash and fold?", "Wash and fold", "7.000"),
    _q(LAUNDRY, "en", "How much for ironing only?", "Iron only", "6.000"),
    _q(LAUNDRY, "en", "How much is the express wash?", "Express wash", "15.000"),
    _q(LAUNDRY, "en", "How much to dry clean a suit?", "Dry cleaning, suit", "45.000"),
    _q(LAUNDRY, "en", "What does dry cleaning a dress cost?", "Dry cleaning, dress", "40.000"),
    _q(LAUNDRY, "en", "How much to clean a king size bed cover?", "Bed cover", "35.000"),
    _q(LAUNDRY, "en", "How much do you charge to clean sneakers?", "Sneakers", "50.000"),
    _q(LAUNDRY, "en", "What are your opening hours on Sunday?", "Sunday 09.00", "09.00"),
    _q(LAUNDRY, "en", "Is pickup and delivery free?", "Free pickup", "3 km"),
    _q(LAUNDRY, "en", "Which payment methods do you accept?", "QRIS, GoPay", "QRIS"),
    _q(LAUNDRY, "en", "How much is the gold membership per month?", "Gold", "90.000"),
    _q(LAUNDRY, "en", "What is the minimum order?", "minimum order is 3 kg", "3 kg"),
    _q(LAUNDRY, "en", "What happens if you lose one of my items?", "Lost items", "500.000"),
    _q(LAUNDRY, "en", "When are uncollected items donated?", "donated to charity", "30 days"),
    _q(LAUNDRY, "en", "How much is it to wash a blanket?", "Blanket", "30.000"),
    _q(LAUNDRY, "en", "How much does curtain cleaning cost?", "Curtains", "12.000"),
    _q(LAUNDRY, "en", "Do you use hypoallergenic detergent?", "hypoallergenic", "hypoallergenic"),
    # The laundry, in Indonesian: cross-language.
    _q(LAUNDRY, "id", "Berapa harga cuci setrika per kg?", "Wash and iron", "9.500"),
    _q(LAUNDRY, "id", "Berapa ongkos cuci lipat per kilo?", "Wash and fold", "7.000"),
    _q(LAUNDRY, "id", "Harga setrika saja berapa?", "Iron only", "6.000"),
    _q(LAUNDRY, "id", "Berapa harga cuci kilat yang selesai 6 jam?", "Express wash", "15.000"),
    _q(LAUNDRY, "id", "Berapa biaya dry cleaning jas?", "Dry cleaning, suit", "45.000"),
    _q(LAUNDRY, "id", "Berapa harga cuci selimut?", "Blanket", "30.000"),
    _q(LAUNDRY, "id", "Berapa harga cuci karpet per meter persegi?", "Carpet", "25.000"),
    _q(LAUNDRY, "id", "Hari Minggu buka jam berapa?", "Sunday 09.00", "09.00"),
    _q(LAUNDRY, "id", "Bisa bayar pakai QRIS?", "QRIS, GoPay", "QRIS"),
    _q(LAUNDRY, "id", "Berapa biaya member silver per bulan?", "Silver", "55.000"),
    _q(LAUNDRY, "id", "Kalau baju rusak harus lapor kapan?", "Damaged clothes", "24 hours"),
    _q(LAUNDRY, "id", "Cuci baju bayi berapa per kg?", "Baby clothes", "11.000"),
    _q(LAUNDRY, "id", "Apakah noda tinta bisa dibersihkan?", "Stubborn stains", "ink"),
    # The café, in Indonesian (its documents' language).
    _q(CAFE, "id", "Berapa harga kopi susu gula aren?", "Kopi susu gula aren", "22.000"),
    _q(CAFE, "id", "Harga americano berapa?", "Americano", "20.000"),
    _q(CAFE, "id", "Berapa harga cappuccino?", "Cappuccino", "27.000"),
    _q(CAFE, "id", "Es kopi pandan berapa?", "Es kopi pandan", "30.000"),
    _q(CAFE, "id", "Teh tarik harganya berapa?", "Teh tarik", "18.000"),
    _q(CAFE, "id", "Berapa harga nasi goreng kampung?", "Nasi goreng", "32.000"),
    _q(CAFE, "id", "Pisang goreng berapa?", "Pisang goreng", "15.000"),
    _q(CAFE, "id", "Kafe buka jam berapa?", "pukul 08.00", "08.00"),
    _q(CAFE, "id", "Hari Jumat buka jam berapa?", "hari Jumat", "13.00"),
    _q(CAFE, "id", "Berapa biaya sewa ruang atas untuk acara?", "Ruang atas", "250.000"),
    _q(CAFE, "id", "Parkir mobil bayar berapa per jam?", "parkir mobil", "5.000"),
    _q(CAFE, "id", "Berapa harga biji kopi Gayo?", "Gayo", "120.000"),
    _q(CAFE, "id", "Boleh bawa hewan peliharaan?", "Hewan peliharaan boleh", "teras"),
    _q(CAFE, "id", "Tambahan susu oat berapa?", "Susu oat tersedia", "6.000"),
    _q(CAFE, "id", "Berapa harga croissant mentega?", "Croissant", "24.000"),
    _q(CAFE, "id", "Merokok boleh di mana?", "Merokok hanya", "taman"),
    # The café, in English: cross-language.
    _q(CAFE, "en", "How much is the palm sugar milk coffee (kopi susu gula aren)?", "Kopi susu gula aren", "22.000"),
    _q(CAFE, "en", "What does a hot chocolate cost?", "Coklat panas", "25.000"),
    _q(CAFE, "en", "How much is the cheese toast?", "Roti bakar keju", "19.000"),
    _q(CAFE, "en", "How much is a butter croissant?", "Croissant", "24.000"),
    _q(CAFE, "en", "What time do you open every day?", "pukul 08.00", "08.00"),
    _q(CAFE, "en", "How much does it cost to book the upstairs room?", "Ruang atas", "250.000"),
    _q(CAFE, "en", "Do you have free wifi?", "Wi-Fi gratis", "gratis"),
    _q(CAFE, "en", "Where can I smoke?", "Merokok hanya", "taman"),
    _q(CAFE, "en", "How much is a bag of house blend beans?", "House blend", "85.000"),
    _q(CAFE, "en", "How much are the Toraja beans?", "Toraja", "135.000"),
    _q(CAFE, "en", "Is delivery free?", "ongkos kirim", "200.000"),
    _q(CAFE, "en", "How much extra is oat milk?", "Susu oat tersedia", "6.000"),
    _q(CAFE, "en", "How does the member card work?", "Kartu member", "10 cap"),
    _q(CAFE, "en", "How much is a cappuccino?", "Cappuccino", "27.000"),
    _q(CAFE, "en", "How much is the iced pandan coffee?", "Es kopi pandan", "30.000"),
]

UNANSWERABLE = [
    Question(LAUNDRY, "en", text, None, None)
    for text in (
        "Do you sell car tyres?",
        "Can you repair my motorbike engine?",
        "Do you offer haircuts?",
        "Can I buy a smartphone from you?",
        "Do you do tattoos?",
        "What is the price of gold jewellery?",
    )
] + [
    Question(CAFE, "id", text, None, None)
    for text in (
        "Apakah kalian menjual tiket pesawat?",
        "Berapa harga cat tembok?",
        "Apakah ada kolam renang?",
        "Bisa servis AC?",
        "Berapa harga sewa mobil per hari?",
        "Apakah kalian buka lowongan kerja pilot?",
    )
]


def write(directory: Path, tenant: str) -> list[Path]:
    """The tenant's three documents as real files."""
    from docx import Document
    from fpdf import FPDF
    from openpyxl import Workbook

    directory.mkdir(parents=True, exist_ok=True)
    name, sheets = SHEETS[tenant]
    workbook = Workbook()
    workbook.remove(workbook.active)
    for title, rows in sheets.items():
        sheet = workbook.create_sheet(title)
        for row in rows:
            sheet.append(row)
    xlsx = directory / name
    workbook.save(xlsx)

    name, sections, (table_title, rows) = WORD_DOCUMENTS[tenant]
    document = Document()
    for heading, paragraph in sections:
        document.add_heading(heading, level=1)
        document.add_paragraph(paragraph)
    document.add_heading(table_title, level=1)
    table = document.add_table(rows=0, cols=len(rows[0]))
    for row in rows:
        for cell, value in zip(table.add_row().cells, row, strict=True):
            cell.text = value
    docx = directory / name
    document.save(str(docx))

    name, pages = PDF_PAGES[tenant]
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for page in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, page)
    path = directory / name
    pdf.output(str(path))
    return [xlsx, docx, path]


def passages() -> int:
    """Rows, paragraphs, table rows and pages: the set's passages."""
    rows = sum(len(r) - 1 for _, sheets in SHEETS.values() for r in sheets.values())
    word = sum(len(sections) + len(table[1]) - 1 for _, sections, table in WORD_DOCUMENTS.values())
    return rows + word + sum(len(pages) for _, pages in PDF_PAGES.values())
