//! A checkpoint definition (libvirt's `virDomainCheckpointDef`).

/// What a checkpoint does for one disk (`checkpoint='...'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DiskCheckpointKind {
    /// Not given; the default is decided by disk alignment. Never printed.
    #[default]
    Default,
    /// `no`: the disk does not take part.
    No,
    /// `bitmap`: the disk gets a bitmap.
    Bitmap,
}

impl DiskCheckpointKind {
    /// libvirt's enum string.
    pub fn as_str(self) -> &'static str {
        match self {
            DiskCheckpointKind::Default => "default",
            DiskCheckpointKind::No => "no",
            DiskCheckpointKind::Bitmap => "bitmap",
        }
    }
}

/// One `<disk>` of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckpointDisk {
    /// The disk name: a target (`vda`) after alignment.
    pub name: String,
    /// `checkpoint='...'`.
    pub kind: DiskCheckpointKind,
    /// `bitmap='...'`.
    pub bitmap: Option<String>,
    /// The size of the changes since the checkpoint, in bytes, when computed.
    pub size: Option<u64>,
}

/// A checkpoint definition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckpointDef {
    /// The checkpoint name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// The parent checkpoint's name.
    pub parent: Option<String>,
    /// Unix seconds; 0 when unknown.
    pub creation_time: i64,
    /// The disks, in the order given (domain order after alignment).
    pub disks: Vec<CheckpointDisk>,
    /// The `<domain>` element kept verbatim (as text), when the definition carries one.
    pub domain_xml: Option<String>,
    /// Whether the input had a `<disks>` element at all (alignment defaults unlisted
    /// disks to `bitmap` when it had none, to `no` otherwise).
    pub disks_given: bool,
}

impl CheckpointDef {
    /// The disks that take a bitmap.
    pub fn bitmap_disks(&self) -> impl Iterator<Item = &CheckpointDisk> {
        self.disks
            .iter()
            .filter(|d| d.kind == DiskCheckpointKind::Bitmap)
    }
}
