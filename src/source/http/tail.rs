//! Opening with the object's last bytes: one `GET bytes=-N` learns the
//! length (`Content-Range: bytes A-B/TOTAL`) and validator and brings the
//! tail, where a footer or a directory is (parquet, zip), so opening such a
//! file and reading its footer is one round trip. Reads inside the tail are
//! served from it, with no request.

use std::io::Read;

use ureq::http::header;
use ureq::http::{Method, Response};
use ureq::{Agent, Body};

use super::{
    header_str, parse_content_range, ContentRange, Failure, HttpSource, Metadata, Span,
    VersionInUrl,
};
use crate::error::Result;
use crate::source::{FetchContext, PartSink};

/// What [`HttpSource::learn_tail`] learned: the length, and the bytes.
pub(crate) struct LearnedTail {
    meta: Metadata,
}

impl LearnedTail {
    /// The object's length.
    pub(crate) fn len(&self) -> u64 {
        self.meta.len
    }
}

/// The object's last bytes, as the open received them.
#[derive(Debug)]
pub(super) struct Tail {
    offset: u64,
    bytes: Box<[u8]>,
}

impl Tail {
    /// The number of bytes kept.
    pub(super) fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Fills `sink`, the part at `offset`, when the tail holds all of it
    /// (telling `ctx` no request was sent); whether it did.
    pub(super) fn serve(&self, offset: u64, sink: &mut PartSink<'_>, ctx: &FetchContext) -> bool {
        let start = offset + sink.filled() as u64;
        let end = offset + sink.len() as u64;
        if start < self.offset || end > self.offset + self.len() {
            return false;
        }
        let from = (start - self.offset) as usize;
        let chunk = sink.unfilled();
        let n = chunk.len();
        ctx.record_from_open(n as u64);
        chunk.copy_from_slice(&self.bytes[from..from + n]);
        sink.commit(n);
        true
    }
}

impl HttpSource {
    /// `GET bytes=-n`: the length, validator and last `n` bytes (the whole
    /// object when it is shorter) in one request. `None` when the answer
    /// says too little (a `416` for an object that is not empty, a `200`
    /// without `Content-Length`): the open then asks as it would without a
    /// tail. A `200` (the server ignores ranges) makes the source one
    /// stream, as a probe's does.
    pub(super) fn learn_with_tail(
        &self,
        agent: &Agent,
        n: u64,
        ctx: &FetchContext,
    ) -> Result<Option<Metadata>, Failure> {
        let learned = self.learn_with_tail_seeing(agent, n, ctx, &|_| Ok(Some(())))?;
        Ok(learned.map(|(meta, ())| meta))
    }

    /// For sources built on this one that pin reads by a version in the
    /// URL (GCS): [`learn_with_tail`](Self::learn_with_tail) of the
    /// source's URL, with `see` reading the headers of an answer before its
    /// body is (to refuse it with an error, or to give up on it with `None`
    /// so the caller asks another way, its body unread). `None` when the
    /// answer says too little or `see` gave up; bytes of bodies received
    /// on the way count as the open's all the same.
    pub(crate) fn learn_tail<T>(
        &mut self,
        n: u64,
        see: impl Fn(&Response<Body>) -> Result<Option<T>>,
    ) -> Result<Option<(LearnedTail, T)>> {
        let ctx = FetchContext::new();
        let agent = self.agent();
        let learned =
            self.with_retries(&ctx, || self.learn_with_tail_seeing(&agent, n, &ctx, &see));
        let learned = learned?;
        // The kept tail's bytes included: they came through `ctx` too.
        self.received_at_open = ctx.bytes_received();
        Ok(learned.map(|(meta, seen)| (LearnedTail { meta }, seen)))
    }

    /// [`open_at_version`](Self::open_at_version) after
    /// [`learn_tail`](Self::learn_tail): reads go to `url`, which names the
    /// version the tail's answer came from, and the tail (or the stream of
    /// a server that ignores ranges) is kept for them.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLocation`] if `url` is not a valid HTTP(S) URL.
    pub(crate) fn open_at_version_with_tail(
        &mut self,
        url: &str,
        learned: LearnedTail,
        version: VersionInUrl,
    ) -> Result<()> {
        let meta = learned.meta;
        self.open_at_version(url, meta.len, version)?;
        self.stream = meta.stream;
        self.tail = meta.tail;
        Ok(())
    }

