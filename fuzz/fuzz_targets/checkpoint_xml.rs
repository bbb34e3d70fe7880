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
    };
    let Ok(def) = parse_checkpoint(xml, opts, 1_700_000_000) else {
        return;
    };
    let text = format_checkpoint(&def, FormatOptions::default());
    let again = parse_checkpoint(text.as_bytes(), ParseOptions { redefine: true }, 0)
        .unwrap_or_else(|e| panic!("own output refused: {e}\n{text}"));
    assert_eq!(def, again, "round trip changed the definition:\n{text}");
    assert_eq!(text, format_checkpoint(&again, FormatOptions::default()));
});
