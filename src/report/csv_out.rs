//! Every CSV costsplit writes goes through here: RFC 4180 quoting (the `csv` crate), UTF-8,
//! and, in the files people open in a spreadsheet (statements, report CSV), text cells
//! neutralised against formula injection. Tag values are written by anyone who can tag a
//! resource and finance opens those files in a spreadsheet, so a text cell that begins with
//! `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'` (OWASP's CSV-injection
//! guidance). A dataset read by machines (the FOCUS export) keeps every value as it is: a
//! prefix there would change the data. Numeric columns are written as plain numbers.

/// One cell: text from anywhere (neutralised) or a number costsplit formatted itself.
#[derive(Debug, Clone, Copy)]
pub enum Cell<'a> {
    Text(&'a str),
    Number(&'a str),
}

/// `text` as a spreadsheet shows it literally.
pub fn neutralise(text: &str) -> std::borrow::Cow<'_, str> {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}").into(),
        _ => text.into(),
    }
}

/// A CSV document built in memory.
pub struct CsvOut {
    writer: csv::Writer<Vec<u8>>,
    /// Text cells get the spreadsheet prefix (files for people).
    for_spreadsheets: bool,
}

impl CsvOut {
    /// Starts a document for people (text cells neutralised) with its one header row.
    pub fn new(header: &[&str]) -> CsvOut {
        CsvOut::start(header, true)
    }

    /// Starts a dataset for machines (every value as it is) with its one header row.
    pub fn for_machines(header: &[&str]) -> CsvOut {
        CsvOut::start(header, false)
    }

    fn start(header: &[&str], for_spreadsheets: bool) -> CsvOut {
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(Vec::new());
        writer
            .write_record(header)
            .expect("writing to memory cannot fail");
        CsvOut {
            writer,
            for_spreadsheets,
        }
    }

    pub fn row(&mut self, cells: &[Cell<'_>]) {
        let record = cells.iter().map(|cell| match cell {
            Cell::Text(text) if !self.for_spreadsheets => {
                std::borrow::Cow::Borrowed(text.as_bytes())
            }
            Cell::Text(text) => match neutralise(text) {
                std::borrow::Cow::Borrowed(t) => std::borrow::Cow::Borrowed(t.as_bytes()),
                std::borrow::Cow::Owned(t) => std::borrow::Cow::Owned(t.into_bytes()),
            },
            Cell::Number(number) => std::borrow::Cow::Borrowed(number.as_bytes()),
        });
        self.writer
            .write_record(record)
            .expect("writing to memory cannot fail");
    }

    pub fn finish(self) -> String {
        let bytes = self
            .writer
            .into_inner()
            .expect("writing to memory cannot fail");
        String::from_utf8(bytes).expect("CSV of UTF-8 strings is UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised_and_numbers_are_not() {
        let mut out = CsvOut::new(&["service", "amount"]);
        for evil in [
            "=HYPERLINK(\"http://x.example\",\"click\")",
            "+cmd|' /C calc'!A0",
            "@SUM(1+1)",
            "-2+3",
            "\tx",
            "\rx",
        ] {
            out.row(&[Cell::Text(evil), Cell::Number("-12.50")]);
        }
        out.row(&[Cell::Text("a, \"quoted\" name"), Cell::Number("1.00")]);
        let text = out.finish();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
        for row in &rows[..6] {
            assert!(row[0].starts_with('\''), "{:?}", &row[0]);
            assert_eq!(&row[1], "-12.50");
        }
        assert_eq!(&rows[6][0], "a, \"quoted\" name");
        assert!(text.contains("\"a, \"\"quoted\"\" name\""));
    }
}
