//! The upstream HTTP/1.1 client and its pool against raw loopback servers
//! whose bytes each test controls: reuse, connections the instance closed
//! while idle, abandoned responses, refused connects, sweeping, and the
//! response framings (length, chunked, until close, none for HEAD, 1xx
//! answers skipped), and protocol upgrades (a new connection each, handed
//! over on `101`, an error on `101` to a request that did not ask).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use baton_router::pool::{Error, Outgoing, Pool, ResponseBody};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Response, StatusCode};
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

/// A server answering every request with a `Content-Length` response of
/// `body_len` bytes; counts the connections it accepted.
async fn server(after: AfterResponse, body_len: usize) -> (SocketAddr, Arc<AtomicUsize>) {
    let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {body_len}\r\n\r\n");
    let mut response = head.into_bytes();
    response.extend(std::iter::repeat_n(b'x', body_len));
    raw_server(after, response).await
}

/// A server answering every request with `response`, verbatim.
async fn raw_server(after: AfterResponse, response: Vec<u8>) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(answer(stream, after, response.clone()));
        }
    });
    (addr, accepted)
}

async fn answer(mut stream: TcpStream, after: AfterResponse, response: Vec<u8>) {
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
        if stream.write_all(&response).await.is_err() {
            return;
        }
        if let AfterResponse::Close = after {
            return;
        }
    }
}

fn pool() -> Arc<Pool> {
    Pool::new(Duration::from_secs(1), Duration::from_secs(90))
}

/// `method /` to `addr` through `pool`.
async fn send(
    pool: &Arc<Pool>,
    addr: SocketAddr,
    method: &str,
) -> Result<Response<ResponseBody>, Error> {
    send_asking(pool, addr, method, false).await
}

/// `method /` to `addr` through `pool`, asking to switch to `echo` when
/// `upgrade`.
async fn send_asking(
    pool: &Arc<Pool>,
    addr: SocketAddr,
    method: &str,
    upgrade: bool,
) -> Result<Response<ResponseBody>, Error> {
    let authority: Arc<str> = addr.to_string().into();
    let mut head = format!("{method} / HTTP/1.1\r\nhost: {addr}\r\n");
    if upgrade {
        head.push_str("connection: upgrade\r\nupgrade: echo\r\n");
    }
    pool.send(
        &authority,
        Outgoing {
            head: head.as_bytes(),
            head_method: method == "HEAD",
            announce_empty: false,
            upgrade,
            body: Empty::<Bytes>::new(),
        },
    )
    .await
}

async fn body_of(response: Response<ResponseBody>) -> Bytes {
    response.into_body().collect().await.unwrap().to_bytes()
}

#[tokio::test]
async fn sequential_requests_share_one_connection() {
    let (addr, accepted) = server(AfterResponse::KeepAlive, 2).await;
    let pool = pool();
    for _ in 0..20 {
        let response = send(&pool, addr, "GET").await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(&body_of(response).await[..], b"xx");
        assert_eq!(pool.idle_count(), 1);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn regression_a_connection_the_instance_closed_while_idle_is_not_a_failure() {
    let (addr, accepted) = server(AfterResponse::Close, 2).await;
    let pool = pool();
    for i in 0..20 {
        let response = send(&pool, addr, "GET")
            .await
            .unwrap_or_else(|e| panic!("request {i}: {e:?}"));
        body_of(response).await;
        // The instance's close arrives on its own time; once it has, the
        // idle connection is seen to be unusable (the same check guards
        // reuse), and the next request is not failed by it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            pool.sweep(|_| true);
            if pool.idle_count() == 0 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the close was never noticed"
            );
            tokio::task::yield_now().await;
        }
    }
    // Every request needed a fresh connection, and none failed.
    assert_eq!(accepted.load(Ordering::SeqCst), 20);
}

#[tokio::test]
async fn an_abandoned_response_does_not_return_its_connection() {
    let (addr, accepted) = server(AfterResponse::KeepAlive, 256 * 1024).await;
    let pool = pool();
    let response = send(&pool, addr, "GET").await.unwrap();
    // The body is left unread: the connection is not at a request boundary.
    drop(response);
    assert_eq!(pool.idle_count(), 0);
    let response = send(&pool, addr, "GET").await.unwrap();
    assert_eq!(body_of(response).await.len(), 256 * 1024);
    assert_eq!(pool.idle_count(), 1);
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
    let error = send(&pool, addr, "GET").await.unwrap_err();
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
    assert!(error.unsent());
    assert!(error.to_string().contains(&addr.to_string()), "{error}");
}

