//! One guest-less QEMU process with libvirt-named block nodes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::qmp::Qmp;
use crate::{HarnessError, Result, io};
use virtcheckpoint::{
    Action, DetectZeroes, Disk, DiskDriver, Domain, Image as ModelImage, NodeData, parse_node_data,
    transaction,
};

/// One image of a disk chain: its file and libvirt's node index
/// (`libvirt-<index>-format` / `-storage`). Its format is the file's
/// ([`crate::img::format_of`]: raw for `*.raw`, else qcow2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The image file.
    pub path: PathBuf,
    /// The node index.
    pub index: u32,
}

impl Image {
    /// `libvirt-<index>-format`.
    pub fn format_node(&self) -> String {
        format!("libvirt-{}-format", self.index)
    }

    /// `libvirt-<index>-storage`.
    pub fn storage_node(&self) -> String {
        format!("libvirt-{}-storage", self.index)
    }

    /// The image's format: `raw` or `qcow2`.
    pub fn format(&self) -> &'static str {
        crate::img::format_of(&self.path)
    }
}

/// A disk: its target and chain, top first.
#[derive(Debug, Clone)]
pub struct VmDisk {
    /// `vda`, ...
    pub target: String,
    /// Images, top first.
    pub chain: Vec<Image>,
    /// The `<driver>` options libvirt would open its images with.
    pub driver: DiskDriver,
}

/// One fresh, empty qcow2 image of `size` bytes per target, `<dir>/<target>-base.qcow2`,
/// numbered `libvirt-1-…`, `libvirt-2-…` in order.
pub fn fresh_disks(dir: &Path, targets: &[&str], size: u64) -> Result<Vec<VmDisk>> {
    targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let path = dir.join(format!("{t}-base.qcow2"));
            crate::img::create(&path, size, None)?;
            Ok(VmDisk {
                target: (*t).into(),
                chain: vec![Image {
                    path,
                    index: i as u32 + 1,
                }],
                driver: DiskDriver::default(),
            })
        })
        .collect()
}

/// A running QEMU.
pub struct Vm {
    child: Option<Child>,
    /// Its QMP connection.
    pub qmp: Qmp,
    /// Working folder (sockets, logs).
    pub dir: PathBuf,
    /// Disks as QEMU has them now.
    pub disks: Vec<VmDisk>,
    next_index: u32,
    /// The detect-zeroes each node index was opened with.
    zeroes: HashMap<u32, DetectZeroes>,
}

fn storage_args(path: &Path, index: u32) -> Value {
    json!({"driver": "file", "filename": path, "node-name": format!("libvirt-{index}-storage"),
           "auto-read-only": true, "discard": "unmap"})
}

/// A format node (`format`: qcow2 or raw) as libvirt opens it, with `driver`'s
/// discard, detect-zeroes and cache; a raw node follows no backing chain.
fn format_args(
    index: u32,
    format: &str,
    read_only: bool,
    backing: Option<u32>,
    driver: &DiskDriver,
) -> Value {
    let mut v = json!({"node-name": format!("libvirt-{index}-format"), "read-only": read_only,
           "driver": format, "file": format!("libvirt-{index}-storage")});
    if format != "raw" {
        v["backing"] = json!(backing.map(|b| Value::from(format!("libvirt-{b}-format"))));
    }
    if let Some(d) = driver.discard.name() {
        v["discard"] = json!(d);
    }
    if let Some(z) = driver.effective_detect_zeroes().name() {
        v["detect-zeroes"] = json!(z);
    }
    if let Some((direct, no_flush)) = driver.cache.flags() {
        v["cache"] = json!({"direct": direct, "no-flush": no_flush});
    }
    v
}

