//! A scripted HTTP server on 127.0.0.1, for what `cio-emulator` cannot do:
//! answers that break Customer.io's own rules (a 207 that names no item, or
//! an item twice), and the exact bytes each request carried (the emulator
//! parses them into JSON, which has no room for a 23-digit integer).

// Each test file uses its own part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub body: Vec<u8>,
}

impl Received {
    /// Whether it went to a path starting with `prefix`.
    pub fn went_to(&self, prefix: &str) -> bool {
        self.path.starts_with(prefix)
    }
}

/// Answers requests in order from a script of `(path prefix, status, body)`;
/// a request answered by no entry gets `200 {}`. Each entry answers once.
pub struct Scripted {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Scripted {
    pub fn start(script: &[(&str, u16, &str)]) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let script: Vec<(String, u16, String)> = script
            .iter()
            .map(|(path, status, body)| (path.to_string(), *status, body.to_string()))
            .collect();
        let script = Arc::new(Mutex::new(script));
        let received = Arc::new(Mutex::new(Vec::new()));
        let seen = received.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (script, seen) = (script.clone(), seen.clone());
                thread::spawn(move || serve(stream, &script, &seen));
            }
        });
        Scripted { url, received }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// The next request on a connection, `None` once the client closes it.
pub fn read_request(reader: &mut impl BufRead) -> Option<Received> {
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return None;
    }
    let path = request_line.split_whitespace().nth(1)?.to_owned();
    let mut length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 {
            return None;
        }
        if header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Received { path, body })
}

fn serve(
    stream: TcpStream,
    script: &Mutex<Vec<(String, u16, String)>>,
    seen: &Mutex<Vec<Received>>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    while let Some(Received { path, body }) = read_request(&mut reader) {
        // Recorded and answered under one lock, so that the order of the
        // answers is the order of the records.
        let mut seen = seen.lock().unwrap();
        seen.push(Received {
            path: path.clone(),
            body,
        });
        let (status, answer) = {
            let mut script = script.lock().unwrap();
            match script
                .iter()
                .position(|(prefix, _, _)| path.starts_with(prefix))
            {
                Some(index) => {
                    let (_, status, answer) = script.remove(index);
                    (status, answer)
                }
                None => (200, "{}".to_owned()),
            }
        };
        let response = format!(
            "HTTP/1.1 {status} Scripted\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        writer.write_all(response.as_bytes()).unwrap();
        drop(seen);
    }
}
