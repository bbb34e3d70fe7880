//! Domain XML (live, inactive, status): any input gives a domain or a libvirt error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(dom) = virtcheckpoint::parse_domain(data) {
        // Every parsed disk can be looked up by its target.
        for d in &dom.disks {
            assert!(dom.find_disk(&d.target).is_ok());
        }
    }
});
