//! Row-level security in the data layer: [`TenantScope`] is a DataFusion
//! analyzer rule installed in a principal's session. Every plan that session
//! runs (the SQL endpoint, `tollgate sql`, every report) passes through it
//! before optimisation: each `TableScan` of a scoped table gets a `Filter`
//! with the principal's predicate directly above it, in the plan's main
//! body and in every subquery (views are already expanded into their
//! tables by then, so views, joins, CTEs, UNION and window functions are all
//! covered). A scan of a table without a declared scope is refused: a new
//! table is unreadable until [`TABLES`] says how it is scoped.

use std::sync::Arc;

use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, DataFusionError, TableReference};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::{
    lit, Expr, Filter, LogicalPlan, LogicalPlanBuilder, TableScan, TableScanBuilder,
};
use datafusion::optimizer::AnalyzerRule;

use crate::principal::{Forbidden, Scope};

/// How a table's rows are scoped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableScope {
    /// `tenant` and `team` columns: team roles read their teams' rows,
    /// organisation roles their organisation's.
    TenantTeam,
    /// A `tenant` column only: organisation roles read their organisation's
    /// rows; team roles are refused.
    TenantOnly,
    /// Reference data without tenant rows (the price book).
    Public,
}

/// Every table a principal's session may scan, and how it is scoped.
pub const TABLES: &[(&str, TableScope, &str)] = &[
    (
        "events",
        TableScope::TenantTeam,
        "every stored event (envelope)",
    ),
    (
        "tool_calls",
        TableScope::TenantTeam,
        "tool calls, start and end phases",
    ),
    ("gpu_usage", TableScope::TenantTeam, "GPU usage intervals"),
    (
        "dead_letters",
        TableScope::TenantOnly,
        "rejected records with the reason (payload redacted)",
    ),
    (
        "alerts",
        TableScope::TenantTeam,
        "quota and anomaly alerts raised",
    ),
    (
        "query_log",
        TableScope::TenantTeam,
        "the query audit: every query and report request",
    ),
    (
        "facet_rollup_files",
        TableScope::TenantTeam,
        "hourly rollups (read by the reports)",
    ),
    (
        "facet_rollup_tail",
        TableScope::TenantTeam,
        "hourly facets of the commit records the rollups do not cover yet (read by the reports)",
    ),
    ("gpu_rates", TableScope::Public, "price book: GPU rates"),
    ("token_rates", TableScope::Public, "price book: token rates"),
    (
        "tool_fees",
        TableScope::Public,
        "price book: per-call tool fees",
    ),
];

/// The scope of table `name`, if it has one.
pub fn table_scope(name: &str) -> Option<TableScope> {
    TABLES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, s, _)| *s)
}

/// The analyzer rule that injects a principal's row filter.
#[derive(Debug)]
pub struct TenantScope {
    scope: Scope,
}

impl TenantScope {
    /// The rule for `scope`.
    pub fn new(scope: Scope) -> Self {
        Self { scope }
    }

    fn forbid(msg: String) -> DataFusionError {
        DataFusionError::External(Box::new(ForbiddenError(Forbidden(msg))))
    }

    /// The predicate over the scan's (qualified) columns.
    fn predicate(&self, table: &TableReference, scope: TableScope) -> Option<Expr> {
        let c = |name: &str| Expr::Column(Column::new(Some(table.clone()), name));
        let tenant = c("tenant").eq(lit(self.scope.org.clone()));
        match (scope, &self.scope.teams) {
            (TableScope::Public, _) => None,
            (_, None) => Some(tenant),
            (_, Some(teams)) => {
                let list = teams.iter().map(|t| lit(t.clone())).collect();
                Some(tenant.and(c("team").in_list(list, false)))
            }
        }
    }

    fn guard(&self, scan: TableScan) -> datafusion::error::Result<Transformed<LogicalPlan>> {
        let name = scan.table_name.clone();
        if name.schema().is_some_and(|s| s != "public")
            || name.catalog().is_some_and(|c| c != "datafusion")
        {
            return Err(Self::forbid(format!(
                "{name} is not readable: catalog listings (information_schema) and other schemas are refused; GET /v1/tables lists what you can query"
            )));
        }
        if scan.source.get_logical_plan().is_some() {
            return Err(Self::forbid(format!(
                "{name} is a view that was not expanded into its tables; refused"
            )));
        }
        let Some(kind) = table_scope(name.table()) else {
            return Err(Self::forbid(format!(
                "{name} has no tenant scope and cannot be read (table functions, files and URLs are refused; GET /v1/tables lists what you can query)"
            )));
        };
        if kind == TableScope::TenantOnly && self.scope.teams.is_some() {
            return Err(Self::forbid(format!(
                "{name} has no team column: only organisation-wide roles (admin, finance, auditor) read it"
            )));
        }
        let Some(pred) = self.predicate(&name, kind) else {
            return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
        };
        // The filter needs `tenant` and `team` from the scan; a scan that
        // projected them away is widened and projected back afterwards.
        let wanted: Vec<Expr> = scan
            .projected_schema
            .columns()
            .into_iter()
            .map(Expr::Column)
            .collect();
        let covers = |c: &str| scan.projected_schema.has_column_with_unqualified_name(c);
        let narrowed = !(covers("tenant") && (kind != TableScope::TenantTeam || covers("team")));
        let scan = if narrowed {
            LogicalPlan::TableScan(
                TableScanBuilder::new(name.clone(), Arc::clone(&scan.source))
                    .with_filters(scan.filters.clone())
                    .with_fetch(scan.fetch)
                    .build()?,
            )
        } else {
            LogicalPlan::TableScan(scan)
        };
        let filtered = LogicalPlan::Filter(Filter::try_new(pred, Arc::new(scan))?);
        let plan = if narrowed {
            LogicalPlanBuilder::from(filtered)
                .project(wanted)?
                .build()?
        } else {
            filtered
        };
        Ok(Transformed::yes(plan))
    }
}

impl AnalyzerRule for TenantScope {
    fn analyze(
        &self,
        plan: LogicalPlan,
        _config: &ConfigOptions,
    ) -> datafusion::error::Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| match node {
            LogicalPlan::TableScan(scan) => self.guard(scan),
            other => Ok(Transformed::no(other)),
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "tollgate_tenant_scope"
    }
}

/// A refused scan, carried through DataFusion's error.
#[derive(Debug)]
pub struct ForbiddenError(pub Forbidden);

impl std::fmt::Display for ForbiddenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "forbidden: {}", self.0)
    }
}

impl std::error::Error for ForbiddenError {}

/// The refusal inside a DataFusion error, if the scope rule refused.
pub fn forbidden_in(e: &DataFusionError) -> Option<Forbidden> {
    match e {
        DataFusionError::External(b) => b.downcast_ref::<ForbiddenError>().map(|f| f.0.clone()),
        DataFusionError::Context(_, inner) => forbidden_in(inner),
        DataFusionError::Shared(inner) => forbidden_in(inner),
        DataFusionError::Diagnostic(_, inner) => forbidden_in(inner),
        DataFusionError::Collection(v) => v.iter().find_map(forbidden_in),
        _ => None,
    }
}
