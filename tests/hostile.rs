//! Hostile input: each defect that fuzzing, Miri and review found, as a regression
//! test, plus the documented size limits (docs/HOSTILE.md lists every class).

use virtcheckpoint::{
    CheckpointDef, Disk, Domain, ErrorCode, FormatOptions, Image, MAX_CHECKPOINT_NAME,
    MAX_NODE_JSON, MAX_XML_DEPTH, MetadataDir, ParseOptions, checkpoint_add_actions,
    checkpoint_def_from_xml, format_checkpoint, nodes_from_image_info, parse_checkpoint,
    parse_domain, parse_node_data,
};

const REDEFINE: ParseOptions = ParseOptions {
    redefine: true,
    parse_only: false,
};
const BOM: &str = "\u{FEFF}";

fn roundtrip(def: &CheckpointDef) -> CheckpointDef {
    let text = format_checkpoint(def, FormatOptions::default());
    parse_checkpoint(text.as_bytes(), REDEFINE, 0)
        .unwrap_or_else(|e| panic!("the library refused its own output ({e}):\n{text}"))
}

fn one_disk() -> Domain {
    let mut dom = Domain::default();
    dom.add_disk(Disk {
        target: "vda".into(),
        device: "disk".into(),
        ..Default::default()
    })
    .unwrap();
    dom.append_image("vda", Image::qcow2_indexed("/i/vda.qcow2", 1))
        .unwrap();
    dom
}

