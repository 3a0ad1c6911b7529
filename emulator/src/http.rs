//! A small HTTP/1.1 server connection over `std::net::TcpStream`: keep-alive, pipelining,
//! `Content-Length` and chunked bodies, `Expect: 100-continue`.
//!
//! Public so that `cio-ratelimit relay` serves its local Customer.io endpoint with the same
//! blocking, thread-per-connection code the emulator is tested with: read a [`Request`] from
//! a [`Connection`], answer it with a [`Response`].
//!
//! Why hand-written rather than tiny_http: the emulator must be able to close a connection
//! without sending any response at all (the `drop_connection` fault), so that a client sees a
//! transport error. tiny_http answers a dropped request with a 500 of its own, and its only
//! way to get at the socket sends a `101 Switching Protocols` first. Owning the socket also
//! keeps every request on one thread from read to write, with no queue in between. Header
//! parsing is left to `httparse`, the parser hyper uses.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};

/// The most header bytes accepted before a request is refused with 431.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most headers accepted.
const MAX_HEADERS: usize = 64;
/// The largest body read; larger requests are refused with 413 and the connection closed.
/// Far above every Customer.io limit, so that those limits are answered by the API itself.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// One parsed request.
#[derive(Debug)]
pub struct Request {
    /// The method, as sent: `GET`, `PUT`, ...
    pub method: String,
    /// The path without the query string, still percent-encoded.
    pub path: String,
    /// The query string after `?`, still percent-encoded; empty without one.
    pub query: String,
    /// Header names in lower case.
    headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// Whether the client wants the connection kept open after the answer.
    pub keep_alive: bool,
}

impl Request {
    /// The first value of a query parameter, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then(|| {
                percent_encoding::percent_decode_str(&value.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            })
        })
    }

    /// The first header with this lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(given, _)| given == name)
            .map(|(_, value)| value.as_str())
    }

    /// Whether the `Authorization` header is HTTP Basic `user:password`
    /// (base64 with or without padding, the scheme in any case).
    pub fn has_basic_credentials(&self, user: &str, password: &str) -> bool {
        crate::auth::basic_is(self.header("authorization"), user, password)
    }
}

/// An answer: always JSON, always with `Content-Length`.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers besides `Content-Type`, `Content-Length` and `Connection`.
    pub headers: Vec<(&'static str, String)>,
    /// The JSON body.
    pub body: Vec<u8>,
}

impl Response {
    /// An answer with `body` serialized as JSON.
    pub fn json(status: u16, body: &impl serde::Serialize) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: serde_json::to_vec(body).unwrap_or_default(),
        }
    }

    /// The answer with one more header.
    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Why no request could be read.
#[derive(Debug)]
pub enum ReadError {
    /// The socket failed or the client went away mid-request: nothing to answer.
    Io,
    /// The bytes are not HTTP/1.x: answer 400 and close.
    Malformed(&'static str),
    /// Too many or too long headers: answer 431 and close.
    HeadTooLarge,
    /// The body is over [`MAX_BODY_BYTES`]: answer 413 and close.
    BodyTooLarge,
}

impl From<io::Error> for ReadError {
    fn from(_: io::Error) -> Self {
        ReadError::Io
    }
}

impl ReadError {
    /// The answer to send before closing, if any.
    pub fn response(&self) -> Option<Response> {
        let (status, message) = match self {
            ReadError::Io => return None,
            ReadError::Malformed(message) => (400, *message),
            ReadError::HeadTooLarge => (431, "request headers too large"),
            ReadError::BodyTooLarge => (413, "request body too large"),
        };
        Some(Response::json(
            status,
            &serde_json::json!({ "errors": [{ "reason": "invalid", "message": message }] }),
        ))
    }
}

/// The server side of one TCP connection.
pub struct Connection {
    stream: TcpStream,
    /// Bytes read but not consumed yet (the start of the next pipelined request).
    buffer: Vec<u8>,
}

impl Connection {
    /// Serves the connection `stream` accepted.
    pub fn new(stream: TcpStream) -> Self {
        Connection {
            stream,
            buffer: Vec::with_capacity(8 * 1024),
        }
    }

