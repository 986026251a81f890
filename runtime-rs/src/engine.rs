//! The incremental engine: lazy, parallel, recomputing only what an input change touches.
//!
//! A generated crate describes its DAG as a static [`GraphSpec`]: inputs, then nodes in
//! topological order, each with the slots it reads and its kernel. Slots `0..inputs.len()`
//! are the inputs; slot `inputs.len() + i` is node `i`.
//!
//! Bookkeeping follows the "verifying traces" of build systems (Salsa, Shake):
//! - every input change bumps a global `revision`; the input records `changed_at`;
//! - a cached node records `changed_at` (the revision its value last changed) and
//!   `verified_at` (the revision at which it was last known to be up to date);
//! - a node asked for at revision `r` with `verified_at < r` is recomputed only if one of
//!   its dependencies has `changed_at > verified_at`; otherwise it is just re-verified;
//! - early cutoff: a recomputed value that is bitwise equal to the old one keeps the old
//!   `changed_at`, so its dependents are re-verified instead of recomputed.
//!
//! Along time, values also grow ([`Engine::append`]): rows added to the time-indexed
//! inputs (row dim "T") change them without replacing any row they had, which each value
//! records apart (`replaced_at` is the revision its existing rows last changed). A node
//! whose dependencies only grew since it was verified computes only its new rows: its
//! kernel gets the last rows of its dependencies, from its `lookback` rows before the
//! first new one (kernels are row-local: a row's value is a bit-exact function of those
//! rows, docs/ops.md), and the rows are appended to its value (amortized growth). Rows
//! are indexed absolutely (row 0 is the first row of the series), so that a bounded
//! stream ([`Engine::set_keep`]) can drop old rows: a node whose dependencies no longer
//! hold the rows it would read recomputes over the rows they hold and keeps only the
//! rows that those determine exactly.
//!
//! Scheduling is by in-degree: each stale node waits for a counter of its stale
//! dependencies to reach zero, then runs as a rayon task; independent nodes run at once.

use crate::cache::Cache;
use crate::error::{shape_str, Error, Result};
use crate::kernels::bitwise_eq;
use crate::{Panel, View};
use ndarray::s;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// A node kernel: reads its dependencies' values in the order of [`NodeSpec::deps`] and
/// computes the last `rows` rows of the node (see `sray_transpiler.backend.lower`). A
/// time-indexed dependency holds the node's [`NodeSpec::lookback`] rows before those
/// (fewer at the start of the series); the result holds at least the last `rows` rows.
/// The [`Cache`] keeps the last rows of intermediates between two runs.
pub type Kernel = fn(&[View<'_>], usize, &mut Cache) -> Panel;

/// The name of the time dim: values whose rows are "T" grow by [`Engine::append`].
pub const TIME_DIM: &str = "T";

/// One node of a DAG, as generated.
pub struct NodeSpec {
    /// The name as written in Python.
    pub name: &'static str,
    /// The docstring of the node's function ("" when it has none).
    pub doc: &'static str,
    /// Slots read, in kernel-argument order (inputs first, then nodes; see module docs).
    pub deps: &'static [usize],
    pub kernel: Kernel,
    /// Whether users may ask for it by name; private nodes (`_name` in the source, or
    /// shared by the optimizer) are computed only for the nodes that read them.
    pub public: bool,
    /// Its rows are time ("T"): appends add rows to it.
    pub timed: bool,
    /// Rows of its time-indexed dependencies before an output row that its kernel reads:
    /// the most of [`NodeSpec::reads`].
    pub lookback: usize,
    /// Per dependency (in the order of `deps`), the rows before an output row that the
    /// kernel reads of it (0 for one whose rows are not time).
    pub reads: &'static [usize],
}

/// A whole DAG, as generated: the static schedule.
pub struct GraphSpec {
    pub name: &'static str,
    pub inputs: &'static [&'static str],
    /// The named dims (rows, columns) of each input: inputs naming the same dim must
    /// agree on its size. A time x assets panel is `["T", "N"]`.
    pub input_dims: &'static [[&'static str; 2]],
    /// Topologically ordered: a node only reads slots of inputs and earlier nodes.
    pub nodes: &'static [NodeSpec],
    /// Node indices grouped by topological level (level 0 reads only inputs).
    pub levels: &'static [&'static [usize]],
}

impl GraphSpec {
    fn known(names: impl Iterator<Item = &'static str>) -> String {
        names
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The index of a public node.
    pub fn node_index(&self, name: &str) -> Result<usize> {
        self.nodes
            .iter()
            .position(|n| n.public && n.name == name)
            .ok_or_else(|| self.unknown_node(name))
    }

    pub fn public_nodes(&self) -> impl Iterator<Item = &'static NodeSpec> {
        self.nodes.iter().filter(|n| n.public)
    }

    pub fn unknown_node(&self, name: &str) -> Error {
        Error::UnknownNode {
            dag: self.name.to_string(),
            name: name.to_string(),
            known: Self::known(self.public_nodes().map(|n| n.name)),
        }
    }

    pub fn input_index(&self, name: &str) -> Result<usize> {
        self.inputs
            .iter()
            .position(|n| *n == name)
            .ok_or_else(|| Error::UnknownInput {
                dag: self.name.to_string(),
                name: name.to_string(),
                known: Self::known(self.inputs.iter().copied()),
            })
    }

    /// Whether input `i`'s rows are time.
    pub fn input_timed(&self, i: usize) -> bool {
        self.input_dims[i][0] == TIME_DIM
    }

    /// Whether a slot (input or node) holds time-indexed rows.
    fn slot_timed(&self, slot: usize) -> bool {
        match slot.checked_sub(self.inputs.len()) {
            None => self.input_timed(slot),
            Some(j) => self.nodes[j].timed,
        }
    }

