//! Servers that ignore byte ranges: the object read as one response, front
//! to back.
//!
//! A server that answers a ranged `GET` with `200` and the whole body
//! (Python's `http.server`, many CDNs for small files) is found at open: a
//! `HEAD` without `Accept-Ranges: bytes` is followed by a `GET` of the first
//! byte, and a `200` to that makes the source one stream, its response kept
//! open for the first read. Reads then take the stream in turn: each skips
//! forward to its offset and reads on, and a read behind the stream fails
//! with [`Error::RangeNotSupported`]. A stream broken mid-body is retried as
//! another whole `GET`, skipped forward to where the read had got. The
//! reader keeps one request in flight over such a source
//! ([`RangeSource::supports_ranges`](crate::RangeSource::supports_ranges)),
//! so its requests reach the stream in the order they were made.
//!
//! A server that advertised ranges yet answers one request with `200` gets
//! the same treatment for that request alone: the body is skipped to the
//! range asked for.

use std::io::{self, Read};

use parking_lot::Mutex;
use ureq::http::{header, Method, Response};
use ureq::{Agent, Body, BodyReader};

use super::{header_str, parse_u64, ContentRange, Failure, HttpSource, Span, BODY_CHUNK};
use crate::error::{Error, Result};
use crate::source::{FetchContext, PartSink};

/// The one response of a server that ignores byte ranges, and how far the
/// reads have got through the object.
pub(super) struct WholeStream {
    state: Mutex<StreamState>,
}

struct StreamState {
    /// The response being read and the offset of its next byte; `None`
    /// once it broke or ended (the next read sends another `GET`).
    body: Option<(BodyReader<'static>, u64)>,
    /// How far the stream has got: reads before it cannot be served.
    at: u64,
}

impl WholeStream {
    fn new(response: Response<Body>) -> WholeStream {
        WholeStream {
            state: Mutex::new(StreamState {
                body: Some((response.into_body().into_reader(), 0)),
                at: 0,
            }),
        }
    }
}

/// Whether a response says the server serves byte ranges.
pub(super) fn advertises_ranges(response: &Response<Body>) -> bool {
    header_str(response, header::ACCEPT_RANGES).is_some_and(|value| {
        value
            .split(',')
            .any(|unit| unit.trim().eq_ignore_ascii_case("bytes"))
    })
}

impl HttpSource {
    /// Asks for the first byte of an object of `len` bytes whose `HEAD`
    /// did not advertise ranges: `None` when the server answers with that
    /// byte (`206`), the stream when it sends the whole object (`200`).
    pub(super) fn probe_ranges(
        &self,
        agent: &Agent,
        len: u64,
        etag: Option<&str>,
    ) -> Result<Option<WholeStream>, Failure> {
        let what = "GET bytes=0-0";
        let mut response = self.send(agent, Method::GET, Some(Span::Range(0, 0)), false)?;
        match response.status().as_u16() {
            206 => {
                self.check_encoding(&response, what)?;
                match self.content_range(&response, what)? {
                    ContentRange::Bytes {
                        total: Some(total), ..
                    } if total != len => {
                        return Err(self
                            .changed(format!("{what}: length {total}, but the HEAD said {len}"))
                            .into())
                    }
                    _ => {}
                }
                // Finish the body so the connection can be reused.
                let mut one = [0; 2];
                let _ = response.body_mut().as_reader().read(&mut one);
                Ok(None)
            }
            200 => Ok(Some(self.whole_stream(response, len, etag, what)?)),
            _ => Err(self.status_failure(response, Some((0, 0)))),
        }
    }

    /// The stream of a `200` to a ranged `GET` at open, checked as the
    /// object of `len` bytes the open found.
    pub(super) fn whole_stream(
        &self,
        response: Response<Body>,
        len: u64,
        etag: Option<&str>,
        what: &str,
    ) -> Result<WholeStream> {
        self.check_encoding(&response, what)?;
        // Without a length, the bytes are counted as they arrive.
        let sent_len = header_str(&response, header::CONTENT_LENGTH).and_then(parse_u64);
        if let Some(sent_len) = sent_len.filter(|&n| n != len) {
            return Err(self.changed(format!(
                "{what}: the whole object sent with Content-Length {sent_len}, the object is \
                 {len} bytes"
            )));
        }
        let sent_etag = header_str(&response, header::ETAG).map(str::trim);
        if let (Some(ours), Some(theirs)) = (etag, sent_etag) {
            if ours != theirs {
                return Err(
                    self.changed(format!("{what}: ETag {theirs}, but the HEAD said {ours}"))
                );
            }
        }
        log::warn!(
            "{} ignores byte ranges: reading it as one stream, front to back",
            self.location
        );
        Ok(WholeStream::new(response))
    }

