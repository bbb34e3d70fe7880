//! Generates the C header with cbindgen into the build directory
//! (`$OUT_DIR/virtcheckpoint.h`; the Meson build copies it next to the libraries, and
//! CI compares it with the committed `include/virtcheckpoint.h`), writes the error
//! numbers into it from the core's one table of them, and gives the cdylib a
//! versioned soname.

use std::env;
use std::fmt::Write;
use std::path::PathBuf;

/// The core's error tables, read from the same file the core builds its enums from.
struct Number {
    c_name: &'static str,
    value: i64,
    doc: &'static str,
}

macro_rules! error_codes {
    ($($variant:ident, $c:literal, $n:literal, $prefix:literal, $doc:literal;)*) => {
        const CODES: &[Number] = &[$(Number { c_name: $c, value: $n, doc: $doc }),*];
    };
}

macro_rules! error_domains {
    ($($variant:ident, $c:literal, $n:literal, $doc:literal;)*) => {
        const DOMAINS: &[Number] = &[$(Number { c_name: $c, value: $n, doc: $doc }),*];
    };
}

include!("../src/error/numbers.rs");

fn defines(out: &mut String, prefix: &str, libvirt: &str, numbers: &[Number]) {
    for n in numbers {
        let _ = writeln!(
            out,
            "/** {libvirt}{}: {}. */\n#define {prefix}{} {}",
            n.c_name, n.doc, n.c_name, n.value
        );
    }
}

fn main() {
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=../src/error/numbers.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=build.rs");

    let major = env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets the version");
    let minor = env::var("CARGO_PKG_VERSION_MINOR").expect("cargo sets the version");
    let patch = env::var("CARGO_PKG_VERSION_PATCH").expect("cargo sets the version");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libvirtcheckpoint.so.{major}");

    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets it"));
    let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is readable");
    let number: u64 = major.parse::<u64>().unwrap_or(0) * 1_000_000
        + minor.parse::<u64>().unwrap_or(0) * 1_000
        + patch.parse::<u64>().unwrap_or(0);
    let mut after = format!(
        "\n#define VCP_VERSION_MAJOR {major}\n#define VCP_VERSION_MINOR {minor}\n\
         #define VCP_VERSION_MICRO {patch}\n\
         /** major * 1000000 + minor * 1000 + micro, as vcp_version() returns it. */\n\
         #define VCP_VERSION_NUMBER {number}UL\n\n\
         /** VIR_ERR_OK: no error. */\n#define VCP_ERR_OK 0\n"
    );
    defines(&mut after, "VCP_ERR_", "VIR_ERR_", CODES);
    after.push('\n');
    defines(&mut after, "VCP_FROM_", "VIR_FROM_", DOMAINS);
    config.after_includes = Some(after);
    let bindings = cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate the header");
    bindings.write_to_file(out_dir.join("virtcheckpoint.h"));
}