#[tokio::test]
async fn a_sweep_closes_connections_to_instances_that_left() {
    let (first, _) = server(AfterResponse::KeepAlive, 2).await;
    let (second, _) = server(AfterResponse::KeepAlive, 2).await;
    let pool = pool();
    for addr in [first, second] {
        body_of(send(&pool, addr, "GET").await.unwrap()).await;
    }
    assert_eq!(pool.idle_count(), 2);
    let kept = first.to_string();
    pool.sweep(|authority| authority == kept);
    assert_eq!(pool.idle_count(), 1);
}

#[tokio::test]
async fn a_chunked_response_is_decoded_and_its_connection_reused() {
    let response = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
        5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\n"
        .to_vec();
    let (addr, accepted) = raw_server(AfterResponse::KeepAlive, response).await;
    let pool = pool();
    for _ in 0..3 {
        let response = send(&pool, addr, "GET").await.unwrap();
        assert!(response.headers().contains_key("transfer-encoding"));
        assert_eq!(&body_of(response).await[..], b"hello, world");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_body_delimited_by_close_is_read_to_the_end_and_not_reused() {
    let response = b"HTTP/1.1 200 OK\r\n\r\nuntil the end".to_vec();
    let (addr, accepted) = raw_server(AfterResponse::Close, response).await;
    let pool = pool();
    for _ in 0..2 {
        let response = send(&pool, addr, "GET").await.unwrap();
        assert_eq!(&body_of(response).await[..], b"until the end");
        assert_eq!(pool.idle_count(), 0);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_head_response_has_no_body_whatever_its_length_says() {
    let response = b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n".to_vec();
    let (addr, accepted) = raw_server(AfterResponse::KeepAlive, response).await;
    let pool = pool();
    for _ in 0..3 {
        let response = send(&pool, addr, "HEAD").await.unwrap();
        assert_eq!(response.headers()["content-length"], "1000");
        assert!(body_of(response).await.is_empty());
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn informational_answers_are_skipped_and_connection_close_is_honoured() {
    let response = b"HTTP/1.1 100 Continue\r\n\r\n\
        HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n\
        HTTP/1.1 201 Created\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"
        .to_vec();
    let (addr, accepted) = raw_server(AfterResponse::KeepAlive, response).await;
    let pool = pool();
    for _ in 0..2 {
        let response = send(&pool, addr, "GET").await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(&body_of(response).await[..], b"ok");
        assert_eq!(pool.idle_count(), 0, "Connection: close is not pooled");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_garbled_response_is_an_error_naming_the_instance() {
    let (addr, _) = raw_server(AfterResponse::Close, b"SPDY/3 200 OK\r\n\r\n".to_vec()).await;
    let error = send(&pool(), addr, "GET").await.unwrap_err();
    assert!(matches!(error, Error::Invalid { .. }), "{error:?}");
    assert!(!error.unsent());
    assert!(error.to_string().contains(&addr.to_string()), "{error}");
}

#[tokio::test]
async fn an_upgrade_goes_on_a_new_connection_and_a_declined_one_is_not_pooled() {
    let (addr, accepted) = server(AfterResponse::KeepAlive, 2).await;
    let pool = pool();
    body_of(send(&pool, addr, "GET").await.unwrap()).await;
    assert_eq!(pool.idle_count(), 1);
    let declined = send_asking(&pool, addr, "GET", true).await.unwrap();
    assert_eq!(declined.status(), StatusCode::OK);
    assert_eq!(&body_of(declined).await[..], b"xx");
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "not on the idle one");
    assert_eq!(pool.idle_count(), 1, "the declined upgrade's is closed");
}

#[tokio::test]
async fn a_101_hands_the_connection_over_with_what_followed_its_head() {
    let response =
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: echo\r\nconnection: upgrade\r\n\r\nearly"
            .to_vec();
    let (addr, _) = raw_server(AfterResponse::KeepAlive, response).await;
    let pool = pool();
    let mut response = send_asking(&pool, addr, "GET", true).await.unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(response.headers()["upgrade"], "echo");
    let mut switched = response.body_mut().switched().expect("the connection");
    assert!(response.body_mut().switched().is_none(), "taken once");
    // The greeting may have come with the head or may still be on its way.
    let mut greeting = switched.read_ahead.to_vec();
    while greeting.len() < 5 {
        let mut more = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(10), switched.stream.read(&mut more))
            .await
            .expect("the greeting in time")
            .unwrap();
        assert!(n > 0, "closed before the greeting");
        greeting.extend_from_slice(&more[..n]);
    }
    assert_eq!(greeting, b"early");
    assert_eq!(pool.idle_count(), 0);
}

#[tokio::test]
async fn a_101_to_a_request_that_did_not_ask_is_an_invalid_answer() {
    let response = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: echo\r\n\r\n".to_vec();
    let (addr, _) = raw_server(AfterResponse::KeepAlive, response).await;
    let pool = pool();
    let error = send(&pool, addr, "GET").await.unwrap_err();
    assert!(matches!(error, Error::Invalid { .. }), "{error:?}");
    assert!(!error.unsent());
}