/// Each thread of process `pid` with its state and kernel wait channel.
fn threads_waiting(pid: u32) -> String {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return "gone".into();
    };
    let mut out = Vec::new();
    for t in tasks.flatten() {
        let read = |f: &str| std::fs::read_to_string(t.path().join(f)).unwrap_or_default();
        let status = read("status");
        let state = status
            .lines()
            .find_map(|l| l.strip_prefix("State:"))
            .unwrap_or("?")
            .trim()
            .to_owned();
        out.push(format!(
            "{}:{}:{}",
            read("comm").trim(),
            state,
            read("wchan")
        ));
    }
    out.join(" ")
}

impl Vm {
    /// Starts QEMU in `dir` with the given disks (their image files must exist, chains
    /// top first). Backing layers are opened read-only, as libvirt opens them.
    pub fn start(dir: &Path, disks: Vec<VmDisk>) -> Result<Vm> {
        let socket = dir.join("qmp.sock");
        let _ = std::fs::remove_file(&socket);
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args([
            "-M",
            "none",
            "-nodefaults",
            "-display",
            "none",
            "-accel",
            "tcg",
            "-qmp",
        ])
        .arg(format!("unix:{},server=on,wait=off", socket.display()))
        // A second monitor, for a driver in another process (the crash tests').
        .arg("-qmp")
        .arg(format!(
            "unix:{},server=on,wait=off",
            dir.join("qmp-driver.sock").display()
        ));
        let mut max_index = 0;
        let mut zeroes = HashMap::new();
        for disk in &disks {
            for (pos, image) in disk.chain.iter().enumerate().rev() {
                max_index = max_index.max(image.index);
                let backing = disk.chain.get(pos + 1).map(|b| b.index);
                cmd.arg("-blockdev")
                    .arg(storage_args(&image.path, image.index).to_string());
                // libvirt gives detect_zeroes to the top image only.
                let mut driver = disk.driver;
                if pos > 0 {
                    driver.detect_zeroes = DetectZeroes::Default;
                }
                zeroes.insert(image.index, driver.detect_zeroes);
                cmd.arg("-blockdev").arg(
                    format_args(image.index, image.format(), pos > 0, backing, &driver).to_string(),
                );
            }
        }
        let log = io(
            "create qemu.log",
            std::fs::File::create(dir.join("qemu.log")),
        )?;
        let log2 = io("clone log", log.try_clone())?;
        cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
        let mut child = io("start qemu-system-x86_64", cmd.spawn())?;
        let qmp = match Qmp::connect(&socket, Duration::from_secs(10)) {
            Ok(q) => q,
            Err(e) => {
                // Where QEMU's threads were waiting, for a start that never greets.
                let threads = threads_waiting(child.id());
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(dir.join("qemu.log")).unwrap_or_default();
                return Err(HarnessError::Other(format!(
                    "QEMU did not start: {e}\nthreads: {threads}\n{log}"
                )));
            }
        };
        Ok(Vm {
            child: Some(child),
            qmp,
            dir: dir.to_path_buf(),
            disks,
            next_index: max_index + 1,
            zeroes,
        })
    }

    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The disk with that target.
    pub fn disk(&self, target: &str) -> &VmDisk {
        self.disks
            .iter()
            .find(|d| d.target == target)
            .expect("test uses known disks")
    }

    /// The domain model virtcheckpoint plans against.
    pub fn domain(&self) -> Domain {
        let mut dom = domain_of(&self.disks);
        for (disk, vm_disk) in dom.disks.iter_mut().zip(&self.disks) {
            for (image, vm_image) in disk.chain.iter_mut().zip(&vm_disk.chain) {
                image.detect_zeroes = self
                    .zeroes
                    .get(&vm_image.index)
                    .copied()
                    .unwrap_or_default();
            }
        }
        dom
    }

    /// The second QMP monitor's socket, for a driver in another process.
    pub fn driver_socket(&self) -> PathBuf {
        self.dir.join("qmp-driver.sock")
    }
}