    /// Per node, the rows of the DAG's inputs before an output row that it depends on:
    /// its kernel's lookback added along the longest path.
    pub fn total_lookbacks(&self) -> Vec<usize> {
        let n_in = self.inputs.len();
        let mut total: Vec<usize> = Vec::with_capacity(self.nodes.len());
        for node in self.nodes {
            let longest = node
                .deps
                .iter()
                .zip(node.reads)
                .filter(|(&d, _)| self.slot_timed(d))
                .map(|(&d, &reads)| d.checked_sub(n_in).map_or(0, |j| total[j]) + reads)
                .max();
            total.push(if node.timed { longest.unwrap_or(0) } else { 0 });
        }
        total
    }

    /// Why rows cannot be appended to this DAG's inputs, if they cannot.
    pub fn append_blocker(&self) -> Option<String> {
        if let Some(i) = (0..self.inputs.len()).find(|&i| self.input_dims[i][1] == TIME_DIM) {
            let [r, c] = self.input_dims[i];
            return Some(format!(
                "input `{}` has dims ({r}, {c}): time is its columns, and append adds rows",
                self.inputs[i]
            ));
        }
        if !(0..self.inputs.len()).any(|i| self.input_timed(i)) {
            return Some(format!(
                "no input of DAG `{}` has time ({TIME_DIM}) as its rows",
                self.name
            ));
        }
        None
    }
}

/// What the engine has done for one node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeStats {
    /// Times the kernel ran.
    pub computes: u64,
    /// Recomputations whose result was bitwise unchanged (early cutoff).
    pub cutoffs: u64,
    /// Total wall time spent in the kernel.
    pub seconds: f64,
    /// Rows the kernel computed, over all its runs (all of them for a full compute, the
    /// new ones after an append).
    pub rows: u64,
}

/// An input value as handed to [`Engine::set_inputs`] or [`Engine::append`].
pub struct InputValue {
    pub panel: Panel,
    /// The shape as the caller gave it, for messages and for the shape of outputs:
    /// `[T]` for a 1-D input (held as a (T, 1) panel) or `[T, N]`.
    pub given_shape: Vec<usize>,
}

struct InputSlot {
    value: Arc<Panel>,
    given_shape: Vec<usize>,
    changed_at: u64,
    /// The revision its rows were last replaced (appends add rows, replacing none).
    replaced_at: u64,
}

struct Cached {
    value: Arc<Panel>,
    changed_at: u64,
    replaced_at: u64,
    verified_at: u64,
    /// The absolute row of the value's first row (0 unless old rows were dropped).
    first: u64,
    /// The kernel's intermediates, valid for a run from absolute row `cache_end` on.
    cache: Cache,
    cache_end: Option<u64>,
}

struct Outcome {
    value: Arc<Panel>,
    changed_at: u64,
    replaced_at: u64,
    first: u64,
    /// Kernel seconds and rows computed, when the kernel ran.
    ran: Option<(f64, u64)>,
    cutoff: bool,
    cache: Cache,
    cache_end: Option<u64>,
}

pub struct Engine {
    spec: &'static GraphSpec,
    inputs: Vec<Option<InputSlot>>,
    nodes: Vec<Option<Cached>>,
    /// For each node, the nodes that read it.
    dependents: Vec<Vec<usize>>,
    revision: u64,
    stats: Vec<NodeStats>,
    /// The absolute row of the time-indexed inputs' first row.
    origin: u64,
    /// A bounded stream keeps this many rows (see [`Engine::set_keep`]).
    keep: Option<usize>,
    total_lookback: Vec<usize>,
}

/// The rows `value` (whose first row is absolute row `first`) holds from absolute row
/// `from` on.
fn rows_from(value: &Panel, first: u64, from: u64) -> View<'_> {
    value.slice(s![(from - first) as usize.., ..])
}

/// Appends `rows` to `value` in place. A full buffer grows by half (amortized O(1) per
/// row appended, at most half the memory unused; `Vec::reserve` would double it); a value
/// that is not one plain C-order buffer is first copied into one.
pub(crate) fn push_rows(value: &mut Panel, rows: View<'_>) {
    let (t, n) = value.dim();
    assert_eq!(rows.ncols(), n, "rows of another width");
    let mut old = std::mem::take(value);
    if !old.is_standard_layout() {
        old = old.as_standard_layout().into_owned();
    }
    let (mut data, offset) = old.into_raw_vec_and_offset();
    if offset.unwrap_or(0) != 0 || data.len() != t * n {
        let start = offset.unwrap_or(0);
        data = data[start..start + t * n].to_vec();
    }
    let len = (t + rows.nrows()) * n;
    if data.capacity() < len {
        data.reserve_exact(len.max(data.len() + data.len() / 2) - data.len());
    }
    data.extend(rows.iter().copied());
    *value = Panel::from_shape_vec((t + rows.nrows(), n), data).expect("t + k rows of n values");
}

/// `value` cut to its last `rows` rows, into a buffer of its own with room to grow to
/// twice that (when a bounded stream cuts it again).
fn keep_last(value: Arc<Panel>, rows: usize) -> Arc<Panel> {
    let t = value.nrows();
    let tail = value.slice(s![t - rows.min(t).., ..]);
    let mut buffer = Vec::with_capacity(2 * tail.len());
    buffer.extend(tail.iter().copied());
    let cut = Panel::from_shape_vec(tail.dim(), buffer).expect("as many values as the tail");
    // Freed, not pooled: a bounded stream's old buffers would pile up in the pool (which
    // keeps up to a quarter of memory) and its memory would not stay flat.
    drop(value);
    Arc::new(cut)
}

