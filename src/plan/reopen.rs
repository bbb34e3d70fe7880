//! The `blockdev-reopen` of one backing image around a change to its bitmaps (a
//! delete, a non-active commit, a fix): read-write before, read-only after, with the
//! image's full format-node options as libvirt sends them
//! (qemuBlockReopenFormatMon over qemuBlockStorageSourceGetBlockdevProps).

use crate::error::Result;
use crate::model::domain::{Disk, Domain};
use crate::model::driver::{DetectZeroes, DiskDriver};
use crate::model::nodes::NodeData;
use crate::qmp::json::Json;

/// A backing image to reopen read-write before the transaction and read-only after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reopen {
    /// Its format node.
    pub format_node: String,
    /// Its storage node.
    pub storage_node: String,
    /// The format node of the image below it, if any.
    pub backing_node: Option<String>,
    /// Its format driver (`qcow2`).
    pub format: String,
    /// The disk's `<driver>` options as they reach this image (detect_zeroes: the
    /// image's own, [`crate::Image::detect_zeroes`]).
    pub driver: DiskDriver,
}

impl Reopen {
    /// Layer `layer` of `disk`'s chain.
    pub fn of(disk: &Disk, layer: usize) -> Reopen {
        let image = &disk.chain[layer];
        let driver = DiskDriver {
            detect_zeroes: image.detect_zeroes,
            ..disk.driver
        };
        Reopen {
            format_node: image.format_node.clone(),
            storage_node: image.storage_node.clone(),
            backing_node: disk.chain.get(layer + 1).map(|b| b.format_node.clone()),
            format: if image.format.is_empty() {
                "qcow2".into()
            } else {
                image.format.clone()
            },
            driver,
        }
    }

    /// Layer `layer` of `disk` with the zero-write detection QEMU reports for its node
    /// in `nodes`, when it reports one: which images libvirt opened with the disk's
    /// `detect_zeroes` is its runtime state (9.0: the image the disk was started with;
    /// 11: every image it opened), which QEMU's node data shows and the status XML
    /// does not. QEMU reports "off" both where libvirt set nothing and where the disk
    /// asks for `off`, so "off" keeps what the domain says unless that was on or unmap.
    pub fn at(disk: &Disk, layer: usize, nodes: &NodeData) -> Reopen {
        let mut r = Reopen::of(disk, layer);
        let reported = nodes.get(&r.format_node).and_then(|n| n.detect_zeroes);
        r.driver.detect_zeroes = match (reported, r.driver.detect_zeroes) {
            (None, mine) => mine,
            (Some(DetectZeroes::Off), mine @ (DetectZeroes::Off | DetectZeroes::Default)) => mine,
            (Some(DetectZeroes::Off), _) => DetectZeroes::Default,
            (Some(z), _) => z,
        };
        r
    }

    /// The image of `dom` whose format node is `node`.
    pub fn of_node(dom: &Domain, node: &str) -> Result<Reopen> {
        let (disk, layer) = dom.find_node(node)?;
        Ok(Reopen::of(disk, layer))
    }

