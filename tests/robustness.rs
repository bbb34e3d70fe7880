//! Mutated real inputs (bytes flipped, cut, duplicated) never make a parser panic: each
//! either parses or returns a libvirt-style error. Deterministic: a fixed-seed PRNG.

use std::path::PathBuf;
use virtcheckpoint::{ErrorCode, ParseOptions, parse_checkpoint, parse_domain, parse_node_data};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        if v.is_empty() {
            break;
        }
        let at = rng.below(v.len());
        match rng.below(5) {
            0 => v[at] = (rng.next() & 0xff) as u8,
            1 => v.truncate(at),
            2 => {
                let len = rng.below(64).min(v.len() - at);
                let chunk = v[at..at + len].to_vec();
                v.splice(at..at, chunk);
            }
            3 => {
                v.remove(at);
            }
            _ => v[at] = b"{}[]<>\"'&;:,/\\"[rng.below(14)],
        }
    }
    v
}

fn data(rel: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(rel),
    )
    .unwrap()
}

#[test]
fn mutated_node_data_never_panics() {
    let inputs = [
        data("replies/13_checkpoint_delete_chk1_after_snapshot.json"),
        data("conformance/tests/qemublocktestdata/bitmap/snapshots.json"),
    ];
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let (mut ok, mut refused) = (0, 0);
    for i in 0..3000 {
        let m = mutate(&mut rng, &inputs[i % inputs.len()]);
        let text = String::from_utf8_lossy(&m);
        match parse_node_data(&text) {
            Ok(_) => ok += 1,
            Err(e) => {
                assert_eq!(e.code(), ErrorCode::InternalError, "{e}");
                refused += 1;
            }
        }
    }
    assert!(ok > 0 && refused > 0, "ok {ok}, refused {refused}");
}

#[test]
fn mutated_checkpoint_xml_never_panics() {
    let inputs = [
        data("conformance/tests/qemudomaincheckpointxml2xmlout/redefine.xml"),
        data("libvirt-9.0-qmp/40_checkpoint_dumpxml_c3.xml"),
    ];
    let mut rng = Rng(0x5eed_1234_abcd_0002);
    let (mut ok, mut refused) = (0, 0);
    for i in 0..3000 {
        let m = mutate(&mut rng, &inputs[i % inputs.len()]);
        match parse_checkpoint(
            &m,
            ParseOptions {
                redefine: i % 2 == 0,
                parse_only: i % 3 == 0,
            },
            7,
        ) {
            Ok(_) => ok += 1,
            Err(e) => {
                assert!(
                    matches!(
                        e.code(),
                        ErrorCode::XmlError
                            | ErrorCode::XmlInvalidSchema
                            | ErrorCode::InternalError
                    ),
                    "{e}"
                );
                refused += 1;
            }
        }
    }
    assert!(ok > 0 && refused > 0, "ok {ok}, refused {refused}");
}

#[test]
fn mutated_domain_xml_never_panics() {
    let input = data("libvirt-9.0-qmp/33_status_xml_three_layers.xml");
    let mut rng = Rng(0x5eed_1234_abcd_0003);
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..2000 {
        let m = mutate(&mut rng, &input);
        match parse_domain(&m) {
            Ok(_) => ok += 1,
            Err(e) => {
                assert_eq!(e.code(), ErrorCode::XmlError, "{e}");
                refused += 1;
            }
        }
    }
    assert!(ok > 0 && refused > 0, "ok {ok}, refused {refused}");
}
