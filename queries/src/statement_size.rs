//! How large a statement becomes when it is planned, measured on its syntax
//! tree before anything is planned. The SQL text understates it:
//!
//! - a CTE is planned once per reference, so `t1 AS (SELECT ... FROM t0 a,
//!   t0 b)`, `t2 ... FROM t1 a, t1 b`, ... doubles at every level;
//! - the optimizer repeats an operand: `x BETWEEN a AND b` becomes
//!   `x >= a AND x <= b`, `x IN (a, b)` becomes `x = a OR x = b`, and
//!   `CASE x WHEN a ... WHEN b ...` compares `x` once per branch;
//! - stacked projections (a CTE over a CTE over ...) are merged into one
//!   expression as deep as their depths added up, which is evaluated
//!   recursively;
//! - every table, derived table and set operation nests the physical plan
//!   one level, however flat the SQL (`FROM a1, a2, ..., a9000`);
//! - `CUBE(a, b, ...)` plans every subset of its terms.
//!
//! [`measure`] counts all four, with CTE references weighted by what they
//! stand for, and stops walking as soon as a limit is passed.

use std::collections::HashMap;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, Ident, ObjectName, Query, SetExpr, TableFactor, Visitor,
};

/// What a statement becomes when planned.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    /// Deepest nesting of expressions and subqueries in the text.
    pub depth: usize,
    /// Nodes in the text.
    pub nodes: usize,
    /// Expression and table nodes once CTEs are expanded and repeated
    /// operands copied.
    pub planned_nodes: u128,
    /// Tables, derived tables and set operations once CTEs are expanded.
    pub relations: u128,
    /// Expression depth once stacked projections are merged.
    pub merged_depth: u128,
}

/// What one CTE stands for, per reference.
#[derive(Debug, Clone, Copy)]
struct Weight {
    planned_nodes: u128,
    relations: u128,
    merged_depth: u128,
}

struct QueryFrame {
    cte: Option<String>,
    base_depth: usize,
    local_depth: usize,
    relations: u128,
    merged_below: u128,
}

/// The walk: a frame of child sizes per open expression or query, a frame
/// of counts per open query.
struct Walk {
    depth: usize,
    size: Size,
    sizes: Vec<Vec<u128>>,
    queries: Vec<QueryFrame>,
    pending_ctes: HashMap<usize, String>,
    weights: HashMap<String, Weight>,
    stop_depth: usize,
    stop_nodes: usize,
}

/// A name as the planner resolves it: unquoted folded to lower case,
/// quoted as written.
fn ident(i: &Ident) -> String {
    match i.quote_style {
        Some(_) => i.value.clone(),
        None => i.value.to_lowercase(),
    }
}

/// The CTE a table reference may name: a one-part name only (a qualified
/// name is a table).
fn name_of(n: &ObjectName) -> Option<String> {
    match n.0.as_slice() {
        [one] => one.as_ident().map(ident),
        _ => None,
    }
}

impl Walk {
    fn over(&self) -> bool {
        self.size.depth > self.stop_depth
            || self.size.nodes > self.stop_nodes
            || self.size.planned_nodes > self.stop_nodes as u128
            || self.size.relations > self.stop_depth as u128
            || self.size.merged_depth > 4 * self.stop_depth as u128
    }

