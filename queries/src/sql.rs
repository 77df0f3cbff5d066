//! Ad-hoc SQL for a principal: only a single query statement is accepted
//! (no DDL, DML, `COPY`, `SET`, `SHOW`, `EXPLAIN`, `CREATE EXTERNAL TABLE`),
//! within the [`QueryLimits`] (text length, expression depth and plan size
//! checked on the parsed statement before planning; time and memory while it
//! runs); it is planned and run in the principal's session, whose tables are
//! behind the scope wall ([`crate::wall`]).
//!
//! Errors are split by phase. Planning reads no row, so a planning error
//! quotes only the caller's own SQL and is answered as it is (400). A
//! failure while running may have been raised on a row's value, so its text
//! is never answered: the caller gets the kind of failure, the function and
//! the columns it was applied to (found in the caller's SQL), and 400; a
//! fault of the server's own (storage, internal) is 500 without detail.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::StreamExt;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement};
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, DataType as SqlType, Expr as SqlExpr, Statement as SqlStatement, TableFactor,
    Visit, Visitor,
};

use crate::scope::forbidden_in;
use crate::QueryLimits;

/// Why a query did not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// Not allowed for this principal or never allowed (HTTP 403).
    Refused(String),
    /// Not valid SQL, names something that does not exist, or failed on
    /// a value while running (HTTP 400).
    Invalid(String),
    /// Past one of the [`QueryLimits`] (HTTP 400).
    Limit(String),
    /// The server's own fault (HTTP 500).
    Failed(String),
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryError::Refused(m) => write!(f, "refused: {m}"),
            QueryError::Invalid(m) => write!(f, "invalid query: {m}"),
            QueryError::Limit(m) => write!(f, "over a limit: {m}"),
            QueryError::Failed(m) => write!(f, "query failed: {m}"),
        }
    }
}

impl QueryError {
    /// The outcome's name in the audit log.
    pub fn outcome(&self) -> &'static str {
        match self {
            QueryError::Refused(_) => "refused",
            QueryError::Invalid(_) => "invalid",
            QueryError::Limit(_) => "limit",
            QueryError::Failed(_) => "error",
        }
    }
}

/// Whether the root of `e` is a fault of the server's own: storage,
/// Parquet decoding, an internal error or a panicked task.
fn server_fault(e: &DataFusionError) -> bool {
    matches!(
        e.find_root(),
        DataFusionError::IoError(_)
            | DataFusionError::ObjectStore(_)
            | DataFusionError::ParquetError(_)
            | DataFusionError::Internal(_)
            | DataFusionError::ExecutionJoin(_)
            | DataFusionError::External(_)
            | DataFusionError::Substrait(_)
    ) || matches!(
        e.find_root(),
        DataFusionError::ArrowError(a, _) if matches!(**a, ArrowError::IoError(..) | ArrowError::ExternalError(_))
    )
}

const SERVER_FAULT: &str = "the server could not complete the query (a storage or internal fault, logged under this request's query id); retry, and tell the operator if it persists";

/// Sorts an error raised while *planning* (no row read yet) into refused,
/// invalid (the text quotes only the caller's SQL) or the server's fault.
pub fn classify(e: DataFusionError) -> QueryError {
    if let Some(f) = forbidden_in(&e) {
        return QueryError::Refused(f.0);
    }
    if server_fault(&e) {
        tracing::warn!(error = %e, "query planning failed");
        return QueryError::Failed(SERVER_FAULT.into());
    }
    if let Some(limit) = exhausted(&e) {
        return limit;
    }
    QueryError::Invalid(e.to_string())
}

/// A query over the memory limit, or a bounded function over its output
/// limit ([`crate::bounded`]).
fn exhausted(e: &DataFusionError) -> Option<QueryError> {
    let DataFusionError::ResourcesExhausted(m) = e.find_root() else {
        return None;
    };
    Some(QueryError::Limit(if m.contains("a call may build") {
        m.clone()
    } else {
        "the query needs more memory than server.limits.max_memory_mib allows: aggregate or filter more, or ask for fewer rows".into()
    }))
}

/// What kind of failure a running query met (never its text, which may
/// quote a row's value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Cast,
    Division,
    Overflow,
    Regex,
    Timestamp,
    Other,
}

