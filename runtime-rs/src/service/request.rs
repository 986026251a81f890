//! The request and response documents, and the ARRAY codec (docs/lambda.md,
//! schema/lambda-request.json and lambda-response.json).
//!
//! ARRAY is `{"shape": [T, N], "data": [row-major numbers]}` (NaN as `null`, infinities
//! as `"inf"` / `"-inf"`) or `{"shape": [T, N], "b64": "<little-endian float64 bytes>"}`;
//! a shape `[T]` is a 1-D series.

use super::failure::{Failure, Kind, Outcome};
use crate::engine::InputValue;
use crate::error::shape_str;
use crate::Panel;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// How inline outputs are encoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    B64,
    Json,
}

/// Where an input comes from.
pub enum Source {
    Inline(InputValue),
    S3(String),
}

/// A parsed request.
pub struct Request {
    pub dag: Option<String>,
    pub inputs: BTreeMap<String, Source>,
    pub outputs: Vec<String>,
    pub output_uri: Option<String>,
    pub format: Format,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    #[serde(default)]
    dag: Option<String>,
    #[serde(default)]
    inputs: Map<String, Value>,
    outputs: Vec<String>,
    #[serde(default)]
    output_uri: Option<String>,
    #[serde(default)]
    format: Format,
}

pub(crate) const REQUEST_HELP: &str = "a request is {\"dag\": NAME, \"inputs\": {NAME: ARRAY or \"s3://bucket/key.npy\"}, \
     \"outputs\": [NAME, ...], \"output_uri\": \"s3://bucket/prefix/\", \"format\": \"b64\" | \"json\"} \
     (see docs/lambda.md)";

impl Request {
    /// Checks a request document against the schema and decodes its inline ARRAYs.
    pub fn parse(value: Value) -> Outcome<Request> {
        let raw: RawRequest = serde_json::from_value(value)
            .map_err(|e| Failure::malformed(format!("{e}; {REQUEST_HELP}")))?;
        if raw.outputs.is_empty() {
            return Err(Failure::malformed(format!(
                "`outputs` is empty: name at least one node to compute; {REQUEST_HELP}"
            )));
        }
        if let Some(uri) = &raw.output_uri {
            parse_s3_uri(uri).map_err(|m| Failure::malformed(format!("`output_uri`: {m}")))?;
        }
        let mut inputs = BTreeMap::new();
        for (name, v) in raw.inputs {
            let source = match v {
                Value::String(uri) => {
                    parse_s3_uri(&uri)
                        .map_err(|m| Failure::malformed(format!("input `{name}`: {m}")))?;
                    Source::S3(uri)
                }
                other => Source::Inline(decode_array(&name, &other)?),
            };
            inputs.insert(name, source);
        }
        Ok(Request {
            dag: raw.dag,
            inputs,
            outputs: raw.outputs,
            output_uri: raw.output_uri,
            format: raw.format,
        })
    }
}

/// `s3://bucket/key` -> (bucket, key); the key may be empty (a bucket root prefix).
pub fn parse_s3_uri(uri: &str) -> Result<(&str, &str), String> {
    let rest = uri.strip_prefix("s3://").ok_or_else(|| {
        format!("`{uri}` is not an S3 URI; write s3://bucket/key (or an inline ARRAY)")
    })?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("`{uri}` names no bucket; write s3://bucket/key"));
    }
    Ok((bucket, key))
}

/// A value of 1 or 2 dimensions as the engine holds it: 1-D `[T]` becomes (T, 1).
pub fn input_value(name: &str, shape: Vec<usize>, data: Vec<f64>) -> Outcome<InputValue> {
    let (t, n) = match shape[..] {
        [t] => (t, 1),
        [t, n] => (t, n),
        _ => {
            return Err(Failure::new(
                Kind::ShapeMismatch,
                format!(
                    "input `{name}` has shape {}, expected 1-D (T,) or 2-D (T, N)",
                    shape_str(&shape)
                ),
            ))
        }
    };
    let panel = Panel::from_shape_vec((t, n), data)
        .map_err(|e| Failure::new(Kind::ShapeMismatch, format!("input `{name}`: {e}")))?;
    Ok(InputValue {
        panel,
        given_shape: shape,
    })
}

