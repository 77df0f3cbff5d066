//! The scope wall: rows outside a principal's scope never leave the scan.
//!
//! A principal's session does not hold the ledger's tables directly: its
//! default schema is a [`ScopedSchema`], and every table registered in it
//! (the raw tables, the audit tables, the rollups, and the tables the views
//! were planned over) is handed out wrapped in a [`ScopedTable`]. Its scan
//! is a [`ScopedScanExec`], a leaf of the physical plan that reads the
//! underlying files and drops every row whose `tenant` (and `team`) is
//! outside the scope before it yields a batch:
//!
//! ```text
//!  user's Filter / Join / Projection / Aggregate ...   (any expression the user wrote)
//!          ^  only in-scope rows, Kafka offsets nulled
//!  ScopedScanExec   tenant = org AND team IN (teams)   (leaf: optimizers see nothing below)
//!          ^  (hidden) Parquet scan, pruned by dt
//! ```
//!
//! Because the scope is applied inside a leaf, no optimizer rule can merge
//! it with, reorder it after, or push it under a user predicate: logical
//! filter pushdown only ever hands the provider filters that are pure
//! column-to-literal comparisons ([`prunable`]), which are used to prune
//! `dt` partitions and are evaluated again above the scan;
//! physical filter, projection and limit pushdown stop at a node that does
//! not implement them. The analyzer rule [`TenantScope`](crate::scope::TenantScope)
//! stays as a second line.

use std::fmt;
use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, BooleanArray, RecordBatch, StringArray};
use arrow::compute::kernels::boolean::{and_kleene, or_kleene};
use arrow::compute::kernels::cmp::eq;
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider, Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::DataFusionError;
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{col, lit, Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::limit::GlobalLimitExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;

use crate::principal::{Forbidden, Scope};
use crate::scope::{table_scope, ForbiddenError, TableScope};

/// Columns no scoped principal reads: a Kafka offset or partition counts
/// every record of every tenant on the shared topic, so one's own rows'
/// offsets would tell how much everyone else sent. They read as NULL.
pub const HIDDEN_COLUMNS: &[&str] = &["kafka_partition", "kafka_offset"];

fn forbidden(msg: String) -> DataFusionError {
    DataFusionError::External(Box::new(ForbiddenError(Forbidden(msg))))
}

/// A session's default schema that hands out every table behind the wall.
#[derive(Debug)]
pub struct ScopedSchema {
    inner: MemorySchemaProvider,
    scope: Scope,
}

impl ScopedSchema {
    /// An empty schema whose tables are read within `scope`.
    pub fn new(scope: Scope) -> Self {
        Self {
            inner: MemorySchemaProvider::new(),
            scope,
        }
    }
}

#[async_trait]
impl SchemaProvider for ScopedSchema {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(t) = self.inner.table(name).await? else {
            return Ok(None);
        };
        // A view was planned in this schema, so its scans are scoped tables.
        if t.get_logical_plan().is_some() {
            return Ok(Some(t));
        }
        match table_scope(name) {
            Some(TableScope::Public) => Ok(Some(t)),
            Some(kind) => Ok(Some(Arc::new(ScopedTable::new(
                name,
                t,
                kind,
                self.scope.clone(),
            )))),
            None => Err(forbidden(format!(
                "{name} has no tenant scope and cannot be read (GET /v1/tables lists what you can query)"
            ))),
        }
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        self.inner.register_table(name, table)
    }

    fn deregister_table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        self.inner.deregister_table(name)
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

/// A table read through the wall: its scan yields only in-scope rows, with
/// the [`HIDDEN_COLUMNS`] nulled.
#[derive(Debug)]
pub struct ScopedTable {
    name: String,
    inner: Arc<dyn TableProvider>,
    kind: TableScope,
    scope: Scope,
    schema: SchemaRef,
}

impl ScopedTable {
    /// `inner` (table `name`, scoped as `kind`) read within `scope`.
    pub fn new(name: &str, inner: Arc<dyn TableProvider>, kind: TableScope, scope: Scope) -> Self {
        let s = inner.schema();
        let fields: Vec<Field> = s
            .fields()
            .iter()
            .map(|f| {
                let f = f.as_ref().clone();
                if HIDDEN_COLUMNS.contains(&f.name().as_str()) {
                    f.with_nullable(true)
                } else {
                    f
                }
            })
            .collect();
        let schema = Arc::new(Schema::new_with_metadata(fields, s.metadata().clone()));
        Self {
            name: name.to_string(),
            inner,
            kind,
            scope,
            schema,
        }
    }

    /// The scope as a predicate over the table's columns (for pruning).
    fn scope_predicate(&self) -> Expr {
        let tenant = col("tenant").eq(lit(self.scope.org.clone()));
        match (&self.kind, &self.scope.teams) {
            (TableScope::TenantTeam, Some(teams)) => tenant
                .and(col("team").in_list(teams.iter().map(|t| lit(t.clone())).collect(), false)),
            _ => tenant,
        }
    }
}

/// Whether `e` can be handed to the file scan for pruning: only columns,
/// literals, comparisons and boolean logic, which cannot fail on a value
/// (and are evaluated again above the scan, on in-scope rows only).
pub fn prunable(e: &Expr) -> bool {
    use datafusion::logical_expr::{Between, BinaryExpr, Operator};
    match e {
        Expr::Column(_) | Expr::Literal(..) => true,
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            matches!(
                op,
                Operator::Eq
                    | Operator::NotEq
                    | Operator::Lt
                    | Operator::LtEq
                    | Operator::Gt
                    | Operator::GtEq
                    | Operator::And
                    | Operator::Or
                    | Operator::IsDistinctFrom
                    | Operator::IsNotDistinctFrom
            ) && prunable(left)
                && prunable(right)
        }
        Expr::Not(e) | Expr::IsNull(e) | Expr::IsNotNull(e) => prunable(e),
        Expr::Between(Between {
            expr, low, high, ..
        }) => {
            prunable(expr)
                && matches!(**low, Expr::Literal(..))
                && matches!(**high, Expr::Literal(..))
        }
        Expr::InList(l) => {
            prunable(&l.expr) && l.list.iter().all(|x| matches!(x, Expr::Literal(..)))
        }
        _ => false,
    }
}