impl Failure {
    fn of(e: &DataFusionError) -> Self {
        let text = e.to_string().to_lowercase();
        if let DataFusionError::ArrowError(a, _) = e.find_root() {
            match **a {
                ArrowError::DivideByZero => return Failure::Division,
                ArrowError::ArithmeticOverflow(_) => return Failure::Overflow,
                ArrowError::CastError(_) if !text.contains("timestamp") => return Failure::Cast,
                _ => {}
            }
        }
        if text.contains("divide by zero") || text.contains("division by zero") {
            Failure::Division
        } else if text.contains("overflow") {
            Failure::Overflow
        } else if text.contains("regex") || text.contains("regular expression") {
            Failure::Regex
        } else if text.contains("timestamp")
            || text.contains("datetime")
            || text.contains("parsing date")
            || text.contains("parser error")
        {
            Failure::Timestamp
        } else if text.contains("cast") {
            Failure::Cast
        } else {
            Failure::Other
        }
    }

    fn what(self) -> &'static str {
        match self {
            Failure::Cast => "a CAST could not convert a value",
            Failure::Division => "a division by zero",
            Failure::Overflow => "an arithmetic overflow",
            Failure::Regex => "a regular expression that does not compile",
            Failure::Timestamp => "a value that is not a valid timestamp or date",
            Failure::Other => "a function failed on a value",
        }
    }
}

/// Sorts an error raised while *running* (rows read): refused, over the
/// memory limit, the server's fault, or a failure on a value, described by
/// its kind, function and columns (from `sql`, the caller's own text) but
/// never by the error's text.
pub fn classify_running(e: DataFusionError, sql: Option<&str>) -> QueryError {
    if let Some(f) = forbidden_in(&e) {
        return QueryError::Refused(f.0);
    }
    if let Some(limit) = exhausted(&e) {
        return limit;
    }
    if server_fault(&e) {
        tracing::warn!(error = %e, "query failed while running");
        return QueryError::Failed(SERVER_FAULT.into());
    }
    let kind = Failure::of(&e);
    let raw = e.to_string().to_lowercase();
    drop(e);
    let hint = sql.map(|s| culprits(s, kind, &raw)).unwrap_or_default();
    QueryError::Invalid(format!(
        "the query failed while running: {}{hint}. Values are not quoted in errors; guard the expression (TRY_CAST, NULLIF, CASE) or filter the rows first",
        kind.what()
    ))
}

