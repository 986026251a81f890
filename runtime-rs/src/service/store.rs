//! Inputs and outputs on S3 (feature `s3`): `.npy` files through object_store's S3 client.
//!
//! The client is configured from the standard environment (`AWS_ENDPOINT_URL` or
//! `AWS_ENDPOINT_URL_S3`, `AWS_REGION` / `AWS_DEFAULT_REGION`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, which Lambda sets for the function's
//! role), with path-style requests and plain HTTP allowed when the endpoint is `http://`
//! (a local test server). One client per bucket is kept for the life of the process.

use super::failure::{Failure, Kind, Outcome};
use super::request::{input_value, parse_s3_uri};
use crate::engine::InputValue;
use crate::Panel;
use ndarray::{ArrayD, ArrayView1, IxDyn};
use ndarray_npy::{ReadNpyExt, WriteNpyExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload, RetryConfig};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
pub struct S3 {
    clients: Mutex<HashMap<String, Arc<AmazonS3>>>,
}

fn endpoint() -> Option<String> {
    ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
}

fn s3_failure(uri: &str, verb: &str, e: object_store::Error) -> Failure {
    match e {
        object_store::Error::NotFound { .. } => Failure::new(
            Kind::S3ObjectNotFound,
            format!("{uri} does not exist (or its bucket does not); check the bucket and key"),
        ),
        other => Failure::new(
            Kind::S3Error,
            format!(
                "could not {verb} {uri}: {other}; check the function's permissions, region and AWS_ENDPOINT_URL"
            ),
        ),
    }
}

impl S3 {
    fn client(&self, bucket: &str) -> Outcome<Arc<AmazonS3>> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(bucket) {
            return Ok(c.clone());
        }
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(30),
                ..RetryConfig::default()
            });
        if let Some(url) = endpoint() {
            builder = builder
                .with_endpoint(url.trim_end_matches('/'))
                .with_allow_http(url.starts_with("http://"));
        }
        let client = Arc::new(builder.build().map_err(|e| {
            Failure::new(
                Kind::S3Error,
                format!(
                    "cannot configure S3 for bucket `{bucket}`: {e}; check the AWS_* environment"
                ),
            )
        })?);
        clients.insert(bucket.to_string(), client.clone());
        Ok(client)
    }

    /// Reads a float64 `.npy` of 1 or 2 dimensions (C or Fortran order).
    pub async fn read_input(&self, name: &str, uri: &str) -> Outcome<InputValue> {
        let (bucket, key) = parse_s3_uri(uri).map_err(Failure::malformed)?;
        if !key.ends_with(".npy") {
            return Err(Failure::new(
                Kind::UnreadableObject,
                format!("input `{name}`: {uri} is not a .npy file; save it with numpy.save(path, array.astype('float64'))"),
            ));
        }
        let client = self.client(bucket)?;
        let bytes = async { client.get(&Path::from(key)).await?.bytes().await }
            .await
            .map_err(|e| s3_failure(uri, "read", e))?;
        let array = ArrayD::<f64>::read_npy(&bytes[..]).map_err(|e| {
            Failure::new(
                Kind::UnreadableObject,
                format!("input `{name}`: {uri} is not a float64 .npy array ({e}); save it with numpy.save(path, array.astype('float64'))"),
            )
        })?;
        let shape = array.shape().to_vec();
        super::request::check_rank(&format!("input `{name}`: {uri}"), shape.len())?;
        let data = if array.is_standard_layout() {
            array.into_raw_vec_and_offset().0
        } else {
            array.iter().copied().collect()
        };
        input_value(name, shape, data)
    }

    /// Writes a node's value as `.npy` to `<prefix>/<name>.npy`; returns its URI.
    pub async fn write_output(
        &self,
        prefix: &str,
        name: &str,
        panel: &Panel,
        shape: &[usize],
    ) -> Outcome<String> {
        let (bucket, key_prefix) = parse_s3_uri(prefix).map_err(Failure::malformed)?;
        let key = if key_prefix.is_empty() || key_prefix.ends_with('/') {
            format!("{key_prefix}{name}.npy")
        } else {
            format!("{key_prefix}/{name}.npy")
        };
        let uri = format!("s3://{bucket}/{key}");
        let mut bytes = Vec::with_capacity(panel.len() * 8 + 128);
        let written = if shape.len() == 1 {
            let column: ArrayView1<f64> = panel.column(0);
            column.write_npy(&mut bytes)
        } else {
            panel
                .view()
                .into_dimensionality::<IxDyn>()
                .expect("2-D")
                .write_npy(&mut bytes)
        };
        written.map_err(|e| Failure::new(Kind::S3Error, format!("could not encode {uri}: {e}")))?;
        let client = self.client(bucket)?;
        client
            .put(&Path::from(key.as_str()), PutPayload::from(bytes))
            .await
            .map_err(|e| s3_failure(&uri, "write", e))?;
        Ok(uri)
    }
}
