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
//! Scheduling is by in-degree: each stale node waits for a counter of its stale
//! dependencies to reach zero, then runs as a rayon task; independent nodes run at once.

use crate::error::{shape_str, Error, Result};
use crate::kernels::bitwise_eq;
use crate::Panel;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// A node kernel: reads its dependencies' values in the order of [`NodeSpec::deps`].
pub type Kernel = fn(&[&Panel]) -> Panel;

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
}

/// An input value as handed to [`Engine::set_inputs`].
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
}

struct Cached {
    value: Arc<Panel>,
    changed_at: u64,
    verified_at: u64,
}

struct Outcome {
    value: Arc<Panel>,
    changed_at: u64,
    seconds: Option<f64>,
    cutoff: bool,
}

pub struct Engine {
    spec: &'static GraphSpec,
    inputs: Vec<Option<InputSlot>>,
    nodes: Vec<Option<Cached>>,
    /// For each node, the nodes that read it.
    dependents: Vec<Vec<usize>>,
    revision: u64,
    stats: Vec<NodeStats>,
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
        }
    }

    pub fn spec(&self) -> &'static GraphSpec {
        self.spec
    }

    pub fn stats(&self) -> &[NodeStats] {
        &self.stats
    }

    /// Whether values are handed out 1-D: every input set so far was given 1-D (a (T,)
    /// array, held as a (T, 1) panel). `None` before any input is set.
    pub fn one_d(&self) -> Option<bool> {
        let mut given = self.inputs.iter().flatten().peekable();
        given.peek()?;
        Some(given.all(|s| s.given_shape.len() == 1))
    }

    /// The shape a value is handed out in: `[T]` for a single-column value when every
    /// input was given 1-D (see [`Engine::one_d`]), else its 2-D shape.
    pub fn output_shape(&self, value: &Panel) -> Vec<usize> {
        if self.one_d() == Some(true) && value.ncols() == 1 {
            vec![value.nrows()]
        } else {
            value.shape().to_vec()
        }
    }

    /// The shape each input was given, by input index (`None` for an input not set).
    pub fn input_shapes(&self) -> Vec<Option<&[usize]>> {
        self.inputs
            .iter()
            .map(|s| s.as_ref().map(|s| s.given_shape.as_slice()))
            .collect()
    }

    /// Sets several inputs at once. Either all are applied or, on a shape error, none.
    /// An input set to a value bitwise equal to its current one counts as unchanged.
    pub fn set_inputs(&mut self, batch: Vec<(usize, InputValue)>) -> Result<()> {
        self.check_dims(&batch)?;
        let next = self.revision + 1;
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
            });
            if let Some(old) = old {
                crate::pool::recycle(old.value);
            }
        }
        if changed {
            self.revision = next;
        }
        Ok(())
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
        let run = Run {
            engine: self,
            stale,
            pending,
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
            outcomes, failure, ..
        } = run;
        let revision = self.revision;
        for (i, outcome) in outcomes.into_iter().enumerate() {
            let Some(o) = outcome.into_inner() else {
                continue;
            };
            if let Some(seconds) = o.seconds {
                let st = &mut self.stats[i];
                st.computes += 1;
                st.seconds += seconds;
                st.cutoffs += u64::from(o.cutoff);
            }
            let old = self.nodes[i].replace(Cached {
                value: o.value,
                changed_at: o.changed_at,
                verified_at: revision,
            });
            if let Some(old) = old {
                crate::pool::recycle(old.value); // kept if a cutoff still shares it
            }
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

/// The shared state of one scheduling run.
struct Run<'a> {
    engine: &'a Engine,
    stale: &'a [bool],
    /// Stale dependencies not yet finished, per node.
    pending: Vec<AtomicUsize>,
    outcomes: Vec<OnceLock<Outcome>>,
    failure: Mutex<Option<Error>>,
}

impl<'a> Run<'a> {
    /// Value and `changed_at` of a slot as seen by this run.
    fn slot(&self, slot: usize) -> (&Arc<Panel>, u64) {
        let e = self.engine;
        let n_in = e.inputs.len();
        if slot < n_in {
            let s = e.inputs[slot]
                .as_ref()
                .expect("inputs checked before the run");
            return (&s.value, s.changed_at);
        }
        let j = slot - n_in;
        if self.stale[j] {
            let o = self.outcomes[j]
                .get()
                .expect("dependency finished before dependent");
            (&o.value, o.changed_at)
        } else {
            let c = e.nodes[j].as_ref().expect("fresh nodes are cached");
            (&c.value, c.changed_at)
        }
    }

    fn node<'s>(&'s self, scope: &rayon::Scope<'s>, i: usize) {
        let e = self.engine;
        let spec = &e.spec.nodes[i];
        let cached = e.nodes[i].as_ref();
        let deps: Vec<(&Arc<Panel>, u64)> = spec.deps.iter().map(|&d| self.slot(d)).collect();
        let must_run = cached.is_none_or(|c| deps.iter().any(|&(_, at)| at > c.verified_at));
        let outcome = if must_run {
            let args: Vec<&Panel> = deps.iter().map(|(v, _)| v.as_ref()).collect();
            let start = Instant::now();
            let result = catch_unwind(AssertUnwindSafe(|| (spec.kernel)(&args)));
            let seconds = start.elapsed().as_secs_f64();
            let new = match result {
                Ok(v) => v,
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
                    return; // dependents never become ready
                }
            };
            match cached {
                Some(c) if bitwise_eq(&c.value, &new) => Outcome {
                    value: c.value.clone(),
                    changed_at: c.changed_at,
                    seconds: Some(seconds),
                    cutoff: true,
                },
                _ => Outcome {
                    value: Arc::new(new),
                    changed_at: e.revision,
                    seconds: Some(seconds),
                    cutoff: false,
                },
            }
        } else {
            let c = cached.expect("must_run when nothing is cached");
            Outcome {
                value: c.value.clone(),
                changed_at: c.changed_at,
                seconds: None,
                cutoff: false,
            }
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

    fn add1(a: &[&Panel]) -> Panel {
        map([a[0]], |[x]| x + 1.0)
    }
    fn sum2(a: &[&Panel]) -> Panel {
        map([a[0], a[1]], |[x, y]| x + y)
    }
    fn sign0(a: &[&Panel]) -> Panel {
        map([a[0]], |[x]| if x > 0.0 { 1.0 } else { 0.0 })
    }
    fn boom(_: &[&Panel]) -> Panel {
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
            },
            NodeSpec {
                name: "B",
                doc: "",
                deps: &[2],
                kernel: add1,
                public: true,
            },
            NodeSpec {
                name: "C",
                doc: "",
                deps: &[3],
                kernel: add1,
                public: true,
            },
            NodeSpec {
                name: "D",
                doc: "",
                deps: &[1],
                kernel: sign0,
                public: true,
            },
            NodeSpec {
                name: "E",
                doc: "",
                deps: &[5],
                kernel: add1,
                public: true,
            },
            NodeSpec {
                name: "F",
                doc: "",
                deps: &[4, 6],
                kernel: sum2,
                public: true,
            },
            NodeSpec {
                name: "G",
                doc: "",
                deps: &[0],
                kernel: boom,
                public: true,
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
    fn rendezvous(a: &[&Panel]) -> Panel {
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
            },
            NodeSpec {
                name: "right",
                doc: "",
                deps: &[0],
                kernel: rendezvous,
                public: true,
            },
            NodeSpec {
                name: "both",
                doc: "",
                deps: &[1, 2],
                kernel: sum2,
                public: true,
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