    fn flow(&self) -> ControlFlow<()> {
        if self.over() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    fn enter(&mut self) {
        self.depth += 1;
        self.size.nodes += 1;
        self.size.depth = self.size.depth.max(self.depth);
        self.sizes.push(Vec::new());
    }

    fn add_to_parent(&mut self, n: u128) {
        match self.sizes.last_mut() {
            Some(parent) => parent.push(n),
            None => self.size.planned_nodes = self.size.planned_nodes.saturating_add(n),
        }
    }
}

fn sum(v: &[u128]) -> u128 {
    v.iter().fold(0u128, |a, b| a.saturating_add(*b))
}

/// The set operations (UNION, EXCEPT, INTERSECT) of a query's body.
fn set_operations(body: &SetExpr) -> u128 {
    let mut n = 0u128;
    let mut e = body;
    while let SetExpr::SetOperation { left, right, .. } = e {
        n = n.saturating_add(1).saturating_add(set_operations(right));
        e = left;
    }
    n
}

impl Visitor for Walk {
    type Break = ();

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                let at = &*cte.query as *const Query as usize;
                self.pending_ctes.insert(at, ident(&cte.alias.name));
            }
        }
        let cte = self.pending_ctes.remove(&(q as *const Query as usize));
        self.enter();
        self.queries.push(QueryFrame {
            cte,
            base_depth: self.depth,
            local_depth: 0,
            relations: set_operations(&q.body),
            merged_below: 0,
        });
        self.flow()
    }

    fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
        self.depth -= 1;
        let children = self.sizes.pop().unwrap_or_default();
        let planned = sum(&children).saturating_add(1);
        let Some(frame) = self.queries.pop() else {
            return self.flow();
        };
        let merged = (frame.local_depth as u128).saturating_add(frame.merged_below);
        match frame.cte {
            // Counted where it is referenced, once per reference.
            Some(name) => {
                // The same name defined again (in another WITH): the
                // heavier of the two, since references are not scoped here.
                let w = self.weights.entry(name).or_insert(Weight {
                    planned_nodes: 0,
                    relations: 0,
                    merged_depth: 0,
                });
                w.planned_nodes = w.planned_nodes.max(planned);
                w.relations = w.relations.max(frame.relations);
                w.merged_depth = w.merged_depth.max(merged);
            }
            None => {
                self.add_to_parent(planned);
                match self.queries.last_mut() {
                    Some(parent) => {
                        parent.relations = parent.relations.saturating_add(frame.relations);
                        parent.merged_below = parent.merged_below.max(merged);
                    }
                    None => {
                        self.size.relations = self.size.relations.saturating_add(frame.relations);
                        self.size.merged_depth = self.size.merged_depth.max(merged);
                    }
                }
            }
        }
        self.flow()
    }

    fn pre_visit_relation(&mut self, name: &ObjectName) -> ControlFlow<()> {
        let w = name_of(name).and_then(|n| self.weights.get(&n).copied());
        let (planned, relations, merged) = match w {
            // The reference is a relation itself, over what the CTE holds.
            Some(w) => (
                w.planned_nodes,
                w.relations.saturating_add(1),
                w.merged_depth,
            ),
            None => (1, 1, 0),
        };
        self.add_to_parent(planned);
        if let Some(q) = self.queries.last_mut() {
            q.relations = q.relations.saturating_add(relations);
            // Joined relations sit side by side: the deepest one counts.
            q.merged_below = q.merged_below.max(merged);
        }
        self.flow()
    }

    fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
        self.size.nodes += 1;
        if matches!(t, TableFactor::Derived { .. }) {
            if let Some(q) = self.queries.last_mut() {
                q.relations = q.relations.saturating_add(1);
            }
        }
        self.flow()
    }

    fn pre_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
        self.enter();
        let depth = self.depth;
        if let Some(q) = self.queries.last_mut() {
            q.local_depth = q.local_depth.max(depth.saturating_sub(q.base_depth));
        }
        self.flow()
    }

    fn post_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        self.depth -= 1;
        let c = self.sizes.pop().unwrap_or_default();
        let first = c.first().copied().unwrap_or(0);
        let rest = sum(c.get(1..).unwrap_or_default());
        // The operand the optimizer repeats is the first child visited.
        let copies: u128 = match e {
            Expr::Between { .. } => 2,
            Expr::InList { list, .. } => list.len().max(1) as u128,
            Expr::Case {
                operand: Some(_),
                conditions,
                ..
            } => conditions.len().max(1) as u128,
            _ => 1,
        };
        // CUBE(a, b, ...) plans every subset of its terms.
        let grouping: u128 = match e {
            Expr::Cube(terms) => 1u128 << terms.len().min(120),
            _ => 1,
        };
        let n = first
            .saturating_mul(copies)
            .saturating_add(rest)
            .saturating_mul(grouping)
            .saturating_add(1);
        self.add_to_parent(n);
        self.flow()
    }
}

