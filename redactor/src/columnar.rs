//! Redaction over Arrow record batches, so the pipeline redacts whole
//! columns instead of converting row by row.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringArray, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use serde_json::Value;

use crate::redact::{redact_with, Counts, Redactor};
use crate::Error;

/// How a column's strings are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// Free text.
    Text,
    /// JSON documents: strings redacted in place, so each stays valid JSON.
    /// A value that is not JSON is redacted as text.
    Json,
}

/// The column that records which key redacted each row.
pub const KEY_ID_COLUMN: &str = "redaction_key_id";

impl Redactor {
    /// Redacts `columns` (Utf8) of `batch`, row by row under the tenant in
    /// `tenant_column`, and sets the `redaction_key_id` column (added if
    /// absent). Other columns are passed through untouched.
    pub fn redact_batch(
        &self,
        batch: &RecordBatch,
        tenant_column: &str,
        columns: &[(&str, Content)],
    ) -> Result<(RecordBatch, Counts), Error> {
        let tenants = string_column(batch, tenant_column)?;
        let mut counts = Counts::default();
        let mut key_ids = StringBuilder::with_capacity(batch.num_rows(), batch.num_rows() * 16);
        let mut keys = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            if tenants.is_null(row) {
                return Err(Error::Column(format!(
                    "{tenant_column}: row {row} has no tenant"
                )));
            }
            let key = self.keys().key_for(tenants.value(row))?;
            key_ids.append_value(&key.id);
            keys.push(key);
        }
        let mut arrays: Vec<ArrayRef> = batch.columns().to_vec();
        for (name, content) in columns {
            let idx = batch
                .schema()
                .index_of(name)
                .map_err(|_| Error::Column(format!("{name}: no such column")))?;
            let values = string_column(batch, name)?;
            let mut out = StringBuilder::with_capacity(
                values.len(),
                values.value_data().len() + values.len() * 8,
            );
            for (row, key) in keys.iter().enumerate() {
                if values.is_null(row) {
                    out.append_null();
                    continue;
                }
                let engine = self.engine(tenants.value(row));
                let text = values.value(row);
                match content {
                    Content::Json => match serde_json::from_str::<Value>(text) {
                        Ok(mut v) => {
                            let r = self.redact_json_with(engine, key, &mut v, &mut counts);
                            out.append_value(r.unwrap_or_default());
                        }
                        Err(_) => out.append_value(redact_with(engine, key, text, &mut counts)),
                    },
                    Content::Text => out.append_value(redact_with(engine, key, text, &mut counts)),
                }
            }
            arrays[idx] = Arc::new(out.finish());
        }
        let key_ids: ArrayRef = Arc::new(key_ids.finish());
        let schema = batch.schema();
        let (schema, arrays) = match schema.index_of(KEY_ID_COLUMN) {
            Ok(i) => {
                arrays[i] = key_ids;
                (schema, arrays)
            }
            Err(_) => {
                let mut fields: Vec<Arc<Field>> = schema.fields().iter().cloned().collect();
                fields.push(Arc::new(Field::new(KEY_ID_COLUMN, DataType::Utf8, false)));
                arrays.push(key_ids);
                (
                    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())),
                    arrays,
                )
            }
        };
        let batch = RecordBatch::try_new(schema, arrays)?;
        Ok((batch, counts))
    }
}

fn string_column<'b>(batch: &'b RecordBatch, name: &str) -> Result<&'b StringArray, Error> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| Error::Column(format!("{name}: no such column")))?;
    col.as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| Error::Column(format!("{name}: must be Utf8, is {}", col.data_type())))
}
