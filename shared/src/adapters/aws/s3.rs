//! The `ObjectStore` port on S3: presigned PUT URLs for uploads and ranged, streamed GETs
//! for the importer. Behaves like `crate::adapters::memory_objects::MemoryObjects`.

use super::backend;
use crate::ports::{ByteChunks, ObjectStore, PortError, PortResult};
use async_trait::async_trait;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::Client;
use bytes::Bytes;
use std::sync::Arc;

pub struct S3Objects {
    client: Client,
    bucket: String,
}

/// An S3 client for this adapter. Checksums are computed only when an operation requires
/// them: with the SDK's default a presigned `PutObject` URL would carry the checksum of an
/// empty body and refuse the real upload. With `AWS_ENDPOINT_URL` set (an emulator) it
/// uses path-style addressing.
pub fn client(sdk: &aws_config::SdkConfig) -> Client {
    let mut b = aws_sdk_s3::config::Builder::from(sdk)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    if std::env::var_os("AWS_ENDPOINT_URL").is_some() {
        b = b.force_path_style(true);
    }
    Client::from_conf(b.build())
}

/// The import bucket named by `IMPORT_BUCKET`, for the composition roots.
pub fn objects_from_env(
    sdk: &aws_config::SdkConfig,
) -> Result<Arc<S3Objects>, crate::config::MissingVar> {
    let bucket = crate::config::required("IMPORT_BUCKET", "the bucket CSV imports upload to")?;
    Ok(Arc::new(S3Objects::new(client(sdk), bucket)))
}

/// Creates the bucket if needed (local runs against an emulator, tests).
pub async fn ensure_bucket(client: &Client, bucket: &str) -> PortResult<()> {
    match client.create_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error().is_some_and(|s| {
                s.is_bucket_already_owned_by_you() || s.is_bucket_already_exists()
            }) =>
        {
            Ok(())
        }
        Err(e) => Err(backend("s3 create bucket", e)),
    }
}

impl S3Objects {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        S3Objects {
            client,
            bucket: bucket.into(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

#[async_trait]
impl ObjectStore for S3Objects {
    async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        expires_in: std::time::Duration,
    ) -> PortResult<String> {
        let cfg = PresigningConfig::expires_in(expires_in)
            .map_err(|e| PortError::Backend(format!("presigning config: {e}")))?;
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .presigned(cfg)
            .await
            .map_err(|e| backend("s3 presign put", e))?;
        Ok(req.uri().to_owned())
    }

    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> PortResult<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(body.into())
            .send()
            .await
            .map_err(|e| backend("s3 put", e))?;
        Ok(())
    }

    async fn get_from(&self, key: &str, offset: u64) -> PortResult<Option<ByteChunks>> {
        let res = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_range((offset > 0).then(|| format!("bytes={offset}-")))
            .send()
            .await;
        let out = match res {
            Ok(o) => o,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            // 416: the offset is at or past the end; nothing is left to read.
            Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(416) => {
                return Ok(Some(Box::pin(futures::stream::empty())))
            }
            Err(e) => return Err(backend("s3 get", e)),
        };
        let stream = futures::stream::unfold(out.body, |mut body| async move {
            body.next().await.map(|chunk| {
                (
                    chunk.map_err(|e| PortError::Backend(format!("s3 read: {e}"))),
                    body,
                )
            })
        });
        Ok(Some(Box::pin(stream)))
    }

    async fn delete(&self, key: &str) -> PortResult<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| backend("s3 delete", e))?;
        Ok(())
    }
}
