//! Cluster tests: the real topology from the built binaries — an auth node, three hub nodes on
//! PostgreSQL and Redis, HAProxy in TCP mode in front — on loopback, driven over real sockets
//! by `switchboard-client`. Needs `cargo build --workspace --bins` first (the binaries are
//! taken from next to this test executable), PostgreSQL and Redis on 127.0.0.1, and `haproxy`.
//!
//! - `chat`: users on different nodes (directly and through HAProxy) chat in real time, and the
//!   history is the same from every node.
//! - `failover`: a node SIGKILLed mid-stream loses no acknowledged message; its clients resume
//!   through HAProxy without gaps or duplicates.
//! - `logout`: logging out on one node closes that session's sockets on the others.
//! - `admin`: an admin deleting a user through one node closes that user's sockets on every node.
//! - `faults`: PostgreSQL restarted, Redis restarted, Redis hung (SIGSTOP), and a rolling restart
//!   of every hub, each under steady traffic: nothing acknowledged is lost or stored twice, no
//!   subscriber sees a gap or a duplicate, and the cluster recovers by itself. Servers that a test
//!   stops run privately (`switchboard_tests::private`).
//! - `proxy`: HAProxy's PROXY protocol header gives the hubs the real client address.
//! - `auth_outage`: a hub restarted while the auth node is down says "try again later" (1013,
//!   503), never "unauthorized"; clients retry with the same token and are back without a new
//!   login once the auth node is.
//! - `server_api`: the server API's disconnect closes a user's sockets on every node within a
//!   second; a bot's post through one node reaches a subscriber on another with `bot: true`; a
//!   revoked API key is refused at once by every node.
//! - `mail`: the welcome mail from three auth nodes on one database to a real SMTP sink: the
//!   mail rate holds for the cluster (5/s and the default 1/s), in registration order, and a
//!   node SIGKILLed while it holds a mail leaves it to another once the lease runs out.
//! - `emoticons`: an emoticon uploaded through one hub is listed and served by another, and
//!   every socket there (anonymous ones included) gets the `emoticons` frame.
//! - `media`: an avatar and an attachment uploaded through a hub that is then SIGKILLed are
//!   served by the other hub and by HAProxy, whole and by range; the message carrying the file
//!   reached the other hub's subscriber with its metadata, and its history lists it.
//! - `readiness`: `/readyz` of the hubs and the auth node while PostgreSQL, Redis or the auth
//!   node is down (private servers), and a SIGTERMed hub leaving HAProxy before it sends 1012.

mod support;

mod admin;
mod auth_outage;
mod chat;
mod emoticons;
mod failover;
mod faults;
mod logout;
mod mail;
mod media;
mod proxy;
mod readiness;
mod server_api;
mod webhooks;
