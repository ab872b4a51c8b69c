//! Socket set-up: listeners that several processes share with SO_REUSEPORT, and client
//! connections that may bind a chosen loopback source address with IP_BIND_ADDRESS_NO_PORT
//! (the port is picked at connect time, so 127.0.0.x sources multiply the port space).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// `IP_BIND_ADDRESS_NO_PORT` from linux/in.h (not exported by every libc version).
const IP_BIND_ADDRESS_NO_PORT: libc::c_int = 24;

/// A listening socket with SO_REUSEADDR and SO_REUSEPORT set, so sibling worker processes
/// can bind the same address and the kernel spreads connections over them.
pub fn reuseport_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    TcpListener::from_std(socket.into())
}

/// Connects to `addr`, optionally from `source` (port chosen by the kernel at connect time).
/// Nagle is disabled: JSON-RPC messages are small and latency-sensitive.
pub async fn connect(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if let Some(ip) = source {
        let one: libc::c_int = 1;
        // SAFETY: a valid fd we own and a pointer to a live c_int of the size we pass.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                IP_BIND_ADDRESS_NO_PORT,
                &one as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Whether an address is loopback (127.0.0.0/8 or ::1).
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn two_listeners_share_a_port() {
        let a = reuseport_listener("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = a.local_addr().unwrap().port();
        let b = reuseport_listener(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
        assert_eq!(b.local_addr().unwrap().port(), port);
    }

    #[tokio::test]
    async fn connects_from_a_chosen_source() {
        let l = reuseport_listener("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        let s = connect(addr, Some("127.0.0.7".parse().unwrap())).await.unwrap();
        assert_eq!(s.local_addr().unwrap().ip().to_string(), "127.0.0.7");
        let (_, peer) = l.accept().await.unwrap();
        assert_eq!(peer.ip().to_string(), "127.0.0.7");
    }
}
