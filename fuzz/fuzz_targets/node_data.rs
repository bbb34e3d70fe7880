//! `query-named-block-nodes` replies: node data or a libvirt error, and every name a
//! C caller could get is a valid C string.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(nd) = virtcheckpoint::parse_node_data(text) {
        for n in nd.nodes() {
            assert!(!n.name.contains('\0'));
            assert!(nd.get(&n.name).is_some());
            for b in &n.bitmaps {
                assert!(!b.name.contains('\0'));
                assert!(nd.bitmap(&n.name, &b.name).is_some());
            }
        }
    }
});
