//! CSV billing files (plain or gzip), whatever their format, into summed line items, in
//! parallel, in bounded memory. A format maps each record onto a line item (a [`RowMap`]);
//! this knows no format's columns.
//!
//! The file (or the gzip stream) is cut into chunks after complete records; worker threads
//! take chunks in file order, parse them with the `csv` crate and sum the lines into their
//! own [`Aggregator`], which are merged at the end. Memory is a chunk per worker plus the
//! distinct facts. Costs are parsed as exact decimals. A bad row stops every worker after its
//! current chunk, and the first bad row of the file is reported with its line and column.

use std::io::Read;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use chrono::NaiveDate;

use super::aggregate::{sum_in_parallel, Aggregator};
use super::file::ImportError;
use super::line::Line;

/// Costs are summed in 1e-11 units (see `line::FINE_PER_NANO`).
use super::line::FINE_DECIMALS;

/// An opened CSV file: its header and the rest, in chunks.
pub struct CsvFile {
    pub header: Vec<String>,
    chunks: CsvChunks,
}

impl CsvFile {
    /// Opens `path`, decompressing gzip as it is read (no temporary copy).
    pub fn open(path: &Path, gzip: bool, chunk_bytes: usize) -> Result<CsvFile, ImportError> {
        let io = |source| ImportError::Io {
            file: path.to_path_buf(),
            error: source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let input: Box<dyn Read + Send> = if gzip {
            Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(
                file,
            )))
        } else {
            Box::new(file)
        };
        let chunks = CsvChunks::open(input, chunk_bytes.max(1)).map_err(io)?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(chunks.header.as_slice());
        let mut record = csv::StringRecord::new();
        let header = match reader.read_record(&mut record) {
            Ok(true) => record
                .iter()
                .map(|s| s.trim_start_matches('\u{feff}').to_string())
                .collect(),
            Ok(false) => Vec::new(),
            Err(e) => {
                return Err(ImportError::Unreadable {
                    file: path.to_path_buf(),
                    message: format!("the header line is not CSV: {e}"),
                })
            }
        };
        if header.iter().all(|h| h.trim().is_empty()) {
            return Err(ImportError::Empty {
                file: path.to_path_buf(),
            });
        }
        Ok(CsvFile { header, chunks })
    }

    /// Sums every line of the file, each record mapped onto a line item by `rows`.
    pub fn aggregate(self, path: &Path, rows: &dyn RowMap) -> Result<Aggregator, ImportError> {
        let fields = self.header.len();
        let chunks = Mutex::new((self.chunks, 0usize));
        let failed = AtomicBool::new(false);
        let next = || {
            let mut guard = chunks.lock().unwrap_or_else(|e| e.into_inner());
            guard.1 += 1;
            let number = guard.1;
            match guard.0.next_chunk() {
                Ok(None) => None,
                Ok(Some(chunk)) => Some((number, Ok(chunk))),
                Err(source) => Some((number, Err(source))),
            }
        };
        sum_in_parallel(
            path,
            &failed,
            next,
            |chunk: std::io::Result<Chunk>, _: &mut (), sums| {
                let chunk = chunk.map_err(|source| ImportError::Io {
                    file: path.to_path_buf(),
                    error: source,
                })?;
                add_chunk(path, fields, rows, &chunk, sums)
            },
        )
    }
}

/// What a format's row mapper builds for a line beside the record's own fields (tags text,
/// a service name read out of a JSON column), reused from line to line.
#[derive(Default)]
pub struct Scratch {
    pub tags: Vec<u8>,
    pub service: Vec<u8>,
    /// The last JSON text a value was read from, and that value.
    pub last_json: Vec<u8>,
    pub last_value: Vec<u8>,
    /// A split cost allocation row's resource key (see `split::workload_key`).
    pub resource: Vec<u8>,
    /// Split rows' tags text -> the same without the tags that churn (see
    /// `split::drop_churning_tags`).
    pub lasting_tags: rustc_hash::FxHashMap<Vec<u8>, Vec<u8>>,
}

/// A format's mapping of one CSV record onto the common line item: one per format (FOCUS
/// here, CUR in `cur.rs`), so the reader itself knows no format's columns.
pub trait RowMap: Sync {
    /// The line item of `record`, or (column name, problem) for the leftmost bad value.
    fn line<'r>(
        &self,
        record: &'r csv::ByteRecord,
        scratch: &'r mut Scratch,
        days: &mut [DayCache; 2],
    ) -> Result<Line<'r>, (String, String)>;

    /// The column behind key `key` of a line (for an error about its value).
    fn key_column(&self, record: &csv::ByteRecord, key: usize) -> (String, Option<String>);
}

