"""Reading an uploaded file as records, streamed: bytes arrive chunk by chunk (from the upload
store), are decoded (UTF-8 with or without BOM, else Windows-1252), the delimiter is detected from
the header line, and csv yields one record at a time. XLSX is read with openpyxl in read-only
mode. Nothing here holds the whole file's rows."""
import codecs
import csv
import io
import os
import re
import tempfile

from services.common.errors import Invalid

csv.field_size_limit(10 * 1024 * 1024)
SNIFF_BYTES = 64 * 1024
XLSX_MAGIC = b"PK\x03\x04"
DELIMITERS = (",", ";", "\t", "|")
# Byte-order marks of the UTF-16/32 encodings (Excel's "Unicode text" export is UTF-16LE with a
# BOM, tab-separated). UTF-32 first: its little-endian BOM starts with UTF-16LE's.
BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
# The one-cell lines report exports put after their records (Salesforce's report footer). Only
# these, and rows of empty cells, are not records: any other short row is a record.
FOOTERS = (
    re.compile(r"grand totals? \(\s*[\d,.]+\s+records?\s*\)", re.I),
    re.compile(r"confidential information\s*-\s*do not distribute", re.I),
    re.compile(r"copyright \(c\).*salesforce\.com.*", re.I),
)


def is_footer(cell):
    cell = cell.strip()
    return any(p.fullmatch(cell) for p in FOOTERS)


class ChunkStream(io.RawIOBase):
    """A readable binary stream over an iterator of bytes chunks."""

    def __init__(self, chunks, head=b""):
        self.chunks = iter(chunks)
        self.buffer = head

    def readable(self):
        return True

    def readinto(self, b):
        while not self.buffer:
            try:
                self.buffer = next(self.chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self.buffer))
        b[:n] = self.buffer[:n]
        self.buffer = self.buffer[n:]
        return n


def _take_head(chunks):
    it = iter(chunks)
    head = b""
    for chunk in it:
        head += chunk
        if len(head) >= SNIFF_BYTES:
            break
    return head, it


def bom_encoding(head):
    """'utf-16' or 'utf-32' when the bytes start with that encoding's byte-order mark."""
    for bom, encoding in BOMS:
        if head.startswith(bom):
            return encoding
    return None


def sniff_kind(head):
    """'csv' or 'xlsx', or Invalid for empty or binary files."""
    wide = bom_encoding(head)
    if wide:
        text = _decode_sample(head[:SNIFF_BYTES])[0]
        if not text.strip(" \r\n\t;,"):
            raise Invalid("the file is empty", errors={"file": ["the file is empty"]})
        if "\x00" in text:
            raise Invalid("not a CSV file", errors={"file": [
                f"the file starts with a {wide.upper()} byte-order mark but is not {wide.upper()} text"]})
    else:
        if not head or not head.strip(b"\xef\xbb\xbf \r\n\t;,"):
            raise Invalid("the file is empty", errors={"file": ["the file is empty"]})
        if head.startswith(XLSX_MAGIC):
            return "xlsx"
        sample = head[:SNIFF_BYTES]
        if b"\x00" in sample:
            raise Invalid("not a CSV file", errors={"file": [
                "the file is binary, not CSV or XLSX (UTF-16 text is read only with its"
                " byte-order mark: save it as UTF-8 or Excel's Unicode text)"]})
        text = _decode_sample(sample)[0]
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\r\n\t")
    if controls > max(3, len(text) // 200):
        raise Invalid("not a CSV file", errors={"file": ["the file is binary, not CSV or XLSX"]})
    return "csv"


def _decode_sample(sample):
    """(text, encoding): UTF-16/32 when the bytes start with their BOM, UTF-8 (BOM stripped) when
    the bytes are UTF-8, else Windows-1252."""
    wide = bom_encoding(sample)
    if wide:
        # The head may end inside a character: the incremental decoder keeps the rest back.
        return codecs.getincrementaldecoder(wide)(errors="replace").decode(sample, final=False), wide
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        return decoder.decode(sample, final=False), "utf-8-sig"
    except UnicodeDecodeError:
        return sample.decode("cp1252", errors="replace"), "cp1252"


def detect_delimiter(header_line):
    counts = {}
    for d in DELIMITERS:
        fields = next(csv.reader([header_line], delimiter=d), [])
        counts[d] = len(fields)
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] > 1 else ","


def _first_line(text):
    # The header never holds a quoted newline in the exports we read; cut at the first line end.
    for i, ch in enumerate(text):
        if ch in "\r\n":
            return text[:i]
    return text


