//! Tries to reach host files and the network it was not given and reports, one line each, what
//! it could reach. Lines read `OPENED <target>` or `DENIED <target>`; the host's tests look for
//! any `OPENED` outside the grants.
//!
//! Arguments add targets:
//! - a path: try to read it (as a file, then as a directory);
//! - `plant:LINK=TARGET`: make the symlink LINK pointing at TARGET (reported as `PLANTED LINK`
//!   or `REFUSED LINK`), then try to read through it, as a guest would that hopes the host
//!   follows links it finds in scratch space;
//! - `tcp:ADDR`: connect to ADDR; `listen:ADDR`: bind a listener on ADDR; `udp:ADDR`: bind a
//!   UDP socket on ADDR.
fn main() {
    let mut targets: Vec<String> = [
        "/etc/passwd",
        "/scratch/../../etc/passwd",
        "../..",
        "..",
        "/",
        "/scratch/..",
        "/proc/self/environ",
        "tcp:127.0.0.1:22",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    targets.extend(std::env::args().skip(1));

    for t in targets {
        let reached = if let Some(addr) = t.strip_prefix("tcp:") {
            std::net::TcpStream::connect(addr).is_ok()
        } else if let Some(addr) = t.strip_prefix("listen:") {
            std::net::TcpListener::bind(addr).is_ok()
        } else if let Some(addr) = t.strip_prefix("udp:") {
            std::net::UdpSocket::bind(addr).is_ok()
        } else if let Some(plant) = t.strip_prefix("plant:") {
            let (link, target) = plant
                .split_once('=')
                .expect("escape: plant:LINK=TARGET needs an =");
            let planted = symlink(target, link).is_ok();
            println!("{} {link}", if planted { "PLANTED" } else { "REFUSED" });
            readable(link)
        } else {
            readable(&t)
        };
        println!("{} {t}", if reached { "OPENED" } else { "DENIED" });
    }
}

fn readable(path: &str) -> bool {
    std::fs::read(path).is_ok() || std::fs::read_dir(path).is_ok()
}

/// `std::fs::soft_link` is deprecated for `std::os::*::fs::symlink*`, but WASI's is unstable
/// (`wasi_ext`); on WASI the old name is the same `path_symlink` call.
#[allow(deprecated)]
fn symlink(target: &str, link: &str) -> std::io::Result<()> {
    std::fs::soft_link(target, link)
}