impl Engine {
    pub fn new(spec: &'static GraphSpec) -> Self {
        let n_in = spec.inputs.len();
        let mut dependents = vec![Vec::new(); spec.nodes.len()];
        for (i, node) in spec.nodes.iter().enumerate() {
            for &d in node.deps {
                if d >= n_in {
                    dependents[d - n_in].push(i);
                }
            }
        }
        Engine {
            spec,
            inputs: (0..n_in).map(|_| None).collect(),
            nodes: (0..spec.nodes.len()).map(|_| None).collect(),
            dependents,
            revision: 1,
            stats: vec![NodeStats::default(); spec.nodes.len()],
            origin: 0,
            keep: None,
            total_lookback: spec.total_lookbacks(),
        }
    }

    pub fn spec(&self) -> &'static GraphSpec {
        self.spec
    }

    pub fn stats(&self) -> &[NodeStats] {
        &self.stats
    }

    /// A node's total lookback: rows of the inputs before a row that its value reads.
    pub fn lookback(&self, node: usize) -> usize {
        self.total_lookback[node]
    }

    /// Makes this engine a bounded stream: time-indexed values keep only their last rows
    /// (at least `rows` plus the DAG's largest lookback, so that every node's last `rows`
    /// rows stay exact; up to twice that between two cuts, which copy the rows kept), and
    /// a node's value shows its last `rows` rows ([`Engine::visible_rows`]). `None`: keep
    /// everything.
    pub fn set_keep(&mut self, rows: Option<usize>) {
        self.keep = rows.map(|r| r.max(1));
        self.trim_inputs();
    }

    pub fn keep(&self) -> Option<usize> {
        self.keep
    }

    /// Rows kept of each time-indexed value in a bounded stream, after a cut.
    fn kept_rows(&self) -> Option<usize> {
        let largest = self.total_lookback.iter().copied().max().unwrap_or(0);
        self.keep.map(|k| k + largest)
    }

    /// How many of a node's last rows are its value as users see it: all of them, or
    /// the last `keep` of a time-indexed node in a bounded stream.
    pub fn visible_rows(&self, node: usize, value: &Panel) -> usize {
        match self.keep {
            Some(k) if self.spec.nodes[node].timed => value.nrows().min(k),
            _ => value.nrows(),
        }
    }

    /// Whether values are handed out 1-D: every input set so far was given 1-D (a (T,)
    /// array, held as a (T, 1) panel). `None` before any input is set.
    pub fn one_d(&self) -> Option<bool> {
        let mut given = self.inputs.iter().flatten().peekable();
        given.peek()?;
        Some(given.all(|s| s.given_shape.len() == 1))
    }

    /// The shape a value (or `rows` rows of it) is handed out in: `[rows]` for a
    /// single-column value when every input was given 1-D (see [`Engine::one_d`]), else
    /// `[rows, columns]`.
    pub fn output_shape(&self, value: &Panel, rows: usize) -> Vec<usize> {
        if self.one_d() == Some(true) && value.ncols() == 1 {
            vec![rows]
        } else {
            vec![rows, value.ncols()]
        }
    }

    /// The shape each input was given, by input index (`None` for an input not set); the
    /// rows of a time-indexed input count what appends added (and a bounded stream kept).
    pub fn input_shapes(&self) -> Vec<Option<&[usize]>> {
        self.inputs
            .iter()
            .map(|s| s.as_ref().map(|s| s.given_shape.as_slice()))
            .collect()
    }

    /// Rows of the time-indexed inputs (they agree), if any is set.
    fn timed_rows(&self) -> Option<usize> {
        (0..self.inputs.len())
            .filter(|&i| self.spec.input_timed(i))
            .find_map(|i| self.inputs[i].as_ref().map(|s| s.value.nrows()))
    }

    /// The absolute row after the last row of the time-indexed inputs.
    fn end_row(&self) -> u64 {
        self.origin + self.timed_rows().unwrap_or(0) as u64
    }

    /// Sets several inputs at once. Either all are applied or, on a shape error, none.
    /// An input set to a value bitwise equal to its current one counts as unchanged.
    /// Setting time-indexed inputs to a different number of rows starts a new series.
    pub fn set_inputs(&mut self, batch: Vec<(usize, InputValue)>) -> Result<()> {
        self.check_dims(&batch)?;
        let next = self.revision + 1;
        let rows_before = self.timed_rows();
        let mut changed = false;
        for (i, v) in batch {
            let same = self.inputs[i]
                .as_ref()
                .is_some_and(|old| bitwise_eq(&old.value, &v.panel));
            if same {
                continue;
            }
            changed = true;
            let old = self.inputs[i].replace(InputSlot {
                value: Arc::new(v.panel),
                given_shape: v.given_shape,
                changed_at: next,
                replaced_at: next,
            });
            if let Some(old) = old {
                crate::pool::recycle(old.value);
            }
        }
        if changed {
            self.revision = next;
        }
        if self.timed_rows() != rows_before {
            self.origin = 0;
        }
        self.trim_inputs();
        Ok(())
    }

    /// Adds rows to every time-indexed input at once (`batch`: each one's new rows, `k`
    /// rows of the same columns for all). Checked whole first: on an error nothing
    /// changes. When no time-indexed input is set yet, the rows start the series.
    pub fn append(&mut self, batch: Vec<(usize, InputValue)>) -> Result<()> {
        let spec = self.spec;
        if let Some(&(i, _)) = batch.iter().find(|(i, _)| !spec.input_timed(*i)) {
            let [r, c] = spec.input_dims[i];
            return Err(Error::NotAppendable {
                input: spec.inputs[i].to_string(),
                reason: format!("its dims are ({r}, {c}), its rows are not time ({TIME_DIM})"),
            });
        }
        if let Some(reason) = spec.append_blocker() {
            let i = batch.first().map_or(0, |b| b.0);
            return Err(Error::NotAppendable {
                input: spec.inputs[i].to_string(),
                reason,
            });
        }
        if let Some(i) = (0..spec.inputs.len())
            .find(|&i| spec.input_timed(i) && !batch.iter().any(|(j, _)| *j == i))
        {
            return Err(Error::MissingRows {
                dag: spec.name.to_string(),
                input: spec.inputs[i].to_string(),
            });
        }
        let mut sorted: Vec<&(usize, InputValue)> = batch.iter().collect();
        sorted.sort_by_key(|b| b.0);
        let k = sorted[0].1.panel.nrows();
        for (i, v) in sorted.iter().map(|b| (b.0, &b.1)) {
            let rows = v.panel.nrows();
            if rows == 0 || rows != k {
                return Err(Error::Shape {
                    input: spec.inputs[i].to_string(),
                    expected: if rows == 0 {
                        "at least one row to append".to_string()
                    } else {
                        format!(
                            "{k} rows, as many as `{}` is given",
                            spec.inputs[sorted[0].0]
                        )
                    },
                    actual: shape_str(&v.given_shape),
                });
            }
        }
        if self.timed_rows().is_none() {
            return self.set_inputs(batch);
        }
        for &(i, ref v) in &batch {
            let Some(slot) = self.inputs[i].as_ref() else {
                return Err(Error::MissingRows {
                    dag: spec.name.to_string(),
                    input: spec.inputs[i].to_string(),
                });
            };
            if v.panel.ncols() != slot.value.ncols() {
                let expected = if slot.given_shape.len() == 1 {
                    "(k,) rows or one number, as the input was given 1-D".to_string()
                } else {
                    format!(
                        "(k, {0}) rows or one row of shape ({0},), as the input has {0} columns",
                        slot.value.ncols()
                    )
                };
                return Err(Error::Shape {
                    input: spec.inputs[i].to_string(),
                    expected,
                    actual: shape_str(&v.given_shape),
                });
            }
        }
        let next = self.revision + 1;
        for (i, v) in batch {
            let slot = self.inputs[i].as_mut().expect("checked above");
            push_rows(Arc::make_mut(&mut slot.value), v.panel.view());
            crate::pool::give_panel(v.panel);
            slot.given_shape[0] += k;
            slot.changed_at = next;
        }
        self.revision = next;
        self.trim_inputs();
        Ok(())
    }

    /// In a bounded stream, cuts the time-indexed inputs to their last kept rows once
    /// they hold twice as many (amortized: a cut copies the rows kept).
    fn trim_inputs(&mut self) {
        let (Some(kept), Some(rows)) = (self.kept_rows(), self.timed_rows()) else {
            return;
        };
        if rows <= 2 * kept {
            return;
        }
        for i in 0..self.inputs.len() {
            if !self.spec.input_timed(i) {
                continue;
            }
            if let Some(slot) = self.inputs[i].as_mut() {
                let value = std::mem::replace(&mut slot.value, Arc::new(Panel::zeros((0, 0))));
                slot.value = keep_last(value, kept);
                slot.given_shape[0] = kept;
            }
        }
        self.origin += (rows - kept) as u64;
    }

    /// Checks that the inputs `batch` sets and those it keeps agree on the size of every
    /// named dim of [`GraphSpec::input_dims`]; a conflict is blamed on an input of `batch`
    /// (the later declared one when two inputs of `batch` disagree). `set_inputs` runs it
    /// first; a caller may run it to ask whether a batch fits the inputs this engine keeps.
    pub fn check_dims(&self, batch: &[(usize, InputValue)]) -> Result<()> {
        let kept = (0..self.inputs.len())
            .filter(|i| !batch.iter().any(|(j, _)| j == i))
            .filter_map(|i| {
                self.inputs[i]
                    .as_ref()
                    .map(|s| (i, s.value.dim(), &s.given_shape))
            });
        // In declaration order, whatever order the caller gave them in (a JSON object's
        // keys, say), so the input blamed for a conflict does not depend on that order.
        let mut given: Vec<_> = batch
            .iter()
            .map(|(i, v)| (*i, v.panel.dim(), &v.given_shape))
            .collect();
        given.sort_by_key(|g| g.0);
        // (dim name, size, input that fixed it)
        let mut bound: Vec<(&str, usize, usize)> = Vec::new();
        for (i, (rows, cols), given_shape) in kept.chain(given) {
            for (dim, size) in self.spec.input_dims[i].into_iter().zip([rows, cols]) {
                match bound.iter().find(|b| b.0 == dim) {
                    Some(&(_, want, by)) if want != size => {
                        let [d0, d1] = self.spec.input_dims[i];
                        return Err(Error::Shape {
                            input: self.spec.inputs[i].to_string(),
                            expected: format!(
                                "({d0}, {d1}) with {dim} = {want}, the size input `{}` gives it",
                                self.spec.inputs[by]
                            ),
                            actual: shape_str(given_shape),
                        });
                    }
                    Some(_) => {}
                    None => bound.push((dim, size, i)),
                }
            }
        }
        Ok(())
    }

    /// Brings `targets` (node indices) up to date and returns their values.
    ///
    /// Only stale ancestors of the targets are visited; of those, only nodes with a
    /// changed dependency run their kernel. Independent nodes run in parallel.
    pub fn compute(&mut self, targets: &[usize]) -> Result<Vec<Arc<Panel>>> {
        let stale = self.stale_ancestors(targets)?;
        if stale.iter().any(|&s| s) {
            self.run(&stale)?;
        }
        Ok(targets
            .iter()
            .map(|&t| {
                self.nodes[t]
                    .as_ref()
                    .expect("computed above")
                    .value
                    .clone()
            })
            .collect())
    }

    /// Marks the nodes that `targets` need and that are not verified at this revision,
    /// checking on the way that every input they read has been given.
    fn stale_ancestors(&self, targets: &[usize]) -> Result<Vec<bool>> {
        let n_in = self.inputs.len();
        let mut stale = vec![false; self.nodes.len()];
        let mut seen = vec![false; self.nodes.len()];
        let mut stack: Vec<usize> = targets.to_vec();
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            if self.nodes[i]
                .as_ref()
                .is_some_and(|c| c.verified_at == self.revision)
            {
                continue;
            }
            stale[i] = true;
            for &d in self.spec.nodes[i].deps {
                if d >= n_in {
                    stack.push(d - n_in);
                } else if self.inputs[d].is_none() {
                    return Err(Error::MissingInput {
                        dag: self.spec.name.to_string(),
                        node: self.spec.nodes[i].name.to_string(),
                        input: self.spec.inputs[d].to_string(),
                    });
                }
            }
        }
        Ok(stale)
    }

    fn run(&mut self, stale: &[bool]) -> Result<()> {
        let n_in = self.inputs.len();
        let pending: Vec<AtomicUsize> = self
            .spec
            .nodes
            .iter()
            .map(|node| {
                let n = node
                    .deps
                    .iter()
                    .filter(|&&d| d >= n_in && stale[d - n_in])
                    .count();
                AtomicUsize::new(n)
            })
            .collect();
        // A stale node's old value goes to its own task (which may grow it in place);
        // its dependents read the outcome instead.
        let previous: Vec<Mutex<Option<Cached>>> = (0..stale.len())
            .map(|i| Mutex::new(if stale[i] { self.nodes[i].take() } else { None }))
            .collect();
        let end = self.end_row();
        let run = Run {
            engine: self,
            stale,
            pending,
            previous,
            end,
            outcomes: (0..stale.len()).map(|_| OnceLock::new()).collect(),
            failure: Mutex::new(None),
        };
        // The roots are picked before any runs: once one finishes, it makes dependents
        // ready (pending 0) and spawns them itself, so a scan during the spawning would
        // start those a second time.
        let roots: Vec<usize> = (0..stale.len())
            .filter(|&i| stale[i] && run.pending[i].load(Ordering::Relaxed) == 0)
            .collect();
        rayon::scope(|s| {
            for i in roots {
                let run = &run;
                s.spawn(move |s| run.node(s, i));
            }
        });
        let Run {
            outcomes,
            previous,
            failure,
            ..
        } = run;
        let revision = self.revision;
        let kept = self.kept_rows();
        for (i, (outcome, previous)) in outcomes.into_iter().zip(previous).enumerate() {
            let Some(o) = outcome.into_inner() else {
                if stale[i] {
                    // Not run (it or a dependency failed): it keeps its old value, unverified.
                    self.nodes[i] = previous.into_inner().unwrap_or_else(|e| e.into_inner());
                }
                continue;
            };
            if let Some((seconds, rows)) = o.ran {
                let st = &mut self.stats[i];
                st.computes += 1;
                st.seconds += seconds;
                st.rows += rows;
                st.cutoffs += u64::from(o.cutoff);
            }
            let (mut value, mut first) = (o.value, o.first);
            if let Some(kept) = kept.filter(|_| self.spec.nodes[i].timed) {
                let rows = value.nrows();
                if rows > 2 * kept {
                    value = keep_last(value, kept);
                    first += (rows - kept) as u64;
                }
            }
            self.nodes[i] = Some(Cached {
                value,
                changed_at: o.changed_at,
                replaced_at: o.replaced_at,
                verified_at: revision,
                first,
                cache: o.cache,
                cache_end: o.cache_end,
            });
        }
        match failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}

