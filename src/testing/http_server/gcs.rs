//! A small emulation of the GCS JSON API's read paths, kept apart from the
//! plain HTTP server it rides on, to prove what an emulator cannot:
//! generation pinning.
//!
//! - `GET /storage/v1/b/{bucket}/o/{object}`: the object resource as JSON
//!   (`size` and `generation` as strings, as the API sends them).
//! - `GET /download/storage/v1/b/{bucket}/o/{object}?alt=media[&generation=G]`:
//!   the bytes, through the server's usual range, validator and fault
//!   handling, with `x-goog-generation` and `x-goog-hash: crc32c=…` (of
//!   the whole object, ranged or not, as GCS sends it). Without
//!   `generation`, the current generation is served. A `generation` that is not the
//!   current one is 404, as GCS answers for a replaced or deleted version.
//!
//! The object segment must be encoded whole: a raw `/` in it does not name
//! the object (404), as on GCS. Errors have GCS's JSON error body. With
//! [`ServerBuilder::gcs_token`](super::ServerBuilder::gcs_token) set, a
//! request without that bearer token is 401.

use std::collections::HashMap;
use std::sync::Arc;

use super::{
    lock, percent_decode, Content, Plan, Representation, Request, Shared, CLOCK_BASE_SECS,
};

/// The first generation given out: a microsecond timestamp, as GCS's are,
/// so that generations look and parse like real ones.
const FIRST_GENERATION: u64 = 1_767_225_600_000_000;

/// The GCS objects, by bucket and name.
#[derive(Default)]
pub(super) struct GcsStore {
    objects: HashMap<(String, String), GcsObject>,
    /// Generations handed out so far.
    puts: u64,
}

struct GcsObject {
    data: Arc<Vec<u8>>,
    generation: u64,
    /// Base64 of the big-endian CRC32C of `data`, as GCS gives it.
    crc32c: String,
}

impl GcsStore {
    /// Stores `data` as a new generation of `bucket/name`; returns it.
    pub(super) fn put(&mut self, bucket: &str, name: &str, data: Vec<u8>) -> u64 {
        let generation = FIRST_GENERATION + self.puts;
        self.puts += 1;
        let object = GcsObject {
            crc32c: crate::source::http::base64(&crc32c(&data).to_be_bytes()),
            data: Arc::new(data),
            generation,
        };
        self.objects
            .insert((bucket.to_owned(), name.to_owned()), object);
        generation
    }

    pub(super) fn remove(&mut self, bucket: &str, name: &str) -> bool {
        self.objects
            .remove(&(bucket.to_owned(), name.to_owned()))
            .is_some()
    }

    pub(super) fn generation(&self, bucket: &str, name: &str) -> Option<u64> {
        self.objects
            .get(&(bucket.to_owned(), name.to_owned()))
            .map(|object| object.generation)
    }
}

/// What the GCS emulation makes of a request.
pub(super) enum Route {
    /// Not a GCS API path: the plain server handles it.
    NotGcs,
    /// A complete answer (metadata, or an error).
    Answer(Plan),
    /// The bytes of one generation, for the plain server to serve.
    Media {
        representation: Representation,
        generation: u64,
        /// The `x-goog-hash` value.
        hash: String,
    },
}

/// Routes `request` if its path is one of the JSON API's.
pub(super) fn route(shared: &Shared, request: &Request) -> Route {
    let (path, query) = request
        .target
        .split_once('?')
        .unwrap_or((request.target.as_str(), ""));
    let (media, rest) = if let Some(rest) = path.strip_prefix("/download/storage/v1/b/") {
        (true, rest)
    } else if let Some(rest) = path.strip_prefix("/storage/v1/b/") {
        (false, rest)
    } else {
        return Route::NotGcs;
    };
    if let Some(token) = &shared.gcs_token {
        let expected = format!("Bearer {token}");
        if request.header("authorization") != Some(expected.as_str()) {
            return Route::Answer(error(
                401,
                "Anonymous caller does not have storage.objects.get access.",
            ));
        }
    }
    // `{bucket}/o/{object}`, the object one segment: encoded whole.
    let mut segments = rest.split('/');
    let (Some(bucket), Some("o"), Some(object), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Route::Answer(error(404, "Not Found"));
    };
    let (Some(bucket), Some(object)) = (percent_decode(bucket), percent_decode(object)) else {
        return Route::Answer(error(400, "Invalid percent-encoding in the path."));
    };
    let params: Vec<(&str, &str)> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .collect();
    let param = |name: &str| params.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let store = lock(&shared.gcs);
    let Some(found) = store.objects.get(&(bucket.clone(), object.clone())) else {
        return Route::Answer(error(404, &format!("No such object: {bucket}/{object}")));
    };
    if let Some(asked) = param("generation") {
        if asked.parse::<u64>().ok() != Some(found.generation) {
            return Route::Answer(error(
                404,
                &format!("No such object: {bucket}/{object}#{asked}"),
            ));
        }
    }
    if !media {
        let resource = serde_json::json!({
            "kind": "storage#object",
            "id": format!("{bucket}/{object}/{}", found.generation),
            "bucket": bucket,
            "name": object,
            "generation": found.generation.to_string(),
            "metageneration": "1",
            "contentType": "application/octet-stream",
            "size": found.data.len().to_string(),
            "crc32c": found.crc32c,
            "etag": format!("CAE{:x}=", found.generation),
        });
        let mut plan = Plan::new(200, super::Body::Bytes(resource.to_string().into_bytes()));
        plan.header("Content-Type", "application/json; charset=UTF-8");
        return Route::Answer(plan);
    }
    if param("alt") != Some("media") {
        return Route::Answer(error(400, "A download needs alt=media."));
    }
    Route::Media {
        representation: Representation {
            content: Content::Memory(Arc::clone(&found.data)),
            len: found.data.len() as u64,
            etag: format!("gcs-{:x}", found.generation),
            modified: CLOCK_BASE_SECS + (found.generation - FIRST_GENERATION),
        },
        generation: found.generation,
        hash: format!("crc32c={}", found.crc32c),
    }
}

/// CRC32C (Castagnoli), the checksum GCS keeps of every object.
fn crc32c(data: &[u8]) -> u32 {
    /// The reflected Castagnoli polynomial.
    const POLY: u32 = 0x82F6_3B78;
    let mut table = [0u32; 256];
    for (i, entry) in (0u32..).zip(table.iter_mut()) {
        *entry = (0..8).fold(i, |crc, _| {
            if crc & 1 == 1 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            }
        });
    }
    !data.iter().fold(!0u32, |crc, &b| {
        table[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8)
    })
}

/// An error with GCS's JSON error body.
fn error(status: u16, message: &str) -> Plan {
    let reason = match status {
        400 => "invalid",
        401 => "required",
        404 => "notFound",
        _ => "error",
    };
    let body = serde_json::json!({
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
        }
    });
    let mut plan = Plan::new(status, super::Body::Bytes(body.to_string().into_bytes()));
    plan.header("Content-Type", "application/json; charset=UTF-8");
    plan
}
