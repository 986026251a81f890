//! The AWS Lambda transport (feature `lambda`): the `bootstrap` executable of a generated
//! crate is `fn main() { sray_runtime::lambda::serve(DAGS) }`, one function serving
//! every DAG class of the file.
//!
//! Only the Lambda glue lives here: the Runtime API loop (lambda_runtime on a
//! single-threaded tokio runtime), the event envelope ([`Incoming`]), and the error
//! response (`Diagnostic`). Requests are served by a transport-neutral
//! [`Service`](crate::service::Service) configured with Lambda's 6 MB response limit
//! ([`Config::lambda`]).
//!
//! The request and response are documented in docs/lambda.md and described by the JSON
//! Schemas shipped in the Python package (`sray_transpiler/schema/`).

use crate::engine::GraphSpec;
use crate::service::{Config, Failure, Service};
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::sync::Arc;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The payload as received: JSON, or the reason it is not JSON. Deserializing never
/// fails, so that invalid JSON becomes a `MalformedRequest` of ours rather than the
/// runtime's own error.
pub struct Incoming(pub Result<Value, String>);

impl<'de> Deserialize<'de> for Incoming {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Incoming(Value::deserialize(d).map_err(|e| e.to_string())))
    }
}

/// Serves one Lambda payload.
pub async fn invoke(service: &Service, payload: Incoming) -> Result<Value, Failure> {
    match payload.0 {
        Ok(request) => service.call(request).await,
        Err(e) => Err(Failure::not_json(e)),
    }
}

/// The Lambda error response of a failure: `errorType` and `errorMessage`.
pub fn diagnostic(f: Failure) -> Diagnostic {
    Diagnostic {
        error_type: f.kind.error_type().to_string(),
        error_message: f.message,
    }
}

/// Runs the Lambda Runtime API loop for `dags` until the process is stopped.
///
/// Reads AWS_LAMBDA_RUNTIME_API and the other variables Lambda sets; computation runs on
/// rayon's pool, the runtime client and S3 on a single-threaded tokio runtime.
pub fn serve(dags: &'static [&'static GraphSpec]) -> Result<(), BoxError> {
    let service = Arc::new(Service::new(dags, Config::lambda()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(lambda_runtime::run(service_fn(
        move |event: LambdaEvent<Incoming>| {
            let service = service.clone();
            async move { invoke(&service, event.payload).await.map_err(diagnostic) }
        },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn payloads_that_are_not_json_are_malformed_requests() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let service = Service::new(&[], Config::lambda());
        let call = |incoming| runtime.block_on(invoke(&service, incoming)).unwrap_err();
        let bad: Incoming = serde_json::from_str("{\"outputs\": [").unwrap();
        let d = diagnostic(call(bad));
        assert_eq!(d.error_type, "MalformedRequest");
        assert!(
            d.error_message.contains("not valid JSON"),
            "{}",
            d.error_message
        );
        let unknown = Incoming(Ok(json!({"dag": "X", "outputs": ["y"]})));
        assert_eq!(diagnostic(call(unknown)).error_type, "UnknownDag");
    }
}
