//! CSV input: a header row, then one person per row, each becoming a v2
//! `identify` operation (feature `csv`).
//!
//! - The identifier column is the one named, else `id`, else `email`, else
//!   `cio_id`; its cell becomes `identifiers.<column>` (always a string, so a
//!   long numeric id keeps every digit).
//! - Every other column becomes an attribute; empty cells are left out. A
//!   header with an unnamed column, or a name twice, is refused: either
//!   would lose cells.
//! - Cells are typed unless told to keep strings: an integer becomes a JSON
//!   integer, a decimal a number, `true`/`false` a boolean, anything else a
//!   string. A number written with a leading zero (`02134`, a ZIP code), in
//!   exponent form, with more digits than a double keeps exactly, or an
//!   integer past 2^53 that a double does not hold exactly, stays a string:
//!   typing never changes a value.
//! - RFC 4180 quoting (quoted commas, doubled quotes, CRLF, line breaks in
//!   quotes), by the `csv` crate.
//! - A row with the wrong number of fields, or without an identifier, is
//!   rejected with its line number and reason; the rows around it go on.

use std::io::BufRead;

use serde_json::{Map, Number, Value};

/// The identifier columns tried, in order, when none is named.
const DEFAULT_ID_COLUMNS: [&str; 3] = ["id", "email", "cio_id"];

/// How CSV rows become operations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(docsrs, doc(cfg(feature = "csv")))]
pub struct CsvOptions {
    id_column: Option<String>,
    strings: bool,
}

impl CsvOptions {
    /// The defaults: the identifier from `id`, `email` or `cio_id`, typed cells.
    pub fn new() -> CsvOptions {
        CsvOptions::default()
    }

    /// Takes the identifier from this column. A column named `email` or
    /// `cio_id` becomes that kind of identifier; any other is an `id`.
    pub fn id_column(mut self, column: impl Into<String>) -> Self {
        self.id_column = Some(column.into());
        self
    }

    /// Keeps every cell a string instead of typing it.
    pub fn strings(mut self, strings: bool) -> Self {
        self.strings = strings;
        self
    }
}

/// One data row, turned into an operation or rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CsvRow {
    /// The line the row starts on, 1-based (the header is line 1).
    pub(crate) line: u64,
    /// The row as it stood in the file, for a dead letter.
    pub(crate) original: Vec<u8>,
    /// The operation's JSON bytes, or why the row cannot be one.
    pub(crate) operation: Result<Vec<u8>, String>,
}

/// Why a CSV input cannot be read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CsvError {
    /// No header row, or an unreadable one.
    Header(String),
    /// No column to take the identifier from.
    NoIdColumn {
        /// The column asked for, if one was.
        asked: Option<String>,
        /// The header's columns.
        columns: Vec<String>,
    },
    /// The input failed to read (I/O, or bytes that are not UTF-8 in a way
    /// the reader cannot step over).
    Read(String),
}

impl std::fmt::Display for CsvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CsvError::Header(reason) => write!(f, "cannot read the CSV header row: {reason}"),
            CsvError::NoIdColumn {
                asked: Some(asked),
                columns,
            } => write!(
                f,
                "the CSV header has no column {asked:?} (columns: {})",
                columns.join(", ")
            ),
            CsvError::NoIdColumn {
                asked: None,
                columns,
            } => write!(
                f,
                "the CSV header has no id, email or cio_id column; name one with --id-column (columns: {})",
                columns.join(", ")
            ),
            CsvError::Read(reason) => write!(f, "cannot read the CSV input: {reason}"),
        }
    }
}

/// The longest row read; past it a row is rejected (a stray quote would
/// otherwise swallow the rest of the file into one row).
const MAX_ROW_BYTES: usize = 1024 * 1024;

/// Reads CSV rows one at a time, in constant memory.
///
/// Rows are cut from the input here, not by the `csv` reader, so that each
/// knows the exact line it starts on and keeps its original bytes (for a
/// dead letter); the `csv` crate then splits each row into fields.
pub(crate) struct CsvRows<R: BufRead> {
    input: R,
    /// The next physical line's number, 1-based.
    next_line: u64,
    columns: Vec<String>,
    id_index: usize,
    id_kind: &'static str,
    strings: bool,
    raw: Vec<u8>,
    /// Whether `raw` ended with a quote still open.
    unclosed: bool,
    record: csv::ByteRecord,
    fields: FieldSplitter,
}

