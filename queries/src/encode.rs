//! Result downloads: JSON (an array of row objects), CSV, Arrow IPC stream,
//! Parquet (zstd), or a text table for terminals.

use std::str::FromStr;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;

use crate::Error;

/// A download format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `application/json`: an array of objects.
    #[default]
    Json,
    /// `text/csv` with a header line.
    Csv,
    /// `application/vnd.apache.arrow.stream`.
    Arrow,
    /// `application/vnd.apache.parquet`.
    Parquet,
    /// A text table.
    Table,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "arrow" => Ok(Format::Arrow),
            "parquet" => Ok(Format::Parquet),
            "table" => Ok(Format::Table),
            other => Err(format!(
                "format {other:?}: use json, csv, arrow, parquet or table"
            )),
        }
    }
}

impl Format {
    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Arrow => "application/vnd.apache.arrow.stream",
            Format::Parquet => "application/vnd.apache.parquet",
            Format::Table => "text/plain; charset=utf-8",
        }
    }
}

/// Encodes `batches` (of `schema`) as `format`.
pub fn encode(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    format: Format,
) -> Result<Vec<u8>, Error> {
    let err = |e: &dyn std::fmt::Display| Error::Encode(e.to_string());
    let mut out = Vec::new();
    match format {
        Format::Json => {
            let mut w = arrow::json::ArrayWriter::new(&mut out);
            for b in batches {
                w.write(b).map_err(|e| err(&e))?;
            }
            w.finish().map_err(|e| err(&e))?;
            if out.is_empty() {
                out.extend_from_slice(b"[]");
            }
            out.push(b'\n');
        }
        Format::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            if batches.is_empty() {
                w.write(&RecordBatch::new_empty(schema.clone()))
                    .map_err(|e| err(&e))?;
            }
            for b in batches {
                w.write(b).map_err(|e| err(&e))?;
            }
        }
        Format::Arrow => {
            let mut w =
                arrow::ipc::writer::StreamWriter::try_new(&mut out, schema).map_err(|e| err(&e))?;
            for b in batches {
                w.write(b).map_err(|e| err(&e))?;
            }
            w.finish().map_err(|e| err(&e))?;
        }
        Format::Parquet => {
            let props = parquet::file::properties::WriterProperties::builder()
                .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
                .build();
            let mut w =
                ArrowWriter::try_new(&mut out, schema.clone(), Some(props)).map_err(|e| err(&e))?;
            for b in batches {
                w.write(b).map_err(|e| err(&e))?;
            }
            w.close().map_err(|e| err(&e))?;
        }
        Format::Table => {
            let text = arrow::util::pretty::pretty_format_batches(batches).map_err(|e| err(&e))?;
            out.extend_from_slice(format!("{text}\n").as_bytes());
        }
    }
    Ok(out)
}
