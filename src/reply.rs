//! An HTTP answer the gateway writes itself, independent of pingora: endpoints return it, the
//! proxy glue writes it to the session.

use std::borrow::Cow;

use bytes::Bytes;

/// Status, headers and body of a locally generated response.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    /// Most values are constants (`Cow::Borrowed`), written without a copy.
    pub headers: Vec<(&'static str, Cow<'static, str>)>,
    pub body: Bytes,
}

impl Reply {
    /// A JSON answer that must not be cached (RFC 6749 section 5.1).
    pub fn json_no_store(status: u16, body: impl Into<Bytes>) -> Reply {
        Reply {
            status,
            headers: vec![
                ("Content-Type", "application/json".into()),
                ("Cache-Control", "no-store".into()),
                ("Pragma", "no-cache".into()),
            ],
            body: body.into(),
        }
    }

    /// A JSON answer that may be cached by clients (metadata, keys).
    pub fn json_public(body: Bytes) -> Reply {
        Reply {
            status: 200,
            headers: vec![
                ("Content-Type", "application/json".into()),
                ("Cache-Control", "public, max-age=300".into()),
            ],
            body,
        }
    }

    /// An empty answer.
    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: vec![("Cache-Control", "no-store".into())],
            body: Bytes::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<Cow<'static, str>>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}