/// Whether filter `f` may be handed to the file scan: [`prunable`], and on
/// no hidden column (which reads NULL above the wall and its real value
/// below, so a filter on it must never reach the files).
fn reaches_files(f: &Expr) -> bool {
    prunable(f)
        && !f
            .column_refs()
            .iter()
            .any(|c| HIDDEN_COLUMNS.contains(&c.name.as_str()))
}

#[async_trait]
impl TableProvider for ScopedTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if reaches_files(f) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if self.kind == TableScope::TenantOnly && self.scope.teams.is_some() {
            return Err(forbidden(format!(
                "{} has no team column: only organisation-wide roles (admin, finance, auditor) read it",
                self.name
            )));
        }
        let all = self.schema.fields().len();
        let wanted: Vec<usize> = projection.cloned().unwrap_or_else(|| (0..all).collect());
        let idx = |c: &str| {
            self.schema
                .index_of(c)
                .map_err(|_| forbidden(format!("{} has no `{c}` column to scope it by", self.name)))
        };
        // What the file scan reads: the wanted columns (less the hidden
        // ones) and the scope's columns.
        let mut read: Vec<usize> = wanted
            .iter()
            .copied()
            .filter(|i| !HIDDEN_COLUMNS.contains(&self.schema.field(*i).name().as_str()))
            .collect();
        let mut need = vec![idx("tenant")?];
        if self.kind == TableScope::TenantTeam && self.scope.teams.is_some() {
            need.push(idx("team")?);
        }
        for n in &need {
            if !read.contains(n) {
                read.push(*n);
            }
        }
        let pos = |i: usize| read.iter().position(|r| *r == i);
        let outputs: Vec<Option<usize>> = wanted.iter().map(|i| pos(*i)).collect();
        let tenant_pos = pos(need[0]).unwrap_or_default();
        let team_pos = need.get(1).and_then(|t| pos(*t));
        // Only pure comparisons reach the files (pruning); the rest stays
        // above this scan, where it sees in-scope rows only. The scope is
        // offered too, for a source that prunes by it.
        let mut pushed: Vec<Expr> = filters
            .iter()
            .filter(|f| reaches_files(f))
            .cloned()
            .collect();
        pushed.push(self.scope_predicate());
        let inner = self.inner.scan(state, Some(&read), &pushed, None).await?;
        let schema = Arc::new(self.schema.project(&wanted)?);
        let walled: Arc<dyn ExecutionPlan> = Arc::new(ScopedScanExec::new(
            &self.name,
            inner,
            schema,
            outputs,
            tenant_pos,
            team_pos,
            &self.scope,
        ));
        // A limit applies to the rows in scope, so it is applied above the
        // wall (the file scan never gets it).
        Ok(match limit {
            None => walled,
            Some(n) => Arc::new(GlobalLimitExec::new(
                Arc::new(CoalescePartitionsExec::new(walled)),
                0,
                Some(n),
            )),
        })
    }
}