impl<R: BufRead> CsvRows<R> {
    /// Reads the header row and picks the identifier column.
    pub(crate) fn new(input: R, options: &CsvOptions) -> Result<CsvRows<R>, CsvError> {
        let mut rows = CsvRows {
            input,
            next_line: 1,
            columns: Vec::new(),
            id_index: 0,
            id_kind: "id",
            strings: options.strings,
            raw: Vec::new(),
            unclosed: false,
            record: csv::ByteRecord::new(),
            fields: FieldSplitter::new(),
        };
        match rows.read_raw() {
            Ok(Some(_)) => {}
            Ok(None) => return Err(CsvError::Header("the input is empty".into())),
            Err(err) => return Err(CsvError::Read(err.to_string())),
        }
        let header = rows
            .raw
            .strip_prefix("\u{feff}".as_bytes())
            .unwrap_or(&rows.raw);
        rows.fields
            .split(header, &mut rows.record)
            .map_err(CsvError::Header)?;
        let columns: Vec<String> = rows
            .record
            .iter()
            .map(|name| String::from_utf8_lossy(name).trim().to_owned())
            .collect();
        if columns.iter().all(String::is_empty) {
            return Err(CsvError::Header("the header row is empty".into()));
        }
        // Every column is an attribute's name: one without a name, or with
        // another's, would lose its cells.
        for (i, column) in columns.iter().enumerate() {
            if column.is_empty() {
                return Err(CsvError::Header(format!(
                    "column {} has no name: name it, or remove the column",
                    i + 1
                )));
            }
            if let Some(first) = columns[..i].iter().position(|other| other == column) {
                return Err(CsvError::Header(format!(
                    "the column name {column:?} appears twice (columns {} and {}): \
                     rename one",
                    first + 1,
                    i + 1
                )));
            }
        }
        rows.id_index = match &options.id_column {
            Some(asked) => columns.iter().position(|column| column == asked),
            None => DEFAULT_ID_COLUMNS
                .iter()
                .find_map(|wanted| columns.iter().position(|column| column == wanted)),
        }
        .ok_or_else(|| CsvError::NoIdColumn {
            asked: options.id_column.clone(),
            columns: columns.clone(),
        })?;
        rows.id_kind = match columns[rows.id_index].as_str() {
            "email" => "email",
            "cio_id" => "cio_id",
            _ => "id",
        };
        rows.columns = columns;
        Ok(rows)
    }

    /// The next row, or `None` at the end of the input.
    pub(crate) fn next_row(&mut self) -> Option<Result<CsvRow, CsvError>> {
        let line = match self.read_raw() {
            Ok(Some(line)) => line,
            Ok(None) => return None,
            Err(err) => return Some(Err(CsvError::Read(err.to_string()))),
        };
        let operation = if self.raw.len() > MAX_ROW_BYTES {
            Err(format!(
                "the row is longer than {MAX_ROW_BYTES} bytes (an unclosed quote?)"
            ))
        } else if self.unclosed {
            Err("a quote opened in this row is never closed".into())
        } else {
            self.fields
                .split(&self.raw, &mut self.record)
                .and_then(|()| self.operation())
        };
        Some(Ok(CsvRow {
            line,
            original: self.raw.clone(),
            operation,
        }))
    }

    /// Reads the next non-blank row's bytes into `raw`, without its line
    /// ending, and returns the line it starts on. A row goes on past a line
    /// break while a quote is open.
    fn read_raw(&mut self) -> std::io::Result<Option<u64>> {
        loop {
            self.raw.clear();
            let start = self.next_line;
            let mut quotes = 0usize;
            loop {
                let before = self.raw.len();
                if self.input.read_until(b'\n', &mut self.raw)? == 0 {
                    break;
                }
                if self.raw.last() == Some(&b'\n') {
                    self.next_line += 1;
                }
                quotes += self.raw[before..].iter().filter(|&&b| b == b'"').count();
                if quotes.is_multiple_of(2) || self.raw.len() > MAX_ROW_BYTES {
                    break;
                }
            }
            if self.raw.is_empty() {
                return Ok(None);
            }
            self.unclosed = quotes % 2 == 1;
            while matches!(self.raw.last(), Some(b'\n' | b'\r')) {
                self.raw.pop();
            }
            if !self.raw.is_empty() {
                return Ok(Some(start));
            }
            // A blank line is no row.
        }
    }

