//! libvirt domain XML (live, status `<domstatus>`, or inactive) -> [`Domain`]: each
//! disk's target, device, bus, read-only flag, `<driver>` options and backing chain
//! with node names.
//!
//! Node names come from the status XML's `<privateData><nodenames>` when present (an
//! image listed without a format node has none: its node is its slice or storage
//! node, as libvirt 11 opens a raw image), else from the `index` attributes
//! (`libvirt-<index>-format` / `-storage`), else they are left empty (an inactive
//! definition has none).

use std::collections::HashSet;

use super::tree::{Element, parse_bytes};
use crate::error::{Error, ErrorDomain, Result};
use crate::model::domain::{Disk, Domain, Image, duplicate_target};
use crate::model::driver::DiskDriver;

const DOM: ErrorDomain = ErrorDomain::Domain;

fn source_text(disk_type: &str, src: &Element) -> String {
    let a = |k: &str| src.attr(k).unwrap_or("").to_owned();
    match disk_type {
        "block" => a("dev"),
        "dir" => a("dir"),
        "network" => {
            let protocol = src.attr("protocol").unwrap_or("");
            let name = src.attr("name").unwrap_or("");
            match src.child("host") {
                Some(h) => {
                    let host = h.attr("name").or(h.attr("socket")).unwrap_or("");
                    match h.attr("port") {
                        Some(p) => format!("{protocol}://{host}:{p}/{name}"),
                        None => format!("{protocol}://{host}/{name}"),
                    }
                }
                None => format!("{protocol}:{name}"),
            }
        }
        "volume" => format!("{}/{}", a("pool"), a("volume")),
        "nvme" => format!("nvme:{}", a("namespace")),
        _ => src
            .attr("file")
            .or(src.attr("dev"))
            .unwrap_or("")
            .to_owned(),
    }
}

fn node_names(src: Option<&Element>, index: Option<&str>) -> (String, String) {
    let (mut format, mut storage) = (String::new(), String::new());
    if let Some(names) = src
        .and_then(|s| s.child("privateData"))
        .and_then(|p| p.child("nodenames"))
    {
        let mut slice = String::new();
        for n in names.children_named("nodename") {
            let name = n.attr("name").unwrap_or("").to_owned();
            match n.attr("type") {
                Some("format") => format = name,
                Some("slice") => slice = name,
                Some("storage") => storage = name,
                _ => {}
            }
        }
        // An image without a format layer (libvirt 11 opens a raw image so): QEMU's
        // node for it, which bitmap commands and the reopen of the image above name,
        // is its slice, else its storage node (qemuBlockStorageSourceGetEffectiveNodename).
        if format.is_empty() {
            format = if slice.is_empty() {
                storage.clone()
            } else {
                slice
            };
        }
        return (format, storage);
    }
    if let Some(i) = index.filter(|i| !i.is_empty()) {
        if format.is_empty() {
            format = format!("libvirt-{i}-format");
        }
        if storage.is_empty() {
            storage = format!("libvirt-{i}-storage");
        }
    }
    (format, storage)
}

