//! [`HttpSourceBuilder`]: the settings an [`HttpSource`] is opened with.

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use ureq::http::header::{self, HeaderName, HeaderValue};
use ureq::Agent;

use super::{
    own_agent, url, AgentSlot, HttpSource, RequestHooks, RetryPolicy, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT, DEFAULT_USER_AGENT, INITIAL_POOL_SIZE, MAX_TAIL,
};
use crate::error::{Error, Result};
use crate::redact::redact_url;

/// Settings for opening [`HttpSource`]s; one builder opens many objects.
///
/// ```no_run
/// use prefetch_reader::{HttpSource, PrefetchReader};
/// use std::time::Duration;
///
/// let mut builder = HttpSource::builder();
/// builder
///     .connect_timeout(Duration::from_secs(5))
///     .user_agent("my-tool/1.0");
/// for url in ["https://example.com/a.bin", "https://example.com/b.bin"] {
///     let reader = PrefetchReader::new(builder.open(url)?)?;
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct HttpSourceBuilder {
    headers: Vec<(String, String)>,
    bearer_token: Option<String>,
    connect_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
    retry: RetryPolicy,
    user_agent: Option<String>,
    agent: Option<Agent>,
    tail: Option<u64>,
}

impl HttpSourceBuilder {
    /// A builder with every default.
    pub fn new() -> HttpSourceBuilder {
        HttpSourceBuilder::default()
    }

    /// Sends the header `name: value` with every request (added to those
    /// set before). Checked when a source is opened. Sent only to the
    /// origin of the URL opened, never after a redirect to another origin.
    pub fn header(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sends `Authorization: Bearer TOKEN` with every request. Never shown
    /// in messages or `Debug` output. Takes the place of credentials in
    /// the URL's userinfo (which are otherwise sent as Basic auth). Like
    /// userinfo credentials, sent only to the origin of the URL opened.
    pub fn bearer_token(&mut self, token: impl Into<String>) -> &mut Self {
        self.bearer_token = Some(token.into());
        self
    }

    /// How long connecting may take. Defaults to
    /// [`DEFAULT_CONNECT_TIMEOUT`] (10 s) with the source's own agent; with
    /// a caller's [`agent`](Self::agent), the agent's own setting unless
    /// this is called.
    pub fn connect_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// How long a response may stall (no byte of headers or body arriving)
    /// before it is [`Error::TimedOut`] (and retried). Defaults to
    /// [`DEFAULT_READ_TIMEOUT`] (30 s) with the source's own agent; with a
    /// caller's [`agent`](Self::agent), the agent's own setting unless this
    /// is called.
    pub fn read_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.read_timeout = Some(timeout);
        self
    }

    /// How failures that may not last are retried. Defaults to
    /// [`RetryPolicy::default`].
    pub fn retry_policy(&mut self, policy: RetryPolicy) -> &mut Self {
        self.retry = policy;
        self
    }

    /// The `User-Agent` header. Defaults to [`DEFAULT_USER_AGENT`]
    /// (`prefetch-reader/VERSION`).
    pub fn user_agent(&mut self, user_agent: impl Into<String>) -> &mut Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// Sends requests through `agent` (for its proxy, TLS or resolver
    /// settings), used as it is: its connection pool is not resized to the
    /// reader's concurrency, so give it at least that many idle connections
    /// per host. Statuses are read as answers whatever its
    /// `http_status_as_error`. Redirects are followed by the source, not
    /// the agent, so the redirect policy of [`HttpSource`] holds for any
    /// agent. By default the source makes its own agent.
    pub fn agent(&mut self, agent: Agent) -> &mut Self {
        self.agent = Some(agent);
        self
    }

    /// Opens with one `GET` of the object's last `n` bytes (`Range:
    /// bytes=-N`) in place of a `HEAD`: the length and validator come from
    /// its `Content-Range` and `ETag`, and the bytes are kept, so reads
    /// inside them (a zip's directory, a parquet footer) need no request.
    /// Opening and reading a footer is then one round trip. A server that
    /// answers with the whole object (no ranges) is read as one stream, as
    /// after any open; one that answers `416` is asked as without a tail.
    /// Off by default; `n` is 1 byte to [`MAX_TAIL`] (64 MiB), checked at
    /// open. [`DEFAULT_TAIL`](super::DEFAULT_TAIL) (64 KiB) holds most footers.
    pub fn tail(&mut self, n: u64) -> &mut Self {
        self.tail = Some(n);
        self
    }

    /// Opens the object at `url` with these settings.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a header that cannot be sent, and those
    /// of [`HttpSource::open`].
    pub fn open(&self, url: &str) -> Result<HttpSource> {
        let tail = self.checked_tail()?;
        let mut source = self.prepare(url, redact_url(url))?;
        let meta = source.learn_metadata(true, tail)?;
        source.pin_to(meta)?;
        Ok(source)
    }

