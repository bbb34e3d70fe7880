//! A domain's disks and their backing chains, with QEMU node names: what the planner
//! needs to know of libvirt's domain definition.

use std::borrow::Cow;
use std::collections::HashMap;

use super::driver::{DetectZeroes, DiskDriver};
use crate::error::{Error, ErrorDomain, Result};

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
    /// The zero-write detection QEMU opened this image with: libvirt gives the disk's
    /// `detect_zeroes` to the image that is the top when the disk is started and to a
    /// block copy's mirror, not to a snapshot overlay, and an image keeps it when it
    /// becomes a backing layer. A reopen of the image sends it again.
    pub detect_zeroes: DetectZeroes,
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
            detect_zeroes: DetectZeroes::Default,
        }
    }
}

/// One layer of a backing chain as the planner reads it: the node that holds its
/// bitmaps. A domain's [`Image`] is one; so is a bare node name, for drivers that hold
/// their own chain and hand over only its node names. An empty name matches no node.
pub trait Layer {
    /// The layer's format node name.
    fn node(&self) -> &str;
}

impl Layer for Image {
    fn node(&self) -> &str {
        &self.format_node
    }
}

impl Layer for &str {
    fn node(&self) -> &str {
        self
    }
}

impl Layer for String {
    fn node(&self) -> &str {
        self
    }
}

/// libvirt's domain parser's error for a second disk with `target`.
pub(crate) fn duplicate_target(target: &str) -> Error {
    Error::xml(
        ErrorDomain::Domain,
        format_args!("target '{target}' duplicated for disk sources"),
    )
}

/// A domain's disks by target and by top source path (see [`Domain::disk_names`]).
#[derive(Debug, Default)]
pub struct DiskNames<'a> {
    targets: HashMap<&'a str, usize>,
    /// `None`: more than one disk has that path (ambiguous, as libvirt refuses it).
    paths: HashMap<&'a str, Option<usize>>,
}