fn parse_disk(el: &Element) -> Result<Disk> {
    let target_el = el
        .child("target")
        .ok_or_else(|| Error::xml(DOM, "missing target information for a disk"))?;
    let target = target_el
        .attr("dev")
        .filter(|d| !d.is_empty())
        .ok_or_else(|| Error::xml(DOM, "missing target dev of a disk"))?
        .to_owned();
    let disk_type = el.attr("type").unwrap_or("file");
    let driver = el.child("driver");
    let attr = |k: &str| driver.and_then(|d| d.attr(k));
    let mut disk = Disk {
        target,
        device: el.attr("device").unwrap_or("disk").to_owned(),
        bus: target_el.attr("bus").unwrap_or("").to_owned(),
        readonly: el.child("readonly").is_some(),
        chain: Vec::new(),
        driver: DiskDriver::from_attrs(attr("cache"), attr("discard"), attr("detect_zeroes"))?,
    };
    let src = el.child("source");
    let source = src.map(|s| source_text(disk_type, s)).unwrap_or_default();
    if source.is_empty() {
        return Ok(disk); // no media
    }
    let (format_node, storage_node) = node_names(src, src.and_then(|s| s.attr("index")));
    disk.chain.push(Image {
        source,
        format: attr("type").unwrap_or("").to_owned(),
        format_node,
        storage_node,
        readonly: disk.readonly,
        detect_zeroes: disk.driver.detect_zeroes,
    });
    let mut cur = el.child("backingStore");
    while let Some(bs) = cur {
        let Some(src) = bs.child("source") else {
            break; // <backingStore/> ends the chain
        };
        let (format_node, storage_node) = node_names(Some(src), bs.attr("index"));
        disk.chain.push(Image {
            source: source_text(bs.attr("type").unwrap_or("file"), src),
            format: bs
                .child("format")
                .and_then(|f| f.attr("type"))
                .unwrap_or("")
                .to_owned(),
            format_node,
            storage_node,
            readonly: bs.child("readonly").is_some(),
            detect_zeroes: Default::default(),
        });
        cur = bs.child("backingStore");
    }
    started_with(&mut disk, el);
    Ok(disk)
}

/// Gives the disk's `detect_zeroes` to the image the disk was started with, as libvirt
/// does (qemuDomainPrepareDiskSourceData: the top image only), and takes it from the
/// others. libvirt numbers a chain top first when it starts the domain and gives every
/// image added later (a snapshot overlay, a copy's mirror) a higher index, so the image
/// it was started with is the one with the lowest index, when it is still in the chain.
/// Not told apart from it: a chain whose starting image went away (an active commit of
/// it, a shallow copy's pivot). Without indexes (inactive XML) it is the top.
fn started_with(disk: &mut Disk, el: &Element) {
    let mut indexes = Vec::with_capacity(disk.chain.len());
    let mut src = el
        .child("source")
        .map(|s| (s.attr("index"), el.child("backingStore")));
    while let Some((index, next)) = src {
        indexes.push(index.and_then(|i| i.parse::<u64>().ok()));
        src = next
            .filter(|b| b.child("source").is_some())
            .map(|b| (b.attr("index"), b.child("backingStore")));
    }
    let start = if indexes.len() == disk.chain.len() && indexes.iter().all(Option::is_some) {
        (0..indexes.len()).min_by_key(|&i| indexes[i])
    } else {
        Some(0)
    };
    for (i, image) in disk.chain.iter_mut().enumerate() {
        image.detect_zeroes = if Some(i) == start {
            disk.driver.detect_zeroes
        } else {
            Default::default()
        };
    }
}

/// Reads a `<domain>` element.
pub fn domain_from_element(el: &Element) -> Result<Domain> {
    let mut dom = Domain {
        name: el
            .child("name")
            .map(|n| n.text.trim().to_owned())
            .unwrap_or_default(),
        uuid: el
            .child("uuid")
            .map(|n| n.text.trim().to_owned())
            .unwrap_or_default(),
        disks: Vec::new(),
    };
    if let Some(devices) = el.child("devices") {
        // Targets checked by hash (Domain::add_disk checks each against every disk
        // before it: quadratic in a document of many disks).
        let mut targets = HashSet::new();
        for d in devices.children_named("disk") {
            let disk = parse_disk(d)?;
            if !targets.insert(disk.target.clone()) {
                return Err(duplicate_target(&disk.target));
            }
            dom.disks.push(disk);
        }
    }
    Ok(dom)
}

