//! Generates include/virtcheckpoint.h from src/ffi/ with cbindgen, and gives the cdylib
//! a versioned soname.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=build.rs");

    let major = env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets the version");
    let minor = env::var("CARGO_PKG_VERSION_MINOR").expect("cargo sets the version");
    let patch = env::var("CARGO_PKG_VERSION_PATCH").expect("cargo sets the version");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libvirtcheckpoint.so.{major}");

    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is readable");
    let number: u64 = major.parse::<u64>().unwrap_or(0) * 1_000_000
        + minor.parse::<u64>().unwrap_or(0) * 1_000
        + patch.parse::<u64>().unwrap_or(0);
    config.after_includes = Some(format!(
        "\n#define VCP_VERSION_MAJOR {major}\n#define VCP_VERSION_MINOR {minor}\n\
         #define VCP_VERSION_MICRO {patch}\n\
         /** major * 1000000 + minor * 1000 + micro, as vcp_version() returns it. */\n\
         #define VCP_VERSION_NUMBER {number}UL\n"
    ));
    let bindings = cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate the header");
    bindings.write_to_file(crate_dir.join("include/virtcheckpoint.h"));
}
