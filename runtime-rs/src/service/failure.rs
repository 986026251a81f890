//! Every way an invocation can fail, each with the `errorType` a Lambda error response
//! carries (docs/lambda.md lists them; the JSON Schema enumerates them).

use crate::error::Error;
use lambda_runtime::Diagnostic;

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

    /// The `errorType` of the Lambda error response.
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
}

/// A failed invocation: its kind and a message that says what to fix.
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
            Error::MissingInput { .. } => Kind::MissingInput,
            Error::Shape { .. } => Kind::ShapeMismatch,
            Error::DType { .. } => Kind::MalformedRequest,
            Error::Compute { .. } => Kind::ComputeError,
        };
        Failure::new(kind, e.to_string())
    }
}

impl From<Failure> for Diagnostic {
    fn from(f: Failure) -> Self {
        Diagnostic {
            error_type: f.kind.error_type().to_string(),
            error_message: f.message,
        }
    }
}

pub type Outcome<T> = std::result::Result<T, Failure>;

#[cfg(test)]
mod tests {
    use super::Kind;

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
