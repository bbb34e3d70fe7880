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
    /// The `<domain>` element, when the definition carries one, as text as it stands in
    /// formatted checkpoint XML: the first line without indentation, every further
    /// line as written at the element's place (two spaces for the element itself, as
    /// libvirt's formatter writes it with an indentation of 2). It is a whole XML
    /// document as it is.
    pub domain_xml: Option<String>,
}

impl CheckpointDef {
    /// A definition named `name`, created at `creation_time` (Unix seconds), without
    /// disks: for drivers that hold the definition parsed already. The name must be
    /// one libvirt's schema accepts and fit a file name (VIR_ERR_INVALID_ARG).
    pub fn new(name: &str, creation_time: i64) -> crate::error::Result<CheckpointDef> {
        if !crate::xml::checkpoint::is_valid_checkpoint_name(name) {
            return Err(crate::error::Error::invalid_arg(
                crate::error::ErrorDomain::DomainCheckpoint,
                format_args!(
                    "invalid checkpoint name '{name}': empty, longer than {} bytes, or not a safe file name (no leading '.', no '/', no newline)",
                    crate::xml::checkpoint::MAX_CHECKPOINT_NAME
                ),
            ));
        }
        Ok(CheckpointDef {
            name: name.to_owned(),
            ..CheckpointDef::unnamed(creation_time)
        })
    }

    /// A definition without a name yet (formatted without `<name>`, as libvirt formats
    /// one before its post-parse hook names it), created at `creation_time`.
    pub fn unnamed(creation_time: i64) -> CheckpointDef {
        CheckpointDef {
            creation_time,
            ..CheckpointDef::default()
        }
    }

    /// Sets (or with `None` clears) the embedded `<domain>` from its XML as a driver's
    /// formatter writes it into the checkpoint (see [`CheckpointDef::domain_xml`]):
    /// blanks before the element and line ends after it are dropped. It must be one
    /// well-formed `<domain>` element (VIR_ERR_XML_ERROR); on error nothing changes.
    pub fn set_domain_xml(&mut self, xml: Option<&str>) -> crate::error::Result<()> {
        let text = match xml {
            Some(xml) => {
                let text = xml.trim_start_matches([' ', '\t']).trim_end_matches('\n');
                let root =
                    crate::xml::tree::parse(text, crate::error::ErrorDomain::DomainCheckpoint)?;
                if root.name != "domain" {
                    return Err(crate::error::Error::xml(
                        crate::error::ErrorDomain::DomainCheckpoint,
                        format_args!("expected a <domain> element, not <{}>", root.name),
                    ));
                }
                Some(text.to_owned())
            }
            None => None,
        };
        self.domain_xml = text;
        Ok(())
    }

    /// Appends a disk, in the order a driver holds them. A disk named twice is
    /// libvirt's VIR_ERR_CONFIG_UNSUPPORTED "disk '%s' specified twice".
    pub fn add_disk(&mut self, disk: CheckpointDisk) -> crate::error::Result<()> {
        if disk.name.is_empty() {
            return Err(crate::error::Error::invalid_arg(
                crate::error::ErrorDomain::DomainCheckpoint,
                "empty checkpoint disk name",
            ));
        }
        if self.disks.iter().any(|d| d.name == disk.name) {
            return Err(crate::error::Error::config_unsupported(
                crate::error::ErrorDomain::DomainCheckpoint,
                format_args!("disk '{}' specified twice", disk.name),
            ));
        }
        self.disks.push(disk);
        Ok(())
    }

    /// The disks that take a bitmap.
    pub fn bitmap_disks(&self) -> impl Iterator<Item = &CheckpointDisk> {
        self.disks
            .iter()
            .filter(|d| d.kind == DiskCheckpointKind::Bitmap)
    }
}
