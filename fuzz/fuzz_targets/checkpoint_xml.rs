//! Checkpoint XML round trip: whatever parses, formats into XML that parses back to
//! the same definition (parse -> format -> parse is the identity).
#![no_main]
use libfuzzer_sys::fuzz_target;
use virtcheckpoint::{FormatOptions, ParseOptions, format_checkpoint, parse_checkpoint};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, xml)) = data.split_first() else {
        return;
    };
    let opts = ParseOptions {
        redefine: mode & 1 != 0,
        parse_only: mode & 2 != 0,
    };
    let Ok(def) = parse_checkpoint(xml, opts, 1_700_000_000) else {
        return;
    };
    if def.name.is_empty() {
        // Unnamed (no defaults asked for): not a definition that can be redefined.
        assert!(opts.parse_only && !opts.redefine);
        return;
    }
    let text = format_checkpoint(&def, FormatOptions::default());
    let again = parse_checkpoint(
        text.as_bytes(),
        ParseOptions {
            redefine: true,
            ..ParseOptions::default()
        },
        0,
    )
    .unwrap_or_else(|e| panic!("own output refused: {e}\n{text}"));
    assert_eq!(def, again, "round trip changed the definition:\n{text}");
    assert_eq!(text, format_checkpoint(&again, FormatOptions::default()));
});
