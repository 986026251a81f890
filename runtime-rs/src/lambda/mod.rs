//! The AWS Lambda layer (feature `lambda`): the `bootstrap` executable of a generated
//! crate is `fn main() { sray_runtime::lambda::serve(&DAGS) }`, one function serving
//! every DAG class of the file.
//!
//! - [`event`]: the request and response JSON and the ARRAY codec (inline json or b64);
//! - [`store`]: `.npy` inputs and outputs on S3 (object_store, standard AWS_* variables);
//! - [`handler`]: one warm engine per DAG, dispatch, the 6 MB spill to S3;
//! - [`failure`]: the `errorType` of every failure.
//!
//! The request and response are documented in docs/lambda.md and described by the JSON
//! Schemas shipped in the Python package (`sray_transpiler/schema/`).

pub mod event;
pub mod failure;
pub mod handler;
pub mod store;

use crate::engine::GraphSpec;
use event::{Incoming, Request};
use failure::{Failure, Kind};
use handler::{panic_message, Handler};
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::Value;
use std::sync::Arc;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Parses and serves one payload. A panic anywhere in it (outside the kernels, which the
/// engine guards itself) becomes a `Panic` failure and the process goes on serving.
pub async fn invoke(handler: Arc<Handler>, payload: Incoming) -> Result<Value, Failure> {
    let task = tokio::spawn(async move {
        let request = Request::parse(payload)?;
        handler.handle(request).await
    });
    match task.await {
        Ok(outcome) => outcome,
        Err(e) if e.is_panic() => Err(Failure::new(
            Kind::Panic,
            format!(
                "the runtime panicked: {}; the DAG's warm state was dropped and the next invocation starts afresh \
                 (please report this as a bug of serverless_ray)",
                panic_message(&*e.into_panic())
            ),
        )),
        Err(e) => Err(Failure::new(Kind::Panic, format!("the invocation was cancelled: {e}"))),
    }
}

/// Runs the Lambda Runtime API loop for `dags` until the process is stopped.
///
/// Reads AWS_LAMBDA_RUNTIME_API and the other variables Lambda sets; computation runs on
/// rayon's pool, the runtime client and S3 on a single-threaded tokio runtime.
pub fn serve(dags: &'static [&'static GraphSpec]) -> Result<(), BoxError> {
    let handler = Arc::new(Handler::new(dags));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(lambda_runtime::run(service_fn(
        move |event: LambdaEvent<Incoming>| {
            let handler = handler.clone();
            async move {
                invoke(handler, event.payload)
                    .await
                    .map_err(Diagnostic::from)
            }
        },
    )))
}
