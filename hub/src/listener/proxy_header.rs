//! The PROXY protocol (v1 text, v2 binary) header a trusted load balancer sends first on each
//! connection, giving the real client's address (`--proxy-protocol-from`).
//!
//! Only connections from a trusted address are parsed, and they must carry a header; from any
//! other address the bytes go to HTTP untouched (a header there is an invalid request, 400).

use std::net::IpAddr;

use bytes::{Bytes, BytesMut};
use ipnet::IpNet;
use ppp::{v1, v2, HeaderResult, PartialResult};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Longest header we read: v1 is at most 107 bytes; v2 is 16 bytes plus addresses and TLVs,
/// which HAProxy keeps small (no TLVs unless configured). More is refused.
const MAX_HEADER_BYTES: usize = 536;

/// Why a trusted connection was closed before HTTP.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyHeaderError {
    #[error("reading the PROXY header: {0}")]
    Io(#[from] std::io::Error),
    #[error("the connection closed before a complete PROXY header")]
    Eof,
    #[error("not a valid PROXY protocol header")]
    Invalid,
    #[error("PROXY header longer than {MAX_HEADER_BYTES} bytes")]
    TooLong,
}

/// Parses a `--proxy-protocol-from` entry: an IP address (one host) or a CIDR.
///
/// # Errors
/// A message for clap when the value is neither.
pub(crate) fn parse_net(value: &str) -> Result<IpNet, String> {
    let value = value.trim();
    value
        .parse::<IpNet>()
        .or_else(|_| value.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{value:?} is not an IP address or CIDR (e.g. 10.0.0.0/8)"))
}

/// Reads the header from `stream`. Returns the client address it names (`None` for a `LOCAL`
/// command or an unspecified/unix family: the load balancer's own connection, e.g. a health
/// check) and the bytes read past it, which belong to the HTTP stream.
///
/// # Errors
/// The peer closed early, sent something that is not a header, or the socket failed.
pub(crate) async fn read(
    stream: &mut TcpStream,
) -> Result<(Option<IpAddr>, Bytes), ProxyHeaderError> {
    let mut buf = BytesMut::with_capacity(256);
    loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(ProxyHeaderError::Eof);
        }
        let parsed = HeaderResult::parse(&buf);
        if parsed.is_incomplete() {
            if buf.len() >= MAX_HEADER_BYTES {
                return Err(ProxyHeaderError::TooLong);
            }
            continue;
        }
        let (client, len) = match parsed {
            HeaderResult::V1(Ok(h)) => (
                match h.addresses {
                    v1::Addresses::Tcp4(a) => Some(IpAddr::V4(a.source_address)),
                    v1::Addresses::Tcp6(a) => Some(IpAddr::V6(a.source_address)),
                    v1::Addresses::Unknown => None,
                },
                h.header.len(),
            ),
            HeaderResult::V2(Ok(h)) => (
                match (h.command, h.addresses) {
                    (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                        Some(IpAddr::V4(a.source_address))
                    }
                    (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                        Some(IpAddr::V6(a.source_address))
                    }
                    _ => None,
                },
                h.len(),
            ),
            HeaderResult::V1(Err(_)) | HeaderResult::V2(Err(_)) => {
                return Err(ProxyHeaderError::Invalid)
            }
        };
        let rest = buf.split_off(len).freeze();
        return Ok((client.map(canonical), rest));
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is, so per-IP counts and the trusted
/// list agree whether the hub listens on IPv4 or dual-stack.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    async fn parse(bytes: &'static [u8]) -> Result<(Option<IpAddr>, Bytes), ProxyHeaderError> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            // Split in two writes: the reader must wait for the rest of the header.
            let (a, b) = bytes.split_at(bytes.len() / 2);
            c.write_all(a).await.unwrap();
            c.flush().await.unwrap();
            tokio::task::yield_now().await;
            c.write_all(b).await.unwrap();
            // Dropped: the reader sees the end of the stream after the bytes.
        });
        let (mut server, _) = listener.accept().await.unwrap();
        client.await.unwrap();
        read(&mut server).await
    }

    #[tokio::test]
    async fn v1_gives_the_client_and_keeps_the_request() {
        let (ip, rest) = parse(b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 8080\r\nGET / HTTP/1.1\r\n")
            .await
            .unwrap();
        assert_eq!(ip, Some("203.0.113.9".parse().unwrap()));
        assert_eq!(&rest[..], b"GET / HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn v2_gives_the_client() {
        let header = v2::Builder::with_addresses(
            v2::Version::Two | v2::Command::Proxy,
            v2::Protocol::Stream,
            (
                "[2001:db8::7]:5555"
                    .parse::<std::net::SocketAddr>()
                    .unwrap(),
                "[::1]:8080".parse::<std::net::SocketAddr>().unwrap(),
            ),
        )
        .build()
        .unwrap();
        let bytes: &'static [u8] = Box::leak([header, b"GET".to_vec()].concat().into_boxed_slice());
        let (ip, rest) = parse(bytes).await.unwrap();
        assert_eq!(ip, Some("2001:db8::7".parse().unwrap()));
        assert_eq!(&rest[..], b"GET");
    }

    #[tokio::test]
    async fn a_local_command_or_unknown_family_names_no_client() {
        let (ip, _) = parse(b"PROXY UNKNOWN\r\n").await.unwrap();
        assert_eq!(ip, None);
    }

    #[tokio::test]
    async fn anything_else_is_refused() {
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await,
            Err(ProxyHeaderError::Invalid)
        ));
        assert!(matches!(
            parse(b"PROXY TCP4 ").await,
            Err(ProxyHeaderError::Eof)
        ));
    }

    #[test]
    fn nets_are_ips_or_cidrs() {
        assert_eq!(
            parse_net("127.0.0.2").unwrap(),
            "127.0.0.2/32".parse().unwrap()
        );
        assert_eq!(
            parse_net("10.0.0.0/8").unwrap(),
            "10.0.0.0/8".parse().unwrap()
        );
        assert!(parse_net("haproxy").is_err());
    }
}
