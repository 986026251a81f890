//! One invocation: pick the DAG, load the inputs, compute on the warm engine, answer.
//!
//! The process keeps one [`Engine`] per DAG class across invocations, so a warm
//! container recomputes only the cone of the inputs that changed (inputs bitwise equal
//! to the previous ones count as unchanged). Every request must still give every input
//! its outputs read: a result never depends on what an earlier caller sent.

use super::event::{encode_array, Request, Source};
use super::failure::{Failure, Kind, Outcome};
use super::store::S3;
use crate::engine::{Engine, GraphSpec, InputValue, NodeStats};
use crate::Panel;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// Lambda's limit on a synchronous response payload.
pub const RESPONSE_LIMIT: usize = 6 * 1024 * 1024;
/// Where outputs go when a response would pass the limit and the request has no
/// `output_uri`.
pub const OUTPUT_URI_ENV: &str = "SRAY_OUTPUT_URI";

/// What one invocation computed: the values, the shape each is handed out in, and the
/// per-node stats of this invocation.
struct Computed {
    values: Vec<Arc<Panel>>,
    shapes: Vec<Vec<usize>>,
    stats: Value,
}

/// The state of the serving process.
pub struct Handler {
    dags: &'static [&'static GraphSpec],
    warm: Vec<Mutex<Option<Engine>>>,
    s3: S3,
    default_output_uri: Option<String>,
}