/// The expressions of `sql` that can raise `kind`, with their columns:
/// ` (in CAST(... AS INT) over column team)`.
fn culprits(sql: &str, kind: Failure, raw_error: &str) -> String {
    struct Find<'a> {
        kind: Failure,
        raw: &'a str,
        found: BTreeSet<(String, Vec<String>)>,
    }
    fn columns(e: &SqlExpr) -> Vec<String> {
        struct Cols(BTreeSet<String>);
        impl Visitor for Cols {
            type Break = ();
            fn pre_visit_expr(&mut self, e: &SqlExpr) -> ControlFlow<()> {
                match e {
                    SqlExpr::Identifier(i) => {
                        self.0.insert(i.value.clone());
                    }
                    SqlExpr::CompoundIdentifier(p) => {
                        if let Some(last) = p.last() {
                            self.0.insert(last.value.clone());
                        }
                    }
                    _ => {}
                }
                ControlFlow::Continue(())
            }
        }
        let mut c = Cols(BTreeSet::new());
        let _ = e.visit(&mut c);
        c.0.into_iter().collect()
    }
    fn is_time(t: &SqlType) -> bool {
        let s = t.to_string().to_uppercase();
        s.contains("TIMESTAMP") || s.contains("DATE") || s.contains("TIME")
    }
    impl Visitor for Find<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &SqlExpr) -> ControlFlow<()> {
            let hit: Option<(String, Vec<String>)> = match (self.kind, e) {
                (
                    Failure::Cast,
                    SqlExpr::Cast {
                        data_type, expr, ..
                    },
                ) if !is_time(data_type) => {
                    Some((format!("CAST(... AS {data_type})"), columns(expr)))
                }
                (
                    Failure::Timestamp,
                    SqlExpr::Cast {
                        data_type, expr, ..
                    },
                ) if is_time(data_type) => {
                    Some((format!("CAST(... AS {data_type})"), columns(expr)))
                }
                (Failure::Division, SqlExpr::BinaryOp { op, right, .. })
                    if matches!(op, BinaryOperator::Divide | BinaryOperator::Modulo) =>
                {
                    Some((format!("the divisor of {op}"), columns(right)))
                }
                (Failure::Overflow, SqlExpr::BinaryOp { op, .. })
                    if matches!(
                        op,
                        BinaryOperator::Plus | BinaryOperator::Minus | BinaryOperator::Multiply
                    ) =>
                {
                    Some((format!("{op}"), columns(e)))
                }
                (Failure::Regex, SqlExpr::BinaryOp { op, right, .. })
                    if matches!(
                        op,
                        BinaryOperator::PGRegexMatch
                            | BinaryOperator::PGRegexIMatch
                            | BinaryOperator::PGRegexNotMatch
                            | BinaryOperator::PGRegexNotIMatch
                    ) =>
                {
                    Some((format!("the pattern of {op}"), columns(right)))
                }
                (Failure::Regex, SqlExpr::SimilarTo { pattern, .. }) => {
                    Some(("SIMILAR TO".to_string(), columns(pattern)))
                }
                (Failure::Regex, SqlExpr::RLike { pattern, .. }) => {
                    Some(("RLIKE".to_string(), columns(pattern)))
                }
                (kind, SqlExpr::Function(f)) => {
                    let name = f.name.to_string().to_lowercase();
                    let relevant = match kind {
                        Failure::Regex => name.starts_with("regexp_"),
                        Failure::Timestamp => {
                            name.starts_with("to_timestamp")
                                || name.starts_with("to_date")
                                || name.starts_with("date_")
                                || name == "to_unixtime"
                                || name == "make_date"
                        }
                        Failure::Cast => name == "arrow_cast",
                        _ => false,
                    } || self.raw.contains(&name);
                    relevant.then(|| (format!("{name}(...)"), columns(e)))
                }
                _ => None,
            };
            if let Some(h) = hit {
                self.found.insert(h);
            }
            ControlFlow::Continue(())
        }
    }
    let Ok(statements) = DFParser::parse_sql(sql) else {
        return String::new();
    };
    let mut f = Find {
        kind,
        raw: raw_error,
        found: BTreeSet::new(),
    };
    for st in &statements {
        if let Statement::Statement(s) = st {
            let _ = s.visit(&mut f);
        }
    }
    if f.found.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = f
        .found
        .into_iter()
        .take(5)
        .map(|(what, cols)| match cols.len() {
            0 => what,
            1 => format!("{what} over column {}", cols[0]),
            _ => format!("{what} over columns {}", cols.join(", ")),
        })
        .collect();
    format!(" (in {})", parts.join("; "))
}

/// A query's result.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// Columns.
    pub schema: SchemaRef,
    /// Rows, at most the limit.
    pub batches: Vec<RecordBatch>,
    /// Rows returned.
    pub rows: usize,
    /// More rows existed than the limit.
    pub truncated: bool,
}

/// The stack the statement check runs on: a statement within
/// `max_sql_bytes` can nest tens of thousands of operators (`1+1+...`),
/// and walking (and dropping) its syntax tree recurses once per level.
const CHECK_STACK: usize = 256 << 20;

/// Runs `f` on a thread of its own with [`CHECK_STACK`] bytes of stack;
/// `None` if the thread could not start or `f` panicked.
fn on_big_stack<T: Send>(f: impl FnOnce() -> T + Send) -> Option<T> {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("tollgate-sql-check".into())
            .stack_size(CHECK_STACK)
            .spawn_scoped(s, f)
            .ok()?
            .join()
            .ok()
    })
}

/// Accepts exactly one query statement within `limits` (text length,
/// expression depth, plan size), before anything is planned, and gives it
/// back parsed.
pub fn check_statement(sql: &str, limits: &QueryLimits) -> Result<Statement, QueryError> {
    if sql.len() > limits.max_sql_bytes {
        return Err(QueryError::Limit(format!(
            "the SQL is {} bytes, over server.limits.max_sql_bytes = {}",
            sql.len(),
            limits.max_sql_bytes
        )));
    }
    on_big_stack(|| check_parsed(sql, limits)).unwrap_or_else(|| {
        Err(QueryError::Failed(
            "the statement could not be checked (internal error)".into(),
        ))
    })
}