    fn operation(&self) -> Result<Vec<u8>, String> {
        let record = &self.record;
        if record.len() != self.columns.len() {
            return Err(format!(
                "{} fields where the header has {}",
                record.len(),
                self.columns.len()
            ));
        }
        let cell = |i: usize| {
            std::str::from_utf8(&record[i])
                .map_err(|_| format!("column {:?} is not UTF-8", self.columns[i]))
        };
        let id = cell(self.id_index)?.trim();
        if id.is_empty() {
            return Err(format!(
                "no identifier: column {:?} is empty",
                self.columns[self.id_index]
            ));
        }
        let mut attributes = Map::new();
        for (i, column) in self.columns.iter().enumerate() {
            let text = cell(i)?;
            if i == self.id_index || text.is_empty() {
                continue;
            }
            let value = if self.strings {
                Value::String(text.to_owned())
            } else {
                typed(text)
            };
            attributes.insert(column.clone(), value);
        }
        let mut identifiers = Map::new();
        identifiers.insert(self.id_kind.to_owned(), Value::String(id.to_owned()));
        let mut operation = Map::new();
        operation.insert("type".into(), "person".into());
        operation.insert("action".into(), "identify".into());
        operation.insert("identifiers".into(), Value::Object(identifiers));
        if !attributes.is_empty() {
            operation.insert("attributes".into(), Value::Object(attributes));
        }
        Ok(serde_json::to_vec(&Value::Object(operation)).expect("a JSON map always serialises"))
    }
}

