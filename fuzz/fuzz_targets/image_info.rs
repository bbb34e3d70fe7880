//! `qemu-img info --output=json --backing-chain` output read into node data: data or
//! an error, and on error nothing added.
#![no_main]
use libfuzzer_sys::fuzz_target;
use virtcheckpoint::{Disk, Domain, Image, NodeData, nodes_from_image_info};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut dom = Domain::default();
    let disk = Disk {
        target: "vda".into(),
        device: "disk".into(),
        ..Default::default()
    };
    dom.add_disk(disk).unwrap();
    for (i, f) in ["/i/top.qcow2", "/i/mid.qcow2", "/i/base.qcow2"]
        .iter()
        .enumerate()
    {
        let mut img = Image::qcow2_indexed(*f, 3 - i as u32);
        img.format_node.clear(); // an inactive domain: keyed by file
        dom.disks[0].chain.push(img);
    }
    let mut nodes = NodeData::new();
    if nodes_from_image_info(&dom, "vda", text, false, &mut nodes).is_err() {
        assert!(nodes.nodes().is_empty());
    }
});