    /// The `blockdev-reopen` command libvirt sends for this image: read-write
    /// (`read_only` false) before the change, read-only after it. The options in
    /// libvirt's order: `node-name`, `read-only`, `discard`, `detect-zeroes`, `cache`
    /// (each only when set), `driver`, `file`, `backing` (null when none; only for a
    /// format with a backing chain).
    pub fn command(&self, read_only: bool) -> Json {
        let mut o: Vec<(&'static str, Json)> = vec![
            ("node-name", self.format_node.as_str().into()),
            ("read-only", read_only.into()),
        ];
        if let Some(d) = self.driver.discard.name() {
            o.push(("discard", d.into()));
        }
        if let Some(z) = self.driver.effective_detect_zeroes().name() {
            o.push(("detect-zeroes", z.into()));
        }
        if let Some((direct, no_flush)) = self.driver.cache.flags() {
            o.push((
                "cache",
                Json::Obj(vec![
                    ("direct", direct.into()),
                    ("no-flush", no_flush.into()),
                ]),
            ));
        }
        o.push(("driver", self.format.as_str().into()));
        o.push(("file", self.storage_node.as_str().into()));
        // Only formats that follow a backing chain take `backing` (libvirt's
        // VIR_STORAGE_FILE_BACKING and up); QEMU refuses it on a raw node.
        if matches!(
            self.format.as_str(),
            "cow" | "qcow" | "qcow2" | "qed" | "vmdk"
        ) {
            o.push((
                "backing",
                self.backing_node.as_deref().map_or(Json::Null, Json::from),
            ));
        }
        Json::Obj(vec![
            ("execute", "blockdev-reopen".into()),
            (
                "arguments",
                Json::Obj(vec![("options", Json::Arr(vec![Json::Obj(o)]))]),
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::domain::Image;
    use crate::model::driver::{CacheMode, DetectZeroes, Discard};

    /// The top image opened with the disk's detect_zeroes, the base without.
    fn disk(driver: DiskDriver) -> Disk {
        Disk {
            target: "vda".into(),
            chain: vec![
                Image {
                    detect_zeroes: driver.detect_zeroes,
                    ..Image::qcow2_indexed("/i/top.qcow2", 2)
                },
                Image::qcow2_indexed("/i/base.qcow2", 1),
            ],
            driver,
            ..Default::default()
        }
    }

    #[test]
    fn minimal_options_as_libvirt_sends_them() {
        assert_eq!(
            Reopen::of(&disk(DiskDriver::default()), 1)
                .command(false)
                .to_compact(),
            r#"{"execute":"blockdev-reopen","arguments":{"options":[{"node-name":"libvirt-1-format","read-only":false,"driver":"qcow2","file":"libvirt-1-storage","backing":null}]}}"#
        );
    }

    /// A raw image follows no backing chain: no `backing` key, which QEMU refuses there.
    #[test]
    fn a_raw_image_is_reopened_without_backing() {
        let mut d = disk(DiskDriver::default());
        d.chain[1].format = "raw".into();
        assert_eq!(
            Reopen::of(&d, 1).command(true).to_compact(),
            r#"{"execute":"blockdev-reopen","arguments":{"options":[{"node-name":"libvirt-1-format","read-only":true,"driver":"raw","file":"libvirt-1-storage"}]}}"#
        );
    }

    #[test]
    fn driver_options_reach_the_reopen() {
        let driver = DiskDriver {
            cache: CacheMode::None,
            discard: Discard::Unmap,
            detect_zeroes: DetectZeroes::Unmap,
        };
        let d = disk(driver);
        // A backing layer opened without detect_zeroes: cache and discard.
        assert_eq!(
            Reopen::of(&d, 1).command(true).to_compact(),
            r#"{"execute":"blockdev-reopen","arguments":{"options":[{"node-name":"libvirt-1-format","read-only":true,"discard":"unmap","cache":{"direct":true,"no-flush":false},"driver":"qcow2","file":"libvirt-1-storage","backing":null}]}}"#
        );
        // The top, opened with it: detect-zeroes too, and its backing named.
        assert_eq!(
            Reopen::of(&d, 0).command(false).to_compact(),
            r#"{"execute":"blockdev-reopen","arguments":{"options":[{"node-name":"libvirt-2-format","read-only":false,"discard":"unmap","detect-zeroes":"unmap","cache":{"direct":true,"no-flush":false},"driver":"qcow2","file":"libvirt-2-storage","backing":"libvirt-1-format"}]}}"#
        );
    }

    /// The node data's detect_zeroes decides where QEMU reports one: libvirt 11 opened
    /// the backing layer with the disk's setting too; "off" is libvirt's default
    /// unless the domain says off; no report keeps the domain's guess.
    #[test]
    fn qemus_detect_zeroes_is_the_images_own() {
        use crate::model::nodes::Node;
        let driver = DiskDriver {
            discard: Discard::Unmap,
            detect_zeroes: DetectZeroes::Unmap,
            ..Default::default()
        };
        let d = disk(driver);
        let reported = |z: &[(&str, Option<DetectZeroes>)]| {
            let mut nodes = NodeData::new();
            for (name, dz) in z {
                nodes
                    .insert(Node {
                        name: (*name).into(),
                        detect_zeroes: *dz,
                        ..Default::default()
                    })
                    .unwrap();
            }
            nodes
        };
        let dz = |r: Reopen| r.driver.effective_detect_zeroes();
        let both = reported(&[
            ("libvirt-1-format", Some(DetectZeroes::Unmap)),
            ("libvirt-2-format", Some(DetectZeroes::Off)),
        ]);
        assert_eq!(dz(Reopen::at(&d, 1, &both)), DetectZeroes::Unmap);
        assert!(
            Reopen::at(&d, 1, &both)
                .command(false)
                .to_compact()
                .contains(r#""detect-zeroes":"unmap""#)
        );
        assert_eq!(dz(Reopen::at(&d, 0, &both)), DetectZeroes::Default);
        let none = reported(&[("libvirt-1-format", None)]);
        assert_eq!(dz(Reopen::at(&d, 1, &none)), DetectZeroes::Default);
        assert_eq!(dz(Reopen::at(&d, 0, &none)), DetectZeroes::Unmap);
        // A disk that asks for off: QEMU's "off" keeps it.
        let off = disk(DiskDriver {
            detect_zeroes: DetectZeroes::Off,
            ..Default::default()
        });
        let both_off = reported(&[
            ("libvirt-1-format", Some(DetectZeroes::Off)),
            ("libvirt-2-format", Some(DetectZeroes::Off)),
        ]);
        assert_eq!(dz(Reopen::at(&off, 0, &both_off)), DetectZeroes::Off);
        assert_eq!(dz(Reopen::at(&off, 1, &both_off)), DetectZeroes::Default);
    }
}