/// A cell's JSON value: integer, decimal, boolean, else the text itself.
fn typed(text: &str) -> Value {
    match text {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    let plain_number = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && digits.bytes().filter(|&b| b == b'.').count() <= 1
        && !digits.starts_with('.')
        && !digits.ends_with('.');
    // A leading zero (ZIP codes, account numbers) is data, not a number.
    let leading_zero = digits.len() > 1 && digits.starts_with('0') && !digits.starts_with("0.");
    if !plain_number || leading_zero {
        return Value::String(text.to_owned());
    }
    if !digits.contains('.') {
        // Customer.io reads numbers as doubles: past 2^53 an integer keeps
        // every digit only if a double holds it exactly.
        return match text.parse::<i128>() {
            Ok(n) if n.unsigned_abs() <= 1 << 53 || (n as f64) as i128 == n => {
                match (i64::try_from(n), u64::try_from(n)) {
                    (Ok(n), _) => Value::Number(n.into()),
                    (_, Ok(n)) => Value::Number(n.into()),
                    _ => Value::String(text.to_owned()),
                }
            }
            _ => Value::String(text.to_owned()),
        };
    }
    // An f64 holds any decimal of up to 15 significant digits exactly.
    let significant = digits.replace('.', "");
    let significant = significant.trim_start_matches('0').trim_end_matches('0');
    match text.parse::<f64>().ok().and_then(Number::from_f64) {
        Some(n) if significant.len() <= 15 => Value::Number(n),
        _ => Value::String(text.to_owned()),
    }
}

/// Splits one row's bytes into fields, RFC 4180 quoting undone, with the
/// `csv` crate. Its reader is built once and rewound for each row: building
/// one costs more than splitting the row.
struct FieldSplitter {
    reader: csv::Reader<std::io::Cursor<Vec<u8>>>,
}

impl FieldSplitter {
    fn new() -> FieldSplitter {
        FieldSplitter {
            reader: csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(std::io::Cursor::new(Vec::new())),
        }
    }

    fn split(&mut self, raw: &[u8], record: &mut csv::ByteRecord) -> Result<(), String> {
        let row = self.reader.get_mut().get_mut();
        row.clear();
        row.extend_from_slice(raw);
        // Back to the start of the new row, with the parser's state reset.
        self.reader
            .seek(csv::Position::new())
            .map_err(|err| format!("not CSV: {err}"))?;
        match self.reader.read_byte_record(record) {
            Ok(true) => Ok(()),
            Ok(false) => Err("an empty row".into()),
            Err(err) => Err(format!("not CSV: {err}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn one_field_splitter_splits_row_after_row_with_nothing_left_over() {
        let mut fields = FieldSplitter::new();
        let mut record = csv::ByteRecord::new();
        let mut split = |raw: &str| {
            fields.split(raw.as_bytes(), &mut record).unwrap();
            record
                .iter()
                .map(|field| String::from_utf8_lossy(field).into_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            split(r#""a, ""quoted"" one",b"#),
            ["a, \"quoted\" one", "b"]
        );
        assert_eq!(split("c"), ["c"], "a shorter row after a longer one");
        assert_eq!(split("d,\"e\nf\",g"), ["d", "e\nf", "g"]);
        assert_eq!(fields.split(b"", &mut record), Err("an empty row".into()));
    }

    fn rows(text: &str, options: &CsvOptions) -> Vec<CsvRow> {
        let mut rows = CsvRows::new(text.as_bytes(), options).unwrap();
        std::iter::from_fn(|| rows.next_row())
            .map(Result::unwrap)
            .collect()
    }

    fn operation(row: &CsvRow) -> Value {
        serde_json::from_slice(row.operation.as_ref().unwrap()).unwrap()
    }

    #[test]
    fn each_row_becomes_an_identify_with_typed_attributes() {
        let text = "id,email,age,score,vip,plan,zip,note\n\
                    42,ada@example.com,36,9.5,true,pro,02134,\n";
        let rows = rows(text, &CsvOptions::new());
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].line, 2);
        assert_eq!(
            operation(&rows[0]),
            json!({
                "type": "person", "action": "identify",
                "identifiers": {"id": "42"},
                "attributes": {"email": "ada@example.com", "age": 36, "score": 9.5,
                               "vip": true, "plan": "pro", "zip": "02134"},
            })
        );
    }

    #[test]
    fn strings_keeps_every_cell_as_written() {
        let rows = rows("id,age,vip\n7,36,false\n", &CsvOptions::new().strings(true));
        assert_eq!(
            operation(&rows[0])["attributes"],
            json!({"age": "36", "vip": "false"})
        );
    }

    #[test]
    fn the_identifier_column_is_id_then_email_then_cio_id_or_the_one_named() {
        let by_email = rows("email,name\nada@example.com,Ada\n", &CsvOptions::new());
        assert_eq!(
            operation(&by_email[0])["identifiers"],
            json!({"email": "ada@example.com"})
        );
        let by_cio_id = rows("name,cio_id\nAda,abc123\n", &CsvOptions::new());
        assert_eq!(
            operation(&by_cio_id[0])["identifiers"],
            json!({"cio_id": "abc123"})
        );
        let named = rows(
            "id,email,user_key\n1,ada@example.com,u-9\n",
            &CsvOptions::new().id_column("user_key"),
        );
        assert_eq!(operation(&named[0])["identifiers"], json!({"id": "u-9"}));
        assert_eq!(operation(&named[0])["attributes"]["id"], 1);
        let named_email = rows(
            "id,email\n1,ada@example.com\n",
            &CsvOptions::new().id_column("email"),
        );
        assert_eq!(
            operation(&named_email[0])["identifiers"],
            json!({"email": "ada@example.com"})
        );
    }

    #[test]
    fn a_missing_identifier_column_is_an_error_naming_the_columns() {
        let err = CsvRows::new("name,plan\nAda,pro\n".as_bytes(), &CsvOptions::new())
            .err()
            .unwrap();
        assert!(err.to_string().contains("name, plan"), "{err}");
        let err = CsvRows::new(
            "id,plan\n1,pro\n".as_bytes(),
            &CsvOptions::new().id_column("user"),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("\"user\""), "{err}");
        assert!(matches!(
            CsvRows::new("".as_bytes(), &CsvOptions::new()).err(),
            Some(CsvError::Header(_) | CsvError::NoIdColumn { .. })
        ));
    }

    /// Issue 24: `email,email` or an unnamed column silently lost a column.
    #[test]
    fn a_header_with_a_name_twice_or_an_unnamed_column_is_refused_naming_it() {
        let err = CsvRows::new(
            "id,email,plan,email\n1,a,b,c\n".as_bytes(),
            &CsvOptions::new(),
        )
        .err()
        .unwrap();
        let text = err.to_string();
        assert!(
            text.contains("\"email\" appears twice (columns 2 and 4)"),
            "{text}"
        );
        let err = CsvRows::new("id,,plan\n1,a,b\n".as_bytes(), &CsvOptions::new())
            .err()
            .unwrap();
        assert!(err.to_string().contains("column 2 has no name"), "{err}");
    }

    #[test]
    fn rfc_4180_quoting_and_crlf() {
        let text = "id,name,quote\r\n1,\"Lovelace, Ada\",\"she said \"\"hi\"\"\"\r\n2,\"two\nlines\",x\r\n3,c,d\r\n";
        let rows = rows(text, &CsvOptions::new());
        assert_eq!(rows.len(), 3);
        assert_eq!(
            operation(&rows[0])["attributes"],
            json!({"name": "Lovelace, Ada", "quote": "she said \"hi\""})
        );
        assert_eq!(operation(&rows[1])["attributes"]["name"], "two\nlines");
        assert_eq!(
            [rows[0].line, rows[1].line, rows[2].line],
            [2, 3, 5],
            "a row's line is where it starts"
        );
    }

    #[test]
    fn bad_rows_are_rejected_with_their_line_and_the_rest_go_on() {
        let text = "id,plan\n1,pro\n2\n,basic\n3,pro,extra\n4,free\n";
        let rows = rows(text, &CsvOptions::new());
        let outcomes: Vec<(u64, Result<(), String>)> = rows
            .iter()
            .map(|row| (row.line, row.operation.clone().map(|_| ())))
            .collect();
        assert_eq!(outcomes[0], (2, Ok(())));
        assert_eq!(
            outcomes[1],
            (3, Err("1 fields where the header has 2".into()))
        );
        assert_eq!(
            outcomes[2],
            (4, Err("no identifier: column \"id\" is empty".into()))
        );
        assert_eq!(
            outcomes[3],
            (5, Err("3 fields where the header has 2".into()))
        );
        assert_eq!(outcomes[4], (6, Ok(())));
        assert_eq!(rows[3].original, b"3,pro,extra");
        assert_eq!(rows[1].original, b"2", "the original bytes, not a rewrite");
    }

    #[test]
    fn an_unclosed_quote_rejects_what_it_swallowed_instead_of_importing_it() {
        let rows = rows("id,plan\n1,\"pro\n2,basic\n", &CsvOptions::new());
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].line, 2);
        assert_eq!(
            rows[0].operation,
            Err("a quote opened in this row is never closed".into())
        );
        assert_eq!(rows[0].original, b"1,\"pro\n2,basic", "nothing is lost");
    }

    #[test]
    fn a_bom_before_the_header_is_ignored() {
        let rows = rows("\u{feff}id,plan\n1,pro\n", &CsvOptions::new());
        assert_eq!(operation(&rows[0])["identifiers"], json!({"id": "1"}));
    }

    #[test]
    fn typing_never_changes_data() {
        for (cell, expected) in [
            ("0", json!(0)),
            ("-12", json!(-12)),
            ("9007199254740992", json!(9007199254740992u64)),
            ("-9007199254740992", json!(-9007199254740992i64)),
            ("1152921504606846976", json!(1152921504606846976u64)), // 2^60: exact
            ("9007199254740993", json!("9007199254740993")),
            ("-9007199254740993", json!("-9007199254740993")),
            ("18446744073709551615", json!("18446744073709551615")),
            ("12345678901234567890123", json!("12345678901234567890123")),
            ("0.5", json!(0.5)),
            ("-2.25", json!(-2.25)),
            ("1.10", json!(1.1)),
            ("0.000123", json!(0.000123)),
            ("3.14159265358979323846", json!("3.14159265358979323846")),
            ("007", json!("007")),
            ("1e5", json!("1e5")),
            ("1.2.3", json!("1.2.3")),
            (".5", json!(".5")),
            ("-", json!("-")),
            ("TRUE", json!("TRUE")),
            ("NaN", json!("NaN")),
            (" 42", json!(" 42")),
        ] {
            assert_eq!(typed(cell), expected, "{cell:?}");
        }
    }
}
