//! Parse, then prepare with the planner's rules. Each is what one libvirt entry point does before it talks to QEMU.

use crate::error::{Error, ErrorDomain, Result};
use crate::model::checkpoint::CheckpointDef;
use crate::model::domain::Domain;
use crate::plan::align::{align_disks, assign_bitmap_names};
use crate::xml::checkpoint::{ParseOptions, parse_checkpoint};
use crate::xml::domain::domain_from_element;
use crate::xml::tree;

/// Seconds since the epoch, for the creation time of new checkpoints.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Parses checkpoint XML and prepares it as libvirt does before use:
///
/// * create (no REDEFINE): with a domain, disks are aligned against it (SPEC 2.3);
/// * REDEFINE with an embedded `<domain>`: its UUID must match `dom`'s (when both are
///   known), then disks are aligned against the embedded definition;
/// * REDEFINE without one: only default bitmap names are filled in;
/// * no domain and no REDEFINE: parsed only, as libvirt's XML tests do;
/// * `parse_only`: parsed only, nothing aligned (libvirt's parse before its post-parse hook).
pub fn checkpoint_def_from_xml(
    xml: &[u8],
    dom: Option<&Domain>,
    opts: ParseOptions,
    now: i64,
) -> Result<CheckpointDef> {
    let mut def = parse_checkpoint(xml, opts, now)?;
    if opts.parse_only {
        return Ok(def);
    }
    if opts.redefine {
        match &def.domain_xml {
            Some(text) => {
                let root = tree::parse(text, ErrorDomain::DomainCheckpoint)?;
                let embedded = domain_from_element(&root)?;
                if let Some(live) = dom
                    && !live.uuid.is_empty()
                    && !embedded.uuid.is_empty()
                    && !live.uuid.eq_ignore_ascii_case(&embedded.uuid)
                {
                    return Err(Error::invalid_arg(
                        ErrorDomain::DomainCheckpoint,
                        format_args!(
                            "definition for checkpoint {} must use uuid {}",
                            def.name, live.uuid
                        ),
                    ));
                }
                align_disks(&mut def, &embedded)?;
            }
            None => assign_bitmap_names(&mut def),
        }
    } else if let Some(dom) = dom {
        align_disks(&mut def, dom)?;
    }
    Ok(def)
}
