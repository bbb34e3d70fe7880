//! A small, hardened XML element tree over quick-xml.
//!
//! Refused, with VIR_ERR_XML_ERROR and a message naming the problem and its line:
//! malformed XML, a document type declaration (so no entity can be defined, let alone
//! expanded), references to undefined entities, NUL characters (also as `&#0;`),
//! invalid UTF-8, nesting deeper than [`MAX_DEPTH`], documents larger than
//! [`MAX_BYTES`], more than [`MAX_ELEMENTS`] elements.

use std::ops::Range;

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use crate::error::{Error, ErrorDomain, Result};

/// Deepest element nesting accepted.
pub const MAX_DEPTH: usize = 256;
/// Largest document accepted, in bytes.
pub const MAX_BYTES: usize = 64 << 20;
/// Most elements accepted in one document.
pub const MAX_ELEMENTS: usize = 1 << 20;

/// One element.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// Tag name, prefix included.
    pub name: String,
    /// Attributes in document order, values unescaped.
    pub attrs: Vec<(String, String)>,
    /// Child elements in document order.
    pub children: Vec<Element>,
    /// The element's own text (direct text and CDATA children, concatenated).
    pub text: String,
    /// Byte range of the whole element in the source document.
    pub span: Range<usize>,
}

impl Element {
    /// The value of attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child named `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }
}

fn line_of(src: &str, pos: usize) -> usize {
    src.as_bytes()[..pos.min(src.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

struct Builder<'a> {
    src: &'a str,
    domain: ErrorDomain,
    stack: Vec<Element>,
    root: Option<Element>,
    count: usize,
    /// Depth inside an opaque element (0: not in one). Its content is checked as
    /// strictly as the rest, but not kept.
    skipping: usize,
    /// The opaque element being skipped.
    opaque: Option<Element>,
}

impl Builder<'_> {
    fn err(&self, pos: usize, what: impl std::fmt::Display) -> Error {
        Error::xml(
            self.domain,
            format_args!("malformed XML at line {}: {what}", line_of(self.src, pos)),
        )
    }

    fn open(&mut self, e: &BytesStart<'_>, start: usize) -> Result<Element> {
        self.count += 1;
        if self.count > MAX_ELEMENTS {
            return Err(self.err(start, format_args!("more than {MAX_ELEMENTS} elements")));
        }
        if self.stack.len() + self.skipping >= MAX_DEPTH {
            return Err(self.err(
                start,
                format_args!("nesting deeper than {MAX_DEPTH} levels"),
            ));
        }
        if self.root.is_some() && self.stack.is_empty() {
            return Err(self.err(start, "extra content after the document element"));
        }
        let name = e.name().as_ref().to_owned();
        let mut attrs = Vec::new();
        for a in e.attributes() {
            let a = a.map_err(|x| self.err(start, x))?;
            let key = a.key.as_ref().to_owned();
            let value = a
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|x| self.err(start, format_args!("attribute '{key}': {x}")))?;
            if let Some(c) = value.chars().find(|&c| !is_xml_char(c)) {
                return Err(self.err(
                    start,
                    format_args!(
                        "attribute '{key}' holds the character U+{:04X}, which XML does not allow",
                        c as u32
                    ),
                ));
            }
            attrs.push((key, value.into_owned()));
        }
        Ok(Element {
            name,
            attrs,
            span: start..start,
            ..Default::default()
        })
    }

    fn close(&mut self, mut el: Element, end: usize) {
        el.span.end = end;
        match self.stack.last_mut() {
            Some(parent) => parent.children.push(el),
            None => self.root = Some(el),
        }
    }

    fn text(&mut self, pos: usize, s: &str) -> Result<()> {
        if let Some(c) = s.chars().find(|&c| !is_xml_char(c)) {
            return Err(self.err(
                pos,
                format_args!(
                    "the character U+{:04X} in text, which XML does not allow",
                    c as u32
                ),
            ));
        }
        match self.stack.last_mut() {
            Some(_) if self.skipping > 0 => {}
            Some(el) => el.text.push_str(s),
            None if s.trim().is_empty() => {}
            None => return Err(self.err(pos, "text outside the document element")),
        }
        Ok(())
    }
}

/// XML 1.0's `Char` production: what a document may contain, literally or as a
/// character reference (libxml2, and so libvirt, refuse the rest).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Parses `bytes` as UTF-8 XML (see [`parse`]).
pub fn parse_bytes(bytes: &[u8], domain: ErrorDomain) -> Result<Element> {
    parse(utf8(bytes, domain)?, domain)
}

/// `bytes` as UTF-8 without a leading byte-order mark (so that every position the
/// parser reports is a position in the returned text), or VIR_ERR_XML_ERROR naming the
/// first bad byte.
pub fn utf8(bytes: &[u8], domain: ErrorDomain) -> Result<&str> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Error::xml(
            domain,
            format_args!("document is not valid UTF-8 (byte {})", e.valid_up_to()),
        )
    })?;
    Ok(text.strip_prefix('\u{FEFF}').unwrap_or(text))
}

/// Parses a whole document into its root element. Errors carry `domain`.
pub fn parse(src: &str, domain: ErrorDomain) -> Result<Element> {
    parse_with_opaque(src, domain, &[])
}

