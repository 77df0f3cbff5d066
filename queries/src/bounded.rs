//! Functions whose output can be far larger than their input: `repeat(s,
//! n)`, `lpad`/`rpad(s, n)` (as large as `n` asks, up to 2 GiB a value),
//! `replace`, `regexp_replace` and `overlay` (a long replacement at every
//! match), `concat` and `concat_ws` (as many copies as arguments),
//! `encode` (hex doubles: nested, it doubles again), `arrow_cast` to a
//! fixed-size type (`FixedSizeBinary(2147483647)` is 2 GiB
//! a row, zeroed, even for NULL). Their
//! values are built outside the memory pool's reach, and a constant one is
//! built while the query is planned, before the time limit can stop it.
//!
//! In a principal's session each is replaced by the same function behind a
//! check of the most it could build, before it builds anything:
//!
//! - one call over rows (a batch) may build at most [`MAX_CALL_OUTPUT`];
//! - calls over constants only (the planner folding them) may build at most
//!   [`MAX_CONSTANT_OUTPUT`] together, per query.
//!
//! Past either, the query fails with a clear error (400).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array};
use arrow::compute::cast;
use arrow::compute::kernels::length::length;
use arrow::datatypes::{DataType, FieldRef};
use datafusion::common::DataFusionError;
use datafusion::error::Result;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature,
};
use datafusion::prelude::SessionContext;

/// Bytes one call over a batch of rows may build.
pub const MAX_CALL_OUTPUT: u64 = 64 << 20;

/// Bytes the calls over constants of one query may build together.
pub const MAX_CONSTANT_OUTPUT: u64 = 16 << 20;

/// The functions bounded.
const BOUNDED: &[&str] = &[
    "repeat",
    "lpad",
    "rpad",
    "replace",
    "regexp_replace",
    "overlay",
    "concat",
    "concat_ws",
    "arrow_cast",
    "encode",
];

/// A function behind the output check; `constants` is the query's budget.
#[derive(Debug)]
struct Bounded {
    inner: ScalarUDF,
    constants: Arc<AtomicU64>,
}

impl PartialEq for Bounded {
    fn eq(&self, other: &Self) -> bool {
        self.inner == other.inner
    }
}

impl Eq for Bounded {}

impl std::hash::Hash for Bounded {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.inner.hash(state);
    }
}

/// A figure per row of an argument: one for a constant (never broadcast:
/// a 10 MB constant over 8,192 rows would be 80 GB), or one per row.
enum Sizes {
    One(u128),
    Each(Int64Array),
}

impl Sizes {
    /// Row `i`'s figure (NULL as 0).
    fn at(&self, i: usize) -> u128 {
        match self {
            Sizes::One(n) => *n,
            Sizes::Each(a) if a.is_null(i) => 0,
            Sizes::Each(a) => u128::try_from(a.value(i).max(0)).unwrap_or(0),
        }
    }

    /// The sum over `rows` rows.
    fn total(&self, rows: usize) -> u128 {
        match self {
            Sizes::One(n) => n.saturating_mul(rows as u128),
            Sizes::Each(a) => (0..a.len()).map(|i| self.at(i)).sum(),
        }
    }
}

/// `f` applied to argument `v`: on its one value for a constant, on the
/// column otherwise.
fn sizes(v: &ColumnarValue, f: impl Fn(&ArrayRef) -> Result<Int64Array>) -> Result<Sizes> {
    match v {
        ColumnarValue::Scalar(s) => {
            let one = f(&s.to_array_of_size(1)?)?;
            Ok(Sizes::One(Sizes::Each(one).at(0)))
        }
        ColumnarValue::Array(a) => Ok(Sizes::Each(f(a)?)),
    }
}

/// Byte lengths of argument `v` per row, NULL as 0.
fn lengths(v: &ColumnarValue) -> Result<Sizes> {
    sizes(v, |a| {
        let l: ArrayRef = match a.data_type() {
            DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView => Arc::new(length(a)?),
            // Anything else is cast to text first (its printed length).
            _ => Arc::new(length(&cast(a, &DataType::Utf8)?)?),
        };
        ints(&l)
    })
}

/// Values of argument `v` per row as integers, NULL as 0.
fn values(v: &ColumnarValue) -> Result<Sizes> {
    sizes(v, ints)
}

fn ints(a: &ArrayRef) -> Result<Int64Array> {
    let a = cast(a, &DataType::Int64)?;
    a.as_any()
        .downcast_ref::<Int64Array>()
        .cloned()
        .ok_or_else(|| DataFusionError::Internal("not an Int64 array".into()))
}

/// Whether every argument is a constant (the planner folding a call).
fn all_constant(args: &ScalarFunctionArgs) -> bool {
    args.args
        .iter()
        .all(|v| matches!(v, ColumnarValue::Scalar(_)))
}