/// The wall's physical scan: a leaf that runs the (hidden) file scan and
/// yields only the rows of the scope.
pub struct ScopedScanExec {
    table: String,
    inner: Arc<dyn ExecutionPlan>,
    schema: SchemaRef,
    /// For each output column, its position in the inner scan's output
    /// (`None`: a hidden column, NULL).
    outputs: Vec<Option<usize>>,
    tenant_pos: usize,
    team_pos: Option<usize>,
    org: String,
    teams: Option<Vec<String>>,
    properties: Arc<PlanProperties>,
}

impl fmt::Debug for ScopedScanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedScanExec")
            .field("table", &self.table)
            .finish()
    }
}

impl ScopedScanExec {
    fn new(
        table: &str,
        inner: Arc<dyn ExecutionPlan>,
        schema: SchemaRef,
        outputs: Vec<Option<usize>>,
        tenant_pos: usize,
        team_pos: Option<usize>,
        scope: &Scope,
    ) -> Self {
        let partitions = inner.output_partitioning().partition_count();
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Self {
            table: table.to_string(),
            inner,
            schema,
            outputs,
            tenant_pos,
            team_pos: team_pos.filter(|_| scope.teams.is_some()),
            org: scope.org.clone(),
            teams: scope.teams.as_ref().map(|t| t.iter().cloned().collect()),
            properties,
        }
    }
}

/// `value` as a one-element array of `like`'s type, to compare against.
fn scalar_like(value: &str, like: &dyn Array) -> Result<ArrayRef> {
    Ok(cast(&StringArray::from(vec![value]), like.data_type())?)
}

/// The rows of `batch` in scope, projected to the output columns.
fn wall(
    batch: &RecordBatch,
    schema: &SchemaRef,
    outputs: &[Option<usize>],
    tenant_pos: usize,
    team_pos: Option<usize>,
    org: &str,
    teams: Option<&[String]>,
) -> Result<RecordBatch> {
    let tenant = batch.column(tenant_pos);
    let mut mask: BooleanArray = eq(
        tenant,
        &arrow::array::Scalar::new(scalar_like(org, tenant)?),
    )?;
    if let (Some(p), Some(teams)) = (team_pos, teams) {
        let team = batch.column(p);
        let mut any = BooleanArray::from(vec![false; batch.num_rows()]);
        for t in teams {
            let m = eq(team, &arrow::array::Scalar::new(scalar_like(t, team)?))?;
            any = or_kleene(&any, &m)?;
        }
        mask = and_kleene(&mask, &any)?;
    }
    let n = batch.num_rows();
    let columns: Vec<ArrayRef> = outputs
        .iter()
        .zip(schema.fields())
        .map(|(o, f)| match o {
            Some(p) => Arc::clone(batch.column(*p)),
            None => new_null_array(f.data_type(), n),
        })
        .collect();
    let projected = RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(n)),
    )?;
    Ok(filter_record_batch(&projected, &mask)?)
}

impl DisplayAs for ScopedScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "ScopedScanExec: table={}", self.table)
    }
}

impl ExecutionPlan for ScopedScanExec {
    fn name(&self) -> &str {
        "ScopedScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    /// A leaf: the file scan below is not a child, so no optimizer rule
    /// can rewrite it or move anything under the wall.
    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(
                "ScopedScanExec is a leaf".to_string(),
            ))
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let stream = self.inner.execute(partition, context)?;
        let schema = Arc::clone(&self.schema);
        let (outputs, tenant_pos, team_pos) =
            (self.outputs.clone(), self.tenant_pos, self.team_pos);
        let (org, teams) = (self.org.clone(), self.teams.clone());
        let out_schema = Arc::clone(&schema);
        let walled = stream.map(move |b| {
            b.and_then(|b| {
                wall(
                    &b,
                    &out_schema,
                    &outputs,
                    tenant_pos,
                    team_pos,
                    &org,
                    teams.as_deref(),
                )
            })
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, walled)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn only_pure_comparisons_reach_the_files() {
        let yes = [
            col("dt").gt_eq(lit("2026-11-01")),
            col("tenant").eq(lit("acme")).and(col("x").lt(lit(3))),
            col("team").in_list(vec![lit("a"), lit("b")], false),
            col("x").is_null().or(col("y").not_eq(lit(1))),
        ];
        for e in yes {
            assert!(prunable(&e), "{e}");
        }
        let no = [
            Expr::Cast(datafusion::logical_expr::Cast::new(
                Box::new(col("team")),
                arrow::datatypes::DataType::Int32,
            ))
            .eq(lit(0)),
            (col("x") / col("y")).eq(lit(1)),
            col("team").in_list(vec![col("tenant")], false),
            col("x").like(lit("%a")),
        ];
        for e in no {
            assert!(!prunable(&e), "{e}");
        }
    }
}
