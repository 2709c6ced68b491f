//! In-memory twin of the `ObjectStore` port: objects in a map, "presigned" URLs pointing
//! at the local runner's `PUT /local/objects/{key}` route, and reads streamed in chunks
//! (so the importer's chunk handling is exercised exactly as with S3).

use async_trait::async_trait;
use bytes::Bytes;
use shared::ports::{ByteChunks, ObjectStore, PortResult};
use std::collections::HashMap;
use std::sync::Mutex;

/// Chunk size of streamed reads (S3 bodies arrive in chunks of a few KB to a few hundred).
pub const CHUNK: usize = 64 * 1024;

pub struct MemoryObjects {
    base_url: String,
    objects: Mutex<HashMap<String, (Bytes, String)>>,
    chunk: usize,
}

impl MemoryObjects {
    /// `base_url` is where uploads go: presigned URLs are `{base_url}/local/objects/{key}`.
    pub fn new(base_url: impl Into<String>) -> Self {
        MemoryObjects {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            objects: Mutex::new(HashMap::new()),
            chunk: CHUNK,
        }
    }

    /// Streams reads in chunks of `n` bytes (tests use odd sizes to split rows).
    pub fn with_chunk_size(mut self, n: usize) -> Self {
        self.chunk = n.max(1);
        self
    }

    /// The object, if stored (tests).
    pub fn object(&self, key: &str) -> Option<Bytes> {
        self.objects
            .lock()
            .unwrap()
            .get(key)
            .map(|(b, _)| b.clone())
    }

    /// The key a presigned URL of this store points at, if it is one.
    pub fn key_of_url<'a>(&self, url: &'a str) -> Option<&'a str> {
        url.strip_prefix(&self.base_url)?
            .strip_prefix("/local/objects/")
            .map(|rest| rest.split('?').next().unwrap_or(rest))
    }
}

#[async_trait]
impl ObjectStore for MemoryObjects {
    async fn presign_put(
        &self,
        key: &str,
        _content_type: &str,
        expires_in: std::time::Duration,
    ) -> PortResult<String> {
        Ok(format!(
            "{}/local/objects/{key}?expires_in={}",
            self.base_url,
            expires_in.as_secs()
        ))
    }

    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> PortResult<()> {
        self.objects
            .lock()
            .unwrap()
            .insert(key.to_owned(), (body, content_type.to_owned()));
        Ok(())
    }

    async fn get_from(&self, key: &str, offset: u64) -> PortResult<Option<ByteChunks>> {
        let Some(body) = self.object(key) else {
            return Ok(None);
        };
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(body.len());
        let rest = body.slice(start..);
        let chunk = self.chunk;
        let chunks: Vec<PortResult<Bytes>> = (0..rest.len())
            .step_by(chunk)
            .map(|i| Ok(rest.slice(i..(i + chunk).min(rest.len()))))
            .collect();
        Ok(Some(Box::pin(futures::stream::iter(chunks))))
    }

    async fn delete(&self, key: &str) -> PortResult<()> {
        self.objects.lock().unwrap().remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn r2_4_memory_objects_stream_from_an_offset() {
        let s = MemoryObjects::new("http://127.0.0.1:3000").with_chunk_size(3);
        s.put("k", Bytes::from_static(b"abcdefgh"), "text/csv")
            .await
            .unwrap();
        let mut out = Vec::new();
        let mut st = s.get_from("k", 2).await.unwrap().unwrap();
        while let Some(c) = st.next().await {
            out.extend_from_slice(&c.unwrap());
        }
        assert_eq!(out, b"cdefgh");
        assert!(s
            .get_from("k", 99)
            .await
            .unwrap()
            .unwrap()
            .next()
            .await
            .is_none());
        assert!(s.get_from("missing", 0).await.unwrap().is_none());
        let url = s
            .presign_put(
                "imports/t/imp_1.csv",
                "text/csv",
                std::time::Duration::from_secs(60),
            )
            .await
            .unwrap();
        assert_eq!(s.key_of_url(&url), Some("imports/t/imp_1.csv"));
    }
}
