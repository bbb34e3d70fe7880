//! QEMU's command-line tools, for shut-off domains: read an image chain's bitmaps with
//! `qemu-img info`, run the `qemu-img` plans of `virtcheckpoint::offline`, and measure a
//! bitmap through `qemu-nbd`. The only process I/O of the project, kept out of the
//! library a daemon links.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use virtcheckpoint::{
    Domain, Error, ErrorCode, ErrorDomain, NodeData, Result, nodes_from_image_info,
};

fn sys(what: impl std::fmt::Display, e: &std::io::Error) -> Error {
    Error::system(ErrorDomain::Qemu, what, e)
}

fn in_use_error(file: &str, stderr: &str) -> Error {
    Error::new(
        ErrorCode::OperationInvalid,
        ErrorDomain::Qemu,
        format_args!(
            "image '{file}' is in use by another process (QEMU holds its lock): plan online, or shut the domain down first ({})",
            stderr.trim()
        ),
    )
}

/// Runs a QEMU tool about image `file` and returns its standard output. A failure is
/// reported with the tool's own message; a lock held by another process as
/// VIR_ERR_OPERATION_INVALID naming the image (QEMU's `[path]` when it gives one).
fn checked_output(cmd: &mut Command, file: &str) -> Result<Vec<u8>> {
    let prog = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd
        .output()
        .map_err(|e| sys(format_args!("cannot run {prog}"), &e))?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("lock") {
        let named = stderr
            .split_once('[')
            .and_then(|(_, rest)| rest.split_once(']'))
            .map_or(file, |(path, _)| path);
        return Err(in_use_error(named, &stderr));
    }
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    Err(Error::internal(format_args!(
        "'{prog} {}' failed: {}",
        args.join(" "),
        stderr.trim()
    )))
}

/// Reads the bitmaps of every disk's chain with `qemu-img info --backing-chain`.
/// Without `in_use`, an image locked by another process is refused (its bitmaps could
/// change under us); with it, the images are read with `-U`.
pub fn inspect(dom: &Domain, in_use: bool) -> Result<NodeData> {
    let dom = dom.keyed_by_file();
    let mut nodes = NodeData::new();
    for disk in dom.disks.iter().filter(|d| !d.is_empty()) {
        let top = &disk.chain[0].source;
        let mut cmd = Command::new("qemu-img");
        cmd.args(["info", "--output=json", "--backing-chain"]);
        if in_use {
            cmd.arg("-U");
        }
        let out = checked_output(cmd.arg(top), top)?;
        nodes_from_image_info(
            &dom,
            &disk.target,
            &String::from_utf8_lossy(&out),
            in_use,
            &mut nodes,
        )?;
    }
    Ok(nodes)
}

/// Runs one planned command; a failure is reported with the tool's own message (a lock
/// held by another process as VIR_ERR_OPERATION_INVALID).
pub fn run(argv: &[String]) -> Result<()> {
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| Error::internal("empty command"))?;
    let file = args
        .iter()
        .rev()
        .find(|a| !a.starts_with('-'))
        .map_or("", String::as_str);
    checked_output(Command::new(prog).args(args), file).map(drop)
}

/// Sums the dirty extents of a JSON `qemu-img map` of an NBD export read with
/// `x-dirty-bitmap` (QEMU reports dirty extents as `"data": false` there).
pub fn dirty_bytes_from_map(map_json: &str) -> Result<u64> {
    let v: Value = serde_json::from_str(map_json)
        .map_err(|e| Error::internal(format_args!("cannot parse qemu-img map output: {e}")))?;
    Ok(v.as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["data"] == false)
                .filter_map(|e| e["length"].as_u64())
                .sum()
        })
        .unwrap_or(0))
}

/// The dirty bytes of bitmap `bitmap` of a shut-off image: exported read-only by
/// `qemu-nbd` on a private socket and mapped with `qemu-img map`.
pub fn dirty_bytes(file: &str, bitmap: &str) -> Result<u64> {
    // Refuse an image another process holds before exporting it.
    checked_output(
        Command::new("qemu-img").args(["info", "--output=json", file]),
        file,
    )?;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("vcp-nbd-{}-{seq}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| sys("cannot create a socket folder", &e))?;
    let sock = dir.join("nbd.sock");
    let mut nbd = Command::new("qemu-nbd")
        .args([
            "--read-only",
            "--persistent",
            "-f",
            "qcow2",
            "-B",
            bitmap,
            "-k",
        ])
        .arg(&sock)
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| sys("cannot run qemu-nbd", &e))?;
    // Wait until qemu-nbd accepts connections (the socket file exists a moment before
    // it listens), or until it gives up (a lock held by another process, say).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if Path::new(&sock).exists() && std::os::unix::net::UnixStream::connect(&sock).is_ok() {
            break;
        }
        if let Ok(Some(status)) = nbd.try_wait() {
            let _ = std::fs::remove_dir_all(&dir);
            let mut err = String::new();
            if let Some(mut e) = nbd.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            if err.contains("lock") {
                return Err(in_use_error(file, &err));
            }
            return Err(Error::internal(format_args!(
                "qemu-nbd exited ({status}): {}",
                err.trim()
            )));
        }
        if Instant::now() > deadline {
            let _ = nbd.kill();
            let _ = nbd.wait();
            let _ = std::fs::remove_dir_all(&dir);
            return Err(Error::internal("qemu-nbd did not start"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let opts = format!(
        "driver=nbd,server.type=unix,server.path={},x-dirty-bitmap=qemu:dirty-bitmap:{bitmap}",
        sock.display()
    );
    let out = Command::new("qemu-img")
        .args(["map", "--output=json", "--image-opts", &opts])
        .output();
    let _ = nbd.kill();
    let _ = nbd.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let out = out.map_err(|e| sys("cannot run qemu-img map", &e))?;
    if !out.status.success() {
        return Err(Error::internal(format_args!(
            "qemu-img map of bitmap '{bitmap}' failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    dirty_bytes_from_map(&String::from_utf8_lossy(&out.stdout))
}