/// Like [`parse`], but children of the root named in `opaque` are kept as a span,
/// without building their subtree (the embedded `<domain>` of a checkpoint, which is
/// written back verbatim). Their content is checked as strictly as the rest.
pub fn parse_with_opaque(src: &str, domain: ErrorDomain, opaque: &[&str]) -> Result<Element> {
    if src.len() > MAX_BYTES {
        return Err(Error::xml(
            domain,
            format_args!(
                "document of {} bytes exceeds the {MAX_BYTES} byte limit",
                src.len()
            ),
        ));
    }
    if let Some(pos) = src.find('\0') {
        return Err(Error::xml(
            domain,
            format_args!("NUL byte in document at line {}", line_of(src, pos)),
        ));
    }
    let mut reader = Reader::from_str(src);
    let cfg = reader.config_mut();
    cfg.trim_text(false);
    cfg.check_end_names = true;
    cfg.expand_empty_elements = false;
    let mut b = Builder {
        src,
        domain,
        stack: Vec::new(),
        root: None,
        count: 0,
        skipping: 0,
        opaque: None,
    };
    loop {
        let start = reader.buffer_position() as usize;
        let ev = reader.read_event().map_err(|e| {
            let pos = reader.error_position() as usize;
            b.err(pos, e)
        })?;
        let end = reader.buffer_position() as usize;
        match ev {
            Event::Start(e) => {
                let el = b.open(&e, start)?;
                if b.skipping > 0 {
                    b.skipping += 1;
                } else if b.stack.len() == 1 && opaque.contains(&el.name.as_str()) {
                    b.opaque = Some(el);
                    b.skipping = 1;
                } else {
                    b.stack.push(el);
                }
            }
            Event::Empty(e) => {
                let el = b.open(&e, start)?;
                if b.skipping == 0 {
                    b.close(el, end);
                }
            }
            Event::End(_) if b.skipping > 0 => {
                b.skipping -= 1;
                if b.skipping == 0
                    && let Some(el) = b.opaque.take()
                {
                    b.close(el, end);
                }
            }
            Event::End(_) => {
                let el = b
                    .stack
                    .pop()
                    .ok_or_else(|| b.err(start, "unexpected end tag"))?;
                b.close(el, end);
            }
            Event::Text(t) => {
                let s = t.xml10_content();
                b.text(start, &s)?;
            }
            Event::CData(c) => {
                let s: &str = c.as_ref();
                b.text(start, s)?;
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => resolve_predefined_entity(&r)
                        .ok_or_else(|| b.err(start, format_args!("undefined entity '&{};'", &*r)))?
                        .to_owned(),
                    Err(e) => return Err(b.err(start, e)),
                };
                b.text(start, &resolved)?;
            }
            Event::DocType(_) => {
                return Err(b.err(start, "document type declarations are not accepted"));
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !b.stack.is_empty() {
        return Err(b.err(src.len(), "document ends inside an element"));
    }
    b.root
        .ok_or_else(|| Error::xml(domain, "document has no root element"))
}

/// Escapes text for an element body, as libvirt's `virBufferEscapeString` does, plus
/// a carriage return as `&#13;` (a reader would turn a raw one into a newline).
pub fn escape(s: &str) -> String {
    escape_with(s, false)
}

/// Escapes text for a single-quoted attribute: as [`escape`], plus tab and newline as
/// character references, because a reader normalizes raw ones in attributes to spaces.
pub fn escape_attr(s: &str) -> String {
    escape_with(s, true)
}

fn escape_with(s: &str, attr: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            '\r' => out.push_str("&#13;"),
            '\t' if attr => out.push_str("&#9;"),
            '\n' if attr => out.push_str("&#10;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_tree_with_spans_and_text() {
        let src = "<?xml version='1.0'?>\n<a x='1&amp;2'><!-- c --><b>t&lt;&#65;<![CDATA[<z>]]></b><c/></a>\n";
        let root = parse(src, ErrorDomain::None).unwrap();
        assert_eq!(root.name, "a");
        assert_eq!(root.attr("x"), Some("1&2"));
        assert_eq!(root.child("b").unwrap().text, "t<A<z>");
        assert_eq!(&src[root.child("c").unwrap().span.clone()], "<c/>");
        assert_eq!(&src[root.span.clone()], &src[22..src.len() - 1]);
    }

    #[test]
    fn refuses_hostile_documents() {
        let cases = [
            ("<!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>", "document type"),
            ("<a>&e;</a>", "undefined entity"),
            ("<a>&#0;</a>", "line 1"),
            ("<a>\0</a>", "NUL byte"),
            ("<a><b></a>", "line 1"),
            ("<a></a><b/>", "extra content"),
            ("", "no root"),
            ("<a", "line 1"),
            ("<a x='1' x='2'/>", "line 1"),
        ];
        for (doc, what) in cases {
            let e = parse(doc, ErrorDomain::None).unwrap_err();
            assert_eq!(e.code(), crate::error::ErrorCode::XmlError, "{doc}");
            assert!(e.message().contains(what), "{doc}: {}", e.message());
        }
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert!(
            parse(&deep, ErrorDomain::None)
                .unwrap_err()
                .message()
                .contains("nesting")
        );
        assert!(
            parse_bytes(b"<a>\xff</a>", ErrorDomain::None)
                .unwrap_err()
                .message()
                .contains("UTF-8")
        );
    }
}
