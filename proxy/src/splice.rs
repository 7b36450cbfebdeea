//! Copying both ways between a client and an origin once HTTP has stepped aside (a CONNECT
//! tunnel, a WebSocket upgrade), bounded by an idle limit and a total one so a quiet or
//! endless stream cannot hold a slot forever.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::idle::{Activity, Watched};
use crate::zerocopy::Raw;

/// How a splice ended, and what it carried.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spliced {
    /// Bytes from the client to the origin.
    pub up: u64,
    /// Bytes from the origin to the client.
    pub down: u64,
    /// `closed`, `reset`, `timeout` or `idle`.
    pub outcome: &'static str,
}

impl Spliced {
    /// The client's side never came: the upgrade failed.
    pub(crate) fn no_upgrade() -> Spliced {
        Spliced {
            up: 0,
            down: 0,
            outcome: "no upgrade",
        }
    }
}

/// Copies until either side closes or a limit is hit.
pub(crate) async fn splice<C, U>(client: C, upstream: U, idle: Duration, total: Duration) -> Spliced
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let mut client = client;
    let activity = Activity::new();
    let mut upstream = Watched::new(upstream, activity.clone());
    // 64 KiB buffers: a quarter of the system calls of the 8 KiB default.
    let copy =
        tokio::io::copy_bidirectional_with_sizes(&mut client, &mut upstream, 1 << 16, 1 << 16);
    limited(copy, &activity, idle, total).await
}

/// [`splice`] for two plain sockets: the bytes move inside the kernel ([`crate::zerocopy`]).
/// `head` is what the client sent past the CONNECT request before the tunnel began; it goes to
/// the origin first.
pub(crate) async fn splice_sockets(
    client: Raw,
    mut upstream: TcpStream,
    head: &[u8],
    idle: Duration,
    total: Duration,
) -> Spliced {
    let activity = Activity::new();
    let copy = async {
        upstream.write_all(head).await?;
        let upstream = Raw::Tcp(upstream);
        let (up, down) = crate::zerocopy::bidirectional(&client, &upstream, &activity).await?;
        Ok((up + head.len() as u64, down))
    };
    limited(copy, &activity, idle, total).await
}

/// Runs `copy` under the total limit and the idle bound.
async fn limited<F>(copy: F, activity: &Activity, idle: Duration, total: Duration) -> Spliced
where
    F: std::future::Future<Output = std::io::Result<(u64, u64)>>,
{
    let (up, down, outcome) = tokio::select! {
        r = tokio::time::timeout(total, copy) => match r {
            Ok(Ok((up, down))) => (up, down, "closed"),
            Ok(Err(_)) => (0, 0, "reset"),
            Err(_) => (0, 0, "timeout"),
        },
        () = activity.idle(idle) => (0, 0, "idle"),
    };
    Spliced { up, down, outcome }
}
