//! A minimal HTTP/1.1 keep-alive client: one TCP connection per load
//! worker, requests sent one after another on it (what Okta's workers do).
use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{
    Method, Request, StatusCode,
    client::conn::http1::SendRequest,
    header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue},
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// SCIM's media type, as Okta sends it.
pub const SCIM_JSON: &str = "application/scim+json; charset=utf-8";

pub struct Http {
    addr: SocketAddr,
    host: HeaderValue,
    auth: HeaderValue,
    timeout: Duration,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// HTTP requests sent (answered or not).
    pub sent: u64,
}

impl Http {
    pub fn new(addr: SocketAddr, token: &str, timeout: Duration) -> Result<Self, String> {
        Ok(Self {
            addr,
            host: HeaderValue::from_str(&addr.to_string()).map_err(|e| e.to_string())?,
            auth: HeaderValue::from_str(&format!("Bearer {token}")).map_err(|e| e.to_string())?,
            timeout,
            sender: None,
            sent: 0,
        })
    }

    /// Opens the connection now (so that connecting is not measured).
    pub async fn connect(&mut self) -> Result<(), String> {
        if self.sender.is_none() {
            let stream = tokio::time::timeout(self.timeout, TcpStream::connect(self.addr))
                .await
                .map_err(|_| "connect timed out".to_owned())?
                .map_err(|e| format!("connect: {e}"))?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        Ok(())
    }

    /// One request; the connection is dropped (and reopened next time) after
    /// any transport error or timeout.
    pub async fn call(
        &mut self,
        method: Method,
        path_and_query: &str,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes), String> {
        self.connect().await?;
        let mut builder = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(HOST, self.host.clone())
            .header(AUTHORIZATION, self.auth.clone())
            .header(ACCEPT, "application/scim+json");
        if body.is_some() {
            builder = builder.header(CONTENT_TYPE, SCIM_JSON);
        }
        let request = builder
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| e.to_string())?;
        self.sent += 1;
        let Some(sender) = self.sender.as_mut() else {
            return Err("not connected".to_owned());
        };
        let result = tokio::time::timeout(self.timeout, exchange(sender, request)).await;
        match result {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => {
                self.sender = None;
                Err(e)
            }
            Err(_) => {
                self.sender = None;
                Err("request timed out".to_owned())
            }
        }
    }
}

async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes), String> {
    sender
        .ready()
        .await
        .map_err(|e| format!("connection: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok((status, body))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_filters_like_okta() {
        assert_eq!(
            super::encode("userName eq \"a@b.c\""),
            "userName%20eq%20%22a%40b.c%22"
        );
    }
}