    /// A source for `url` with these settings, named `location` in
    /// messages, that has not asked the server anything yet: sources built
    /// on this one learn the length and version their own way.
    pub(crate) fn prepare(&self, url: &str, location: String) -> Result<HttpSource> {
        let parsed = url::parse_http_url(url)?;
        self.prepare_target(
            parsed.request_url,
            parsed.userinfo.as_deref(),
            location,
            None,
        )
    }

    /// Opens an object each of whose request URLs `hooks` makes (signed
    /// afresh per attempt), named `location` in messages.
    pub(crate) fn open_with_hooks(
        &self,
        location: String,
        hooks: Arc<dyn RequestHooks>,
    ) -> Result<HttpSource> {
        let tail = self.checked_tail()?;
        let mut source = self.prepare_target(String::new(), None, location, Some(hooks))?;
        // S3 serves byte ranges, whether or not it says so.
        let meta = source.learn_metadata(false, tail)?;
        source.pin_to(meta)?;
        Ok(source)
    }

    /// The tail to ask for at open, if within bounds.
    fn checked_tail(&self) -> Result<Option<u64>> {
        checked_tail(self.tail)
    }

    fn prepare_target(
        &self,
        request_url: String,
        userinfo: Option<&str>,
        location: String,
        hooks: Option<Arc<dyn RequestHooks>>,
    ) -> Result<HttpSource> {
        let mut headers = Vec::with_capacity(self.headers.len() + 2);
        for (name, value) in &self.headers {
            let name =
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| Error::InvalidConfig {
                    setting: "header",
                    reason: format!("`{name}` is not a valid header name"),
                })?;
            let mut value = HeaderValue::from_str(value).map_err(|_| Error::InvalidConfig {
                setting: "header",
                reason: format!("the value of `{name}` is not a valid header value"),
            })?;
            value.set_sensitive(true);
            headers.push((name, value));
        }
        let user_agent = self.user_agent.as_deref().unwrap_or(DEFAULT_USER_AGENT);
        let user_agent = HeaderValue::from_str(user_agent).map_err(|_| Error::InvalidConfig {
            setting: "user_agent",
            reason: format!("`{user_agent}` is not a valid header value"),
        })?;
        headers.push((header::USER_AGENT, user_agent));
        let authorization = match (&self.bearer_token, userinfo) {
            (Some(token), _) => Some(("bearer_token", format!("Bearer {token}"))),
            (None, Some(userinfo)) => {
                Some(("url", format!("Basic {}", url::base64(userinfo.as_bytes()))))
            }
            (None, None) => None,
        };
        if let Some((setting, value)) = authorization {
            let mut value = HeaderValue::from_str(&value).map_err(|_| Error::InvalidConfig {
                setting,
                reason: "the credentials are not a valid header value".to_owned(),
            })?;
            value.set_sensitive(true);
            headers.push((header::AUTHORIZATION, value));
        }
        let (agent, own_pool_size, connect_timeout, read_timeout) = match &self.agent {
            Some(agent) => (agent.clone(), None, self.connect_timeout, self.read_timeout),
            None => (
                own_agent(INITIAL_POOL_SIZE),
                Some(INITIAL_POOL_SIZE),
                Some(self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT)),
                Some(self.read_timeout.unwrap_or(DEFAULT_READ_TIMEOUT)),
            ),
        };
        Ok(HttpSource {
            url: request_url,
            resolved: Mutex::new(None),
            hooks,
            location,
            len: 0,
            etag: None,
            last_modified: None,
            pin: None,
            headers,
            connect_timeout,
            read_timeout,
            retry: self.retry.clone(),
            agent: Mutex::new(AgentSlot {
                agent,
                own_pool_size,
            }),
            version_in_url: None,
            google_errors: false,
            sent: AtomicU64::new(0),
            sent_at_open: 0,
            stream: None,
            tail: None,
            received_at_open: 0,
        })
    }
}

/// `tail`, if within the bounds of [`HttpSourceBuilder::tail`]: 1 byte to
/// [`MAX_TAIL`].
pub(crate) fn checked_tail(tail: Option<u64>) -> Result<Option<u64>> {
    match tail {
        Some(n) if n == 0 || n > MAX_TAIL => Err(Error::InvalidConfig {
            setting: "tail",
            reason: format!("must be 1 byte to {MAX_TAIL} bytes, not {n}"),
        }),
        tail => Ok(tail),
    }
}

impl fmt::Debug for HttpSourceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values and the token may be secrets: names only.
        let header_names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("HttpSourceBuilder")
            .field("headers", &header_names)
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "REDACTED"),
            )
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("retry", &self.retry)
            .field("user_agent", &self.user_agent)
            .field("agent", &self.agent.as_ref().map(|_| "caller's"))
            .field("tail", &self.tail)
            .finish()
    }
}
