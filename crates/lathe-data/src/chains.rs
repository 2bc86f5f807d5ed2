//! Conversation chains: rows linked by a parent id column to the row before them.
//! Every row's ancestor chain (root → row) is one multi-turn conversation.

use std::collections::HashMap;

use crate::error::{DataError, Result};
use crate::table::Table;

/// Longest chain accepted, as in H2O.
pub const MAX_CHAIN: usize = 1000;

/// Rows linked into trees by their parent ids.
#[derive(Debug, Clone)]
pub struct Chains {
    /// Each row's parent row; `None` for roots (an empty parent, or one that is no
    /// row's id).
    pub parent: Vec<Option<usize>>,
    /// Each row's root row: the conversation it belongs to.
    pub root: Vec<usize>,
    /// Turns from the root to each row, the row included.
    pub depth: Vec<usize>,
    /// Whether a row is nobody's parent: it ends a complete conversation.
    pub is_leaf: Vec<bool>,
}

/// An id cell as a key: integral numbers written as floats (`3.0`, as pandas writes
/// an integer column with gaps) match their integer spelling.
fn id_key(cell: &str) -> &str {
    let trimmed = cell.trim();
    match trimmed.strip_suffix(".0") {
        Some(int) if !int.is_empty() && int.bytes().all(|b| b.is_ascii_digit() || b == b'-') => int,
        _ => trimmed,
    }
}

impl Chains {
    /// Links the rows of `table` (only those where `keep` is true; others are as if
    /// absent) by `id_column` and `parent_column`, with H2O's checks: distinct
    /// columns, unique ids, no row its own parent, at least one root, at least one
    /// parent that is found, no cycles, no chain over [`MAX_CHAIN`] turns.
    pub fn link(
        table: &Table,
        id_column: usize,
        parent_column: usize,
        keep: &[bool],
    ) -> Result<Self> {
        let id_name = &table.columns[id_column];
        let parent_name = &table.columns[parent_column];
        if id_column == parent_column {
            return Err(DataError::Setting(format!(
                "dataset.id_column and dataset.parent_id_column are both `{id_name}`; they must differ"
            )));
        }
        let value_error = |row: usize, column: &str, message: String| DataError::Value {
            path: table.path.clone(),
            row: row + 1,
            column: column.to_string(),
            message,
        };
        let n = table.rows.len();
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(n);
        for (row, cells) in table.rows.iter().enumerate().filter(|(r, _)| keep[*r]) {
            let id = cells[id_column]
                .as_deref()
                .map(id_key)
                .filter(|id| !id.is_empty())
                .ok_or_else(|| value_error(row, id_name, "the id is missing".into()))?;
            if let Some(first) = index.insert(id, row) {
                return Err(value_error(
                    row,
                    id_name,
                    format!("id `{id}` is not unique: row {} has it too", first + 1),
                ));
            }
        }
        let mut parent = vec![None; n];
        let (mut roots, mut found) = (0usize, 0usize);
        for (row, cells) in table.rows.iter().enumerate().filter(|(r, _)| keep[*r]) {
            let Some(p) = cells[parent_column]
                .as_deref()
                .map(id_key)
                .filter(|p| !p.is_empty())
            else {
                roots += 1;
                continue;
            };
            if Some(p) == cells[id_column].as_deref().map(id_key) {
                return Err(value_error(
                    row,
                    parent_name,
                    format!("row `{p}` is its own parent"),
                ));
            }
            parent[row] = index.get(p).copied();
            if parent[row].is_some() {
                found += 1;
            }
        }
        if roots == 0 {
            return Err(DataError::Format {
                path: table.path.clone(),
                row: None,
                message: format!(
                    "column `{parent_name}` is never empty, so no conversation has a first turn"
                ),
            });
        }
        if found == 0 {
            return Err(DataError::Format {
                path: table.path.clone(),
                row: None,
                message: format!(
                    "no value of `{parent_name}` is an id in `{id_name}`: the rows do not chain (wrong columns?)"
                ),
            });
        }
        let (root, depth) = walk(table, id_column, &parent, keep)?;
        let mut is_leaf: Vec<bool> = keep.to_vec();
        for p in parent.iter().flatten() {
            is_leaf[*p] = false;
        }
        Ok(Self {
            parent,
            root,
            depth,
            is_leaf,
        })
    }

    /// The rows of `row`'s conversation, root first.
    pub fn chain(&self, row: usize) -> Vec<usize> {
        let mut rows = Vec::with_capacity(self.depth[row]);
        let mut at = Some(row);
        while let Some(r) = at {
            rows.push(r);
            at = self.parent[r];
        }
        rows.reverse();
        rows
    }
}

/// Roots and depths of every kept row; cycles and over-long chains are errors that
/// name the ids.
fn walk(
    table: &Table,
    id_column: usize,
    parent: &[Option<usize>],
    keep: &[bool],
) -> Result<(Vec<usize>, Vec<usize>)> {
    const UNSEEN: usize = 0;
    const ON_PATH: usize = usize::MAX;
    let n = parent.len();
    let mut depth = vec![UNSEEN; n];
    let mut root = (0..n).collect::<Vec<_>>();
    let id = |r: usize| table.rows[r][id_column].clone().unwrap_or_default();
    let mut path = Vec::new();
    for start in (0..n).filter(|&r| keep[r]) {
        path.clear();
        let mut at = start;
        // Climb until a row whose depth is known, or a root.
        loop {
            if depth[at] == ON_PATH {
                let from = path.iter().position(|&r| r == at).expect("on the path");
                let ids: Vec<String> = path[from..].iter().map(|&r| id(r)).collect();
                for &r in &path {
                    depth[r] = UNSEEN;
                }
                return Err(DataError::Format {
                    path: table.path.clone(),
                    row: Some(at + 1),
                    message: format!("the parent ids form a cycle: {}", ids.join(" → ")),
                });
            }
            if depth[at] != UNSEEN {
                break;
            }
            depth[at] = ON_PATH;
            path.push(at);
            match parent[at] {
                Some(p) => at = p,
                None => break,
            }
        }
        // Walk back down, numbering the turns.
        let (mut d, conversation) = match path.last().and_then(|&last| parent[last]) {
            Some(p) => (depth[p], root[p]),
            None => (0, *path.last().unwrap_or(&start)),
        };
        for &r in path.iter().rev() {
            d += 1;
            depth[r] = d;
            root[r] = conversation;
            if d > MAX_CHAIN {
                return Err(DataError::Format {
                    path: table.path.clone(),
                    row: Some(r + 1),
                    message: format!(
                        "the conversation reaching id `{}` has more than {MAX_CHAIN} turns",
                        id(r)
                    ),
                });
            }
        }
    }
    Ok((root, depth))
}