    /// Reads the next request; `Ok(None)` when the client closed the connection between
    /// requests.
    pub fn read_request(&mut self) -> Result<Option<Request>, ReadError> {
        let (head_len, mut request, body_framing) = loop {
            if !self.buffer.is_empty() {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut parsed = httparse::Request::new(&mut headers);
                match parsed.parse(&self.buffer) {
                    Ok(httparse::Status::Complete(len)) => {
                        let (request, framing) = interpret(&parsed)?;
                        break (len, request, framing);
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(httparse::Error::TooManyHeaders) => return Err(ReadError::HeadTooLarge),
                    Err(_) => return Err(ReadError::Malformed("malformed HTTP request")),
                }
                if self.buffer.len() > MAX_HEAD_BYTES {
                    return Err(ReadError::HeadTooLarge);
                }
            }
            if self.fill()? == 0 {
                return if self.buffer.is_empty() {
                    Ok(None)
                } else {
                    Err(ReadError::Io)
                };
            }
        };
        self.buffer.drain(..head_len);
        let expects_body = !matches!(body_framing, BodyFraming::Length(0));
        if expects_body
            && self.buffer.is_empty()
            && request
                .header("expect")
                .is_some_and(|value| value.eq_ignore_ascii_case("100-continue"))
        {
            self.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        request.body = match body_framing {
            BodyFraming::Length(len) => self.take(len)?,
            BodyFraming::Chunked => self.read_chunked()?,
        };
        Ok(Some(request))
    }

    /// Writes an answer; `close` adds `Connection: close`.
    pub fn write_response(&mut self, response: &Response, close: bool) -> io::Result<()> {
        let mut out = Vec::with_capacity(160 + response.body.len());
        write!(
            out,
            "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            response.status,
            reason_phrase(response.status),
            response.body.len()
        )?;
        for (name, value) in &response.headers {
            write!(out, "{name}: {value}\r\n")?;
        }
        if close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&response.body);
        self.stream.write_all(&out)?;
        self.stream.flush()
    }

    /// Closes the connection without a word: the client sees the socket close.
    pub fn close(&mut self) {
        // shutdown() closes the connection even while another handle (the one kept to stop
        // the server) still refers to the socket; dropping this handle alone would not.
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(n) => {
                    self.buffer.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            }
        }
    }

    /// Takes exactly `len` bytes from the connection.
    fn take(&mut self, len: usize) -> Result<Vec<u8>, ReadError> {
        while self.buffer.len() < len {
            if self.fill()? == 0 {
                return Err(ReadError::Io);
            }
        }
        let rest = self.buffer.split_off(len);
        Ok(std::mem::replace(&mut self.buffer, rest))
    }

    fn read_chunked(&mut self) -> Result<Vec<u8>, ReadError> {
        let mut body = Vec::new();
        loop {
            let (consumed, size) = loop {
                match httparse::parse_chunk_size(&self.buffer) {
                    Ok(httparse::Status::Complete((consumed, size))) => break (consumed, size),
                    Ok(httparse::Status::Partial) => {
                        if self.fill()? == 0 {
                            return Err(ReadError::Io);
                        }
                    }
                    Err(_) => return Err(ReadError::Malformed("malformed chunk size")),
                }
            };
            self.buffer.drain(..consumed);
            let size = usize::try_from(size).map_err(|_| ReadError::BodyTooLarge)?;
            if body.len().saturating_add(size) > MAX_BODY_BYTES {
                return Err(ReadError::BodyTooLarge);
            }
            if size == 0 {
                return self.skip_trailers().map(|()| body);
            }
            let chunk = self.take(size + 2)?;
            if !chunk.ends_with(b"\r\n") {
                return Err(ReadError::Malformed("chunk not followed by CRLF"));
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }

    /// Skips trailer lines up to and including the empty line that ends a chunked body.
    fn skip_trailers(&mut self) -> Result<(), ReadError> {
        loop {
            match self.buffer.windows(2).position(|pair| pair == b"\r\n") {
                Some(0) => {
                    self.buffer.drain(..2);
                    return Ok(());
                }
                Some(end) => {
                    self.buffer.drain(..end + 2);
                }
                None => {
                    if self.buffer.len() > MAX_HEAD_BYTES {
                        return Err(ReadError::HeadTooLarge);
                    }
                    if self.fill()? == 0 {
                        return Err(ReadError::Io);
                    }
                }
            }
        }
    }
}

enum BodyFraming {
    Length(usize),
    Chunked,
}

fn interpret(parsed: &httparse::Request<'_, '_>) -> Result<(Request, BodyFraming), ReadError> {
    let method = parsed.method.unwrap_or_default().to_owned();
    let target = parsed.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (path, query) = (path.to_owned(), query.to_owned());
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|header| {
            (
                header.name.to_ascii_lowercase(),
                String::from_utf8_lossy(header.value).trim().to_owned(),
            )
        })
        .collect();
    let mut request = Request {
        method,
        path,
        query,
        headers,
        body: Vec::new(),
        keep_alive: false,
    };
    let connection = request.header("connection").unwrap_or_default();
    let says = |token: &str| {
        connection
            .split(',')
            .any(|given| given.trim().eq_ignore_ascii_case(token))
    };
    request.keep_alive = if parsed.version == Some(0) {
        says("keep-alive")
    } else {
        !says("close")
    };
    let chunked = request
        .header("transfer-encoding")
        .is_some_and(|value| value.to_ascii_lowercase().contains("chunked"));
    let framing = if chunked {
        BodyFraming::Chunked
    } else {
        match request.header("content-length") {
            None => BodyFraming::Length(0),
            Some(value) => {
                let len: usize = value
                    .parse()
                    .map_err(|_| ReadError::Malformed("invalid Content-Length"))?;
                if len > MAX_BODY_BYTES {
                    return Err(ReadError::BodyTooLarge);
                }
                BodyFraming::Length(len)
            }
        }
    };
    Ok((request, framing))
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        207 => "Multi-Status",
        301 => "Moved Permanently",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    /// A connected pair: the client's stream and the server's connection.
    fn pair() -> (TcpStream, Connection) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, Connection::new(server))
    }