fn check_parsed(sql: &str, limits: &QueryLimits) -> Result<Statement, QueryError> {
    let mut statements = DFParser::parse_sql(sql).map_err(|e| {
        let m = e.to_string();
        if m.contains("RecursionLimitExceeded") || m.contains("recursion limit") {
            QueryError::Limit(format!(
                "the SQL nests deeper than the parser allows (50 levels of parentheses, subqueries or function calls): {m}"
            ))
        } else {
            QueryError::Invalid(m)
        }
    })?;
    if statements.len() != 1 {
        return Err(QueryError::Invalid(format!(
            "send exactly one statement ({} given)",
            statements.len()
        )));
    }
    let kind = match &statements[0] {
        Statement::Statement(s) => match s.as_ref() {
            SqlStatement::Query(_) => {
                let size = crate::statement_size::measure(
                    s.as_ref(),
                    limits.max_expr_depth,
                    limits.max_plan_nodes,
                );
                let depth = limits.max_expr_depth;
                if size.depth > depth {
                    return Err(QueryError::Limit(format!(
                        "expressions and subqueries nest more than server.limits.max_expr_depth = {depth} levels deep (a chain a + b + c counts one level per operator; use IN (...) instead of long OR chains)"
                    )));
                }
                if size.relations > depth as u128 {
                    return Err(QueryError::Limit(format!(
                        "the statement joins or combines (UNION, EXCEPT, INTERSECT) more than server.limits.max_expr_depth = {depth} tables, subqueries and set operations (each reference to a CTE counts what the CTE holds)"
                    )));
                }
                if size.merged_depth > 4 * depth as u128 {
                    return Err(QueryError::Limit(format!(
                        "stacked queries and CTEs merge into expressions deeper than 4 x server.limits.max_expr_depth = {} levels",
                        4 * depth
                    )));
                }
                if size.nodes > limits.max_plan_nodes
                    || size.planned_nodes > limits.max_plan_nodes as u128
                {
                    return Err(QueryError::Limit(format!(
                        "the statement has, or expands to when planned (CTEs once per reference; BETWEEN, IN and CASE operands repeated), more than server.limits.max_plan_nodes = {} expressions, tables and subqueries",
                        limits.max_plan_nodes
                    )));
                }
                check_sources(s)?;
                return statements
                    .pop_front()
                    .ok_or_else(|| QueryError::Invalid("no statement".into()));
            }
            other => {
                let text = other.to_string();
                text.split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ")
                    .to_uppercase()
            }
        },
        Statement::CreateExternalTable(_) => "CREATE EXTERNAL TABLE".into(),
        Statement::CopyTo(_) => "COPY".into(),
        Statement::Explain(_) => "EXPLAIN".into(),
        Statement::Reset(_) => "RESET".into(),
    };
    Err(QueryError::Refused(format!(
        "{kind} statements are refused: only queries (SELECT, WITH ... SELECT, VALUES) run here"
    )))
}