/// Parses libvirt's live, inactive or status (`<domstatus>`) domain XML.
pub fn parse_domain(xml: &[u8]) -> Result<Domain> {
    let root = parse_bytes(xml, DOM)?;
    let dom_el = match root.name.as_str() {
        "domain" => &root,
        "domstatus" => root
            .child("domain")
            .ok_or_else(|| Error::xml(DOM, "status XML has no <domain> element"))?,
        other => {
            return Err(Error::xml(
                DOM,
                format_args!("expected root element 'domain' or 'domstatus', not '{other}'"),
            ));
        }
    };
    domain_from_element(dom_el)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::driver::{CacheMode, DetectZeroes, Discard};

    const DISK: &str = "<domain><devices><disk type='file' device='disk'>\
        <driver name='qemu' type='qcow2' cache='DRIVER_CACHE' discard='unmap' detect_zeroes='unmap'/>\
        <source file='/i/top.qcow2' index='2'/>\
        <backingStore type='file' index='1'><format type='qcow2'/><source file='/i/base.qcow2'/></backingStore>\
        <target dev='vda' bus='virtio'/></disk></devices></domain>";

    #[test]
    fn driver_options_are_read_and_checked() {
        let dom = parse_domain(DISK.replace("DRIVER_CACHE", "writeback").as_bytes()).unwrap();
        let d = &dom.disks[0];
        assert_eq!(d.driver.cache, CacheMode::Writeback);
        assert_eq!(d.driver.discard, Discard::Unmap);
        // Index 1 below index 2: the disk was started with the backing image (the top
        // is an overlay added since), which keeps the detect_zeroes it was opened with.
        assert_eq!(
            d.chain[1].detect_zeroes,
            DetectZeroes::Unmap,
            "the image the disk was started with"
        );
        assert_eq!(
            d.chain[0].detect_zeroes,
            DetectZeroes::Default,
            "an overlay added since"
        );
        // Numbered top first, as at a start: the top.
        let started = DISK
            .replace("DRIVER_CACHE", "none")
            .replace("index='2'", "index='0'");
        let d = &parse_domain(started.as_bytes()).unwrap().disks[0];
        assert_eq!(d.chain[0].detect_zeroes, DetectZeroes::Unmap);
        assert_eq!(d.chain[1].detect_zeroes, DetectZeroes::Default);
        // Without indexes (inactive XML): the top.
        let inactive = DISK
            .replace("DRIVER_CACHE", "none")
            .replace(" index='2'", "")
            .replace(" index='1'", "");
        let d = &parse_domain(inactive.as_bytes()).unwrap().disks[0];
        assert_eq!(d.chain[0].detect_zeroes, DetectZeroes::Unmap);
        assert_eq!(d.chain[1].detect_zeroes, DetectZeroes::Default);
        let e = parse_domain(DISK.replace("DRIVER_CACHE", "lots").as_bytes()).unwrap_err();
        assert_eq!(e.code(), crate::error::ErrorCode::XmlError);
        assert_eq!(
            e.detail(),
            "Invalid value for attribute 'cache' in element 'driver': 'lots'."
        );
    }

    /// libvirt 11's status XML lists a raw image opened without a format layer with its
    /// storage node (or slice) alone: that is QEMU's node for the image, named by the
    /// bitmap commands and by the reopen of the image above it. Without `<nodenames>`
    /// the names still follow the index.
    #[test]
    fn an_image_without_a_format_layer_is_named_by_its_effective_node() {
        let names = |kinds: &str| {
            let nodes: String = kinds
                .split(',')
                .map(|k| format!("<nodename type='{k}' name='libvirt-1-{k}'/>"))
                .collect();
            format!(
                "<domain><devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
                 <source file='/i/top.qcow2' index='2'/><backingStore type='file' index='1'>\
                 <format type='raw'/><source file='/i/base.raw'><privateData><nodenames>{nodes}\
                 </nodenames></privateData></source><backingStore/></backingStore>\
                 <target dev='vda' bus='virtio'/></disk></devices></domain>"
            )
        };
        let base = |kinds: &str| {
            let dom = parse_domain(names(kinds).as_bytes()).unwrap();
            let i = &dom.disks[0].chain[1];
            (i.format_node.clone(), i.storage_node.clone())
        };
        assert_eq!(
            base("storage"),
            ("libvirt-1-storage".into(), "libvirt-1-storage".into())
        );
        assert_eq!(
            base("storage,slice"),
            ("libvirt-1-slice".into(), "libvirt-1-storage".into())
        );
        assert_eq!(
            base("storage,format"),
            ("libvirt-1-format".into(), "libvirt-1-storage".into())
        );
        let dom = parse_domain(names("storage").as_bytes()).unwrap();
        assert_eq!(dom.disks[0].chain[0].format_node, "libvirt-2-format");
    }
}
