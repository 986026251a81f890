//! Serving DAG requests, whatever carries them: a request document in, a response
//! document (or a typed [`Failure`]) out. The AWS Lambda layer (`crate::lambda`) wraps a
//! [`Service`] in the Lambda Runtime API; an HTTP server can wrap the same one.
//!
//! - [`request`]: the request and response JSON and the ARRAY codec (inline json or b64);
//! - [`failure`]: every failure's [`Kind`]: its `errorType` and its HTTP status;
//! - [`store`]: `.npy` inputs and outputs on S3 (feature `s3`; without it an `s3://`
//!   input or output is an `S3Error`).
//!
//! The process keeps one [`Engine`] per DAG class across requests, so a warm process
//! recomputes only the cone of the inputs that changed (inputs bitwise equal to the
//! previous ones count as unchanged). Every request must still give every input its
//! outputs read: a result never depends on what an earlier caller sent.
//!
//! Requests for different DAGs run at once; requests for the same DAG queue on its warm
//! engine. [`Service::call`] is async only to read and write S3 (the computing itself
//! runs on rayon's pool and blocks the calling task); it needs no particular executor,
//! but S3 access needs a tokio runtime.

pub mod failure;
pub mod request;
#[cfg(feature = "s3")]
pub mod store;

pub use failure::{Failure, Kind, Outcome};
pub use request::{Format, Request, Source};

use crate::engine::{Engine, GraphSpec, InputValue, NodeStats};
use crate::Panel;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// Lambda's limit on a synchronous response payload.
pub const LAMBDA_RESPONSE_LIMIT: usize = 6 * 1024 * 1024;
/// Where outputs go when a response would pass the limit and the request has no
/// `output_uri`.
pub const OUTPUT_URI_ENV: &str = "SRAY_OUTPUT_URI";

/// How a transport configures its [`Service`].
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// The largest inline response (bytes of JSON) the transport can carry, and how
    /// messages name that limit; past it the outputs are written to S3 instead. `None`:
    /// no limit, outputs are inline unless the request gives `output_uri`.
    pub response_limit: Option<(usize, &'static str)>,
    /// The S3 prefix for outputs past the limit when the request has no `output_uri`.
    pub default_output_uri: Option<String>,
}

impl Config {
    /// Lambda's: the 6 MB response limit, and the prefix in `SRAY_OUTPUT_URI`.
    pub fn lambda() -> Self {
        Config {
            response_limit: Some((LAMBDA_RESPONSE_LIMIT, "Lambda's 6 MB response limit")),
            default_output_uri: default_output_uri(),
        }
    }
}

/// The prefix in `SRAY_OUTPUT_URI`, if it is set and not empty.
pub fn default_output_uri() -> Option<String> {
    std::env::var(OUTPUT_URI_ENV).ok().filter(|v| !v.is_empty())
}

/// What one request computed: the values, the shape each is handed out in, and the
/// per-node stats of this request.
struct Computed {
    values: Vec<Arc<Panel>>,
    shapes: Vec<Vec<usize>>,
    stats: Value,
}

/// The state of a serving process: the DAGs it serves and their warm engines.
pub struct Service {
    dags: &'static [&'static GraphSpec],
    warm: Vec<Mutex<Option<Engine>>>,
    #[cfg(feature = "s3")]
    s3: store::S3,
    config: Config,
}