fn add_chunk(
    path: &Path,
    fields: usize,
    rows: &dyn RowMap,
    chunk: &Chunk,
    sums: &mut Aggregator,
) -> Result<(), ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(chunk.body.as_slice());
    let mut record = csv::ByteRecord::new();
    let mut scratch = Scratch::default();
    let mut days = [DayCache::default(), DayCache::default()];
    loop {
        let line_in_chunk = reader.position().line();
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(e) => {
                let line = e.position().map_or(line_in_chunk, |p| p.line());
                return Err(ImportError::BadValue {
                    file: path.to_path_buf(),
                    row: chunk.first_line + line - 1,
                    column: "-".to_string(),
                    problem: format!("malformed CSV row: {e}"),
                });
            }
        }
        let row = chunk.first_line + record.position().map_or(line_in_chunk, |p| p.line()) - 1;
        if record.len() == 1 && record[0].trim_ascii().is_empty() {
            continue; // a blank line
        }
        let bad = |(column, problem): (String, String)| ImportError::BadValue {
            file: path.to_path_buf(),
            row,
            column,
            problem,
        };
        if record.len() != fields {
            return Err(bad((
                "-".to_string(),
                format!(
                    "malformed CSV row: {} fields where the header has {fields}",
                    record.len()
                ),
            )));
        }
        let line = rows.line(&record, &mut scratch, &mut days).map_err(bad)?;
        if let Err(r) = sums.add(&line) {
            let (column, better) = rows.key_column(&record, r.key);
            return Err(bad((column, better.unwrap_or(r.problem))));
        }
    }
}

/// `NULL` (the FOCUS convention) reads as an empty value.
pub(super) fn null_to_empty(value: &[u8]) -> &[u8] {
    if value == b"NULL" {
        b""
    } else {
        value
    }
}

/// A cost in 1e-11 units; empty and `NULL` are zero. The error says why it was refused (not
/// a number, or larger than one line item may be).
pub(super) fn parse_cost(value: &[u8]) -> Result<i128, String> {
    let value = null_to_empty(value.trim_ascii());
    if value.is_empty() {
        Ok(0)
    } else {
        crate::money::parse_line_amount(value, FINE_DECIMALS).map_err(|e| e.to_string())
    }
}

/// Parses the day of `YYYY-MM-DD[T or space, then a time]`, remembering the last date seen
/// (consecutive lines mostly share it).
#[derive(Default)]
pub(super) struct DayCache {
    prefix: [u8; 10],
    day: Option<NaiveDate>,
}

impl DayCache {
    pub(super) fn parse(&mut self, value: &[u8]) -> Option<NaiveDate> {
        let value = value.trim_ascii();
        if value.len() < 10 || (value.len() > 10 && !matches!(value[10], b'T' | b' ')) {
            return None;
        }
        if value.len() > 10 && !valid_time(&value[11..]) {
            return None;
        }
        let prefix = &value[..10];
        if self.day.is_some() && prefix == self.prefix {
            return self.day;
        }
        if prefix[4] != b'-' || prefix[7] != b'-' {
            return None;
        }
        let number = |s: &[u8]| {
            s.iter().try_fold(0u32, |n, &b| {
                b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
            })
        };
        let day = NaiveDate::from_ymd_opt(
            i32::try_from(number(&prefix[..4])?).ok()?,
            number(&prefix[5..7])?,
            number(&prefix[8..])?,
        )?;
        self.prefix.copy_from_slice(prefix);
        self.day = Some(day);
        Some(day)
    }
}

/// The time part of a timestamp: `HH:MM[:SS[.fraction]]`, then optionally (after an
/// optional space) `Z`, `UTC` or an offset `+HH[:MM]`. A day with garbage after it is not a
/// day.
fn valid_time(t: &[u8]) -> bool {
    let two = |s: &[u8], max: u8| {
        s.len() >= 2
            && s[0].is_ascii_digit()
            && s[1].is_ascii_digit()
            && (s[0] - b'0') * 10 + (s[1] - b'0') <= max
    };
    if !(two(t, 23) && t.get(2) == Some(&b':') && two(&t[3..], 59)) {
        return false;
    }
    let mut rest = &t[5..];
    if rest.first() == Some(&b':') {
        if !two(&rest[1..], 60) {
            return false;
        }
        rest = &rest[3..];
        if rest.first() == Some(&b'.') {
            let digits = rest[1..].iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 {
                return false;
            }
            rest = &rest[1 + digits..];
        }
    }
    let rest = rest.strip_prefix(b" ").unwrap_or(rest);
    match rest {
        b"" | b"Z" | b"UTC" => true,
        [b'+' | b'-', zone @ ..] => {
            two(zone, 23)
                && match &zone[2..] {
                    b"" => true,
                    [b':', mm @ ..] | mm => mm.len() == 2 && two(mm, 59),
                }
        }
        _ => false,
    }
}