/// The domain model of a VM's disks (node names `libvirt-<index>-*`).
pub fn domain_of(disks: &[VmDisk]) -> Domain {
    {
        Domain {
            name: "vcp-test".into(),
            uuid: String::new(),
            disks: disks
                .iter()
                .map(|d| Disk {
                    target: d.target.clone(),
                    device: "disk".into(),
                    bus: "virtio".into(),
                    readonly: false,
                    chain: d
                        .chain
                        .iter()
                        .map(|i| ModelImage {
                            format: i.format().into(),
                            ..ModelImage::qcow2_indexed(i.path.display().to_string(), i.index)
                        })
                        .collect(),
                    driver: d.driver,
                })
                .collect(),
        }
    }
}

impl Vm {
    /// The raw `query-named-block-nodes` reply.
    pub fn node_data_raw(&mut self) -> Result<String> {
        self.qmp
            .execute_raw("query-named-block-nodes", Some(r#"{"flat":true}"#))
    }

    /// The node data, parsed by virtcheckpoint from QEMU's raw reply.
    pub fn nodes(&mut self) -> Result<NodeData> {
        let raw = self.node_data_raw()?;
        parse_node_data(&raw).map_err(|e| HarnessError::Other(e.to_string()))
    }

    /// Writes `len` bytes of `pattern` at `offset` through disk `target`'s top node.
    pub fn write(&mut self, target: &str, pattern: u8, offset: u64, len: u64) -> Result<()> {
        self.qemu_io(
            target,
            &format!("\"write -P 0x{pattern:02x} {offset} {len}\""),
        )
    }

    /// Flushes disk `target`'s top to its image (qemu-io's `flush`): the guest's writes
    /// survive a crash after it, the bitmaps QEMU keeps in memory do not.
    pub fn flush(&mut self, target: &str) -> Result<()> {
        self.qemu_io(target, "flush")
    }

    /// Runs qemu-io `command` on disk `target`'s top node (HMP), failing on its errors.
    fn qemu_io(&mut self, target: &str, command: &str) -> Result<()> {
        let node = self.disk(target).chain[0].format_node();
        let line = format!("qemu-io {node} {command}");
        let out = self
            .qmp
            .execute("human-monitor-command", Some(json!({"command-line": line})))?;
        match out.as_str() {
            Some(s) if s.contains("error") || s.contains("failed") => {
                Err(HarnessError::Other(format!("qemu-io: {s}")))
            }
            _ => Ok(()),
        }
    }

    /// Sends `actions` as one transaction (skipped when empty, as libvirt does).
    pub fn transaction(&mut self, actions: &[Action]) -> Result<()> {
        if actions.is_empty() {
            return Ok(());
        }
        self.qmp.execute_text(&transaction(actions).to_compact())?;
        Ok(())
    }

    /// A fresh node index.
    pub fn new_index(&mut self) -> u32 {
        let i = self.next_index;
        self.next_index += 1;
        i
    }

    /// Attaches an existing image file (its format by its name) as `libvirt-<index>-storage/-format` and returns
    /// the index. `backing` is a node index, or `None` for `"backing": null`.
    pub fn attach(&mut self, path: &Path, backing: Option<u32>) -> Result<u32> {
        self.attach_with(path, backing, &DiskDriver::default())
    }

    /// [`Vm::attach`] with `driver`'s options (its detect-zeroes included), as libvirt
    /// opens a new image of a disk.
    pub fn attach_with(
        &mut self,
        path: &Path,
        backing: Option<u32>,
        driver: &DiskDriver,
    ) -> Result<u32> {
        let index = self.new_index();
        self.qmp
            .execute("blockdev-add", Some(storage_args(path, index)))?;
        self.qmp.execute(
            "blockdev-add",
            Some(format_args(
                index,
                crate::img::format_of(path),
                false,
                backing,
                driver,
            )),
        )?;
        self.zeroes.insert(index, driver.detect_zeroes);
        Ok(index)
    }

    /// Detaches a node pair: format node first, then storage.
    pub fn detach(&mut self, index: u32) -> Result<()> {
        self.qmp.execute(
            "blockdev-del",
            Some(json!({"node-name": format!("libvirt-{index}-format")})),
        )?;
        self.qmp.execute(
            "blockdev-del",
            Some(json!({"node-name": format!("libvirt-{index}-storage")})),
        )?;
        Ok(())
    }

    /// Waits for job `id` to complete without error, then dismisses it.
    pub fn finish_job(&mut self, id: &str) -> Result<()> {
        self.wait_concluded(id)?;
        self.qmp.execute("job-dismiss", Some(json!({"id": id})))?;
        Ok(())
    }

    /// Sends a step's phase as the library wrote it.
    pub fn send_phase(&mut self, commands: &[virtcheckpoint::Json]) -> Result<()> {
        for c in commands {
            self.qmp.execute_text(&c.to_compact())?;
        }
        Ok(())
    }

    /// Waits for job `id` to conclude without error (a step's `on_end` dismisses it).
    pub fn wait_concluded(&mut self, id: &str) -> Result<()> {
        let ev = self
            .qmp
            .wait_event("BLOCK_JOB_COMPLETED", Duration::from_secs(120), |d| {
                d["device"] == id
            })?;
        if let Some(err) = ev["data"]["error"].as_str() {
            return Err(HarnessError::Other(format!("job {id} failed: {err}")));
        }
        self.qmp
            .wait_event("JOB_STATUS_CHANGE", Duration::from_secs(30), |d| {
                d["id"] == id && d["status"] == "concluded"
            })?;
        Ok(())
    }

    /// Takes the chains of a step's `domain_after` as the VM's own (node names are
    /// libvirt's `libvirt-<index>-format`).
    pub fn adopt(&mut self, dom: &Domain) -> Result<()> {
        for disk in &mut self.disks {
            let new = dom
                .disk(&disk.target)
                .ok_or_else(|| HarnessError::Other(format!("no disk {}", disk.target)))?;
            disk.chain = new
                .chain
                .iter()
                .map(|i| {
                    let index = i
                        .format_node
                        .strip_prefix("libvirt-")
                        .and_then(|r| r.strip_suffix("-format"))
                        .and_then(|n| n.parse().ok())
                        .ok_or_else(|| HarnessError::Other(format!("node {}", i.format_node)))?;
                    Ok(Image {
                        path: PathBuf::from(&i.source),
                        index,
                    })
                })
                .collect::<Result<_>>()?;
        }
        Ok(())
    }

    /// The files of the backing chain QEMU has under format node `node`, top first, as
    /// `query-named-block-nodes` reports them (`image` / `backing-image`, which only the
    /// non-flat reply nests).
    pub fn backing_files(&mut self, node: &str) -> Result<Vec<String>> {
        let raw = self
            .qmp
            .execute_raw("query-named-block-nodes", Some(r#"{"flat":false}"#))?;
        let v: serde_json::Value = serde_json::from_str(&raw)
            .map_err(|e| HarnessError::Other(format!("node data: {e}")))?;
        let list = v.get("return").unwrap_or(&v);
        let entry = list
            .as_array()
            .and_then(|a| a.iter().find(|e| e["node-name"] == node))
            .ok_or_else(|| HarnessError::Other(format!("no node {node}")))?;
        let mut out = Vec::new();
        let mut image = &entry["image"];
        while let Some(f) = image["filename"].as_str() {
            out.push(f.to_owned());
            image = &image["backing-image"];
        }
        Ok(out)
    }

    /// Waits for job `id` to be ready (mirror, active commit).
    pub fn wait_ready(&mut self, id: &str) -> Result<()> {
        self.qmp
            .wait_event("BLOCK_JOB_READY", Duration::from_secs(120), |d| {
                d["device"] == id
            })?;
        Ok(())
    }

    /// Ends QEMU with `quit` and waits for it (killing it after 30 s).
    pub fn quit(mut self) -> Result<()> {
        let _ = self.qmp.execute("quit", None);
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if io("wait for qemu", child.try_wait())?.is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(HarnessError::Other("QEMU did not quit".into()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Kills QEMU with SIGKILL (a host crash, as far as the images can tell).
    pub fn kill(mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
