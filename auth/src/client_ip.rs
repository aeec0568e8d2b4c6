//! [`ClientIp`]: the address of the client a request came from, as the server that accepted
//! the connection established it (the TCP peer, or the address a trusted load balancer gave in
//! the PROXY protocol header).
//!
//! The hub inserts it into every request's extensions at accept time; the auth routes read it
//! for per-IP limits. It is defined here, not in the hub, because auth is mounted in the hub and
//! the hub depends on auth, never the other way round.

use std::net::IpAddr;

/// The client's IP address, in a request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);
