//! `<domaincheckpoint>` XML in and out, as libvirt reads and writes it
//! (virDomainCheckpointDefParse, virDomainCheckpointDefFormatInternal; SPEC 2.1).
//!
//! The checks libvirt's RNG schema makes are done here by hand and reported as
//! VIR_ERR_XML_INVALID_SCHEMA. The embedded `<domain>` is kept as text, as it stands
//! in formatted checkpoint XML, and written back unchanged.

use std::fmt::Write;

use super::tree::{Element, escape, escape_attr, parse_with_opaque, utf8};
use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::model::checkpoint::{CheckpointDef, CheckpointDisk, DiskCheckpointKind};

const DOM: ErrorDomain = ErrorDomain::DomainCheckpoint;

/// How checkpoint XML is read (libvirt's `VIR_DOMAIN_CHECKPOINT_PARSE_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseOptions {
    /// The XML describes an existing checkpoint (`PARSE_REDEFINE`): name and
    /// creation time are required, parent and `<domain>` are kept.
    pub redefine: bool,
    /// Parse only, as libvirt's `virDomainCheckpointDefParseString` does before its
    /// moment post-parse hook: when creating, no default name and no creation time
    /// (an unnamed definition has an empty name); and
    /// [`checkpoint_def_from_xml`](crate::checkpoint_def_from_xml) aligns nothing.
    pub parse_only: bool,
}

/// How checkpoint XML is written (libvirt's `VIR_DOMAIN_CHECKPOINT_XML_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FormatOptions {
    /// Include security-sensitive data (`XML_SECURE`). The embedded `<domain>` is kept
    /// verbatim, so this changes nothing today; it is accepted for libvirt's callers.
    pub secure: bool,
    /// Leave out `<domain>` (`XML_NO_DOMAIN`).
    pub no_domain: bool,
    /// Print each disk's `size` (`XML_SIZE`).
    pub size: bool,
}

fn schema(detail: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorCode::XmlInvalidSchema,
        DOM,
        format_args!("Unable to validate doc against domaincheckpoint.rng: {detail}"),
    )
}

/// The longest checkpoint name, in bytes: its metadata file `<name>.xml` and the
/// temporary `.vcp-tmp-<name>.xml` it is written through must fit a file name (255
/// bytes on Linux file systems).
pub const MAX_CHECKPOINT_NAME: usize = 242;

/// Whether `name` is acceptable as a checkpoint name: libvirt's schema allows no
/// leading '.', no '/' and no newline, so that the name is a safe file name; and it
/// must fit a file name ([`MAX_CHECKPOINT_NAME`]).
pub fn is_valid_checkpoint_name(name: &str) -> bool {
    name.len() <= MAX_CHECKPOINT_NAME
        && !name.is_empty()
        && !name.starts_with('.')
        && !name.contains('/')
        && !name.contains('\n')
        && !name.contains('\r')
}

fn only_children(el: &Element, allowed: &[&str]) -> Result<()> {
    for c in &el.children {
        if !allowed.contains(&c.name.as_str()) {
            return Err(schema(format_args!(
                "element '{}' is not allowed in <{}>",
                c.name, el.name
            )));
        }
    }
    Ok(())
}

fn single<'a>(el: &'a Element, name: &'a str) -> Result<Option<&'a Element>> {
    let mut it = el.children_named(name);
    let first = it.next();
    if it.next().is_some() {
        return Err(schema(format_args!(
            "element <{name}> given more than once"
        )));
    }
    Ok(first)
}