class Table:
    """An opened file: `columns`, `delimiter`, `encoding`, and `records()` yielding
    (record_number, {column: value}) for each record after the header (1-based)."""

    def __init__(self, columns, rows, delimiter=None, encoding=None, kind="csv", closer=None):
        self.columns, self._rows = columns, rows
        self.delimiter, self.encoding, self.kind = delimiter, encoding, kind
        self._closer = closer

    def records(self):
        columns = self.columns
        keep = all(columns)
        for number, values in self.value_rows():
            row = dict(zip(columns, values))
            if not keep:
                row.pop("", None)
            yield number, row

    def value_rows(self):
        """(record_number, [cell values], at least one per column): records() without the dicts,
        for handing records to other processes cheaply."""
        width = len(self.columns)
        xlsx = self.kind == "xlsx"
        number = 0
        try:
            for values in self._rows:
                number += 1
                if xlsx:
                    values = ["" if v is None else str(v) for v in values]
                joined = "".join(values)
                if not joined.strip():
                    continue  # blank lines and rows of empty (or blank) cells are not records
                if "\x00" in joined:
                    # A stray NUL (past the sniffed head) cannot be stored in PostgreSQL text.
                    values = [v.replace("\x00", "") for v in values]
                if len(values) == 1 and width > 1 and is_footer(values[0]):
                    # A report footer ("Grand Totals (22 records)", Salesforce's confidentiality
                    # and copyright lines) is not a record. Any other short row is one: its
                    # missing cells are empty (imported, or rejected with a reason).
                    continue
                if len(values) < width:
                    values = values + [""] * (width - len(values))
                yield number, values
        finally:
            self.close()

    def close(self):
        if self._closer:
            self._closer()
            self._closer = None


def open_table(chunks):
    head, rest = _take_head(chunks)
    kind = sniff_kind(head)
    if kind == "xlsx":
        return _open_xlsx(head, rest)
    text, encoding = _decode_sample(head)
    first_line = _first_line(text)
    if len(first_line) >= SNIFF_BYTES:
        raise Invalid("not a CSV file", errors={"file": [
            f"no line break in the first {SNIFF_BYTES // 1024} KB: a CSV file's header line is"
            " shorter than that"]})
    delimiter = detect_delimiter(first_line)
    stream = io.TextIOWrapper(io.BufferedReader(ChunkStream(rest, head), 1 << 16),
                              encoding=encoding, errors="replace", newline="")
    lines = _Lines(stream)
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as err:
        raise Invalid("not a CSV file", errors={"file": [f"no header row: {err}"]})
    if lines.eof:
        raise Invalid("the CSV is malformed", errors={"file": [
            "the header's quoted cell opened on line 1 is never closed (unterminated quote)"]})
    columns = _columns(header)
    return Table(columns, _guard(reader, lines), delimiter, encoding, "csv")


class _Lines:
    """The text's lines for csv.reader, counting them and noting when the end was reached: a
    record the reader completes only after the end was asked for is a quoted cell that was never
    closed (csv, not strict, would silently make the rest of the file that one cell)."""

    def __init__(self, stream):
        self.it = iter(stream)
        self.count = 0
        self.eof = False

    def __iter__(self):
        return self

    def __next__(self):
        try:
            line = next(self.it)
        except StopIteration:
            self.eof = True
            raise
        self.count += 1
        return line


def _guard(reader, lines):
    number = 0
    try:
        while True:
            start = lines.count + 1  # the physical line the next record starts on (header = 1)
            try:
                row = next(reader)
            except StopIteration:
                return
            number += 1
            if lines.eof:
                raise Invalid("the CSV is malformed", errors={"file": [
                    f"record {number} (line {start}): a quoted cell is never closed"
                    " (unterminated quote); it would run to the end of the file"]},
                    record=number, line=start)
            yield row
    except csv.Error as err:
        raise Invalid("the CSV is malformed", errors={"file": [
            f"record {number + 1} (line {start}): {err}"]}, record=number + 1, line=start)


MAX_COLUMNS = 1000  # a header's columns (CRM exports have a few hundred at most)


def _columns(header):
    """Column names: trimmed; a repeated name gets ` (2)`, ` (3)`...; a column with no name stays
    "" (every such column alike: it feeds nothing and is not custom data)."""
    columns, seen = [], set()
    for raw in header:
        name = (raw or "").strip()
        base, n = name, 2
        while name and name in seen:
            name = f"{base} ({n})"
            n += 1
        seen.add(name)
        columns.append(name)
    if not any(columns):
        raise Invalid("not a CSV file", errors={"file": ["the header row is empty"]})
    if len(columns) > MAX_COLUMNS:
        raise Invalid("not a contacts file", errors={"file": [
            f"the header has {len(columns)} columns; at most {MAX_COLUMNS}"]})
    return columns


def _open_xlsx(head, rest):
    import openpyxl
    from zipfile import BadZipFile

    fd, path = tempfile.mkstemp(suffix=".xlsx")
    with os.fdopen(fd, "wb") as f:
        f.write(head)
        for chunk in rest:
            f.write(chunk)
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (BadZipFile, KeyError, ValueError, OSError) as err:
        os.unlink(path)
        raise Invalid("not an XLSX file", errors={"file": [f"unreadable workbook: {err}"]})
    sheet = book.worksheets[0]
    rows = sheet.iter_rows(values_only=True)
    header = next(rows, None)

    def closer():
        book.close()
        os.unlink(path)

    if header is None:
        closer()
        raise Invalid("the file is empty", errors={"file": ["the sheet is empty"]})
    return Table(_columns(["" if h is None else str(h) for h in header]), rows,
                 kind="xlsx", closer=closer)
