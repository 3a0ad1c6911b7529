//! The records an import reads, whatever the input's format: NDJSON lines,
//! or CSV rows (feature `csv`) numbered by the line they start on.

use std::io::{self, BufRead};

#[cfg(feature = "csv")]
use crate::client::event_id::EventId;
#[cfg(feature = "csv")]
use crate::client::operation::Operation;
#[cfg(feature = "csv")]
use crate::import::content_digest::ContentDigest;
#[cfg(feature = "csv")]
use crate::import::csv_rows::CsvRows;
#[cfg(feature = "csv")]
use crate::import::entry::Entry;
#[cfg(feature = "csv")]
use crate::import::reader::Item;
use crate::import::reader::{NdjsonReader, Record};

/// An import's input, read one record at a time.
pub(crate) enum Input<R: BufRead> {
    /// One operation per line.
    Ndjson(NdjsonReader<R>),
    /// One person per row; rows starting on or before `skip_to` were
    /// settled by the run a resume continues.
    #[cfg(feature = "csv")]
    Csv {
        rows: CsvRows<R>,
        skip_to: u64,
        digest: ContentDigest,
    },
}

impl<R: BufRead> Input<R> {
    /// The next record, or `None` at the end of the input.
    pub(crate) fn next_record(&mut self) -> io::Result<Option<Record>> {
        match self {
            Input::Ndjson(reader) => reader.next_record(),
            #[cfg(feature = "csv")]
            Input::Csv {
                rows,
                skip_to,
                digest,
            } => match rows.next_row() {
                None => Ok(None),
                Some(Err(err)) => Err(io::Error::new(io::ErrorKind::InvalidData, err.to_string())),
                Some(Ok(row)) => Ok(Some(Record {
                    line: row.line,
                    bytes_read: row.original.len() as u64,
                    digest: {
                        digest.update(&row.original);
                        digest.update(b"\n");
                        *digest
                    },
                    item: if row.line <= *skip_to {
                        Item::Skipped
                    } else {
                        csv_item(row.operation, row.original)
                    },
                })),
            },
        }
    }
}

/// A CSV row's operation, or why it is a dead letter. Identifies carry no
/// event id, so none is made.
#[cfg(feature = "csv")]
fn csv_item(operation: Result<Vec<u8>, String>, original: Vec<u8>) -> Item {
    let parsed = operation.and_then(|text| {
        let value = serde_json::from_slice(&text).map_err(|err| err.to_string())?;
        Operation::from_text(value, &text, EventId::new).map_err(|invalid| invalid.to_string())
    });
    match parsed {
        Ok(operation) => Item::Entry(Entry::Track(operation)),
        Err(reason) => Item::Bad { reason, original },
    }
}