impl Service {
    pub fn new(dags: &'static [&'static GraphSpec], config: Config) -> Self {
        Service {
            dags,
            warm: dags.iter().map(|_| Mutex::new(None)).collect(),
            #[cfg(feature = "s3")]
            s3: store::S3::default(),
            config,
        }
    }

    /// The DAGs served, in the order given to [`Service::new`].
    pub fn dags(&self) -> &'static [&'static GraphSpec] {
        self.dags
    }

    /// Serves one request document: parses it, computes, answers with the response
    /// document. A panic anywhere in it (outside the kernels, which the engine guards
    /// itself) becomes a [`Kind::Panic`] failure, that DAG's warm state is dropped, and
    /// the service goes on serving.
    pub async fn call(&self, request: Value) -> Outcome<Value> {
        let served = CatchUnwind(Box::pin(async move {
            let request = Request::parse(request)?;
            self.handle(request).await
        }));
        match served.await {
            Ok(outcome) => outcome,
            Err(payload) => Err(Failure::new(
                Kind::Panic,
                format!(
                    "the runtime panicked: {}; the DAG's warm state was dropped and the next invocation starts afresh \
                     (please report this as a bug of serverless_ray)",
                    panic_message(&*payload)
                ),
            )),
        }
    }

    /// [`Service::call`] on the bytes of a request document; bytes that are not JSON are
    /// a `MalformedRequest`.
    pub async fn call_json(&self, body: &[u8]) -> Outcome<Value> {
        let request = serde_json::from_slice(body).map_err(Failure::not_json)?;
        self.call(request).await
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
                Source::S3(uri) => self.read_input(&name, &uri).await?,
            };
            batch.push((spec.input_index(&name)?, value));
        }
        let Computed {
            values,
            shapes,
            stats,
        } = self.compute(d, batch, &targets)?;
        let mut outputs = Map::new();
        if request.output_uri.is_none() {
            for ((name, v), shape) in request.outputs.iter().zip(&values).zip(&shapes) {
                outputs.insert(
                    name.clone(),
                    request::encode_array(v, shape, request.format),
                );
            }
            let response = json!({"outputs": outputs, "stats": stats});
            let Some((limit, _)) = self.config.response_limit else {
                return Ok(response);
            };
            let size = serde_json::to_vec(&response)
                .map(|b| b.len())
                .unwrap_or(usize::MAX);
            if size <= limit {
                return Ok(response);
            }
            outputs = Map::new();
        }
        let prefix = request
            .output_uri
            .or_else(|| self.config.default_output_uri.clone())
            .ok_or_else(|| {
                let limit = self.config.response_limit.map_or("the response limit", |l| l.1);
                Failure::new(
                    Kind::OutputUriRequired,
                    format!(
                        "the outputs take more than {limit}; give \"output_uri\": \
                         \"s3://bucket/prefix/\" to have them written there as .npy (or set {OUTPUT_URI_ENV} \
                         in the function's environment), or ask for fewer outputs"
                    ),
                )
            })?;
        for ((name, v), shape) in request.outputs.iter().zip(&values).zip(&shapes) {
            let uri = self.write_output(&prefix, name, v, shape).await?;
            outputs.insert(name.clone(), json!({"uri": uri, "shape": shape}));
        }
        Ok(json!({"outputs": outputs, "stats": stats}))
    }

    #[cfg(feature = "s3")]
    async fn read_input(&self, name: &str, uri: &str) -> Outcome<InputValue> {
        self.s3.read_input(name, uri).await
    }

    #[cfg(feature = "s3")]
    async fn write_output(
        &self,
        prefix: &str,
        name: &str,
        value: &Panel,
        shape: &[usize],
    ) -> Outcome<String> {
        self.s3.write_output(prefix, name, value, shape).await
    }

    #[cfg(not(feature = "s3"))]
    async fn read_input(&self, name: &str, uri: &str) -> Outcome<InputValue> {
        Err(no_s3(&format!("read input `{name}` from {uri}")))
    }

    #[cfg(not(feature = "s3"))]
    async fn write_output(
        &self,
        prefix: &str,
        name: &str,
        _: &Panel,
        _: &[usize],
    ) -> Outcome<String> {
        Err(no_s3(&format!("write output `{name}` to {prefix}")))
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
        let shapes = values
            .iter()
            .map(|v| engine.output_shape(v, v.nrows()))
            .collect();
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

#[cfg(not(feature = "s3"))]
fn no_s3(what: &str) -> Failure {
    Failure::new(
        Kind::S3Error,
        format!("cannot {what}: this build of the runtime has no S3 support (feature `s3`); give the values inline"),
    )
}

/// A future that turns a panic while polling `F` into `Err(payload)`.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        // Unwind safety: after a panic the future is never polled again, and the only
        // state shared with later requests is the warm engine, whose poisoned lock
        // drops it.
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
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
    use crate::View;
    use std::task::{Wake, Waker};

    fn double(a: &[View<'_>], _rows: usize, _cache: &mut crate::cache::Cache) -> Panel {
        map([a[0]], |[x]| 2.0 * x)
    }
    fn boom(_: &[View<'_>], _rows: usize, _cache: &mut crate::cache::Cache) -> Panel {
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
                timed: true,
                lookback: 0,
                reads: &[0],
            },
            NodeSpec {
                name: "boom",
                doc: "",
                deps: &[0],
                kernel: boom,
                public: true,
                timed: true,
                lookback: 0,
                reads: &[0],
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
            timed: true,
            lookback: 0,
            reads: &[0],
        }],
        levels: &[&[0]],
    };
    #[cfg(feature = "linalg")]
    fn project(a: &[View<'_>], _rows: usize, _cache: &mut crate::cache::Cache) -> Panel {
        crate::linalg::matmul(a[0], a[1])
    }
    #[cfg(not(feature = "linalg"))]
    fn project(a: &[View<'_>], _rows: usize, _cache: &mut crate::cache::Cache) -> Panel {
        let (a, b) = (a[0], a[1]);
        Panel::from_shape_fn((a.nrows(), b.ncols()), |(i, j)| {
            a.row(i).iter().zip(b.column(j)).map(|(x, y)| x * y).sum()
        })
    }
    fn scale(a: &[View<'_>], _rows: usize, _cache: &mut crate::cache::Cache) -> Panel {
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
                timed: true,
                lookback: 0,
                reads: &[0, 0],
            },
            NodeSpec {
                name: "scaled",
                doc: "",
                deps: &[1],
                kernel: scale,
                public: true,
                timed: false,
                lookback: 0,
                reads: &[0],
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
        let h = Service::new(DAGS, Config::default());
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

    /// Runs a future to completion on this thread (no executor needed: nothing here
    /// waits on I/O).
    fn block_on<F: Future>(f: F) -> F::Output {
        struct Unpark(std::thread::Thread);
        impl Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark()
            }
        }
        let mut f = std::pin::pin!(f);
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::park();
        }
    }

    fn call(h: &Service, v: Value) -> Result<Value, Failure> {
        block_on(h.call(v))
    }

    fn x(v: f64) -> Value {
        json!({"shape": [2], "data": [v, v]})
    }

    #[test]
    fn dispatch_panics_and_kernel_failures_keep_the_process_serving() {
        let h = Service::new(DAGS, Config::lambda());
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
    fn bytes_that_are_not_json_are_malformed() {
        let h = Service::new(DAGS, Config::default());
        let err = block_on(h.call_json(b"{\"outputs\": [")).unwrap_err();
        assert_eq!(err.kind, Kind::MalformedRequest);
        assert!(err.message.contains("not valid JSON"), "{}", err.message);
        let ok = block_on(h.call_json(
            br#"{"dag": "One", "inputs": {"x": {"shape": [1], "data": [2]}}, "outputs": ["twice"], "format": "json"}"#,
        ))
        .unwrap();
        assert_eq!(ok["outputs"]["twice"], json!({"shape": [1], "data": [4.0]}));
    }

    #[test]
    fn past_the_response_limit_outputs_need_an_output_uri() {
        let tiny = Config {
            response_limit: Some((64, "the test's 64 byte limit")),
            default_output_uri: None,
        };
        let h = Service::new(DAGS, tiny);
        let request = json!({"dag": "One", "inputs": {"x": x(1.0)}, "outputs": ["twice"]});
        let err = call(&h, request.clone()).unwrap_err();
        assert_eq!(err.kind, Kind::OutputUriRequired);
        assert!(
            err.message.contains("more than the test's 64 byte limit")
                && err.message.contains(OUTPUT_URI_ENV),
            "{}",
            err.message
        );
        // No limit: the same response is inline.
        let ok = call(&Service::new(DAGS, Config::default()), request).unwrap();
        assert_eq!(ok["outputs"]["twice"]["shape"], json!([2]));
    }

    #[cfg(not(feature = "s3"))]
    #[test]
    fn without_s3_an_s3_input_is_an_s3_error() {
        let h = Service::new(DAGS, Config::default());
        let request = json!({"dag": "One", "inputs": {"x": "s3://b/x.npy"}, "outputs": ["twice"]});
        let err = call(&h, request).unwrap_err();
        assert_eq!(err.kind, Kind::S3Error);
        assert!(err.message.contains("no S3 support"), "{}", err.message);
    }

    #[test]
    fn a_service_is_shared_by_threads_and_its_futures_move_between_them() {
        fn sync<T: Sync + Send>(_: &T) {}
        fn send<T: Send>(_: &T) {}
        let h = Service::new(DAGS, Config::default());
        sync(&h);
        let request = json!({"dag": "One", "inputs": {"x": x(2.0)}, "outputs": ["twice"]});
        let future = h.call(request.clone());
        send(&future);
        drop(future);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| assert!(call(&h, request.clone()).is_ok()));
            }
        });
        assert_eq!(call(&h, request).unwrap()["stats"]["twice"]["computes"], 0);
    }

    #[test]
    fn needed_inputs_follow_the_dependencies() {
        assert_eq!(needed_inputs(&ONE, &[0]), vec![0]);
    }
}
