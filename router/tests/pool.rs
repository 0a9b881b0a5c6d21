//! The upstream connection pool against raw loopback servers whose
//! connection handling each test controls: reuse, connections the instance
//! closed while idle, abandoned responses, refused connects, and sweeping.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use baton_router::pool::{Error, Pool};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Request, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the test server treats a connection after each response.
#[derive(Clone, Copy)]
enum AfterResponse {
    KeepAlive,
    /// Closes the socket without saying so in the response (as a server
    /// whose keep-alive timeout just fired would).
    Close,
}

/// A server answering every request with `200 ok` and `body_len` more
/// bytes; counts the connections it accepted.
async fn server(after: AfterResponse, body_len: usize) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(answer(stream, after, body_len));
        }
    });
    (addr, accepted)
}

async fn answer(mut stream: TcpStream, after: AfterResponse, body_len: usize) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // One request head (the tests send no bodies).
        while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        buffer.clear();
        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {body_len}\r\n\r\n");
        let body = vec![b'x'; body_len];
        if stream.write_all(head.as_bytes()).await.is_err()
            || stream.write_all(&body).await.is_err()
        {
            return;
        }
        if let AfterResponse::Close = after {
            return;
        }
    }
}

fn get(addr: SocketAddr) -> Request<Empty<Bytes>> {
    Request::builder()
        .uri("/")
        .header("host", addr.to_string())
        .body(Empty::new())
        .unwrap()
}

fn pool() -> Arc<Pool<Empty<Bytes>>> {
    Pool::new(Duration::from_secs(1), Duration::from_secs(90))
}

#[tokio::test]
async fn sequential_requests_share_one_connection() {
    let (addr, accepted) = server(AfterResponse::KeepAlive, 2).await;
    let pool = pool();
    let authority: Arc<str> = addr.to_string().into();
    for _ in 0..20 {
        let (response, lease) = pool.send(&authority, get(addr)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"xx");
        lease.release();
        assert_eq!(pool.idle_count(), 1);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn regression_a_connection_the_instance_closed_while_idle_is_not_a_failure() {
    let (addr, accepted) = server(AfterResponse::Close, 2).await;
    let pool = pool();
    let authority: Arc<str> = addr.to_string().into();
    for i in 0..20 {
        let (response, lease) = pool
            .send(&authority, get(addr))
            .await
            .unwrap_or_else(|e| panic!("request {i}: {e:?}"));
        response.into_body().collect().await.unwrap();
        lease.release();
    }
    // Every request needed a fresh connection, and none failed.
    assert_eq!(accepted.load(Ordering::SeqCst), 20);
}

#[tokio::test]
async fn an_abandoned_response_does_not_return_its_connection() {
    let (addr, accepted) = server(AfterResponse::KeepAlive, 256 * 1024).await;
    let pool = pool();
    let authority: Arc<str> = addr.to_string().into();
    let (response, lease) = pool.send(&authority, get(addr)).await.unwrap();
    // The body is left unread: the connection is not at a request boundary.
    drop(response);
    drop(lease);
    assert_eq!(pool.idle_count(), 0);
    let (response, lease) = pool.send(&authority, get(addr)).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len(), 256 * 1024);
    lease.release();
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_refused_connect_is_reported_as_unsent() {
    // A port nobody listens on: bind, note it, close.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let pool = pool();
    let authority: Arc<str> = addr.to_string().into();
    let error = pool.send(&authority, get(addr)).await.unwrap_err();
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
    assert!(error.unsent());
    assert!(error.to_string().contains(&*authority), "{error}");
}

#[tokio::test]
async fn a_sweep_closes_connections_to_instances_that_left() {
    let (first, _) = server(AfterResponse::KeepAlive, 2).await;
    let (second, _) = server(AfterResponse::KeepAlive, 2).await;
    let pool = pool();
    for addr in [first, second] {
        let authority: Arc<str> = addr.to_string().into();
        let (response, lease) = pool.send(&authority, get(addr)).await.unwrap();
        response.into_body().collect().await.unwrap();
        lease.release();
    }
    assert_eq!(pool.idle_count(), 2);
    let kept = first.to_string();
    pool.sweep(|authority| authority == kept);
    assert_eq!(pool.idle_count(), 1);
}
