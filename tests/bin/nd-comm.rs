//! nd-comm: a process with a name of the test's choosing (tests/hostile.rs).
//!
//!     nd-comm NAME_HEX DST PORT N
//!
//! Sets its own `comm` to the bytes NAME_HEX spells (`prctl(PR_SET_NAME)`: what the
//! kernel reports as the task's name, and /proc/PID/comm; `exec -a` changes only
//! argv[0]), prints `pid <pid>`, then sends N one-byte UDP datagrams to DST:PORT,
//! 10 ms apart, from an unconnected socket, and prints `sent <ok>`. Run inside a
//! test namespace (`ip netns exec NAME nd-comm ...`) towards a closed port, each
//! datagram is a NO_SOCKET drop that the kernel frees in this process's context.
//!
//! DST must be in 198.18.0.0/15; N is at most [`MAX_DATAGRAMS`]; the name is 1 to
//! 15 bytes without NUL. The process ends itself after [`LIFETIME_S`] (alarm).

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::exit;
use std::time::Duration;

const LIFETIME_S: u32 = 30;
const MAX_DATAGRAMS: usize = 100;
/// TASK_COMM_LEN - 1: the kernel keeps 15 bytes of a name.
const MAX_NAME: usize = 15;

fn main() {
    // SAFETY: alarm(2) has no preconditions; SIGALRM's default action ends us.
    unsafe { libc::alarm(LIFETIME_S) };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = match argv.as_slice() {
        [name, dst, port, n] => run(name, dst, port, n),
        _ => Err(format!(
            "usage: nd-comm NAME_HEX DST PORT N (got {} arguments)",
            argv.len()
        )),
    };
    if let Err(e) = r {
        eprintln!("nd-comm: {e}");
        exit(1);
    }
}

fn unhex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("NAME_HEX {s:?}: odd length"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| format!("NAME_HEX {s:?}: {e}")))
        .collect()
}

fn run(name: &str, dst: &str, port: &str, n: &str) -> Result<(), String> {
    let name = unhex(name)?;
    if name.is_empty() || name.len() > MAX_NAME || name.contains(&0) {
        return Err(format!(
            "the name must be 1 to {MAX_NAME} bytes without NUL (got {})",
            name.len()
        ));
    }
    let dst: Ipv4Addr = dst.parse().map_err(|e| format!("{dst}: {e}"))?;
    let o = dst.octets();
    if !(o[0] == 198 && (o[1] & 0xfe) == 18) {
        return Err(format!("{dst} is outside 198.18.0.0/15; refusing"));
    }
    let port: u16 = port.parse().map_err(|e| format!("PORT {port}: {e}"))?;
    let n: usize = n.parse().map_err(|e| format!("N {n}: {e}"))?;
    if n > MAX_DATAGRAMS {
        return Err(format!("N: {n} is above the limit {MAX_DATAGRAMS}"));
    }

    let mut cname = name.clone();
    cname.push(0);
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes
    // from the pointer; cname is one and outlives the call.
    if unsafe { libc::prctl(libc::PR_SET_NAME, cname.as_ptr() as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(format!(
            "prctl(PR_SET_NAME): {}",
            std::io::Error::last_os_error()
        ));
    }
    println!("pid {}", std::process::id());

    let sock = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))
        .map_err(|e| format!("bind: {e}"))?;
    let to = SocketAddrV4::new(dst, port);
    let mut ok = 0;
    for i in 0..n {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(10));
        }
        if sock.send_to(b"x", to).is_ok() {
            ok += 1;
        }
    }
    println!("sent {ok}");
    Ok(())
}