#[test]
fn a_byte_order_mark_does_not_shift_the_embedded_domain() {
    // With a multi-byte character before <domain> this used to panic.
    let xml = format!(
        "{BOM}<domaincheckpoint><name>1</name><creationTime>1</creationTime>éé<domain/></domaincheckpoint>"
    );
    let def = parse_checkpoint(xml.as_bytes(), REDEFINE, 0).unwrap();
    assert_eq!(def.domain_xml.as_deref(), Some("<domain/>"));
    // Without one it silently stored a shifted slice, and the checkpoint was lost on
    // the next save and load.
    let xml = format!(
        "{BOM}<domaincheckpoint><name>c9</name><creationTime>1</creationTime><domain><name>d</name></domain></domaincheckpoint>"
    );
    let def = parse_checkpoint(xml.as_bytes(), REDEFINE, 0).unwrap();
    assert_eq!(
        def.domain_xml.as_deref(),
        Some("<domain><name>d</name></domain>")
    );
    let dir = std::env::temp_dir().join(format!("vcp-hostile-bom-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let md = MetadataDir::new(&dir, "vm").unwrap();
    md.save(&def).unwrap();
    let (list, problems) = md.load().unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(list.get("c9").unwrap().domain_xml, def.domain_xml);
    // A BOM in front of a whole checkpoint file on disk is read too.
    std::fs::write(dir.join("vm/c8.xml"), xml.replace("c9", "c8")).unwrap();
    let (list, problems) = md.load().unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert!(list.contains("c8") && list.contains("c9"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn whitespace_and_references_survive_a_round_trip() {
    let xml = "<domaincheckpoint><name>c1</name><description>a\tb&#13;c\nd</description>\
               <creationTime>5</creationTime><disks><disk name='vda' checkpoint='bitmap' \
               bitmap='x&#10;y&#9;z&#13;w'/></disks></domaincheckpoint>";
    let def = parse_checkpoint(xml.as_bytes(), REDEFINE, 0).unwrap();
    assert_eq!(def.disks[0].bitmap.as_deref(), Some("x\ny\tz\rw"));
    assert_eq!(def.description.as_deref(), Some("a\tb\rc\nd"));
    assert_eq!(roundtrip(&def), def);
}

#[test]
fn creation_time_zero_round_trips() {
    let xml = "<domaincheckpoint><name>c0</name><creationTime>0</creationTime></domaincheckpoint>";
    let def = parse_checkpoint(xml.as_bytes(), REDEFINE, 0).unwrap();
    assert_eq!(def.creation_time, 0);
    assert_eq!(roundtrip(&def), def);
}

#[test]
fn characters_xml_forbids_are_refused() {
    for bad in [
        "<domaincheckpoint><name>a&#1;b</name></domaincheckpoint>",
        "<domaincheckpoint><name>a\u{1}b</name></domaincheckpoint>",
        "<domaincheckpoint><name>c</name><disks><disk name='vda' bitmap='&#x1F;'/></disks></domaincheckpoint>",
        "<domaincheckpoint><name>&#xFFFE;</name></domaincheckpoint>",
        "<domaincheckpoint><description>&#0;</description></domaincheckpoint>",
    ] {
        let e = parse_checkpoint(bad.as_bytes(), ParseOptions::default(), 1).unwrap_err();
        assert_eq!(e.code(), ErrorCode::XmlError, "{bad}: {e}");
        assert!(
            e.message().contains("XML") && e.message().contains("line 1"),
            "{bad}: {e}"
        );
    }
    let e = parse_domain(b"<domain><name>\x02</name></domain>").unwrap_err();
    assert_eq!(e.code(), ErrorCode::XmlError);
}

#[test]
fn a_nul_in_node_data_is_refused_at_parse() {
    for bad in [
        r#"[{"node-name":"a\u0000b","image":{"virtual-size":1}}]"#,
        r#"[{"node-name":"a","image":{"virtual-size":1},"dirty-bitmaps":[{"name":"x\u0000"}]}]"#,
    ] {
        let e = parse_node_data(bad).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InternalError);
        assert!(e.message().contains("contains a NUL character"), "{e}");
    }
}

#[test]
fn checkpoint_names_that_cannot_be_a_file_name_are_refused_before_planning() {
    let dom = one_disk();
    let request = |n: usize| {
        format!(
            "<domaincheckpoint><name>{}</name></domaincheckpoint>",
            "n".repeat(n)
        )
    };
    let ok = checkpoint_def_from_xml(
        request(MAX_CHECKPOINT_NAME).as_bytes(),
        Some(&dom),
        ParseOptions::default(),
        1,
    )
    .unwrap();
    assert_eq!(checkpoint_add_actions(&dom, &ok, None).unwrap().len(), 1);
    let dir = std::env::temp_dir().join(format!("vcp-hostile-name-{}", std::process::id()));
    let md = MetadataDir::new(&dir, "vm").unwrap();
    md.save(&ok).unwrap();
    assert!(md.load().unwrap().0.contains(&ok.name));
    std::fs::remove_dir_all(&dir).unwrap();
    for n in [MAX_CHECKPOINT_NAME + 1, 1023] {
        let e = checkpoint_def_from_xml(
            request(n).as_bytes(),
            Some(&dom),
            ParseOptions::default(),
            1,
        )
        .unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArg, "{e}");
        assert!(e.message().contains("longer than 242"), "{e}");
    }
}

#[test]
fn node_data_and_image_info_have_a_size_limit() {
    let mut big = String::with_capacity(MAX_NODE_JSON + 16);
    big.push('[');
    big.push_str(&" ".repeat(MAX_NODE_JSON));
    big.push(']');
    let e = parse_node_data(&big).unwrap_err();
    assert!(
        e.message().contains("exceeds the 67108864 byte limit"),
        "{e}"
    );
    let mut nodes = virtcheckpoint::NodeData::new();
    let e = nodes_from_image_info(&one_disk(), "vda", &big, false, &mut nodes).unwrap_err();
    assert!(
        e.message().contains("exceeds the 67108864 byte limit"),
        "{e}"
    );
    assert!(nodes.nodes().is_empty());
}

#[test]
fn empty_disks_element_is_libvirts_no_disks() {
    let dom = one_disk();
    let def = checkpoint_def_from_xml(
        b"<domaincheckpoint><name>c1</name><disks/></domaincheckpoint>",
        Some(&dom),
        ParseOptions::default(),
        1,
    )
    .unwrap();
    assert_eq!(
        def.bitmap_disks().count(),
        1,
        "every writable disk gets a bitmap"
    );
    assert_eq!(checkpoint_add_actions(&dom, &def, None).unwrap().len(), 1);
}

#[test]
fn image_info_is_all_or_nothing() {
    let mut dom = one_disk();
    dom.append_image("vda", Image::qcow2_indexed("/i/base.qcow2", 1))
        .unwrap(); // the same node name twice in one chain
    let info = r#"[{"virtual-size":1,"filename":"/i/vda.qcow2"},{"virtual-size":1,"filename":"/i/base.qcow2"}]"#;
    let mut nodes = virtcheckpoint::NodeData::new();
    let e = nodes_from_image_info(&dom, "vda", info, false, &mut nodes).unwrap_err();
    assert!(e.message().contains("appears twice"), "{e}");
    assert!(nodes.nodes().is_empty(), "nothing was added");
}

#[test]
fn xml_limits_on_bytes_depth_and_elements() {
    use virtcheckpoint::{MAX_XML_BYTES, MAX_XML_DEPTH, MAX_XML_ELEMENTS};
    let big = format!("<domain>{}</domain>", " ".repeat(MAX_XML_BYTES));
    let e = parse_domain(big.as_bytes()).unwrap_err();
    assert!(
        e.message().contains("exceeds the 67108864 byte limit"),
        "{e}"
    );
    let deep = "<a>".repeat(MAX_XML_DEPTH) + &"</a>".repeat(MAX_XML_DEPTH);
    let e = parse_domain(format!("<domain>{deep}</domain>").as_bytes()).unwrap_err();
    assert!(
        e.message().contains("nesting deeper than 256 levels"),
        "{e}"
    );
    let ok = "<a>".repeat(MAX_XML_DEPTH - 1) + &"</a>".repeat(MAX_XML_DEPTH - 1);
    assert!(parse_domain(format!("<domain>{ok}</domain>").as_bytes()).is_ok());
    let many = format!("<domain>{}</domain>", "<a/>".repeat(MAX_XML_ELEMENTS));
    let e = parse_domain(many.as_bytes()).unwrap_err();
    assert!(e.message().contains("more than 1048576 elements"), "{e}");
}

#[test]
fn bitmap_names_over_qemus_limit_are_refused_before_anything_is_sent() {
    let dom = one_disk();
    let name = "b".repeat(virtcheckpoint::MAX_BITMAP_NAME + 1);
    let mut def = checkpoint_def_from_xml(
        b"<domaincheckpoint><name>c1</name></domaincheckpoint>",
        Some(&dom),
        ParseOptions::default(),
        1,
    )
    .unwrap();
    def.disks[0].bitmap = Some(name.clone());
    def.name = name;
    let e = checkpoint_add_actions(&dom, &def, None).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ConfigUnsupported, "{e}");
    assert!(
        e.message()
            .contains("must be 1 to 1023 bytes long, not 1024"),
        "{e}"
    );
}

/// The embedded `<domain>` is kept as text, but checked as strictly as the rest of the
/// document: found by the C ABI fuzz target, a checkpoint whose domain held an
/// attribute without a value was accepted and kept, and its domain text was then
/// refused wherever it was parsed (alignment, a driver's domain parser, the setter).
#[test]
fn a_malformed_embedded_domain_is_refused_with_the_checkpoint() {
    for bad in [
        "<disk device='dis'k/>",
        "<disk device='&nosuch;'/>",
        "<name>&#1;</name>",
        "<name a='1' a='2'/>",
        "<!DOCTYPE x>",
    ] {
        let xml = format!(
            "<domaincheckpoint><name>c1</name><creationTime>1</creationTime>\
             <domain type='kvm'><devices>{bad}</devices></domain></domaincheckpoint>"
        );
        let err = parse_checkpoint(xml.as_bytes(), REDEFINE, 0).unwrap_err();
        assert_eq!(err.code(), ErrorCode::XmlError, "{bad}: {err}");
    }
    // Deep nesting inside the domain counts against the document's limit.
    let deep = format!(
        "<domaincheckpoint><name>c1</name><creationTime>1</creationTime><domain>{}{}</domain></domaincheckpoint>",
        "<a>".repeat(MAX_XML_DEPTH),
        "</a>".repeat(MAX_XML_DEPTH)
    );
    assert!(parse_checkpoint(deep.as_bytes(), REDEFINE, 0).is_err());
}

/// A domain document of many disks and a checkpoint that names every disk by path:
/// both read each disk once (the duplicate-target check and the alignment were
/// quadratic: over a billion comparisons each at this size), and a duplicate at the
/// very end is still found with libvirt's text.
#[test]
fn many_disks_are_read_once_and_a_late_duplicate_is_found() {
    const N: usize = 50_000;
    let mut xml = String::from("<domain><devices>");
    for i in 0..N {
        xml.push_str(&format!(
            "<disk><source file='/i/{i}'/><target dev='vd{i}'/></disk>"
        ));
    }
    let dom = parse_domain(format!("{xml}</devices></domain>").as_bytes()).unwrap();
    assert_eq!(dom.disks.len(), N);
    let dup = format!(
        "{xml}<disk><target dev='vd{}'/></disk></devices></domain>",
        N - 1
    );
    let err = parse_domain(dup.as_bytes()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::XmlError);
    assert_eq!(
        err.message(),
        format!(
            "XML error: target 'vd{}' duplicated for disk sources",
            N - 1
        )
    );

    let names: String = (0..N)
        .rev()
        .map(|i| format!("<disk name='/i/{i}'/>"))
        .collect();
    let xml = format!("<domaincheckpoint><name>c1</name><disks>{names}</disks></domaincheckpoint>");
    let def = checkpoint_def_from_xml(xml.as_bytes(), Some(&dom), ParseOptions::default(), 1)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(def.disks.len(), N);
    assert!(
        def.disks
            .iter()
            .enumerate()
            .all(|(i, d)| d.name == format!("vd{i}"))
    );
}
