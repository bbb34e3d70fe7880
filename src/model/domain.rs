//! A domain's disks and their backing chains, with QEMU node names: what the planner
//! needs to know of libvirt's domain definition.

/// One image of a disk's backing chain.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Image {
    /// The source: a file path, a block device, or a network source written as text
    /// (`protocol://host/name`); empty when unknown.
    pub source: String,
    /// The image format (`qcow2`, `raw`, ...).
    pub format: String,
    /// QEMU's format node name (`libvirt-1-format`): where bitmaps live.
    pub format_node: String,
    /// QEMU's storage (protocol) node name (`libvirt-1-storage`).
    pub storage_node: String,
    /// Whether this image is opened read-only in its own right (`<readonly/>` on a
    /// backing store). Backing images are read-only to QEMU regardless.
    pub readonly: bool,
}

impl Image {
    /// A qcow2 image with libvirt's node names for `index`.
    pub fn qcow2_indexed(source: impl Into<String>, index: u32) -> Self {
        Image {
            source: source.into(),
            format: "qcow2".into(),
            format_node: format!("libvirt-{index}-format"),
            storage_node: format!("libvirt-{index}-storage"),
            readonly: false,
        }
    }
}

/// One disk with its chain, top (active) image first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disk {
    /// The target device name (`vda`).
    pub target: String,
    /// `disk`, `cdrom`, `floppy` or `lun`.
    pub device: String,
    /// The bus (`virtio`, `ide`, `sata`, `scsi`, ...); empty when unknown.
    pub bus: String,
    /// `<readonly/>` on the disk.
    pub readonly: bool,
    /// The images, top first. Empty when the disk has no media.
    pub chain: Vec<Image>,
}

impl Disk {
    /// The active image.
    pub fn top(&self) -> Option<&Image> {
        self.chain.first()
    }

    /// A disk without media (an empty CD-ROM drive, say).
    pub fn is_empty(&self) -> bool {
        self.chain.is_empty() || self.chain[0].source.is_empty()
    }
}

/// A domain: its identity and its disks in definition order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Domain {
    /// The domain name.
    pub name: String,
    /// The domain UUID, as text; empty when unknown.
    pub uuid: String,
    /// Disks in the order of the domain definition.
    pub disks: Vec<Disk>,
}

impl Domain {
    /// The disk with that target.
    pub fn disk(&self, target: &str) -> Option<&Disk> {
        self.disks.iter().find(|d| d.target == target)
    }

    /// libvirt's `virDomainDiskByName` without ambiguity: a target, or a source path
    /// that exactly one disk's top image has. Returns the disk's index.
    pub fn disk_index_by_name(&self, name: &str) -> Option<usize> {
        if let Some(i) = self.disks.iter().position(|d| d.target == name) {
            return Some(i);
        }
        let mut found = None;
        for (i, d) in self.disks.iter().enumerate() {
            if d.top()
                .is_some_and(|t| !t.source.is_empty() && t.source == name)
            {
                if found.is_some() {
                    return None;
                }
                found = Some(i);
            }
        }
        found
    }
}
