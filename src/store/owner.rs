//! Owners: independent backup consumers of one domain (one bitmap chain per backup
//! target, as Proxmox and KubeVirt keep them). A checkpoint owned by `O` is named
//! `O:NAME`: still a libvirt-valid name, so plain libvirt callers see ordinary
//! checkpoints, and the owner is visible on the bitmaps in the images too. Listing,
//! retention and delete can be limited to one owner, and nothing planned for one owner
//! ever touches another owner's checkpoints or bitmaps.

use super::list::{CheckpointList, DeleteOptions, DeletePlan};
use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::model::checkpoint::CheckpointDef;
use crate::plan::reconcile::FixPlan;

/// The separator between an owner and a checkpoint's own name.
pub const OWNER_SEPARATOR: char = ':';

/// The name of checkpoint `name` owned by `owner`. An owner is a non-empty name without
/// the separator, '/', a leading '.' or a newline.
pub fn owned_name(owner: &str, name: &str) -> Result<String> {
    if owner.is_empty()
        || owner.contains(OWNER_SEPARATOR)
        || owner.contains('/')
        || owner.contains('\n')
        || owner.starts_with('.')
    {
        return Err(Error::invalid_arg(
            ErrorDomain::Qemu,
            format_args!("'{owner}' cannot be a checkpoint owner"),
        ));
    }
    Ok(format!("{owner}{OWNER_SEPARATOR}{name}"))
}

/// The owner of a checkpoint or bitmap name, if it has one.
pub fn owner_of(name: &str) -> Option<&str> {
    name.split_once(OWNER_SEPARATOR).map(|(o, _)| o)
}

fn is_owned_by(name: &str, owner: &str) -> bool {
    owner_of(name) == Some(owner)
}

impl CheckpointList {
    /// The checkpoints of `owner`, parents before children.
    pub fn owned_by(&self, owner: &str) -> Vec<&CheckpointDef> {
        self.topological()
            .into_iter()
            .filter(|d| is_owned_by(&d.name, owner))
            .collect()
    }

    /// Plans deleting checkpoint `name` on behalf of `owner`: refused with
    /// VIR_ERR_OPERATION_INVALID when it, or a descendant the delete would discard,
    /// belongs to someone else.
    pub fn plan_delete_owned(
        &self,
        name: &str,
        owner: &str,
        opts: DeleteOptions,
    ) -> Result<DeletePlan> {
        let plan = self.plan_delete(name, opts)?;
        if let Some(other) = plan.removed.iter().find(|n| !is_owned_by(n, owner)) {
            return Err(Error::new(
                ErrorCode::OperationInvalid,
                ErrorDomain::Qemu,
                format_args!(
                    "checkpoint '{other}' does not belong to owner '{owner}': not deleting it"
                ),
            ));
        }
        Ok(plan)
    }

    /// Retention for `owner`: the delete plans, oldest first, that keep only its `keep`
    /// newest checkpoints (by creation). Each deletes one checkpoint (children
    /// re-parented); apply them in order, each after QEMU accepted its discard.
    pub fn plan_retention(&self, owner: &str, keep: usize) -> Result<Vec<DeletePlan>> {
        let mut mine: Vec<&CheckpointDef> = self
            .defs()
            .filter(|d| is_owned_by(&d.name, owner))
            .collect();
        mine.sort_by(|a, b| {
            a.creation_time
                .cmp(&b.creation_time)
                .then(a.name.cmp(&b.name))
        });
        let drop = mine.len().saturating_sub(keep);
        let mut plans = Vec::with_capacity(drop);
        let mut next = self.clone();
        for def in &mine[..drop] {
            let plan = next.plan_delete_owned(&def.name, owner, DeleteOptions::default())?;
            next.apply_delete(&plan)?;
            plans.push(plan);
        }
        Ok(plans)
    }
}

/// The reconcile fix limited to `owner`: only its own checkpoints' broken copies and
/// its own orphan bitmaps are removed, and only its own metadata changes.
pub fn fix_for_owner(fix: &FixPlan, owner: &str) -> FixPlan {
    FixPlan {
        removals: fix
            .removals
            .iter()
            .filter(|r| is_owned_by(&r.name, owner))
            .cloned()
            .collect(),
        broken: fix
            .broken
            .iter()
            .filter(|n| is_owned_by(n, owner))
            .cloned()
            .collect(),
        uncover: fix
            .uncover
            .iter()
            .filter(|(n, _)| is_owned_by(n, owner))
            .cloned()
            .collect(),
        drop: fix
            .drop
            .iter()
            .filter(|n| is_owned_by(n, owner))
            .cloned()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> CheckpointList {
        let mut l = CheckpointList::new();
        for (i, n) in ["a:1", "b:1", "a:2", "b:2", "a:3"].iter().enumerate() {
            l.add_created(CheckpointDef {
                name: (*n).into(),
                creation_time: 10 + i as i64,
                ..Default::default()
            })
            .unwrap();
        }
        l
    }

    #[test]
    fn names_and_owners() {
        assert_eq!(owned_name("a", "c1").unwrap(), "a:c1");
        assert!(crate::xml::checkpoint::is_valid_checkpoint_name("a:c1"));
        assert_eq!(owner_of("a:c1"), Some("a"));
        assert_eq!(owner_of("c1"), None);
        for bad in ["", "x:y", "x/y", ".x", "x\ny"] {
            assert!(owned_name(bad, "c").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn retention_and_delete_stay_within_one_owner() {
        let l = list();
        let names = |v: Vec<&CheckpointDef>| v.iter().map(|d| d.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(l.owned_by("a")), ["a:1", "a:2", "a:3"]);
        let plans = l.plan_retention("a", 1).unwrap();
        let gone: Vec<&str> = plans.iter().map(|p| p.target.as_str()).collect();
        assert_eq!(gone, ["a:1", "a:2"]);
        // b's checkpoints sit below a's in the single tree: deleting a:2 with its
        // children would take b:2, so it is refused for owner a.
        let e = l
            .plan_delete_owned(
                "a:2",
                "a",
                DeleteOptions {
                    children: true,
                    ..Default::default()
                },
            )
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::OperationInvalid);
        assert!(
            e.message().contains("'b:2' does not belong to owner 'a'"),
            "{e}"
        );
        assert!(
            l.plan_delete_owned("b:1", "a", DeleteOptions::default())
                .is_err()
        );
        assert!(l.plan_retention("b", 5).unwrap().is_empty());
    }
}