/// Part of the file's body, cut after a complete record.
struct Chunk {
    body: Vec<u8>,
    /// The file line its first byte is on (the header is line 1).
    first_line: u64,
}

/// The longest a header or a single record may be. A record past it is an unclosed quote or
/// a file that is not line-oriented CSV; reading on would hold the whole file in memory.
pub const MAX_RECORD_BYTES: usize = 16 << 20;

/// A CSV stream in chunks of about `chunk_bytes`, each cut after a complete record (a newline
/// outside quotes), so each parses on its own. Every byte is scanned once: the quote state,
/// the record ends and the line count carry over from read to read, so a stray quote or a
/// line without a newline costs what the file's size costs, not its square.
struct CsvChunks {
    input: Box<dyn Read + Send>,
    header: Vec<u8>,
    carry: Vec<u8>,
    chunk_bytes: usize,
    next_line: u64,
    eof: bool,
}

/// How far a chunk's body has been scanned.
#[derive(Default)]
struct Scan {
    /// Bytes scanned so far.
    at: usize,
    /// Inside quotes at `at`.
    quoted: bool,
    /// The end (just after the newline) of the first and the last record found so far, and
    /// of the last one within `chunk_bytes`.
    first_end: Option<usize>,
    last_end_within: Option<usize>,
}

impl Scan {
    fn advance(&mut self, body: &[u8], limit: usize) {
        for (i, &b) in body.iter().enumerate().skip(self.at) {
            match b {
                b'"' => self.quoted = !self.quoted,
                b'\n' if !self.quoted => {
                    let end = i + 1;
                    self.first_end.get_or_insert(end);
                    if end <= limit {
                        self.last_end_within = Some(end);
                    }
                }
                _ => {}
            }
        }
        self.at = body.len();
    }
}

fn too_long(what: &str, line: u64) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!(
            "line {line}: {what} runs past {} MiB without ending (an unclosed quote, or not line-oriented CSV); fix the file or export it again",
            MAX_RECORD_BYTES >> 20
        ),
    )
}

impl CsvChunks {
    fn open(input: Box<dyn Read + Send>, chunk_bytes: usize) -> std::io::Result<CsvChunks> {
        let mut chunks = CsvChunks {
            input,
            header: Vec::new(),
            carry: Vec::new(),
            chunk_bytes,
            next_line: 2,
            eof: false,
        };
        let mut start = Vec::new();
        let mut block = vec![0u8; 64 << 10];
        loop {
            let n = chunks.read(&mut block)?;
            let scanned = start.len();
            start.extend_from_slice(&block[..n]);
            if let Some(end) = start[scanned..].iter().position(|&b| b == b'\n') {
                chunks.carry = start.split_off(scanned + end + 1);
                chunks.header = start;
                return Ok(chunks);
            }
            if n == 0 {
                // A header without a newline and no records.
                chunks.header = start;
                chunks.eof = true;
                return Ok(chunks);
            }
            if start.len() > MAX_RECORD_BYTES {
                return Err(too_long("the header", 1));
            }
        }
    }