fn parse_disk(el: &Element) -> Result<CheckpointDisk> {
    for (k, _) in &el.attrs {
        if !["name", "checkpoint", "bitmap", "size"].contains(&k.as_str()) {
            return Err(schema(format_args!(
                "attribute '{k}' is not allowed on <disk>"
            )));
        }
    }
    let name = el
        .attr("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| schema("element <disk> requires the attribute 'name'"))?;
    let kind = match el.attr("checkpoint") {
        None | Some("bitmap") => DiskCheckpointKind::Bitmap,
        Some("no") => DiskCheckpointKind::No,
        Some(other) => {
            return Err(schema(format_args!(
                "invalid value '{other}' of attribute 'checkpoint' for disk '{name}'"
            )));
        }
    };
    if let Some(size) = el.attr("size")
        && size.parse::<u64>().is_err()
    {
        return Err(schema(format_args!(
            "invalid size '{size}' for disk '{name}'"
        )));
    }
    let bitmap = el.attr("bitmap").map(str::to_owned);
    if bitmap.as_deref() == Some("") {
        return Err(schema(format_args!("empty bitmap name for disk '{name}'")));
    }
    Ok(CheckpointDisk {
        name: name.to_owned(),
        kind,
        bitmap,
        size: None,
    })
}

/// The `<domain>` element's source text as it stands in formatted checkpoint XML (see
/// [`CheckpointDef::domain_xml`]): verbatim when the element sits at a checkpoint
/// child's indentation (two spaces, as libvirt writes it), else each further line moved
/// from the element's indentation to that one.
fn domain_text(src: &str, el: &Element) -> String {
    let raw = &src[el.span.clone()];
    let line_start = src[..el.span.start].rfind('\n').map_or(0, |i| i + 1);
    let indent = &src[line_start..el.span.start];
    if indent == "  " || !indent.chars().all(|c| c == ' ' || c == '\t') {
        return raw.to_owned();
    }
    let mut out = String::with_capacity(raw.len());
    for (i, line) in raw.split('\n').enumerate() {
        if i > 0 {
            out.push_str("\n  ");
            out.push_str(line.strip_prefix(indent).unwrap_or(line));
        } else {
            out.push_str(line);
        }
    }
    out
}

/// Parses checkpoint XML. `now` is the creation time to use when not redefining (and
/// the default name). Nothing is aligned here; see `plan::align`.
pub fn parse_checkpoint(xml: &[u8], opts: ParseOptions, now: i64) -> Result<CheckpointDef> {
    let src = utf8(xml, DOM)?;
    let root = parse_with_opaque(src, DOM, &["domain"])?;
    if root.name != "domaincheckpoint" {
        return Err(schema(format_args!(
            "expected root element 'domaincheckpoint', not '{}'",
            root.name
        )));
    }
    only_children(
        &root,
        &[
            "name",
            "description",
            "parent",
            "creationTime",
            "disks",
            "domain",
        ],
    )?;
    let redefine = opts.redefine;
    let mut def = CheckpointDef::default();

    if let Some(n) = single(&root, "name")? {
        let name = n.text.trim();
        if name.len() > MAX_CHECKPOINT_NAME {
            return Err(Error::invalid_arg(
                DOM,
                format_args!(
                    "checkpoint name of {} bytes is longer than {MAX_CHECKPOINT_NAME}, the longest a metadata file name can hold",
                    name.len()
                ),
            ));
        }
        if !is_valid_checkpoint_name(name) {
            return Err(schema(format_args!(
                "checkpoint name '{name}' is not a safe file name (no leading '.', no '/', no newline)"
            )));
        }
        def.name = name.to_owned();
    }
    // libvirt reads text through XPath's string(): an empty element is no value.
    if let Some(d) = single(&root, "description")?.filter(|d| !d.text.is_empty()) {
        def.description = Some(d.text.clone());
    }
    let parent = single(&root, "parent")?;
    if let Some(p) = parent {
        only_children(p, &["name"])?;
        if p.child("name").is_none() {
            return Err(schema("element <parent> requires a <name>"));
        }
    }
    let ctime = match single(&root, "creationTime")? {
        Some(c) => Some(
            c.text
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|t| *t >= 0)
                .ok_or_else(|| schema(format_args!("invalid creationTime '{}'", c.text.trim())))?,
        ),
        None => None,
    };
    if let Some(disks) = single(&root, "disks")? {
        only_children(disks, &["disk"])?;
        for d in &disks.children {
            def.disks.push(parse_disk(d)?);
        }
    }

    if redefine {
        if def.name.is_empty() {
            return Err(Error::xml(DOM, "a redefined checkpoint must have a name"));
        }
        def.creation_time = ctime.ok_or_else(|| {
            Error::new(
                ErrorCode::InternalError,
                DOM,
                "missing creationTime from existing checkpoint",
            )
        })?;
        if let Some(p) = parent.and_then(|p| p.child("name")) {
            let pname = p.text.trim();
            if !pname.is_empty() {
                def.parent = Some(pname.to_owned());
            }
        }
        if let Some(d) = single(&root, "domain")? {
            def.domain_xml = Some(domain_text(src, d));
        }
    } else if !opts.parse_only {
        def.creation_time = now;
        if def.name.is_empty() {
            def.name = now.to_string();
        }
    }
    Ok(def)
}

/// Formats a definition as libvirt does: 2-space indentation, single-quoted
/// attributes, empty parts left out (an unnamed definition has no `<name>`).
pub fn format_checkpoint(def: &CheckpointDef, opts: FormatOptions) -> String {
    let mut out = String::from("<domaincheckpoint>\n");
    if !def.name.is_empty() {
        let _ = writeln!(out, "  <name>{}</name>", escape(&def.name));
    }
    if let Some(d) = &def.description {
        let _ = writeln!(out, "  <description>{}</description>", escape(d));
    }
    if let Some(p) = def.parent.as_deref().filter(|p| !p.is_empty()) {
        let _ = writeln!(
            out,
            "  <parent>\n    <name>{}</name>\n  </parent>",
            escape(p)
        );
    }
    // Unlike libvirt, a creation time of 0 is written too: without it the definition
    // could not be read back (a redefinition requires one).
    let _ = writeln!(out, "  <creationTime>{}</creationTime>", def.creation_time);
    let disks: Vec<_> = def.disks.iter().filter(|d| !d.name.is_empty()).collect();
    if !def.disks.is_empty() {
        out.push_str("  <disks>\n");
        for d in disks {
            let _ = write!(out, "    <disk name='{}'", escape_attr(&d.name));
            if d.kind != DiskCheckpointKind::Default {
                let _ = write!(out, " checkpoint='{}'", d.kind.as_str());
            }
            if let Some(b) = &d.bitmap {
                let _ = write!(out, " bitmap='{}'", escape_attr(b));
                if opts.size
                    && let Some(size) = d.size
                {
                    let _ = write!(out, " size='{size}'");
                }
            }
            out.push_str("/>\n");
        }
        out.push_str("  </disks>\n");
    }
    if !opts.no_domain
        && let Some(dom) = &def.domain_xml
    {
        out.push_str("  ");
        out.push_str(dom);
        out.push('\n');
    }
    out.push_str("</domaincheckpoint>\n");
    out
}
