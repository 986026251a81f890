//! Every way a request can fail: a [`Kind`] (the `errorType` of the error document, and
//! the HTTP status an HTTP transport answers with) and a message that says what to fix
//! (docs/lambda.md lists them; the response JSON Schema enumerates them).

use crate::error::Error;

/// The kinds of failure, one `errorType` each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The payload is not JSON, or does not follow the request schema.
    MalformedRequest,
    /// `dag` names no DAG of the file, or is omitted when the file has several.
    UnknownDag,
    /// An output that is not a public node of the DAG.
    UnknownOutput,
    /// An input that the DAG does not declare.
    UnknownInput,
    /// An input that the requested outputs read was not given.
    MissingInput,
    /// An input's shape disagrees with its data or with the other inputs.
    ShapeMismatch,
    /// An `s3://` object (or its bucket) that does not exist.
    S3ObjectNotFound,
    /// Any other S3 failure: access denied, endpoint unreachable, bad credentials.
    S3Error,
    /// An object that was read but is not a float64 `.npy` of 1 or 2 dimensions.
    UnreadableObject,
    /// The response would pass Lambda's 6 MB limit and no `output_uri` (nor the
    /// function's `SRAY_OUTPUT_URI`) says where to write the outputs instead.
    OutputUriRequired,
    /// A node's kernel panicked; the DAG stays usable.
    ComputeError,
    /// The runtime itself panicked; the DAG's warm state is dropped, serving goes on.
    Panic,
}

impl Kind {
    pub const ALL: [Kind; 12] = [
        Kind::MalformedRequest,
        Kind::UnknownDag,
        Kind::UnknownOutput,
        Kind::UnknownInput,
        Kind::MissingInput,
        Kind::ShapeMismatch,
        Kind::S3ObjectNotFound,
        Kind::S3Error,
        Kind::UnreadableObject,
        Kind::OutputUriRequired,
        Kind::ComputeError,
        Kind::Panic,
    ];

    /// The `errorType` of the error document.
    pub fn error_type(self) -> &'static str {
        match self {
            Kind::MalformedRequest => "MalformedRequest",
            Kind::UnknownDag => "UnknownDag",
            Kind::UnknownOutput => "UnknownOutput",
            Kind::UnknownInput => "UnknownInput",
            Kind::MissingInput => "MissingInput",
            Kind::ShapeMismatch => "ShapeMismatch",
            Kind::S3ObjectNotFound => "S3ObjectNotFound",
            Kind::S3Error => "S3Error",
            Kind::UnreadableObject => "UnreadableObject",
            Kind::OutputUriRequired => "OutputUriRequired",
            Kind::ComputeError => "ComputeError",
            Kind::Panic => "Panic",
        }
    }

    /// The HTTP status of the failure: 4xx when the request must change (400 for a
    /// request that does not follow the schema or names what the DAG lacks, 404 for an
    /// unknown DAG, 422 for values or objects that cannot be used), 502 when S3 failed,
    /// 500 when the runtime did.
    pub fn status(self) -> u16 {
        match self {
            Kind::MalformedRequest
            | Kind::UnknownOutput
            | Kind::UnknownInput
            | Kind::MissingInput => 400,
            Kind::UnknownDag => 404,
            Kind::ShapeMismatch
            | Kind::S3ObjectNotFound
            | Kind::UnreadableObject
            | Kind::OutputUriRequired => 422,
            Kind::S3Error => 502,
            Kind::ComputeError | Kind::Panic => 500,
        }
    }
}

/// A failed request: its kind and a message that says what to fix.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub kind: Kind,
    pub message: String,
}

impl Failure {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
        }
    }

    pub fn malformed(message: impl Into<String>) -> Self {
        Failure::new(Kind::MalformedRequest, message)
    }

    /// A payload that is not JSON (`detail`: the parser's message).
    pub fn not_json(detail: impl std::fmt::Display) -> Self {
        Failure::malformed(format!(
            "the request is not valid JSON ({detail}); {}",
            super::request::REQUEST_HELP
        ))
    }

    /// The error document: `{"errorType": ..., "errorMessage": ...}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"errorType": self.kind.error_type(), "errorMessage": self.message})
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.error_type(), self.message)
    }
}

impl std::error::Error for Failure {}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let kind = match &e {
            Error::UnknownNode { .. } => Kind::UnknownOutput,
            Error::UnknownInput { .. } => Kind::UnknownInput,
            Error::MissingInput { .. } | Error::MissingRows { .. } => Kind::MissingInput,
            Error::Shape { .. } | Error::NotAppendable { .. } => Kind::ShapeMismatch,
            Error::DType { .. } => Kind::MalformedRequest,
            Error::Compute { .. } => Kind::ComputeError,
        };
        Failure::new(kind, e.to_string())
    }
}

pub type Outcome<T> = std::result::Result<T, Failure>;

#[cfg(test)]
mod tests {
    use super::{Failure, Kind};
    use serde_json::json;

    #[test]
    fn client_mistakes_are_4xx_and_server_failures_5xx() {
        for kind in Kind::ALL {
            let client = !matches!(kind, Kind::S3Error | Kind::ComputeError | Kind::Panic);
            assert_eq!(kind.status() < 500, client, "{kind:?}");
            assert!((400..600).contains(&kind.status()));
        }
        assert_eq!(
            Failure::new(Kind::UnknownDag, "no").to_json(),
            json!({"errorType": "UnknownDag", "errorMessage": "no"})
        );
    }

    #[test]
    fn the_response_schema_lists_every_error_type() {
        let schema: serde_json::Value = serde_json::from_str(include_str!(
            "../../../transpiler/schema/lambda-response.schema.json"
        ))
        .unwrap();
        let listed: Vec<&str> = schema["$defs"]["error"]["properties"]["errorType"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let ours: Vec<&str> = Kind::ALL.iter().map(|k| k.error_type()).collect();
        assert_eq!(listed, ours);
    }
}
