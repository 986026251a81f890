//! The runtime's one error enum. Each variant maps to one Python exception class of
//! `serverless_ray.errors` (see `python.rs`) and, in Lambda responses, to one `errorType`.

/// Formats a shape the way numpy prints it: `(3, 4)` or `(5,)`.
pub fn shape_str(shape: &[usize]) -> String {
    match shape {
        [n] => format!("({n},)"),
        _ => {
            let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            format!("({})", parts.join(", "))
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A node name that the DAG does not have.
    #[error("`{name}` is not a node of DAG `{dag}`; its nodes are: {known}")]
    UnknownNode {
        dag: String,
        name: String,
        known: String,
    },
    /// An input name that the DAG does not have.
    #[error("`{name}` is not an input of DAG `{dag}`; its inputs are: {known}")]
    UnknownInput {
        dag: String,
        name: String,
        known: String,
    },
    /// A node was asked for, but an input it reads has never been given.
    #[error(
        "computing `{node}` needs input `{input}`, which has not been given; \
         pass it as {dag}({input}=...) or .update({input}=...)"
    )]
    MissingInput {
        dag: String,
        node: String,
        input: String,
    },
    /// An input whose shape disagrees with the others, or is not 1-D / 2-D.
    #[error("input `{input}` has shape {actual}, expected {expected}")]
    Shape {
        input: String,
        expected: String,
        actual: String,
    },
    /// An input that is not a float64 array.
    #[error("input `{input}` must be a numpy float64 array, got {actual}; convert it with np.asarray(x, dtype=np.float64)")]
    DType { input: String, actual: String },
    /// `append` was given an input whose rows are not time: it can only be replaced.
    #[error(
        "input `{input}` cannot be appended to: {reason}; replace it with .update({input}=...)"
    )]
    NotAppendable { input: String, reason: String },
    /// `append` was not given rows of every time-indexed input.
    #[error(
        "append needs new rows of every time-indexed input of DAG `{dag}` at once; \
         `{input}` is missing"
    )]
    MissingRows { dag: String, input: String },
    /// A kernel panicked; the engine stays usable.
    #[error("computing node `{node}` failed: {message}")]
    Compute { node: String, message: String },
}

pub type Result<T> = std::result::Result<T, Error>;
