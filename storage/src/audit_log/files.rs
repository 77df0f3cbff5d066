//! An audit table's Parquet files: named under `dt=` partitions, read back
//! in the table's schema (files of earlier versions lack the `dt` column,
//! which their path gives), and described for a record.

use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use chrono::{NaiveDate, Utc};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rand::TryRngCore;

use crate::commit::hex_lower;
use crate::{sha256_hex, CommittedFile};

/// The `dt` partition a path is under (`.../dt=2026-11-24/...`).
pub fn dt_of(path: &str) -> Option<NaiveDate> {
    path.split('/')
        .find_map(|p| p.strip_prefix("dt="))
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
}

/// What the name of every file written by a chained writer starts with
/// (files of earlier versions, one per entry, never do).
pub const PREFIX: &str = "c-";

/// A new file's path under `dir` for partition `dt`: [`PREFIX`], the time
/// and a random part, so no two writers pick the same name.
pub fn new_path(dir: &str, dt: NaiveDate) -> String {
    let mut id = [0u8; 6];
    if rand::rngs::OsRng.try_fill_bytes(&mut id).is_err() {
        // No OS randomness: the time and the process id still tell writers apart.
        id[..4].copy_from_slice(&std::process::id().to_be_bytes());
    }
    format!(
        "{dir}/dt={dt}/{PREFIX}{}-{}.parquet",
        Utc::now().timestamp_micros(),
        hex_lower(&id)
    )
}

/// How a record lists a file of `table` at `path`.
pub fn describe(table: &str, path: &str, bytes: &[u8], rows: u64) -> CommittedFile {
    CommittedFile {
        path: path.to_string(),
        table: table.to_string(),
        rows,
        bytes: bytes.len() as u64,
        sha256: sha256_hex(bytes),
        rows_sha256: None,
    }
}

/// The canonical digests of the rows of `batches`, cut into consecutive
/// segments of `sizes` rows (one digest per segment; rows past the last
/// segment are not hashed: the row counts are checked apart). Each value
/// is hashed as Arrow displays it, length-prefixed, a null as a marker, so
/// the digest does not depend on how a file encodes its columns.
pub fn segment_digests(batches: &[RecordBatch], sizes: &[u64]) -> Result<Vec<String>, String> {
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    use sha2::{Digest, Sha256};
    let options = FormatOptions::default();
    let mut out = Vec::with_capacity(sizes.len());
    let mut hasher = Sha256::new();
    let mut left = sizes.first().copied().unwrap_or(0);
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        for row in 0..batch.num_rows() {
            while left == 0 && out.len() < sizes.len() {
                out.push(hex_lower(&hasher.finalize_reset()));
                left = sizes.get(out.len()).copied().unwrap_or(0);
            }
            if out.len() == sizes.len() {
                return Ok(out);
            }
            for (column, f) in batch.columns().iter().zip(&formatters) {
                if column.is_null(row) {
                    hasher.update([0u8]);
                } else {
                    let v = f.value(row).to_string();
                    hasher.update([1u8]);
                    hasher.update((v.len() as u64).to_le_bytes());
                    hasher.update(v.as_bytes());
                }
            }
            left -= 1;
        }
    }
    while out.len() < sizes.len() {
        out.push(hex_lower(&hasher.finalize_reset()));
    }
    Ok(out)
}

/// The canonical digest of all the rows of `batches`.
pub fn rows_digest(batches: &[RecordBatch]) -> Result<String, String> {
    let total: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    Ok(segment_digests(batches, &[total])?.remove(0))
}

/// The rows of a Parquet file in `schema`: columns by name (cast where an
/// earlier version wrote another type), `dt` from the path when the file
/// has none, nulls for other missing nullable columns.
pub fn read(bytes: Bytes, schema: &SchemaRef, path: &str) -> Result<Vec<RecordBatch>, String> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.build())
        .map_err(|e| format!("{path}: not a Parquet file: {e}"))?;
    let dt = dt_of(path).map(|d| d.to_string());
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| format!("{path}: {e}"))?;
        let n = batch.num_rows();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let column = match batch.column_by_name(field.name()) {
                Some(c) if c.data_type() == field.data_type() => c.clone(),
                Some(c) => arrow::compute::cast(c, field.data_type())
                    .map_err(|e| format!("{path}: column {}: {e}", field.name()))?,
                None if field.name() == "dt" => match &dt {
                    Some(d) => Arc::new(StringArray::from(vec![d.as_str(); n])) as ArrayRef,
                    None => return Err(format!("{path}: no dt column and no dt= in the path")),
                },
                None if field.is_nullable() => new_null_array(field.data_type(), n),
                None => return Err(format!("{path}: no column {}", field.name())),
            };
            columns.push(column);
        }
        out.push(
            RecordBatch::try_new(schema.clone(), columns).map_err(|e| format!("{path}: {e}"))?,
        );
    }
    Ok(out)
}

/// Whether `path` is a file of an earlier version (not written by a chained
/// writer): only those are adopted, never another instance's file that is
/// waiting for its record.
pub fn is_legacy(path: &str) -> bool {
    path.ends_with(".parquet")
        && !path
            .rsplit('/')
            .next()
            .is_some_and(|name| name.starts_with(PREFIX))
}
