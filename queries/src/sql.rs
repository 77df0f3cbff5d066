//! Ad-hoc SQL for a principal: only a single query statement is accepted
//! (no DDL, DML, `COPY`, `SET`, `SHOW`, `EXPLAIN`, `CREATE EXTERNAL TABLE`);
//! it is planned and run in the principal's session, where
//! [`TenantScope`](crate::scope::TenantScope) scopes every table scan.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement};
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{Statement as SqlStatement, TableFactor, Visit, Visitor};

use crate::scope::forbidden_in;

/// Why a query did not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// Not allowed for this principal or never allowed (HTTP 403).
    Refused(String),
    /// Not valid SQL, or names something that does not exist (HTTP 400).
    Invalid(String),
    /// Failed while running (HTTP 500).
    Failed(String),
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryError::Refused(m) => write!(f, "refused: {m}"),
            QueryError::Invalid(m) => write!(f, "invalid query: {m}"),
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
            QueryError::Failed(_) => "error",
        }
    }
}

/// Sorts a DataFusion error into refused, invalid or failed.
pub fn classify(e: DataFusionError) -> QueryError {
    if let Some(f) = forbidden_in(&e) {
        return QueryError::Refused(f.0);
    }
    match e.find_root() {
        DataFusionError::Plan(_)
        | DataFusionError::SQL(..)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(_)
        | DataFusionError::Configuration(_) => QueryError::Invalid(e.to_string()),
        _ => QueryError::Failed(e.to_string()),
    }
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

/// Accepts exactly one query statement.
pub fn check_statement(sql: &str) -> Result<(), QueryError> {
    let statements = DFParser::parse_sql(sql).map_err(|e| QueryError::Invalid(e.to_string()))?;
    if statements.len() != 1 {
        return Err(QueryError::Invalid(format!(
            "send exactly one statement ({} given)",
            statements.len()
        )));
    }
    let kind = match &statements[0] {
        Statement::Statement(s) => match s.as_ref() {
            SqlStatement::Query(_) => return check_sources(s),
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

/// Runs `sql` in `session` (a principal's scoped session), returning at
/// most `max_rows` rows.
pub async fn run(
    session: &SessionContext,
    sql: &str,
    max_rows: usize,
) -> Result<QueryResult, QueryError> {
    check_statement(sql)?;
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let df = session
        .sql_with_options(sql, options)
        .await
        .map_err(classify)?;
    let schema = df.schema().inner().clone();
    let df = df
        .limit(0, Some(max_rows.saturating_add(1)))
        .map_err(classify)?;
    let mut batches = df.collect().await.map_err(classify)?;
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

    #[test]
    fn only_queries_pass() {
        assert!(check_statement("SELECT 1").is_ok());
        assert!(check_statement("WITH a AS (SELECT 1) SELECT * FROM a").is_ok());
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
            match check_statement(sql) {
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
                matches!(check_statement(sql), Err(QueryError::Refused(_))),
                "{sql}"
            );
        }
        assert!(matches!(
            check_statement("SELECT 1; SELECT 2"),
            Err(QueryError::Invalid(_))
        ));
    }
}
