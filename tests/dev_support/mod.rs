//! A real `geomesh dev` mesh for the integration tests, on the port block
//! a test chooses; killed with its whole process group when dropped.

#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const EXE: &str = env!("CARGO_BIN_EXE_geomesh");

/// Kills the dev mesh's whole process group when dropped (also on failure).
pub struct Dev(pub Child);

impl Drop for Dev {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, killpg};
        use nix::unistd::Pid;
        let pg = Pid::from_raw(self.0.id() as i32);
        let _ = killpg(pg, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = killpg(pg, Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// Starts `geomesh dev` with HTTP ports from `http_port` (media +60, octo
/// +70) and `extra` arguments; returns it and its state file once written.
pub fn start_dev(dir: &Path, http_port: u16, extra: &[&str]) -> (Dev, Value) {
    let state = dir.join("state.json");
    let log = std::fs::File::create(dir.join("dev.log")).unwrap();
    let child = Command::new(EXE)
        .arg("dev")
        .arg("--http-port")
        .arg(http_port.to_string())
        .arg("--media-port")
        .arg((http_port + 60).to_string())
        .arg("--octo-port")
        .arg((http_port + 70).to_string())
        .args(extra)
        .arg("--state-file")
        .arg(&state)
        .arg("--dir")
        .arg(dir.join("mesh"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0)
        .spawn()
        .expect("start geomesh dev");
    let mut dev = Dev(child);
    let deadline = Instant::now() + Duration::from_secs(90);
    while !state.exists() {
        let exited = dev.0.try_wait().unwrap();
        if exited.is_some() || Instant::now() > deadline {
            let logs = std::fs::read_to_string(dir.join("dev.log")).unwrap_or_default();
            panic!("geomesh dev did not start ({exited:?}):\n{logs}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let v = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    (dev, v)
}

/// A bounded HTTP/1.0 GET on loopback; the whole response as text.
pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    let mut body = String::new();
    let _ = s.take(1 << 20).read_to_string(&mut body);
    body
}
