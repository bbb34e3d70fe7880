//! A harness around a real, guest-less QEMU (`qemu-system-x86_64 -M none -accel tcg`):
//! start it with libvirt-named `-blockdev` qcow2 chains, talk QMP over a unix socket,
//! dirty disks through `qemu-io`, run the plans virtcheckpoint makes, and check images
//! with `qemu-img`. A QEMU started here is killed by PID when its handle is dropped, so
//! no process outlives a failing test.

pub mod flows;
pub mod img;
pub mod qmp;
pub mod vm;

use std::fmt;

/// Everything that can go wrong while driving QEMU.
#[derive(Debug)]
pub enum HarnessError {
    /// An I/O error, with what was being done.
    Io(String, std::io::Error),
    /// QEMU answered a command with an error.
    Qmp {
        /// The command.
        command: String,
        /// QEMU's error class.
        class: String,
        /// QEMU's description.
        desc: String,
    },
    /// Anything else.
    Other(String),
}

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HarnessError::Io(what, e) => write!(f, "{what}: {e}"),
            HarnessError::Qmp {
                command,
                class,
                desc,
            } => write!(f, "QEMU refused {command}: {class}: {desc}"),
            HarnessError::Other(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for HarnessError {}

/// Result alias of the harness.
pub type Result<T> = std::result::Result<T, HarnessError>;

pub(crate) fn io<T>(what: impl Into<String>, r: std::io::Result<T>) -> Result<T> {
    r.map_err(|e| HarnessError::Io(what.into(), e))
}

/// Where QEMU's programs are: `qemu-system-x86_64` on PATH, or a reason why not.
pub fn qemu_available() -> std::result::Result<(), String> {
    for prog in ["qemu-system-x86_64", "qemu-img", "qemu-io"] {
        let ok = std::process::Command::new(prog)
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            return Err(format!(
                "{prog} is not installed (run scripts/install-qemu.sh)"
            ));
        }
    }
    Ok(())
}
