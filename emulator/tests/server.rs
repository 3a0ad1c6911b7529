//! The server itself: URL and port, keep-alive, HTTP framing, shutdown and drop.

mod client;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use cio_emulator::{Config, Emulator};
use client::Client;

const AUTH: &str = "Authorization: Basic ZW11bGF0b3Itc2l0ZS1pZDplbXVsYXRvci1hcGkta2V5\r\n";

/// Reads one response: the status and the body.
fn read_response(reader: &mut BufReader<TcpStream>) -> (u16, String) {
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    (status, String::from_utf8(body).unwrap())
}

fn connect(emulator: &Emulator) -> (TcpStream, BufReader<TcpStream>) {
    let stream = TcpStream::connect(("127.0.0.1", emulator.port())).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let reader = BufReader::new(stream.try_clone().unwrap());
    (stream, reader)
}

#[test]
fn url_is_loopback_with_the_port_and_no_trailing_slash() {
    let emulator = Emulator::start(Config::default()).unwrap();
    assert_eq!(
        emulator.url(),
        format!("http://127.0.0.1:{}", emulator.port())
    );
    assert_ne!(emulator.port(), 0);
    assert!(format!("{emulator:?}").contains(&emulator.url()));
}

#[test]
fn a_port_in_use_is_an_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let error = Emulator::start(Config::default().port(port)).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse);
}

#[test]
fn one_keep_alive_connection_carries_many_pipelined_requests() {
    let emulator = Emulator::start(Config::default().track_limit(0)).unwrap();
    let (mut stream, mut reader) = connect(&emulator);
    let mut requests = String::new();
    for i in 0..20 {
        let body = format!(r#"{{"n":{i}}}"#);
        requests.push_str(&format!(
            "PUT /api/v1/customers/{i} HTTP/1.1\r\nHost: x\r\n{AUTH}Content-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    }
    stream.write_all(requests.as_bytes()).unwrap();
    for _ in 0..20 {
        assert_eq!(read_response(&mut reader), (200, "{}".to_owned()));
    }
    assert_eq!(emulator.snapshot().people.len(), 20);
}

#[test]
fn chunked_bodies_are_read() {
    let emulator = Emulator::start(Config::default()).unwrap();
    let (mut stream, mut reader) = connect(&emulator);
    write!(
        stream,
        "PUT /api/v1/customers/1 HTTP/1.1\r\nHost: x\r\n{AUTH}Transfer-Encoding: chunked\r\n\r\n\
         5\r\n{{\"a\":\r\n2\r\n1}}\r\n0\r\n\r\n"
    )
    .unwrap();
    assert_eq!(read_response(&mut reader).0, 200);
    assert_eq!(emulator.snapshot().people["1"].attributes["a"], 1);
}

#[test]
fn malformed_http_gets_a_400_and_the_connection_closes() {
    let emulator = Emulator::start(Config::default()).unwrap();
    let (mut stream, mut reader) = connect(&emulator);
    stream
        .write_all(b"PUT /api/v1/customers/1 HTTP/1.1\r\nContent-Length: nope\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut reader).0, 400);
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
}

#[test]
fn shutdown_closes_open_connections_and_refuses_new_ones() {
    let emulator = Emulator::start(Config::default()).unwrap();
    let (mut stream, mut reader) = connect(&emulator);
    write!(
        stream,
        "GET /_emulator/snapshot HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .unwrap();
    assert_eq!(read_response(&mut reader).0, 200);
    let port = emulator.port();
    emulator.shutdown();
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
    assert!(rest.is_empty(), "an idle connection is closed");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    emulator.shutdown();
}

#[test]
fn drop_shuts_down() {
    let emulator = Emulator::start(Config::default()).unwrap();
    let client = Client::new(&emulator);
    assert_eq!(client.track("PUT", "/api/v1/customers/1", "{}").status, 200);
    let port = emulator.port();
    drop(emulator);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn wait_returns_once_another_thread_shuts_down() {
    let emulator = Arc::new(Emulator::start(Config::default()).unwrap());
    let (done, waited) = mpsc::channel();
    let waiter = thread::spawn({
        let emulator = Arc::clone(&emulator);
        move || {
            emulator.wait();
            done.send(()).unwrap();
        }
    });
    assert!(
        waited.recv_timeout(Duration::from_millis(100)).is_err(),
        "wait() must block while the emulator runs"
    );
    emulator.shutdown();
    waited.recv_timeout(Duration::from_secs(30)).unwrap();
    waiter.join().unwrap();
}

#[test]
fn many_clients_at_once() {
    let emulator = Emulator::start(Config::default().track_limit(0)).unwrap();
    let url = emulator.url();
    thread::scope(|scope| {
        for t in 0..8 {
            let url = url.clone();
            scope.spawn(move || {
                let client = Client::with_url(&url);
                for i in 0..50 {
                    let path = format!("/api/v1/customers/{t}-{i}");
                    assert_eq!(client.track("PUT", &path, "{}").status, 200);
                }
            });
        }
    });
    let snapshot = emulator.snapshot();
    assert_eq!(snapshot.people.len(), 400);
    assert_eq!(snapshot.requests, 400);
}