fn decode_shape(name: &str, v: Option<&Value>) -> Outcome<Vec<usize>> {
    let bad = || {
        Failure::malformed(format!(
            "input `{name}`: `shape` must be [T] or [T, N] of non-negative integers"
        ))
    };
    let dims = v.and_then(Value::as_array).ok_or_else(bad)?;
    check_rank(&format!("input `{name}`"), dims.len())?;
    dims.iter()
        .map(|d| d.as_u64().map(|d| d as usize).ok_or_else(bad))
        .collect()
}

fn decode_number(name: &str, i: usize, v: &Value) -> Outcome<f64> {
    match v {
        Value::Null => Ok(f64::NAN),
        Value::Number(x) => x.as_f64().ok_or_else(|| {
            Failure::malformed(format!("input `{name}`: data[{i}] is not a float64"))
        }),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "inf" | "+inf" | "infinity" | "+infinity" => Ok(f64::INFINITY),
            "-inf" | "-infinity" => Ok(f64::NEG_INFINITY),
            "nan" => Ok(f64::NAN),
            _ => Err(Failure::malformed(format!(
                "input `{name}`: data[{i}] is the string {s:?}; only \"inf\", \"-inf\" and \"nan\" are allowed"
            ))),
        },
        other => Err(Failure::malformed(format!(
            "input `{name}`: data[{i}] is {other}, expected a number, null (NaN), \"inf\" or \"-inf\""
        ))),
    }
}

/// An inline ARRAY -> an engine input.
pub fn decode_array(name: &str, v: &Value) -> Outcome<InputValue> {
    let obj = v.as_object().ok_or_else(|| {
        Failure::malformed(format!(
            "input `{name}` must be an ARRAY {{\"shape\": [T, N], \"data\": [...]}} or \
             {{\"shape\": [T, N], \"b64\": \"...\"}}, or an \"s3://bucket/key.npy\" URI"
        ))
    })?;
    if let Some(k) = obj
        .keys()
        .find(|k| !["shape", "data", "b64"].contains(&k.as_str()))
    {
        return Err(Failure::malformed(format!(
            "input `{name}` has an unknown field `{k}`; an ARRAY has `shape` and one of `data`, `b64`"
        )));
    }
    let shape = decode_shape(name, obj.get("shape"))?;
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|c| c.checked_mul(8).is_some())
        .ok_or_else(|| {
            Failure::new(
                Kind::ShapeMismatch,
                format!("input `{name}`: shape {} is too large", shape_str(&shape)),
            )
        })?;
    let data: Vec<f64> = match (obj.get("data"), obj.get("b64")) {
        (Some(Value::Array(items)), None) => items
            .iter()
            .enumerate()
            .map(|(i, x)| decode_number(name, i, x))
            .collect::<Outcome<_>>()?,
        (None, Some(Value::String(text))) => {
            let bytes = B64.decode(text).map_err(|e| {
                Failure::malformed(format!("input `{name}`: `b64` is not valid base64 ({e})"))
            })?;
            if bytes.len() % 8 != 0 {
                return Err(Failure::malformed(format!(
                    "input `{name}`: `b64` holds {} bytes, not a whole number of float64 values (8 bytes each)",
                    bytes.len()
                )));
            }
            bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("chunks of 8")))
                .collect()
        }
        _ => {
            return Err(Failure::malformed(format!(
                "input `{name}` needs exactly one of `data` (a list of numbers) or `b64` (a base64 string)"
            )))
        }
    };
    if data.len() != count {
        return Err(Failure::new(
            Kind::ShapeMismatch,
            format!(
                "input `{name}` has {} values but shape {} needs {count}",
                data.len(),
                shape_str(&shape)
            ),
        ));
    }
    input_value(name, shape, data)
}