    /// Fills `buf` from `offset` of the stream: skips forward to it, and
    /// fails for an offset the stream has passed.
    pub(super) fn read_streamed(
        &self,
        stream: &WholeStream,
        offset: u64,
        sink: &mut PartSink<'_>,
        ctx: &FetchContext,
    ) -> Result<()> {
        let mut state = stream.state.lock();
        if offset < state.at {
            return Err(self.behind_the_stream(offset, state.at));
        }
        let agent = self.agent();
        if state.body.is_none() {
            // Retries count themselves.
            ctx.record_request();
        }
        self.with_retries(ctx, || {
            let attempt = self.stream_into(&agent, &mut state, offset, sink, ctx);
            if attempt
                .as_ref()
                .is_err_and(|failure| !matches!(failure.error, Error::Cancelled))
            {
                // Broken, or not the object: the next attempt starts over.
                state.body = None;
            }
            attempt
        })
    }

    /// One attempt of [`read_streamed`](Self::read_streamed), resuming
    /// after the bytes earlier attempts committed.
    fn stream_into(
        &self,
        agent: &Agent,
        state: &mut StreamState,
        offset: u64,
        sink: &mut PartSink<'_>,
        ctx: &FetchContext,
    ) -> Result<(), Failure> {
        let what = "GET";
        if state.body.is_none() {
            let response = self.send_as(agent, Method::GET, None, true, what.to_owned())?;
            if response.status().as_u16() != 200 {
                return Err(self.status_failure_as(response, what.to_owned()));
            }
            self.check_encoding(&response, what)?;
            self.check_content_length(&response, what, self.len, true)?;
            self.check_validator(&response, what)?;
            state.body = Some((response.into_body().into_reader(), 0));
        }
        let Some((body, at)) = state.body.as_mut() else {
            return Ok(());
        };
        let start = offset + sink.filled() as u64;
        let skipped = self.skip_body(body, at, start, what, ctx);
        // However far a skip got (a cancel stops it midway), the stream is
        // past it: a later read before there must fail, not skip nothing.
        state.at = state.at.max(*at);
        skipped?;
        if *at != start {
            return Err(self.behind_the_stream(start, *at).into());
        }
        let result = self.read_body(body, offset, sink, what, ctx);
        *at = offset + sink.filled() as u64;
        state.at = *at;
        result?;
        if *at == self.len {
            let mut extra = [0; 1];
            let longer = matches!(body.read(&mut extra), Ok(n) if n > 0);
            state.body = None;
            if longer {
                return Err(self
                    .invalid(format!(
                        "{what}: the body is longer than the {} bytes of the object",
                        self.len
                    ))
                    .into());
            }
        }
        Ok(())
    }

    /// The error for a read at `offset` of a stream that is at `at`.
    fn behind_the_stream(&self, offset: u64, at: u64) -> Error {
        Error::RangeNotSupported {
            object: self.location.clone(),
            detail: format!(
                "the server ignores byte ranges (it answers with the whole object), so the \
                 object is read as one stream front to back: byte {offset} is behind it (at \
                 byte {at}), and a seek back past the window behind the reader cannot be served"
            ),
        }
    }

    /// Commits the bytes of `body` into `sink` as they arrive, for the part
    /// at `offset`, until it is full.
    pub(super) fn read_body(
        &self,
        body: &mut impl Read,
        offset: u64,
        sink: &mut PartSink<'_>,
        what: &str,
        ctx: &FetchContext,
    ) -> Result<(), Failure> {
        while !sink.is_full() {
            ctx.check_cancelled()?;
            let chunk = sink.unfilled();
            let n = chunk.len().min(BODY_CHUNK);
            match body.read(&mut chunk[..n]) {
                Ok(0) => return Err(self.truncated(offset, sink.len(), sink.filled()).into()),
                Ok(n) => {
                    ctx.add_bytes(n as u64);
                    sink.commit(n);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    return Err(self
                        .body_error(err, what, offset, sink.len(), sink.filled())
                        .into())
                }
            }
        }
        Ok(())
    }

    /// Reads and drops the bytes of `body` from `*at` to `to`, counting
    /// them as received.
    pub(super) fn skip_body(
        &self,
        body: &mut impl Read,
        at: &mut u64,
        to: u64,
        what: &str,
        ctx: &FetchContext,
    ) -> Result<(), Failure> {
        if *at >= to {
            return Ok(());
        }
        let mut scratch = vec![0; BODY_CHUNK];
        while *at < to {
            ctx.check_cancelled()?;
            let want = usize::try_from(to - *at).map_or(BODY_CHUNK, |n| n.min(BODY_CHUNK));
            match body.read(&mut scratch[..want]) {
                Ok(0) => return Err(self.truncated(*at, want, 0).into()),
                Ok(n) => {
                    *at += n as u64;
                    ctx.add_bytes(n as u64);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(self.body_error(err, what, *at, want, 0).into()),
            }
        }
        Ok(())
    }
}