impl Handler {
    pub fn new(dags: &'static [&'static GraphSpec]) -> Self {
        Handler {
            dags,
            warm: dags.iter().map(|_| Mutex::new(None)).collect(),
            s3: S3::default(),
            default_output_uri: std::env::var(OUTPUT_URI_ENV).ok().filter(|v| !v.is_empty()),
        }
    }

    fn pick(&self, name: Option<&str>) -> Outcome<usize> {
        let names = || {
            self.dags
                .iter()
                .map(|d| format!("`{}`", d.name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match name {
            None if self.dags.len() == 1 => Ok(0),
            None => Err(Failure::new(
                Kind::UnknownDag,
                format!(
                    "this function serves several DAGs; name one with \"dag\": one of {}",
                    names()
                ),
            )),
            Some(n) => self.dags.iter().position(|d| d.name == n).ok_or_else(|| {
                Failure::new(
                    Kind::UnknownDag,
                    format!(
                        "`{n}` is not a DAG of this function; its DAGs are: {}",
                        names()
                    ),
                )
            }),
        }
    }

    /// Serves one parsed request.
    pub async fn handle(&self, request: Request) -> Outcome<Value> {
        let d = self.pick(request.dag.as_deref())?;
        let spec = self.dags[d];
        let targets: Vec<usize> = request
            .outputs
            .iter()
            .map(|o| spec.node_index(o))
            .collect::<crate::Result<_>>()?;
        for name in request.inputs.keys() {
            spec.input_index(name)?;
        }
        let needed = needed_inputs(spec, &targets);
        if let Some(&missing) = needed
            .iter()
            .find(|&&i| !request.inputs.contains_key(spec.inputs[i]))
        {
            let given: Vec<&str> = request.inputs.keys().map(String::as_str).collect();
            let wanted: Vec<&str> = needed.iter().map(|&i| spec.inputs[i]).collect();
            return Err(Failure::new(
                Kind::MissingInput,
                format!(
                    "the outputs asked for read input `{}`, which the request does not give; \
                     give all of [{}] in \"inputs\" (given: [{}])",
                    spec.inputs[missing],
                    wanted.join(", "),
                    given.join(", ")
                ),
            ));
        }
        let mut batch: Vec<(usize, InputValue)> = Vec::with_capacity(request.inputs.len());
        for (name, source) in request.inputs {
            let value = match source {
                Source::Inline(v) => v,
                Source::S3(uri) => self.s3.read_input(&name, &uri).await?,
            };
            batch.push((spec.input_index(&name)?, value));
        }
        let Computed {
            values,
            shapes,
            stats,
        } = self.compute(d, batch, &targets)?;
        let inline = request.output_uri.is_none();
        let mut outputs = Map::new();
        if inline {
            for ((name, v), shape) in request.outputs.iter().zip(&values).zip(&shapes) {
                outputs.insert(name.clone(), encode_array(v, shape, request.format));
            }
            let response = json!({"outputs": outputs, "stats": stats});
            let size = serde_json::to_vec(&response)
                .map(|b| b.len())
                .unwrap_or(usize::MAX);
            if size <= RESPONSE_LIMIT {
                return Ok(response);
            }
            outputs = Map::new();
        }
        let prefix = request
            .output_uri
            .or_else(|| self.default_output_uri.clone())
            .ok_or_else(|| {
                Failure::new(
                    Kind::OutputUriRequired,
                    format!(
                        "the outputs take more than Lambda's {} MB response limit; give \"output_uri\": \
                         \"s3://bucket/prefix/\" to have them written there as .npy (or set {OUTPUT_URI_ENV} \
                         in the function's environment), or ask for fewer outputs",
                        RESPONSE_LIMIT >> 20
                    ),
                )
            })?;
        for ((name, v), shape) in request.outputs.iter().zip(&values).zip(&shapes) {
            let uri = self.s3.write_output(&prefix, name, v, shape).await?;
            outputs.insert(name.clone(), json!({"uri": uri, "shape": shape}));
        }
        Ok(json!({"outputs": outputs, "stats": stats}))
    }

    /// Sets the inputs on the DAG's warm engine and computes the targets.
    fn compute(
        &self,
        d: usize,
        batch: Vec<(usize, InputValue)>,
        targets: &[usize],
    ) -> Outcome<Computed> {
        let spec = self.dags[d];
        // A panic while the lock was held leaves the engine in an unknown state: drop it.
        let mut guard = self.warm[d].lock().unwrap_or_else(|poisoned| {
            let mut g = poisoned.into_inner();
            *g = None;
            g
        });
        // A warm engine whose kept inputs give a dim another size than this request
        // starts afresh. A request that disagrees with itself fails on a fresh engine
        // too; it keeps the warm one, and set_inputs reports the ShapeMismatch.
        let fresh = || Engine::new(spec);
        let engine = match guard.take() {
            Some(warm)
                if warm.check_dims(&batch).is_ok() || fresh().check_dims(&batch).is_err() =>
            {
                warm
            }
            _ => fresh(),
        };
        let engine = guard.insert(engine);
        let before: Vec<NodeStats> = engine.stats().to_vec();
        engine.set_inputs(batch)?;
        let values = engine.compute(targets)?;
        let shapes = values.iter().map(|v| engine.output_shape(v)).collect();
        let mut stats = Map::new();
        for ((node, now), was) in spec.nodes.iter().zip(engine.stats()).zip(&before) {
            stats.insert(
                node.name.to_string(),
                json!({
                    "computes": now.computes - was.computes,
                    "cutoffs": now.cutoffs - was.cutoffs,
                    "seconds": now.seconds - was.seconds,
                }),
            );
        }
        Ok(Computed {
            values,
            shapes,
            stats: Value::Object(stats),
        })
    }
}

/// The inputs that computing `targets` reads, as input indices in declaration order.
pub fn needed_inputs(spec: &GraphSpec, targets: &[usize]) -> Vec<usize> {
    let n_in = spec.inputs.len();
    let mut seen = vec![false; spec.nodes.len()];
    let mut inputs = BTreeSet::new();
    let mut stack = targets.to_vec();
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        for &d in spec.nodes[i].deps {
            if d < n_in {
                inputs.insert(d);
            } else {
                stack.push(d - n_in);
            }
        }
    }
    inputs.into_iter().collect()
}

/// Messages of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::NodeSpec;
    use crate::kernels::map;
    use crate::lambda::event::Incoming;
    use crate::lambda::invoke;

    fn double(a: &[&Panel]) -> Panel {
        map([a[0]], |[x]| 2.0 * x)
    }
    fn boom(_: &[&Panel]) -> Panel {
        panic!("kernel exploded")
    }

    static ONE: GraphSpec = GraphSpec {
        name: "One",
        inputs: &["x"],
        input_dims: &[["T", "N"]],
        nodes: &[
            NodeSpec {
                name: "twice",
                doc: "",
                deps: &[0],
                kernel: double,
                public: true,
            },
            NodeSpec {
                name: "boom",
                doc: "",
                deps: &[0],
                kernel: boom,
                public: true,
            },
        ],
        levels: &[&[0, 1]],
    };
    // Not something sray-gen generates: a dependency slot out of range makes the engine
    // itself panic, outside any kernel, which is how the `Panic` path is exercised.
    static BROKEN: GraphSpec = GraphSpec {
        name: "Broken",
        inputs: &["x"],
        input_dims: &[["T", "N"]],
        nodes: &[NodeSpec {
            name: "bad",
            doc: "",
            deps: &[7],
            kernel: double,
            public: true,
        }],
        levels: &[&[0]],
    };
    fn project(a: &[&Panel]) -> Panel {
        crate::linalg::matmul(a[0], a[1])
    }
    fn scale(a: &[&Panel]) -> Panel {
        map([a[0]], |[w]| 10.0 * w)
    }
    // returns (T, N) @ loadings (N, K): outputs of two shapes, inputs with named dims.
    static PROJ: GraphSpec = GraphSpec {
        name: "Proj",
        inputs: &["returns", "loadings"],
        input_dims: &[["T", "N"], ["N", "K"]],
        nodes: &[
            NodeSpec {
                name: "exposure",
                doc: "",
                deps: &[0, 1],
                kernel: project,
                public: true,
            },
            NodeSpec {
                name: "scaled",
                doc: "",
                deps: &[1],
                kernel: scale,
                public: true,
            },
        ],
        levels: &[&[0, 1]],
    };
    static DAGS: &[&GraphSpec] = &[&ONE, &BROKEN, &PROJ];

    fn ones(rows: usize, cols: usize) -> Value {
        json!({"shape": [rows, cols], "data": vec![1.0; rows * cols]})
    }

    #[test]
    fn named_dims_shape_each_output_and_a_new_size_restarts_the_dag() {
        let h = Arc::new(Handler::new(DAGS));
        let request = |t: usize, n: usize, k: usize, outputs: Value| {
            json!({"dag": "Proj", "inputs": {"returns": ones(t, n), "loadings": ones(n, k)},
                   "outputs": outputs, "format": "json"})
        };
        let ok = call(&h, request(4, 3, 2, json!(["exposure", "scaled"]))).unwrap();
        assert_eq!(ok["outputs"]["exposure"]["shape"], json!([4, 2]));
        assert_eq!(ok["outputs"]["exposure"]["data"], json!(vec![3.0; 8]));
        assert_eq!(ok["outputs"]["scaled"]["shape"], json!([3, 2]));
        // Loadings with 5 rows disagree with the 3 columns of returns: blamed on loadings,
        // the later declared input, whatever the key order of the request.
        let bad = json!({"dag": "Proj", "inputs": {"loadings": ones(5, 2), "returns": ones(4, 3)},
                         "outputs": ["exposure"]});
        let err = call(&h, bad).unwrap_err();
        assert_eq!(err.kind, Kind::ShapeMismatch);
        assert!(
            err.message
                .contains("input `loadings` has shape (5, 2), expected (N, K) with N = 3"),
            "{}",
            err.message
        );
        // A request with N = 6 cannot reuse the warm engine (its kept inputs have N = 3):
        // the DAG starts afresh instead of failing.
        let ok = call(&h, request(4, 6, 2, json!(["exposure"]))).unwrap();
        assert_eq!(ok["outputs"]["exposure"]["data"], json!(vec![6.0; 8]));
        // The same sizes again: warm, nothing recomputed.
        let ok = call(&h, request(4, 6, 2, json!(["exposure"]))).unwrap();
        assert_eq!(ok["stats"]["exposure"]["computes"], 0);
    }

    fn call(h: &Arc<Handler>, v: Value) -> Result<Value, Failure> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(invoke(h.clone(), Incoming(Ok(v))))
    }

    fn x(v: f64) -> Value {
        json!({"shape": [2], "data": [v, v]})
    }

    #[test]
    fn dispatch_panics_and_kernel_failures_keep_the_process_serving() {
        let h = Arc::new(Handler::new(DAGS));
        let err = call(&h, json!({"outputs": ["twice"]})).unwrap_err();
        assert_eq!(err.kind, Kind::UnknownDag);
        assert!(
            err.message.contains("`One`, `Broken`, `Proj`"),
            "{}",
            err.message
        );
        let ok = call(
            &h,
            json!({"dag": "One", "inputs": {"x": x(1.5)}, "outputs": ["twice"], "format": "json"}),
        )
        .unwrap();
        assert_eq!(ok["outputs"]["twice"]["data"], json!([3.0, 3.0]));
        let err = call(
            &h,
            json!({"dag": "One", "inputs": {"x": x(1.5)}, "outputs": ["boom"]}),
        )
        .unwrap_err();
        assert_eq!(err.kind, Kind::ComputeError);
        assert!(err.message.contains("kernel exploded"), "{}", err.message);
        let err = call(
            &h,
            json!({"dag": "Broken", "inputs": {"x": x(1.0)}, "outputs": ["bad"]}),
        )
        .unwrap_err();
        assert_eq!(err.kind, Kind::Panic);
        assert!(
            err.message.contains("warm state was dropped"),
            "{}",
            err.message
        );
        // The warm state of One survived, and Broken's lock is usable again.
        let ok = call(
            &h,
            json!({"dag": "One", "inputs": {"x": x(1.5)}, "outputs": ["twice"]}),
        )
        .unwrap();
        assert_eq!(ok["stats"]["twice"]["computes"], 0);
        let err = call(
            &h,
            json!({"dag": "Broken", "inputs": {"x": x(1.0)}, "outputs": ["bad"]}),
        )
        .unwrap_err();
        assert_eq!(err.kind, Kind::Panic);
    }

    #[test]
    fn needed_inputs_follow_the_dependencies() {
        assert_eq!(needed_inputs(&ONE, &[0]), vec![0]);
    }
}