/// The sizes an Arrow type name holds (`FixedSizeBinary(N)`,
/// `FixedSizeList(N, ...)`), multiplied: at least the bytes a row takes.
fn fixed_size(type_name: &str) -> u128 {
    if !type_name.contains("FixedSize") {
        // Every other type's row is small or grows with its input.
        return 16;
    }
    type_name
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse::<u128>().ok())
        .fold(1u128, |acc, n| acc.saturating_mul(n.max(1)))
}

impl Bounded {
    /// The most bytes this call could build.
    fn most(&self, args: &ScalarFunctionArgs) -> Result<u128> {
        let rows = args.number_rows.max(1);
        let a = &args.args;
        let len = |k: usize| a.get(k).map(lengths).transpose();
        let per_row = |f: &dyn Fn(usize) -> u128| (0..rows).map(f).sum::<u128>();
        Ok(match self.inner.name() {
            "repeat" | "lpad" | "rpad" => {
                let (Some(s), Some(n)) = (len(0)?, a.get(1).map(values).transpose()?) else {
                    return Ok(0);
                };
                match self.inner.name() {
                    "repeat" => per_row(&|i| s.at(i) * n.at(i)),
                    // n characters of up to 4 bytes each.
                    _ => per_row(&|i| n.at(i).max(s.at(i)) * 4),
                }
            }
            "replace" => {
                let (Some(s), Some(from), Some(to)) = (len(0)?, len(1)?, len(2)?) else {
                    return Ok(0);
                };
                // One match per `from` (per character when it is empty).
                per_row(&|i| s.at(i) + (s.at(i) / from.at(i).max(1) + 1) * to.at(i))
            }
            "regexp_replace" => {
                let (Some(s), Some(r)) = (len(0)?, len(2)?) else {
                    return Ok(0);
                };
                let scalar_text = |k: usize| match a.get(k) {
                    Some(ColumnarValue::Scalar(v)) => Some(v.to_string()),
                    _ => None,
                };
                // Capture groups (`$1`) expand to at most the string; only
                // the `g` flag replaces more than the first match.
                let captures = scalar_text(2).is_none_or(|t| t.contains('$'));
                let global = a.len() > 3 && scalar_text(3).is_none_or(|t| t.contains('g'));
                per_row(&|i| {
                    let matches = if global { s.at(i) + 1 } else { 1 };
                    let per_match = if captures {
                        r.at(i) * s.at(i).max(1)
                    } else {
                        r.at(i)
                    };
                    s.at(i) + matches * per_match
                })
            }
            "overlay" => {
                let (Some(s), Some(sub)) = (len(0)?, len(1)?) else {
                    return Ok(0);
                };
                s.total(rows) + sub.total(rows)
            }
            "arrow_cast" => {
                // The sizes the type names (`FixedSizeBinary(N)`), multiplied.
                let Some(ColumnarValue::Scalar(t)) = a.get(1) else {
                    return Ok(0);
                };
                fixed_size(&t.to_string()).saturating_mul(rows as u128)
            }
            // hex doubles, base64 adds a third.
            "encode" => len(0)?.map_or(0, |s| s.total(rows) * 2 + 4 * rows as u128),
            // concat, concat_ws: the arguments, (for _ws) separators between.
            _ => {
                let mut total = 0u128;
                for (k, v) in a.iter().enumerate() {
                    let copies = if self.inner.name() == "concat_ws" && k == 0 {
                        a.len().saturating_sub(1) as u128
                    } else {
                        1
                    };
                    total += lengths(v)?.total(rows) * copies;
                }
                total
            }
        })
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

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        // arrow_cast becomes a CAST here, which no call check would see:
        // its type is checked now.
        if self.inner.name() == "arrow_cast" {
            if let Some(Expr::Literal(t, _)) = args.get(1) {
                let per_row = fixed_size(&t.to_string());
                if per_row > u128::from(MAX_CALL_OUTPUT) / 8192 {
                    return Err(DataFusionError::ResourcesExhausted(format!(
                        "arrow_cast(...) to a type of {per_row} bytes a row: a call may build at most {MAX_CALL_OUTPUT} bytes for a batch of 8192 rows"
                    )));
                }
            }
        }
        // A simplified call (concat with its arguments merged) is built on
        // the unbounded function again: put this one back in its place.
        match self.inner.simplify(args, info)? {
            ExprSimplifyResult::Simplified(Expr::ScalarFunction(f))
                if f.func.name() == self.inner.name() =>
            {
                let again = ScalarUDF::new_from_impl(Bounded {
                    inner: self.inner.clone(),
                    constants: Arc::clone(&self.constants),
                });
                Ok(ExprSimplifyResult::Simplified(Expr::ScalarFunction(
                    ScalarFunction::new_udf(Arc::new(again), f.args),
                )))
            }
            other => Ok(other),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        charge(&self.constants, self.inner.name(), self.most(&args)?, &args)?;
        self.inner.invoke_with_args(args)
    }
}

/// Replaces the session's output-growing functions by bounded ones, with
/// one budget for the calls over constants (the session is one query's).
pub fn install(ctx: &SessionContext) {
    let constants = Arc::new(AtomicU64::new(0));
    for name in BOUNDED {
        if let Ok(inner) = ctx.udf(name) {
            let inner = Arc::unwrap_or_clone(inner);
            ctx.register_udf(ScalarUDF::new_from_impl(Bounded {
                inner,
                constants: Arc::clone(&constants),
            }));
        }
    }
    ctx.register_udf(ScalarUDF::new_from_impl(StrCat {
        signature: Signature::any(2, datafusion::logical_expr::Volatility::Immutable),
        constants,
    }));
}

/// The name the `||` operator is planned under in a principal's session
/// ([`rewrite_concat_operators`]).
pub const STRCAT: &str = "tollgate_strcat";

/// `a || b` as a bounded function: an operator is not a function the
/// session can replace, so the statement's `||` are rewritten to this one
/// before planning. NULL in, NULL out, as the operator; other types are
/// concatenated as text.
#[derive(Debug)]
struct StrCat {
    signature: Signature,
    constants: Arc<AtomicU64>,
}

impl PartialEq for StrCat {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for StrCat {}

impl std::hash::Hash for StrCat {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        STRCAT.hash(state);
    }
}

impl ScalarUDFImpl for StrCat {
    fn name(&self) -> &str {
        STRCAT
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        let names: Vec<String> = args.iter().map(|a| a.schema_name().to_string()).collect();
        Ok(names.join(" || "))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows.max(1);
        let mut most: u128 = 0;
        for v in &args.args {
            most += lengths(v)?.total(rows);
        }
        charge(&self.constants, "||", most, &args)?;
        let constant = all_constant(&args);
        let text = |v: &ColumnarValue| -> Result<ArrayRef> {
            Ok(cast(&v.to_array(rows)?, &DataType::Utf8)?)
        };
        let (Some(a), Some(b)) = (args.args.first(), args.args.get(1)) else {
            return Err(DataFusionError::Plan("|| takes two operands".into()));
        };
        let out: ArrayRef =
            arrow::compute::kernels::concat_elements::concat_elements_dyn(&text(a)?, &text(b)?)?;
        if constant {
            Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::try_from_array(&out, 0)?,
            ))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

/// Counts `most` bytes against the query's constants budget (a call over
/// constants only) or the per-call limit.
fn charge(constants: &AtomicU64, name: &str, most: u128, args: &ScalarFunctionArgs) -> Result<()> {
    if all_constant(args) {
        let add = u64::try_from(most).unwrap_or(u64::MAX);
        let before = constants.fetch_add(add.min(u64::MAX / 2), Ordering::Relaxed);
        if before.saturating_add(add) > MAX_CONSTANT_OUTPUT {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "{name}(...) over constants would bring what they build to over {MAX_CONSTANT_OUTPUT} bytes, the most a call may build for one query"
            )));
        }
    } else if most > u128::from(MAX_CALL_OUTPUT) {
        return Err(DataFusionError::ResourcesExhausted(format!(
            "{name}(...) could build {most} bytes for one batch of rows, over the {MAX_CALL_OUTPUT} a call may build"
        )));
    }
    Ok(())
}