/// Refuses table functions and file or URL paths in `FROM` (even before
/// the scope rule would refuse their scans).
fn check_sources(statement: &SqlStatement) -> Result<(), QueryError> {
    struct Sources;
    impl Visitor for Sources {
        type Break = String;
        fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<String> {
            match t {
                TableFactor::Table { name, args: Some(_), .. } => ControlFlow::Break(format!(
                    "table function {name}(...) is refused: query the tables and views (GET /v1/tables)"
                )),
                TableFactor::Table { name, .. }
                    if name.0.iter().any(|p| {
                        p.as_ident().is_some_and(|i| {
                            i.quote_style == Some('\'') || i.value.contains('/') || i.value.contains(':')
                        })
                    }) =>
                {
                    ControlFlow::Break(format!(
                        "{name} looks like a file or URL: reading files and URLs is refused"
                    ))
                }
                TableFactor::Function { name, .. } => ControlFlow::Break(format!(
                    "table function {name}(...) is refused: query the tables and views (GET /v1/tables)"
                )),
                TableFactor::TableFunction { .. } => {
                    ControlFlow::Break("table functions are refused".to_string())
                }
                _ => ControlFlow::Continue(()),
            }
        }
    }
    match statement.visit(&mut Sources) {
        ControlFlow::Break(reason) => Err(QueryError::Refused(reason)),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// `plan` with every operator's output made cooperative: each batch it
/// yields spends the task's scheduling budget, so a join or aggregation
/// that computes many batches from few inputs still gives the runtime back
/// its thread regularly, and a query stopped at its time limit is dropped
/// at once rather than when it next reads a file.
fn cooperative(
    plan: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
) -> Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>, QueryError> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::physical_plan::coop::CooperativeExec;
    plan.transform_up(|p| {
        if p.children().is_empty() || p.name() == "CooperativeExec" {
            Ok(Transformed::no(p))
        } else {
            Ok(Transformed::yes(Arc::new(CooperativeExec::new(p)) as _))
        }
    })
    .map(|t| t.data)
    .map_err(classify)
}

/// The answer to a query stopped at `server.limits.timeout`.
pub fn timed_out(timeout: std::time::Duration) -> QueryError {
    QueryError::Limit(format!(
        "the query ran longer than server.limits.timeout = {timeout:?} and was stopped"
    ))
}

/// Runs `sql` in `session` (a principal's scoped session) within the
/// statement, memory and answer limits of `limits`, returning at most
/// `max_rows` rows. The time limit is the caller's ([`Reader::sql`](crate::Reader::sql)).
pub async fn run(
    session: &SessionContext,
    sql: &str,
    max_rows: usize,
    limits: &QueryLimits,
) -> Result<QueryResult, QueryError> {
    let mut statement = check_statement(sql, limits)?;
    // `||` rewritten to its bounded form (crate::bounded).
    if let Statement::Statement(s) = &mut statement {
        crate::bounded::rewrite_concat_operators(s.as_mut());
    }
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let plan = session
        .state()
        .statement_to_plan(statement)
        .await
        .map_err(classify)?;
    options.verify_plan(&plan).map_err(classify)?;
    let df = session.execute_logical_plan(plan).await.map_err(classify)?;
    let schema = df.schema().inner().clone();
    let df = df
        .limit(0, Some(max_rows.saturating_add(1)))
        .map_err(classify)?;
    let task = Arc::new(df.task_ctx());
    let plan = cooperative(df.create_physical_plan().await.map_err(classify)?)?;
    let mut stream = datafusion::physical_plan::execute_stream(plan, task)
        .map_err(|e| classify_running(e, Some(sql)))?;
    let (mut batches, mut bytes) = (Vec::new(), 0usize);
    let max_bytes = limits.max_answer_mib.saturating_mul(1 << 20);
    while let Some(b) = stream.next().await {
        let b = b.map_err(|e| classify_running(e, Some(sql)))?;
        bytes += b.get_array_memory_size();
        if bytes > max_bytes {
            return Err(QueryError::Limit(format!(
                "the answer is over server.limits.max_answer_mib = {} MiB: select fewer columns or rows",
                limits.max_answer_mib
            )));
        }
        batches.push(b);
    }
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    let truncated = total > max_rows;
    if truncated {
        let mut left = max_rows;
        for b in batches.iter_mut() {
            let n = b.num_rows().min(left);
            *b = b.slice(0, n);
            left -= n;
        }
    }
    Ok(QueryResult {
        schema,
        batches,
        rows: total.min(max_rows),
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_statement_default(sql: &str) -> Result<(), QueryError> {
        check_statement(sql, &QueryLimits::default()).map(|_| ())
    }

    /// Asserts `sql` is refused under `limits` with a reason naming `what`.
    fn refused_naming(sql: &str, limits: &QueryLimits, what: &str) {
        match check_statement(sql, limits) {
            Err(QueryError::Limit(m)) => assert!(m.contains(what), "{what}: {m}"),
            other => panic!("{what}: {other:?}"),
        }
    }

    #[test]
    fn limits_are_checked_before_planning_and_named() {
        let l = QueryLimits::default();
        let wider = QueryLimits {
            max_sql_bytes: 1 << 20,
            ..QueryLimits::default()
        };
        let chain = |n: usize| format!("SELECT {}", vec!["1"; n].join("+"));
        // The query is one level and a chain of n terms n more. At the
        // depth limit: accepted; one past it, and the longest chain the
        // text limit allows: refused with the limit's name.
        assert!(check_statement(&chain(l.max_expr_depth - 1), &l).is_ok());
        refused_naming(&chain(l.max_expr_depth), &l, "max_expr_depth");
        let longest = chain((l.max_sql_bytes - 7) / 2);
        assert!(longest.len() <= l.max_sql_bytes);
        refused_naming(&longest, &l, "max_expr_depth");
        refused_naming(&chain(l.max_sql_bytes), &l, "max_sql_bytes");
        let wide = format!("SELECT 1 WHERE 1 IN ({})", vec!["1"; 30_000].join(","));
        refused_naming(&wide, &wider, "max_plan_nodes");
        let joins = format!(
            "WITH x AS (SELECT 1 AS v) SELECT count(*) FROM {}",
            (0..9000)
                .map(|i| format!("x a{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        refused_naming(&joins, &wider, "joins or combines");
        let except = vec!["SELECT 1"; 4000].join(" EXCEPT ");
        refused_naming(&except, &l, "joins or combines");
        let doubling = crate::statement_size::doubling_ctes(30);
        refused_naming(&doubling, &l, "joins or combines");
        let between = format!(
            "WITH v(c) AS (VALUES (1)) SELECT c{} FROM v",
            " BETWEEN false AND true".repeat(60)
        );
        refused_naming(&between, &l, "max_plan_nodes");
        let many_nodes = QueryLimits {
            max_plan_nodes: 1 << 20,
            ..l.clone()
        };
        let stacked = crate::statement_size::stacked_ctes(78, 125);
        refused_naming(&stacked, &many_nodes, "merge into expressions");
        let parens = format!("SELECT {}1{}", "(".repeat(200), ")".repeat(200));
        refused_naming(&parens, &l, "nests deeper");
    }

    #[test]
    fn a_failure_on_a_value_names_the_expression_not_the_value() {
        let e = DataFusionError::ArrowError(
            Box::new(ArrowError::CastError(
                "Cannot cast string 'globex/vision' to value of Int32 type".into(),
            )),
            None,
        );
        let sql = "SELECT count(*) FROM events WHERE CAST(CASE WHEN tenant <> 'x' THEN tenant || team ELSE '0' END AS INT) = 0";
        match classify_running(e, Some(sql)) {
            QueryError::Invalid(m) => {
                assert!(!m.contains("globex") && !m.contains("vision"), "{m}");
                assert!(
                    m.contains("CAST(... AS INT) over columns team, tenant"),
                    "{m}"
                );
            }
            other => panic!("{other:?}"),
        }
        let e = DataFusionError::ArrowError(Box::new(ArrowError::DivideByZero), None);
        match classify_running(e, Some("SELECT 1 / (length(team) - 6) FROM events")) {
            QueryError::Invalid(m) => {
                assert!(m.contains("division by zero") && m.contains("team"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        let e = DataFusionError::ObjectStore(Box::new(object_store_error()));
        assert!(matches!(classify_running(e, None), QueryError::Failed(_)));
    }

    fn object_store_error() -> datafusion::object_store::Error {
        datafusion::object_store::Error::NotFound {
            path: "tables/events/x.parquet".into(),
            source: "gone".into(),
        }
    }

    #[test]
    fn only_queries_pass() {
        assert!(check_statement_default("SELECT 1").is_ok());
        assert!(check_statement_default("WITH a AS (SELECT 1) SELECT * FROM a").is_ok());
        for (sql, kind) in [
            ("CREATE TABLE x AS SELECT 1", "CREATE TABLE"),
            ("INSERT INTO events VALUES (1)", "INSERT INTO"),
            ("COPY events TO '/tmp/x.parquet'", "COPY"),
            ("SET datafusion.execution.batch_size = 1", "SET"),
            ("SHOW TABLES", "SHOW TABLES"),
            ("EXPLAIN SELECT 1", "EXPLAIN"),
            (
                "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/etc'",
                "CREATE EXTERNAL TABLE",
            ),
            ("DROP VIEW costed_usage", "DROP VIEW"),
        ] {
            match check_statement_default(sql) {
                Err(QueryError::Refused(m)) => assert!(m.starts_with(kind), "{sql}: {m}"),
                other => panic!("{sql}: {other:?}"),
            }
        }
        for sql in [
            "SELECT * FROM read_parquet('/etc/passwd')",
            "SELECT * FROM '/etc/passwd'",
            "SELECT * FROM generate_series(1, 3)",
            "SELECT * FROM events WHERE event_id IN (SELECT * FROM range(3))",
        ] {
            assert!(
                matches!(check_statement_default(sql), Err(QueryError::Refused(_))),
                "{sql}"
            );
        }
        assert!(matches!(
            check_statement_default("SELECT 1; SELECT 2"),
            Err(QueryError::Invalid(_))
        ));
    }
}
