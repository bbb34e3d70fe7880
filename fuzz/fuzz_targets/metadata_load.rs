//! A metadata folder holding hostile files: the load lists each bad file as a problem
//! and never fails or panics for the folder; whatever loads, saves and loads again.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use virtcheckpoint::MetadataDir;

fn base() -> &'static std::path::Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("vcp-fuzz-load-{}", std::process::id()));
        std::fs::create_dir_all(d.join("vm")).unwrap();
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = base().join("vm");
    // Up to three files, split at 0xff bytes (never valid UTF-8, so a free separator).
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (i, part) in data.split(|&b| b == 0xff).take(3).enumerate() {
        std::fs::write(dir.join(format!("c{i}.xml")), part).unwrap();
    }
    let md = MetadataDir::new(base(), "vm").unwrap();
    let (list, problems) = md.load().expect("a readable folder always loads");
    assert!(list.len() + problems.len() <= 3);
    let out = base().join("again");
    let _ = std::fs::remove_dir_all(&out);
    let md2 = MetadataDir::new(&out, "vm").unwrap();
    for def in list.defs() {
        md2.save(def)
            .unwrap_or_else(|e| panic!("a loaded checkpoint does not save: {e}"));
    }
    let (again, problems) = md2.load().unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(again.len(), list.len());
});