    /// [`learn_with_tail`](Self::learn_with_tail), with `see` asked about
    /// an answer's headers once it is one to use.
    fn learn_with_tail_seeing<T>(
        &self,
        agent: &Agent,
        n: u64,
        ctx: &FetchContext,
        see: &impl Fn(&Response<Body>) -> Result<Option<T>>,
    ) -> Result<Option<(Metadata, T)>, Failure> {
        let span = Span::Last(n);
        let what = format!("GET {span}");
        let mut response = self.send(agent, Method::GET, Some(span), false)?;
        let status = response.status().as_u16();
        if !matches!(status, 200 | 206 | 416) {
            return Err(self.status_failure_as(response, what));
        }
        let Some(seen) = see(&response)? else {
            return Ok(None);
        };
        match status {
            206 => {
                self.check_encoding(&response, &what)?;
                let got = header_str(&response, header::CONTENT_RANGE)
                    .unwrap_or_default()
                    .to_owned();
                let (start, total) = match self.content_range(&response, &what)? {
                    ContentRange::Bytes {
                        start,
                        end,
                        total: Some(total),
                    } if end.checked_add(1) == Some(total) && start == total.saturating_sub(n) => {
                        (start, total)
                    }
                    _ => {
                        return Err(self
                            .invalid(format!(
                                "{what}: got Content-Range `{got}`, expected the last {n} bytes"
                            ))
                            .into())
                    }
                };
                let len = total - start;
                self.check_content_length(&response, &what, len, false)?;
                let mut meta = self.metadata(&response, total);
                // A 206 is proof that ranges are served.
                meta.ranges_advertised = true;
                meta.tail = Some(self.read_tail(&mut response, start, len, &what, ctx)?);
                Ok(Some((meta, seen)))
            }
            416 => match header_str(&response, header::CONTENT_RANGE).map(parse_content_range) {
                Some(Some(ContentRange::Unsatisfied { total: 0 })) => {
                    Ok(Some((self.metadata(&response, 0), seen)))
                }
                _ => {
                    log::debug!(
                        "{what} {}: 416 for a suffix range; asking as without a tail",
                        self.location
                    );
                    Ok(None)
                }
            },
            // Without a length the answer says too little; a `HEAD` may say more.
            200 if header_str(&response, header::CONTENT_LENGTH).is_none() => {
                log::debug!(
                    "{what} {}: 200 without Content-Length; asking as without a tail",
                    self.location
                );
                Ok(None)
            }
            // 200: the whole object.
            _ => {
                let len = self.whole_length(&response, &what)?;
                let mut meta = self.metadata(&response, len);
                if len > n {
                    let etag = meta.etag.clone();
                    meta.stream = Some(self.whole_stream(response, len, etag.as_deref(), &what)?);
                } else if len > 0 {
                    // The whole object is the tail asked for.
                    meta.tail = Some(self.read_tail(&mut response, 0, len, &what, ctx)?);
                }
                Ok(Some((meta, seen)))
            }
        }
    }

    /// Reads the body of `response`, the `len` bytes at `offset`, whole.
    fn read_tail(
        &self,
        response: &mut Response<Body>,
        offset: u64,
        len: u64,
        what: &str,
        ctx: &FetchContext,
    ) -> Result<Tail, Failure> {
        // `len` is at most the `n` asked for, which the builder bounds.
        let mut bytes = vec![0; len as usize].into_boxed_slice();
        let mut body = response.body_mut().as_reader();
        self.read_body(&mut body, offset, &mut PartSink::new(&mut bytes), what, ctx)?;
        let mut extra = [0; 1];
        if matches!(body.read(&mut extra), Ok(n) if n > 0) {
            return Err(self
                .invalid(format!(
                    "{what}: the body is longer than the {len} bytes expected"
                ))
                .into());
        }
        Ok(Tail { offset, bytes })
    }
}