    #[test]
    fn reads_pipelined_requests_with_bodies() {
        let (mut client, mut server) = pair();
        client
            .write_all(
                b"POST /a?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n{}\
                  GET /b HTTP/1.1\r\nConnection: close\r\n\r\n",
            )
            .unwrap();
        let first = server.read_request().unwrap().unwrap();
        assert_eq!((first.method.as_str(), first.path.as_str()), ("POST", "/a"));
        assert_eq!(first.body, b"{}");
        assert!(first.keep_alive);
        let second = server.read_request().unwrap().unwrap();
        assert_eq!(second.path, "/b");
        assert!(!second.keep_alive);
        drop(client);
        assert!(server.read_request().unwrap().is_none());
    }

    #[test]
    fn reads_chunked_bodies_sent_in_pieces() {
        let (mut client, mut server) = pair();
        let writer = thread::spawn(move || {
            for piece in [
                &b"PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab"[..],
                b"c\r\n2;ext=1\r\nde\r\n0\r\n",
                b"Trailer: x\r\n\r\n",
            ] {
                client.write_all(piece).unwrap();
                client.flush().unwrap();
            }
            client
        });
        let request = server.read_request().unwrap().unwrap();
        assert_eq!(request.body, b"abcde");
        drop(writer.join().unwrap());
    }

    #[test]
    fn http_1_0_closes_unless_asked_to_keep_alive() {
        let (mut client, mut server) = pair();
        client
            .write_all(b"GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap();
        assert!(!server.read_request().unwrap().unwrap().keep_alive);
        assert!(server.read_request().unwrap().unwrap().keep_alive);
    }

    #[test]
    fn answers_expect_continue_before_reading_the_body() {
        let (mut client, mut server) = pair();
        client
            .write_all(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
            .unwrap();
        let reader = thread::spawn(move || {
            let mut interim = [0u8; 25];
            client.read_exact(&mut interim).unwrap();
            assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
            client.write_all(b"{}").unwrap();
            client
        });
        assert_eq!(server.read_request().unwrap().unwrap().body, b"{}");
        drop(reader.join().unwrap());
    }

    #[test]
    fn refuses_garbage_and_huge_bodies() {
        let (mut client, mut server) = pair();
        client.write_all(b"\x00\x01 nonsense\r\n\r\n").unwrap();
        let error = server.read_request().unwrap_err();
        assert_eq!(error.response().unwrap().status, 400);

        let (mut client, mut server) = pair();
        let head = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY_BYTES + 1
        );
        client.write_all(head.as_bytes()).unwrap();
        let error = server.read_request().unwrap_err();
        assert_eq!(error.response().unwrap().status, 413);
    }

    #[test]
    fn writes_length_delimited_json() {
        let (mut client, mut server) = pair();
        let response =
            Response::json(429, &serde_json::json!({})).with_header("Retry-After", "1".into());
        server.write_response(&response, true).unwrap();
        drop(server);
        let mut text = String::new();
        client.read_to_string(&mut text).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n\
             Content-Length: 2\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{}"
        );
    }
}