    fn read(&mut self, block: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match self.input.read(block) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    fn next_chunk(&mut self) -> std::io::Result<Option<Chunk>> {
        let mut body = std::mem::take(&mut self.carry);
        body.reserve(self.chunk_bytes.saturating_sub(body.len()) + 1);
        let mut block = vec![0u8; (1 << 20).min(self.chunk_bytes.max(4096))];
        let mut scan = Scan::default();
        loop {
            while !self.eof && body.len() < self.chunk_bytes {
                let n = self.read(&mut block)?;
                if n == 0 {
                    self.eof = true;
                }
                body.extend_from_slice(&block[..n]);
            }
            if self.eof {
                if body.iter().all(|b| b.is_ascii_whitespace()) {
                    return Ok(None);
                }
                return Ok(Some(self.emit(body)));
            }
            scan.advance(&body, self.chunk_bytes);
            if let Some(cut) = scan.last_end_within.or(scan.first_end) {
                self.carry = body.split_off(cut);
                return Ok(Some(self.emit(body)));
            }
            // One record longer than a chunk (or an open quote): read on, up to a bound.
            if body.len() > MAX_RECORD_BYTES.max(self.chunk_bytes) {
                return Err(too_long("a record", self.next_line));
            }
            let n = self.read(&mut block)?;
            if n == 0 {
                self.eof = true;
            }
            body.extend_from_slice(&block[..n]);
        }
    }

    fn emit(&mut self, body: Vec<u8>) -> Chunk {
        let first_line = self.next_line;
        self.next_line += body.iter().filter(|&&b| b == b'\n').count() as u64;
        Chunk { body, first_line }
    }
}

/// The position just after the last newline that ends a record: outside quotes, counting
/// quotes from the start of `body` (which starts at a record boundary).
#[cfg(test)]
fn last_record_end(body: &[u8]) -> Option<usize> {
    let mut scan = Scan::default();
    scan.advance(body, body.len());
    scan.last_end_within
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_end_after_a_record_not_inside_quotes() {
        assert_eq!(last_record_end(b"a,b\nc,d\n"), Some(8));
        assert_eq!(last_record_end(b"a,b\nc,\"x\ny"), Some(4));
        assert_eq!(last_record_end(b"a,\"x\ny\"\nc,"), Some(8));
        assert_eq!(last_record_end(b"a,\"x\ny"), None);

        let text = "h1,h2\n1,\"two\nlines\"\n3,4\n5,6\n";
        let mut chunks = CsvChunks::open(Box::new(std::io::Cursor::new(text)), 4).expect("open");
        assert_eq!(chunks.header, b"h1,h2\n");
        let mut seen = Vec::new();
        while let Some(chunk) = chunks.next_chunk().expect("read") {
            seen.push((
                String::from_utf8(chunk.body).expect("utf-8"),
                chunk.first_line,
            ));
        }
        assert_eq!(
            seen,
            [
                ("1,\"two\nlines\"\n".to_string(), 2),
                ("3,4\n".to_string(), 4),
                ("5,6\n".to_string(), 5)
            ]
        );
    }

    /// A stray quote near the start of a big file made the chunker rescan its growing buffer
    /// after every read (70 s for 1M rows); a line without a newline grew without bound.
    #[test]
    fn an_unclosed_quote_or_an_endless_line_stops_at_the_record_bound_in_linear_time() {
        struct Endless(u64);
        impl Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.0 += buf.len() as u64;
                buf.fill(b'x');
                Ok(buf.len())
            }
        }
        let input = std::io::Cursor::new(b"h1,h2\n".to_vec()).chain(Endless(0));
        let mut chunks = CsvChunks::open(Box::new(input), 1 << 20).expect("open");
        let err = chunks.next_chunk().err().expect("a bound");
        assert!(
            err.to_string()
                .contains("line 2: a record runs past 16 MiB"),
            "{err}"
        );
        let mut quoted = b"h1,h2\n1,\"open\n".to_vec();
        quoted.extend(std::iter::repeat_n(b"3,4\n".as_slice(), 5 << 20).flatten());
        let mut chunks =
            CsvChunks::open(Box::new(std::io::Cursor::new(quoted)), 1 << 20).expect("open");
        let err = chunks.next_chunk().err().expect("a bound");
        assert!(err.to_string().contains("unclosed quote"), "{err}");
        let header = std::io::Cursor::new(vec![b'h'; MAX_RECORD_BYTES + 10]);
        assert!(CsvChunks::open(Box::new(header), 1 << 20).is_err());
    }

    #[test]
    fn days_are_read_from_focus_timestamps() {
        let mut cache = DayCache::default();
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
        assert_eq!(cache.parse(b"2024-09-18 22:00:00"), day("2024-09-18"));
        assert_eq!(cache.parse(b"2024-09-18T23:00:00Z"), day("2024-09-18"));
        assert_eq!(cache.parse(b"2025-03-01"), day("2025-03-01"));
        for ok in [
            "2025-03-01T00:00:00.000Z",
            "2025-03-01T23:59:59+05:30",
            "2025-03-01 00:00:00 UTC",
            "2025-03-01T00:00Z",
            "2025-03-01T00:00:00-0800",
        ] {
            assert_eq!(
                DayCache::default().parse(ok.as_bytes()),
                day("2025-03-01"),
                "{ok}"
            );
        }
        for bad in [
            "2025-03-01Tgarbage",
            "2025-03-01T25:00:00Z",
            "2025-03-01T00:00:00Zjunk",
            "2025-03-01 x",
            "2025-03-01T00:00:00.Z",
        ] {
            assert_eq!(DayCache::default().parse(bad.as_bytes()), None, "{bad}");
        }
        assert_eq!(cache.parse(b"2025-03-01X"), None);
        assert_eq!(cache.parse(b"09/18/2024 22:00"), None);
        assert_eq!(cache.parse(b"2025-13-01T00:00:00Z"), None);
        assert_eq!(cache.parse(b"2025-02-30"), None);
    }
}