fn json_number(x: f64) -> Value {
    if x.is_nan() {
        Value::Null
    } else if x == f64::INFINITY {
        Value::from("inf")
    } else if x == f64::NEG_INFINITY {
        Value::from("-inf")
    } else {
        Value::from(x)
    }
}

/// A node's value -> an inline ARRAY of the given shape (`[T]` or `[T, N]`).
pub fn encode_array(panel: &Panel, shape: &[usize], format: Format) -> Value {
    match format {
        Format::Json => json!({
            "shape": shape,
            "data": panel.iter().map(|&x| json_number(x)).collect::<Vec<_>>(),
        }),
        Format::B64 => {
            let mut bytes = Vec::with_capacity(panel.len() * 8);
            for &x in panel.iter() {
                bytes.extend_from_slice(&x.to_le_bytes());
            }
            json!({"shape": shape, "b64": B64.encode(bytes)})
        }
    }
}

/// An input array must be 1-D (T,) or 2-D (T, N); `what` names it in the message.
pub(crate) fn check_rank(what: &str, ndim: usize) -> Result<(), Failure> {
    if ndim == 0 || ndim > 2 {
        return Err(Failure::new(
            Kind::ShapeMismatch,
            format!("{what} has {ndim} dimensions, expected 1-D (T,) or 2-D (T, N)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Outcome<()> {
        Request::parse(v).map(|_| ())
    }

    #[test]
    fn json_and_b64_arrays_round_trip_with_nan_and_infinities() {
        let v = json!({"shape": [2, 2], "data": [1.5, null, "inf", "-inf"]});
        let x = decode_array("x", &v).unwrap();
        assert_eq!(x.panel[[0, 0]], 1.5);
        assert!(x.panel[[0, 1]].is_nan());
        assert_eq!(x.panel[[1, 0]], f64::INFINITY);
        assert_eq!(encode_array(&x.panel, &[2, 2], Format::Json), v);
        let b = encode_array(&x.panel, &[2, 2], Format::B64);
        let y = decode_array("y", &b).unwrap();
        assert!(crate::kernels::bitwise_eq(&x.panel, &y.panel));
        let series = decode_array("s", &json!({"shape": [3], "data": [1, 2, 3]})).unwrap();
        assert_eq!(series.panel.dim(), (3, 1));
        assert_eq!(series.given_shape, vec![3]);
    }

    #[test]
    fn bad_requests_name_their_kind_and_the_field() {
        let kind = |v: Value| parse(v).unwrap_err();
        let e = kind(json!({"outputs": ["f1"], "inputs": {"x": {"shape": [2], "data": [1]}}}));
        assert_eq!(e.kind, Kind::ShapeMismatch);
        assert!(
            e.message.contains("has 1 values but shape (2,) needs 2"),
            "{}",
            e.message
        );
        let e = kind(json!({"outputs": ["f1"], "inputs": {"x": {"shape": [1], "b64": "AAA"}}}));
        assert_eq!(e.kind, Kind::MalformedRequest);
        let e = kind(json!({"outputs": ["f1"], "inputs": {"x": "http://a/b"}}));
        assert!(e.message.contains("not an S3 URI"), "{}", e.message);
        let e = kind(json!({"output": ["f1"]}));
        assert_eq!(e.kind, Kind::MalformedRequest);
        assert!(
            e.message.contains("unknown field `output`"),
            "{}",
            e.message
        );
        let e = kind(json!({"outputs": []}));
        assert!(e.message.contains("`outputs` is empty"));
        let e = kind(json!({"outputs": ["a"], "inputs": {"x": {"shape": [1, 1, 1], "data": [1]}}}));
        assert_eq!(e.kind, Kind::ShapeMismatch);
        let e = Failure::not_json("EOF");
        assert_eq!(e.kind, Kind::MalformedRequest);
        assert!(e.message.contains("not valid JSON (EOF)"), "{}", e.message);
    }
}