/// The size of `statement` when planned, or `None` once past the limits
/// (`max_depth` for depth and relations, four times that for merged
/// depth, `max_nodes` for nodes): the walk stops there.
pub fn measure<V: datafusion::sql::sqlparser::ast::Visit>(
    statement: &V,
    max_depth: usize,
    max_nodes: usize,
) -> Size {
    let mut w = Walk {
        depth: 0,
        size: Size::default(),
        sizes: Vec::new(),
        queries: Vec::new(),
        pending_ctes: HashMap::new(),
        weights: HashMap::new(),
        stop_depth: max_depth,
        stop_nodes: max_nodes,
    };
    let _ = statement.visit(&mut w);
    w.size
}

/// `WITH t0 AS (...), t1 AS (SELECT ... FROM t0 a, t0 b), ...`: each level
/// joins the one before twice, so the plan doubles per level.
#[cfg(test)]
pub(crate) fn doubling_ctes(levels: usize) -> String {
    let mut sql = "WITH t0 AS (SELECT 1 AS c)".to_string();
    for i in 1..=levels {
        sql.push_str(&format!(
            ", t{i} AS (SELECT a.c FROM t{} a, t{} b)",
            i - 1,
            i - 1
        ));
    }
    sql.push_str(&format!(" SELECT count(*) FROM t{levels}"));
    sql
}

/// CTEs stacked `levels` deep, each adding `terms` times 1 to the last:
/// their projections merge into one expression `levels x terms` deep.
#[cfg(test)]
pub(crate) fn stacked_ctes(levels: usize, terms: usize) -> String {
    let mut sql = "WITH t0(c) AS (VALUES (CAST(1 AS BIGINT)))".to_string();
    for i in 1..=levels {
        sql.push_str(&format!(
            ", t{i} AS (SELECT c{} AS c FROM t{})",
            "+1".repeat(terms),
            i - 1
        ));
    }
    sql.push_str(&format!(" SELECT c FROM t{levels}"));
    sql
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use datafusion::sql::parser::{DFParser, Statement};

    use super::*;

    fn size(sql: &str) -> Size {
        let st = DFParser::parse_sql(sql).unwrap();
        let Statement::Statement(s) = &st[0] else {
            panic!()
        };
        measure(s.as_ref(), 1_000_000, 100_000_000)
    }

    #[test]
    fn what_planning_multiplies_is_counted() {
        let plain = size("SELECT a + 1 FROM t");
        assert_eq!(plain.relations, 1);
        // CTE doubling: each level references the one before twice.
        let sql = doubling_ctes(20);
        let s = size(&sql);
        assert!(s.relations >= 1 << 20, "{s:?}");
        assert!(s.planned_nodes >= 1 << 20, "{s:?}");
        // Nested BETWEEN doubles its operand.
        let between = format!("SELECT c{} FROM v", " BETWEEN 0 AND 1".repeat(40));
        assert!(size(&between).planned_nodes >= 1 << 40);
        // Stacked projections add their depths up.
        let sql = stacked_ctes(10, 50);
        let s = size(&sql);
        assert!(s.merged_depth >= 500, "{s:?}");
        assert!(s.depth < 60, "{s:?}");
        // Quoted names with dots, and a light CTE of the same name later.
        let mut sql = r#"WITH "c.0" AS (SELECT 1 AS c)"#.to_string();
        for i in 1..=20 {
            sql.push_str(&format!(
                r#", "c.{i}" AS (SELECT a.c FROM "c.{}" a, "c.{}" b)"#,
                i - 1,
                i - 1
            ));
        }
        sql.push_str(r#" SELECT count(*) FROM "c.20", (WITH "c.20" AS (SELECT 1 AS c) SELECT c FROM "c.20") x"#);
        assert!(size(&sql).relations >= 1 << 20);
        let cube = format!(
            "SELECT count(*) FROM t GROUP BY a, CUBE({})",
            (1..=40)
                .map(|i| format!("a + {i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        assert!(size(&cube).planned_nodes >= 1 << 40);
    }
}
