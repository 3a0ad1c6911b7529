//! A Track v2 server on 127.0.0.1 whose every answer a test decides: late,
//! a 5xx, or a connection dropped without one. It records the operations it
//! accepted, in the order they arrived, so a test can check what the server
//! saw rather than what the client says it sent.
//!
//! A test file that uses it declares `mod scripted;` too: requests are read
//! as [`scripted`](crate::scripted) reads them.

// Each test file uses its own part of this module.
#![allow(dead_code)]

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::Value;

use crate::scripted::{Received, read_request};

/// What the server does with one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Answer {
    /// Stores every operation now, answers `200 {}` after the delay.
    Accept(Duration),
    /// Stores nothing, answers this status (e.g. 503).
    Refuse(u16),
    /// Stores nothing, closes the connection without an answer.
    Drop,
}

/// The server; it stops serving when the test process ends.
pub struct Fickle {
    url: String,
    accepted: Arc<Mutex<Vec<Value>>>,
}

impl Fickle {
    /// Serves `/api/v2/batch` and `/api/v2/entity`, asking `judge` what to
    /// do with each request's operations.
    pub fn start(judge: impl Fn(&[Value]) -> Answer + Send + Sync + 'static) -> Fickle {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let judge = Arc::new(judge);
        let (kept, served) = (accepted.clone(), judge.clone());
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (kept, judge) = (kept.clone(), served.clone());
                thread::spawn(move || serve(stream, &*judge, &kept));
            }
        });
        Fickle { url, accepted }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The operations accepted so far, in arrival order.
    pub fn accepted(&self) -> Vec<Value> {
        self.accepted.lock().unwrap().clone()
    }

    /// A handle on the accepted operations, for a check made while the
    /// import runs.
    pub fn accepted_handle(&self) -> Arc<Mutex<Vec<Value>>> {
        self.accepted.clone()
    }
}

fn serve(stream: TcpStream, judge: &dyn Fn(&[Value]) -> Answer, accepted: &Mutex<Vec<Value>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    while let Some(Received { path, body }) = read_request(&mut reader) {
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let operations = match path.as_str() {
            "/api/v2/batch" => body["batch"].as_array().cloned().unwrap_or_default(),
            _ => vec![body],
        };
        let status = match judge(&operations) {
            Answer::Accept(delay) => {
                accepted.lock().unwrap().extend(operations);
                thread::sleep(delay);
                200
            }
            Answer::Refuse(status) => status,
            Answer::Drop => return,
        };
        let response = format!(
            "HTTP/1.1 {status} Fickle\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}