impl DiskNames<'_> {
    /// The index of the disk `name` names: a target, or with a leading `/` a source
    /// path that exactly one disk's top image has.
    pub fn find(&self, name: &str) -> Option<usize> {
        if name.starts_with('/') {
            self.paths.get(name).copied().flatten()
        } else {
            self.targets.get(name).copied()
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
    /// The `<driver>` options that reach its images: cache and discard for every
    /// image, detect_zeroes as [`Image::detect_zeroes`] says.
    pub driver: DiskDriver,
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

    /// The part of the chain from layer `top_node` down, and the layer of `base_node`
    /// within it (None = to the end): the range a generic merge reads. The base must be
    /// below the top.
    pub fn chain_between(
        &self,
        top_node: &str,
        base_node: Option<&str>,
    ) -> Result<(&[Image], Option<usize>)> {
        let top = self.layer_of(top_node)?;
        let base = base_node.map(|b| self.layer_of(b)).transpose()?;
        if base.is_some_and(|b| b <= top) {
            return Err(Error::invalid_arg(
                ErrorDomain::Qemu,
                "base_node must be below top_node",
            ));
        }
        Ok((&self.chain[top..], base.map(|b| b - top)))
    }

    /// The layer (0 = top) whose format node is `node`, or VIR_ERR_INVALID_ARG.
    pub fn layer_of(&self, node: &str) -> Result<usize> {
        self.chain
            .iter()
            .position(|i| i.format_node == node)
            .ok_or_else(|| {
                Error::invalid_arg(
                    ErrorDomain::Qemu,
                    format_args!(
                        "node '{node}' is not in the backing chain of disk '{}'",
                        self.target
                    ),
                )
            })
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

    /// The disk with that target, or [`Error::no_disk`].
    pub fn find_disk(&self, target: &str) -> Result<&Disk> {
        self.disk(target).ok_or_else(|| Error::no_disk(target))
    }

    /// The disk with that target, to change it, or [`Error::no_disk`].
    pub fn disk_mut(&mut self, target: &str) -> Result<&mut Disk> {
        self.disks
            .iter_mut()
            .find(|d| d.target == target)
            .ok_or_else(|| Error::no_disk(target))
    }

    /// Adds a disk without media; its images follow with [`Domain::append_image`].
    /// An empty or duplicated target is refused with the error libvirt's domain parser
    /// gives (VIR_ERR_XML_ERROR "target '%s' duplicated for disk sources").
    pub fn add_disk(&mut self, disk: Disk) -> Result<()> {
        if disk.target.is_empty() {
            return Err(Error::xml(
                ErrorDomain::Domain,
                "missing target dev of a disk",
            ));
        }
        if self.disk(&disk.target).is_some() {
            return Err(duplicate_target(&disk.target));
        }
        self.disks.push(disk);
        Ok(())
    }

    /// Appends `image` below the last image of disk `target`'s chain. An image without
    /// a format node name is one QEMU has not opened (an inactive domain's, as its XML
    /// gives it): alignment reads it, planning finds no node for it. The first image of
    /// a chain is the top one: it gets the disk's detect_zeroes, as libvirt opens it.
    pub fn append_image(&mut self, target: &str, image: Image) -> Result<()> {
        let disk = self.disk_mut(target)?;
        let mut image = image;
        if disk.chain.is_empty() {
            image.detect_zeroes = disk.driver.detect_zeroes;
        }
        disk.chain.push(image);
        Ok(())
    }

    /// Sets disk `target`'s `<driver>` options; its top image, if it has one already,
    /// takes the detect_zeroes (as libvirt opens the top image).
    pub fn set_disk_driver(&mut self, target: &str, driver: DiskDriver) -> Result<()> {
        let disk = self.disk_mut(target)?;
        disk.driver = driver;
        if let Some(top) = disk.chain.first_mut() {
            top.detect_zeroes = driver.detect_zeroes;
        }
        Ok(())
    }

    /// The disk and layer whose format node is `node`.
    pub fn find_node(&self, node: &str) -> Result<(&Disk, usize)> {
        self.disks
            .iter()
            .find_map(|d| d.layer_of(node).ok().map(|l| (d, l)))
            .ok_or_else(|| {
                Error::invalid_arg(
                    ErrorDomain::Qemu,
                    format_args!("node '{node}' is not in any disk's backing chain"),
                )
            })
    }

    /// The domain as a shut-off domain's plans see it: an image without a node name
    /// (an inactive definition has none) is keyed by its file path instead. Borrowed
    /// when every image has a node name already (a running domain).
    pub fn keyed_by_file(&self) -> Cow<'_, Domain> {
        let unkeyed = |d: &Disk| d.chain.iter().any(|i| i.format_node.is_empty());
        if !self.disks.iter().any(unkeyed) {
            return Cow::Borrowed(self);
        }
        let mut d = self.clone();
        for image in d.disks.iter_mut().flat_map(|k| k.chain.iter_mut()) {
            if image.format_node.is_empty() {
                image.format_node = image.source.clone();
            }
        }
        Cow::Owned(d)
    }

    /// libvirt's `virDomainDiskByName` without ambiguity: a name that starts with `/` is
    /// a source path that exactly one disk's top image has, any other a target. Returns
    /// the disk's index. For many names, [`Domain::disk_names`] reads the disks once.
    pub fn disk_index_by_name(&self, name: &str) -> Option<usize> {
        self.disk_names().find(name)
    }

    /// An index of the disks' targets and top source paths, for looking up many names
    /// as [`Domain::disk_index_by_name`] does, each in constant time.
    pub fn disk_names(&self) -> DiskNames<'_> {
        let mut names = DiskNames::default();
        for (i, d) in self.disks.iter().enumerate() {
            names.targets.entry(&d.target).or_insert(i);
            if let Some(top) = d.top().filter(|t| t.source.starts_with('/')) {
                names
                    .paths
                    .entry(&top.source)
                    .and_modify(|found| *found = None)
                    .or_insert(Some(i));
            }
        }
        names
    }
}