/// Rewrites every `a || b` of `statement` to `tollgate_strcat(a, b)`, the
/// bounded form [`install`] registers.
pub fn rewrite_concat_operators(statement: &mut datafusion::sql::sqlparser::ast::Statement) {
    use datafusion::sql::sqlparser::ast::{
        visit_expressions_mut, BinaryOperator, Expr as SqlExpr, FunctionArg, FunctionArgExpr,
        FunctionArgumentList, FunctionArguments, Ident, ObjectName,
    };
    let _ = visit_expressions_mut(statement, |e: &mut SqlExpr| {
        if let SqlExpr::BinaryOp {
            op: BinaryOperator::StringConcat,
            ..
        } = e
        {
            let placeholder = SqlExpr::value(datafusion::sql::sqlparser::ast::Value::Null);
            if let SqlExpr::BinaryOp { left, right, .. } = std::mem::replace(e, placeholder) {
                let arg = |x: Box<SqlExpr>| FunctionArg::Unnamed(FunctionArgExpr::Expr(*x));
                *e = SqlExpr::Function(datafusion::sql::sqlparser::ast::Function {
                    name: ObjectName::from(vec![Ident::new(STRCAT)]),
                    uses_odbc_syntax: false,
                    parameters: FunctionArguments::None,
                    args: FunctionArguments::List(FunctionArgumentList {
                        duplicate_treatment: None,
                        args: vec![arg(left), arg(right)],
                        clauses: Vec::new(),
                    }),
                    filter: None,
                    null_treatment: None,
                    over: None,
                    within_group: Vec::new(),
                });
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
}
