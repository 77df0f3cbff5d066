//! Functions whose output a caller sizes: `repeat(s, n)`, `lpad(s, n)` and
//! `rpad(s, n)` build values as large as the caller asks (up to 2 GiB
//! each), outside the memory pool's reach, and a constant one is built while
//! the query is planned, before the time limit can stop it. In a principal's
//! session they are replaced by the same functions behind a check: one call
//! (a batch of rows, or one constant) may build at most
//! [`MAX_FUNCTION_OUTPUT`] bytes, or the query fails with a clear error.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array};
use arrow::compute::cast;
use arrow::compute::kernels::length::length;
use arrow::datatypes::{DataType, FieldRef};
use datafusion::common::DataFusionError;
use datafusion::error::Result;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};
use datafusion::prelude::SessionContext;

/// Bytes one call of a bounded function may build.
pub const MAX_FUNCTION_OUTPUT: usize = 16 << 20;

/// The functions bounded, and the argument that sizes their output.
const BOUNDED: &[&str] = &["repeat", "lpad", "rpad"];

/// A function behind the output check.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Bounded {
    inner: ScalarUDF,
}

/// Values of `v` (a scalar broadcast to `rows`) as i64 (NULL as 0).
fn as_i64(v: &ColumnarValue, rows: usize) -> Result<Int64Array> {
    let a: ArrayRef = v.to_array(rows.max(1))?;
    let a = cast(&a, &DataType::Int64)?;
    let a = a
        .as_any()
        .downcast_ref::<Int64Array>()
        .cloned()
        .ok_or_else(|| DataFusionError::Internal("not an Int64 array".into()))?;
    Ok(a)
}

impl Bounded {
    /// The bytes this call would build, at most (saturating).
    fn output_bytes(&self, args: &ScalarFunctionArgs) -> Result<u128> {
        let rows = args.number_rows;
        let (Some(s), Some(n)) = (args.args.first(), args.args.get(1)) else {
            return Ok(0);
        };
        let n = as_i64(n, rows)?;
        let lens = as_i64(
            &ColumnarValue::Array(length(&s.to_array(rows.max(1))?)?),
            rows,
        )?;
        let mut total: u128 = 0;
        for i in 0..n.len() {
            let count = u128::try_from(n.value(i).max(0)).unwrap_or(0);
            let len = u128::try_from(lens.value(i % lens.len().max(1)).max(0)).unwrap_or(0);
            total += match self.inner.name() {
                // repeat: the string n times.
                "repeat" => count * len,
                // lpad/rpad: n characters, each up to 4 bytes.
                _ => count.max(len) * 4,
            };
        }
        Ok(total)
    }
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let bytes = self.output_bytes(&args)?;
        if bytes > MAX_FUNCTION_OUTPUT as u128 {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "{}(...) would build {bytes} bytes in one call, over the {MAX_FUNCTION_OUTPUT} a call may build",
                self.inner.name()
            )));
        }
        self.inner.invoke_with_args(args)
    }
}

/// Replaces the session's size-taking functions by bounded ones.
pub fn install(ctx: &SessionContext) {
    for name in BOUNDED {
        if let Ok(inner) = ctx.udf(name) {
            let inner = Arc::unwrap_or_clone(inner);
            ctx.register_udf(ScalarUDF::new_from_impl(Bounded { inner }));
        }
    }
}