impl Drop for Engine {
    /// Hands the buffers of the values nobody else holds to the pool (see `pool`).
    fn drop(&mut self) {
        let inputs = self.inputs.drain(..).flatten().map(|s| s.value);
        let nodes = self.nodes.drain(..).flatten().map(|c| c.value);
        inputs.chain(nodes).for_each(crate::pool::recycle);
    }
}

/// A dependency's value as one run sees it.
struct Dep<'r> {
    value: &'r Arc<Panel>,
    changed_at: u64,
    replaced_at: u64,
    /// Absolute row of its first row (time-indexed values).
    first: u64,
    timed: bool,
}

/// The shared state of one scheduling run.
struct Run<'a> {
    engine: &'a Engine,
    stale: &'a [bool],
    /// Stale dependencies not yet finished, per node.
    pending: Vec<AtomicUsize>,
    /// The old value of each stale node, for its own task to take.
    previous: Vec<Mutex<Option<Cached>>>,
    /// The absolute row after the last row of the time-indexed inputs.
    end: u64,
    outcomes: Vec<OnceLock<Outcome>>,
    failure: Mutex<Option<Error>>,
}

impl<'a> Run<'a> {
    /// A slot's value as seen by this run.
    fn slot(&self, slot: usize) -> Dep<'_> {
        let e = self.engine;
        let n_in = e.inputs.len();
        let timed = e.spec.slot_timed(slot);
        if slot < n_in {
            let s = e.inputs[slot]
                .as_ref()
                .expect("inputs checked before the run");
            return Dep {
                value: &s.value,
                changed_at: s.changed_at,
                replaced_at: s.replaced_at,
                first: e.origin,
                timed,
            };
        }
        let j = slot - n_in;
        if self.stale[j] {
            let o = self.outcomes[j]
                .get()
                .expect("dependency finished before dependent");
            Dep {
                value: &o.value,
                changed_at: o.changed_at,
                replaced_at: o.replaced_at,
                first: o.first,
                timed,
            }
        } else {
            let c = e.nodes[j].as_ref().expect("fresh nodes are cached");
            Dep {
                value: &c.value,
                changed_at: c.changed_at,
                replaced_at: c.replaced_at,
                first: c.first,
                timed,
            }
        }
    }

    /// Runs a kernel, turning a panic into the run's failure (`None`). `cache` is warm
    /// when it was left by a run that ended where this one starts.
    fn kernel(
        &self,
        i: usize,
        args: &[View<'_>],
        rows: usize,
        cache: &mut Cache,
        warm: bool,
    ) -> Option<(Panel, f64)> {
        let spec = &self.engine.spec.nodes[i];
        cache.begin(warm);
        let start = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| (spec.kernel)(args, rows, cache)));
        let seconds = start.elapsed().as_secs_f64();
        match result {
            Ok(v) => {
                cache.settle();
                Some((v, seconds))
            }
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "the kernel panicked".to_string());
                let mut failure = self.failure.lock().unwrap_or_else(|e| e.into_inner());
                failure.get_or_insert(Error::Compute {
                    node: spec.name.to_string(),
                    message,
                });
                None
            }
        }
    }

    /// The node's new value, or `None` when its kernel failed (its old value then goes
    /// back to `previous`, for the run to keep).
    fn outcome(&self, i: usize, cached: Option<Cached>, deps: &[Dep<'_>]) -> Option<Outcome> {
        let must_run = cached
            .as_ref()
            .is_none_or(|c| deps.iter().any(|d| d.changed_at > c.verified_at));
        match cached {
            Some(c) if !must_run => Some(Outcome {
                value: c.value,
                changed_at: c.changed_at,
                replaced_at: c.replaced_at,
                first: c.first,
                ran: None,
                cutoff: false,
                cache: c.cache,
                cache_end: c.cache_end,
            }),
            Some(c) if self.grown_only(i, &c, deps) => self.new_rows(i, c, deps),
            cached => self.recompute(i, cached, deps),
        }
    }

    /// Absolute row from which every time-indexed dependency of node `i` has rows (`None`
    /// when the node is not time-indexed).
    fn common_first(&self, i: usize, deps: &[Dep<'_>]) -> Option<u64> {
        let spec = &self.engine.spec.nodes[i];
        spec.timed
            .then(|| deps.iter().filter(|d| d.timed).map(|d| d.first).max())
            .flatten()
    }

    /// Whether node `i` needs only new rows: it is time-indexed, its dependencies grew
    /// without replacing a row since it was verified, and they still hold the rows its new
    /// rows read (`lookback` rows before the first of them, or the series start).
    fn grown_only(&self, i: usize, c: &Cached, deps: &[Dep<'_>]) -> bool {
        let Some(common) = self.common_first(i, deps) else {
            return false;
        };
        let from = c.first + c.value.nrows() as u64;
        let reach = from.saturating_sub(self.engine.spec.nodes[i].lookback as u64);
        deps.iter().all(|d| d.replaced_at <= c.verified_at) && from < self.end && common <= reach
    }

    /// Computes node `i`'s rows after those it holds and appends them to its value.
    fn new_rows(&self, i: usize, mut c: Cached, deps: &[Dep<'_>]) -> Option<Outcome> {
        let from = c.first + c.value.nrows() as u64;
        let reach = from.saturating_sub(self.engine.spec.nodes[i].lookback as u64);
        let args: Vec<View<'_>> = deps
            .iter()
            .map(|d| {
                if d.timed {
                    rows_from(d.value, d.first, reach)
                } else {
                    d.value.view()
                }
            })
            .collect();
        let rows = (self.end - from) as usize;
        let warm = c.cache_end == Some(from);
        let Some((new, seconds)) = self.kernel(i, &args, rows, &mut c.cache, warm) else {
            c.cache_end = None;
            *self.previous[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(c);
            return None;
        };
        let mut value = c.value;
        let t = new.nrows();
        push_rows(
            Arc::make_mut(&mut value),
            new.slice(s![t - rows.min(t).., ..]),
        );
        crate::pool::give_panel(new);
        Some(Outcome {
            value,
            changed_at: self.engine.revision,
            replaced_at: c.replaced_at,
            first: c.first,
            ran: Some((seconds, rows as u64)),
            cutoff: false,
            cache: c.cache,
            cache_end: Some(self.end),
        })
    }

    /// Computes node `i` over every row its dependencies hold. After dropped rows (a
    /// bounded stream), its first `lookback` rows would read rows that are gone: it keeps
    /// the rest. Early cutoff: a value bitwise equal to the cached one keeps its revisions.
    fn recompute(&self, i: usize, mut cached: Option<Cached>, deps: &[Dep<'_>]) -> Option<Outcome> {
        let e = self.engine;
        let spec = &e.spec.nodes[i];
        let common = self.common_first(i, deps);
        let start = common.unwrap_or(0);
        let args: Vec<View<'_>> = deps
            .iter()
            .map(|d| match common {
                Some(_) if d.timed => rows_from(d.value, d.first, start),
                _ => d.value.view(),
            })
            .collect();
        let rows = match common {
            Some(start) => (self.end - start) as usize,
            None => args.first().map_or(0, |a| a.nrows()),
        };
        let mut cache = cached
            .as_mut()
            .map(|c| std::mem::take(&mut c.cache))
            .unwrap_or_default();
        let Some((mut new, seconds)) = self.kernel(i, &args, rows, &mut cache, false) else {
            if let Some(c) = cached.as_mut() {
                c.cache_end = None;
            }
            *self.previous[i].lock().unwrap_or_else(|e| e.into_inner()) = cached;
            return None;
        };
        let cache_end = Some(self.end);
        let mut first = 0;
        if common.is_some() {
            let unknown = if start > 0 { spec.lookback } else { 0 };
            let keep = rows.saturating_sub(unknown);
            let t = new.nrows();
            if t != keep {
                let cut = new.slice(s![t - keep.min(t).., ..]).to_owned();
                crate::pool::give_panel(std::mem::replace(&mut new, cut));
            }
            first = self.end - new.nrows() as u64;
        }
        let ran = Some((seconds, rows as u64));
        Some(match cached {
            Some(c) if c.first == first && bitwise_eq(&c.value, &new) => {
                crate::pool::give_panel(new);
                Outcome {
                    value: c.value,
                    changed_at: c.changed_at,
                    replaced_at: c.replaced_at,
                    first,
                    ran,
                    cutoff: true,
                    cache,
                    cache_end,
                }
            }
            previous => {
                if let Some(p) = previous {
                    crate::pool::recycle(p.value);
                }
                Outcome {
                    value: Arc::new(new),
                    changed_at: e.revision,
                    replaced_at: e.revision,
                    first,
                    ran,
                    cutoff: false,
                    cache,
                    cache_end,
                }
            }
        })
    }

    fn node<'s>(&'s self, scope: &rayon::Scope<'s>, i: usize) {
        let e = self.engine;
        let spec = &e.spec.nodes[i];
        let cached = self.previous[i]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let deps: Vec<Dep<'_>> = spec.deps.iter().map(|&d| self.slot(d)).collect();
        let Some(outcome) = self.outcome(i, cached, &deps) else {
            return; // dependents never become ready
        };
        if self.outcomes[i].set(outcome).is_err() {
            unreachable!("each stale node runs once");
        }
        for &j in &e.dependents[i] {
            if self.stale[j] && self.pending[j].fetch_sub(1, Ordering::AcqRel) == 1 {
                scope.spawn(move |s| self.node(s, j));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::map;
    use ndarray::Array2;

    fn add1(a: &[View<'_>], _rows: usize, _cache: &mut crate::cache::Cache) -> Panel {
        map([a[0]], |[x]| x + 1.0)
    }
    fn sum2(a: &[View<'_>], _rows: usize, _cache: &mut crate::cache::Cache) -> Panel {
        map([a[0], a[1]], |[x, y]| x + y)
    }
    fn sign0(a: &[View<'_>], _rows: usize, _cache: &mut crate::cache::Cache) -> Panel {
        map([a[0]], |[x]| if x > 0.0 { 1.0 } else { 0.0 })
    }
    fn boom(_: &[View<'_>], _rows: usize, _cache: &mut crate::cache::Cache) -> Panel {
        panic!("kernel exploded")
    }

    // The seed's example: A -> B -> C -> F and D -> E -> F; inputs a and d.
    // Slots: inputs a=0, d=1; nodes A=2, B=3, C=4, D=5, E=6, F=7.
    static SEED: GraphSpec = GraphSpec {
        name: "Seed",
        inputs: &["a", "d"],
        input_dims: &[["T", "N"], ["T", "N"]],
        nodes: &[
            NodeSpec {
                name: "A",
                doc: "",
                deps: &[0],
                kernel: add1,
                public: true,
                timed: true,
                lookback: 0,
                reads: &[0],
            },
            NodeSpec {
                name: "B",
                doc: "",
                deps: &[2],
                kernel: add1,
                public: true,
                timed: true,
                lookback: 0,
                reads: &[0],
            },
            NodeSpec {
                name: "C",
                doc: "",
                deps: &[3],
                kernel: add1,
                public: true,
                timed: true,
                lookback: 0,
                reads: &[0],
            },
            NodeSpec {
                name: "D",
                doc: "",
                deps: &[1],
                kernel: sign0,
                public: true,
                timed: true,
                lookback: 0,
                reads: &[0],
            },
            NodeSpec {
                name: "E",
                doc: "",
                deps: &[5],
                kernel: add1,
                public: true,
                timed: true,
                lookback: 0,
                reads: &[0],
            },
            NodeSpec {
                name: "F",
                doc: "",
                deps: &[4, 6],
                kernel: sum2,
                public: true,
                timed: true,
                lookback: 0,
                reads: &[0, 0],
            },
            NodeSpec {
                name: "G",
                doc: "",
                deps: &[0],
                kernel: boom,
                public: true,
                timed: true,
                lookback: 0,
                reads: &[0],
            },
        ],
        levels: &[&[0, 3, 6], &[1, 4], &[2], &[5]],
    };

    fn input(v: f64) -> InputValue {
        InputValue {
            panel: Array2::from_elem((3, 2), v),
            given_shape: vec![3, 2],
        }
    }

    fn computes(e: &Engine) -> Vec<u64> {
        e.stats().iter().map(|s| s.computes).collect()
    }

    #[test]
    fn lazy_incremental_and_early_cutoff() {
        let mut e = Engine::new(&SEED);
        e.set_inputs(vec![(0, input(1.0)), (1, input(5.0))])
            .unwrap();
        // Lazy: B needs only A and B.
        e.compute(&[1]).unwrap();
        assert_eq!(computes(&e), [1, 1, 0, 0, 0, 0, 0]);
        let f = e.compute(&[5]).unwrap();
        assert_eq!(f[0][[0, 0]], 4.0 + 2.0);
        assert_eq!(computes(&e), [1, 1, 1, 1, 1, 1, 0]);
        // Changing d recomputes D, E, F only.
        e.set_inputs(vec![(1, input(-5.0))]).unwrap();
        e.compute(&[5]).unwrap();
        assert_eq!(computes(&e), [1, 1, 1, 2, 2, 2, 0]);
        // D's value is unchanged for another negative d: E and F are cut off.
        e.set_inputs(vec![(1, input(-7.0))]).unwrap();
        e.compute(&[5]).unwrap();
        assert_eq!(computes(&e), [1, 1, 1, 3, 2, 2, 0]);
        assert_eq!(e.stats()[3].cutoffs, 1);
        // Setting an input to its current value changes nothing.
        e.set_inputs(vec![(0, input(1.0))]).unwrap();
        e.compute(&[5]).unwrap();
        assert_eq!(computes(&e), [1, 1, 1, 3, 2, 2, 0]);
    }

    #[test]
    fn missing_inputs_and_bad_shapes_are_errors_that_change_nothing() {
        let mut e = Engine::new(&SEED);
        e.set_inputs(vec![(0, input(1.0))]).unwrap();
        let err = e.compute(&[5]).unwrap_err();
        assert!(matches!(err, Error::MissingInput { ref input, .. } if input == "d"));
        assert_eq!(computes(&e), [0; 7]);
        let bad = InputValue {
            panel: Array2::zeros((4, 2)),
            given_shape: vec![4, 2],
        };
        let err = e.set_inputs(vec![(1, bad)]).unwrap_err();
        assert!(err.to_string().contains("(4, 2)"), "{err}");
        assert!(e.compute(&[5]).is_err());
    }

    // Two independent nodes that each wait (bounded) for the other to start: they only
    // both see the other if the scheduler runs them at the same time.
    static STARTED: AtomicUsize = AtomicUsize::new(0);
    fn rendezvous(a: &[View<'_>], _rows: usize, _cache: &mut crate::cache::Cache) -> Panel {
        STARTED.fetch_add(1, Ordering::SeqCst);
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while STARTED.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
            std::thread::yield_now();
        }
        let met = if STARTED.load(Ordering::SeqCst) >= 2 {
            1.0
        } else {
            0.0
        };
        map([a[0]], |[_]| met)
    }
    static PAIR: GraphSpec = GraphSpec {
        name: "Pair",
        inputs: &["x"],
        input_dims: &[["T", "N"]],
        nodes: &[
            NodeSpec {
                name: "left",
                doc: "",
                deps: &[0],
                kernel: rendezvous,
                public: true,
                timed: true,
                lookback: 0,
                reads: &[0],
            },
            NodeSpec {
                name: "right",
                doc: "",
                deps: &[0],
                kernel: rendezvous,
                public: true,
                timed: true,
                lookback: 0,
                reads: &[0],
            },
            NodeSpec {
                name: "both",
                doc: "",
                deps: &[1, 2],
                kernel: sum2,
                public: true,
                timed: true,
                lookback: 0,
                reads: &[0, 0],
            },
        ],
        levels: &[&[0, 1], &[2]],
    };

    #[test]
    fn independent_nodes_run_concurrently() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let mut e = Engine::new(&PAIR);
        e.set_inputs(vec![(0, input(1.0))]).unwrap();
        let both = pool.install(|| e.compute(&[2])).unwrap();
        assert_eq!(
            both[0][[0, 0]],
            2.0,
            "left and right did not run at the same time"
        );
    }

    #[test]
    fn a_panicking_kernel_is_an_error_and_the_engine_goes_on() {
        let mut e = Engine::new(&SEED);
        e.set_inputs(vec![(0, input(1.0)), (1, input(1.0))])
            .unwrap();
        let err = e.compute(&[6, 5]).unwrap_err();
        assert!(
            matches!(err, Error::Compute { ref node, ref message } if node == "G" && message == "kernel exploded")
        );
        assert!(e.compute(&[5]).is_ok());
    }

    /// A root that finishes while the roots are still being spawned makes its dependents
    /// ready; they must not be spawned a second time as roots (each stale node runs once).
    /// Many cheap roots (spawning them takes a while) ahead of the dependents of the first
    /// one, many times over, give that race its chance.
    #[test]
    fn a_node_made_ready_while_roots_are_spawned_runs_once() {
        const ROOTS: usize = 3000;
        const WIDE: usize = ROOTS + 300;
        let nodes: Vec<NodeSpec> = (0..WIDE)
            .map(|k| NodeSpec {
                name: if k < ROOTS { "root" } else { "leaf" },
                doc: "",
                deps: if k < ROOTS { &[0] } else { &[1] },
                kernel: add1,
                public: true,
                timed: true,
                lookback: 0,
                reads: &[0],
            })
            .collect();
        let spec: &'static GraphSpec = Box::leak(Box::new(GraphSpec {
            name: "Fan",
            inputs: &["x"],
            input_dims: &[["T", "N"]],
            nodes: Box::leak(nodes.into_boxed_slice()),
            levels: &[],
        }));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        let targets: Vec<usize> = (0..WIDE).collect();
        for round in 0..50 {
            let mut e = Engine::new(spec);
            e.set_inputs(vec![(0, input(round as f64))]).unwrap();
            let values = pool.install(|| e.compute(&targets)).unwrap();
            assert_eq!(values[WIDE - 1][[0, 0]], round as f64 + 2.0);
            assert!(e.stats().iter().all(|s| s.computes == 1));
        }
    }
}
