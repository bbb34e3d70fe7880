//! A domain's checkpoints as a forest with one "current" checkpoint, with libvirt's
//! semantics (virdomainmomentobjlist.c, qemu_checkpoint.c; SPEC 2.4, 3, 4, 5).
//!
//! Changes that the driver must confirm with QEMU first (delete) are planned without
//! touching the tree ([`CheckpointList::plan_delete`]) and applied afterwards
//! ([`CheckpointList::apply_delete`]), so a refused transaction leaves everything as
//! it was.

use std::collections::HashMap;

use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::model::checkpoint::CheckpointDef;

/// Which checkpoints a listing returns (libvirt's `VIR_DOMAIN_CHECKPOINT_LIST_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Without a start checkpoint: only roots (`LIST_ROOTS`).
    pub roots: bool,
    /// With a start checkpoint: all descendants, not only children
    /// (`LIST_DESCENDANTS`, the same bit as `LIST_ROOTS` in libvirt).
    pub descendants: bool,
    /// Parents before children (`LIST_TOPOLOGICAL`).
    pub topological: bool,
    /// Only checkpoints without children (`LIST_LEAVES`).
    pub leaves: bool,
    /// Only checkpoints with children (`LIST_NO_LEAVES`).
    pub no_leaves: bool,
}

impl ListOptions {
    /// Every checkpoint, parents before children.
    pub const TOPOLOGICAL: ListOptions = ListOptions {
        roots: false,
        descendants: false,
        topological: true,
        leaves: false,
        no_leaves: false,
    };
}

/// What a delete covers (libvirt's `VIR_DOMAIN_CHECKPOINT_DELETE_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// Discard the checkpoint's descendants too (`DELETE_CHILDREN`).
    pub children: bool,
    /// Change metadata only, discard no bitmap (`DELETE_METADATA_ONLY`).
    pub metadata_only: bool,
    /// Discard the descendants, keep the checkpoint (`DELETE_CHILDREN_ONLY`).
    pub children_only: bool,
}

impl DeleteOptions {
    /// Metadata only, the checkpoint alone.
    pub const METADATA_ONLY: DeleteOptions = DeleteOptions {
        children: false,
        metadata_only: true,
        children_only: false,
    };
}

#[derive(Debug, Clone)]
struct Entry {
    def: CheckpointDef,
    parent: Option<usize>,
    children: Vec<usize>,
}

/// The checkpoints of one domain.
#[derive(Debug, Clone, Default)]
pub struct CheckpointList {
    slots: Vec<Option<Entry>>,
    index: HashMap<String, usize>,
    roots: Vec<usize>,
    current: Option<usize>,
}

/// What a delete will do, computed before anything changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeletePlan {
    /// The checkpoint named in the request.
    pub target: String,
    /// The request's options.
    pub options: DeleteOptions,
    /// Checkpoints whose bitmaps must be discarded, in libvirt's order: the
    /// descendants each before its own (siblings newest first), then the target unless
    /// CHILDREN_ONLY; empty with METADATA_ONLY.
    pub discard: Vec<String>,
    /// Checkpoints whose metadata goes away.
    pub removed: Vec<String>,
    /// Children that get a new parent: (child, new parent or `None` for a root).
    pub reparent: Vec<(String, Option<String>)>,
    /// The current checkpoint afterwards.
    pub new_current: Option<String>,
}

fn no_checkpoint(name: &str) -> Error {
    Error::new(
        ErrorCode::NoDomainCheckpoint,
        ErrorDomain::Qemu,
        format_args!("no domain checkpoint with matching name '{name}'"),
    )
}

impl CheckpointList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of checkpoints.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn entry(&self, i: usize) -> &Entry {
        self.slots[i].as_ref().expect("indexed slots are live")
    }

    fn entry_mut(&mut self, i: usize) -> &mut Entry {
        self.slots[i].as_mut().expect("indexed slots are live")
    }

    fn idx(&self, name: &str) -> Result<usize> {
        self.index
            .get(name)
            .copied()
            .ok_or_else(|| no_checkpoint(name))
    }

    /// The definition of checkpoint `name` (VIR_ERR_NO_DOMAIN_CHECKPOINT if unknown).
    pub fn get(&self, name: &str) -> Result<&CheckpointDef> {
        Ok(&self.entry(self.idx(name)?).def)
    }

    /// Whether a checkpoint of that name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// The current checkpoint's name.
    pub fn current(&self) -> Option<&str> {
        self.current.map(|i| self.entry(i).def.name.as_str())
    }

    /// Makes `name` current (`None`: no current checkpoint).
    pub fn set_current(&mut self, name: Option<&str>) -> Result<()> {
        self.current = match name {
            Some(n) => Some(self.idx(n)?),
            None => None,
        };
        Ok(())
    }

    /// The parent of `name`, if it has one.
    pub fn parent(&self, name: &str) -> Result<Option<&str>> {
        let e = self.entry(self.idx(name)?);
        Ok(e.parent.map(|p| self.entry(p).def.name.as_str()))
    }

    fn link(&mut self, i: usize, parent: Option<usize>) {
        self.entry_mut(i).parent = parent;
        match parent {
            Some(p) => self.entry_mut(p).children.push(i),
            None => self.roots.push(i),
        }
    }

    fn unlink(&mut self, i: usize) {
        match self.entry(i).parent {
            Some(p) => self.entry_mut(p).children.retain(|&c| c != i),
            None => self.roots.retain(|&r| r != i),
        }
        self.entry_mut(i).parent = None;
    }

    fn insert(&mut self, def: CheckpointDef, parent: Option<usize>) -> usize {
        let i = self.slots.len();
        self.index.insert(def.name.clone(), i);
        self.slots.push(Some(Entry {
            def,
            parent: None,
            children: Vec::new(),
        }));
        self.link(i, parent);
        i
    }

    /// Adds a newly created checkpoint: its parent is the current checkpoint and it
    /// becomes current (qemuCheckpointCreate, SPEC 3 steps 5, 7, 8). A name in use is
    /// VIR_ERR_OPERATION_FAILED "domain moment %s already exists".
    pub fn add_created(&mut self, mut def: CheckpointDef) -> Result<()> {
        if self.contains(&def.name) {
            return Err(Error::new(
                ErrorCode::OperationFailed,
                ErrorDomain::Domain,
                format_args!("domain moment {} already exists", def.name),
            ));
        }
        def.parent = self.current().map(str::to_owned);
        let parent = self.current;
        let i = self.insert(def, parent);
        self.current = Some(i);
        Ok(())
    }

    /// Replaces the definition of an existing checkpoint, keeping its place in the
    /// tree (its name and parent are kept from the tree, whatever `def` says).
    pub fn replace_def(&mut self, mut def: CheckpointDef) -> Result<()> {
        let i = self.idx(&def.name)?;
        let entry = self.entry_mut(i);
        def.parent = entry.def.parent.clone();
        entry.def = def;
        Ok(())
    }

    /// The cycle checks of a redefinition (virDomainMomentCheckCycles).
    pub fn check_cycles(&self, def: &CheckpointDef) -> Result<()> {
        let Some(parent) = def.parent.as_deref() else {
            return Ok(());
        };
        let inval = |d: std::fmt::Arguments<'_>| Error::invalid_arg(ErrorDomain::Domain, d);
        if parent == def.name {
            return Err(inval(format_args!(
                "cannot set moment {} as its own parent",
                def.name
            )));
        }
        let mut cur = self.index.get(parent).copied().ok_or_else(|| {
            inval(format_args!(
                "parent {parent} for moment {} not found",
                def.name
            ))
        })?;
        loop {
            let e = self.entry(cur);
            if e.def.name == def.name {
                return Err(inval(format_args!(
                    "parent {parent} would create cycle to {}",
                    def.name
                )));
            }
            match e.parent {
                Some(p) => cur = p,
                None => return Ok(()),
            }
        }
    }

    /// Adds or replaces a checkpoint described by redefinition (qemuCheckpointRedefine,
    /// SPEC 4): cycle checks; an existing checkpoint is replaced in place and keeps its
    /// children; it becomes current if its parent is the current checkpoint or there
    /// is no current one. Returns whether it became current.
    pub fn redefine(&mut self, def: CheckpointDef) -> Result<bool> {
        self.check_cycles(&def)?;
        let parent = match def.parent.as_deref() {
            Some(p) => Some(self.idx(p)?),
            None => None,
        };
        let becomes_current =
            self.current.is_none() || (parent.is_some() && parent == self.current);
        let i = match self.index.get(&def.name).copied() {
            Some(i) => {
                self.unlink(i);
                self.entry_mut(i).def = def;
                self.link(i, parent);
                i
            }
            None => self.insert(def, parent),
        };
        if becomes_current {
            self.current = Some(i);
        }
        Ok(becomes_current)
    }

    /// The descendants from `start` in the order libvirt's
    /// virDomainMomentForEachDescendant visits them, which is the order a delete with
    /// children discards them in: each child before its own descendants, and among
    /// siblings the newest first (libvirt prepends a child to its parent's list).
    fn libvirt_descendants(&self, start: &[usize], out: &mut Vec<usize>) {
        let mut stack: Vec<usize> = start.to_vec();
        while let Some(i) = stack.pop() {
            out.push(i);
            stack.extend(self.entry(i).children.iter());
        }
    }

    fn preorder(&self, start: &[usize], out: &mut Vec<usize>) {
        let mut stack: Vec<usize> = start.iter().rev().copied().collect();
        while let Some(i) = stack.pop() {
            out.push(i);
            stack.extend(self.entry(i).children.iter().rev());
        }
    }

    /// Names as `virDomainListAllCheckpoints` (`from` = None) or
    /// `virDomainCheckpointListAllChildren` (`from` = Some) list them, with libvirt's
    /// filters, in libvirt's order: roots, children and descendants as its walk of
    /// each parent's child list gives them, each before its own descendants and among
    /// siblings the newest first (libvirt prepends a child to that list); the whole
    /// list without [`ListOptions::topological`] in creation order (libvirt's is its
    /// hash table's, which virsh sorts by name).
    pub fn list(&self, from: Option<&str>, opts: ListOptions) -> Result<Vec<&str>> {
        let mut picked = Vec::new();
        match from {
            None if opts.roots => picked.extend(self.roots.iter().rev().copied()),
            None if opts.topological => self.libvirt_descendants(&self.roots, &mut picked),
            None => picked.extend(self.index_order()),
            Some(name) => {
                let children = &self.entry(self.idx(name)?).children;
                if opts.descendants {
                    self.libvirt_descendants(children, &mut picked);
                } else {
                    picked.extend(children.iter().rev().copied());
                }
            }
        }
        let (leaves, no_leaves) = (opts.leaves, opts.no_leaves);
        Ok(picked
            .into_iter()
            .filter(|&i| {
                let is_leaf = self.entry(i).children.is_empty();
                leaves == no_leaves || (leaves && is_leaf) || (no_leaves && !is_leaf)
            })
            .map(|i| self.entry(i).def.name.as_str())
            .collect())
    }

    fn index_order(&self) -> impl Iterator<Item = usize> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|_| i))
    }

    /// Plans `virDomainCheckpointDelete(name, flags)` without changing anything.
    pub fn plan_delete(&self, name: &str, opts: DeleteOptions) -> Result<DeletePlan> {
        let i = self.idx(name)?;
        let entry = self.entry(i);
        let mut plan = DeletePlan {
            target: name.to_owned(),
            options: opts,
            ..Default::default()
        };
        let mut current = self.current;
        let mut removed = Vec::new();
        if opts.children || opts.children_only {
            let mut desc = Vec::new();
            self.libvirt_descendants(&entry.children, &mut desc);
            if current.is_some_and(|c| desc.contains(&c)) {
                current = Some(i);
            }
            removed.extend(desc);
        }
        if !opts.children_only {
            if !opts.children {
                for &c in &entry.children {
                    plan.reparent.push((
                        self.entry(c).def.name.clone(),
                        entry.parent.map(|p| self.entry(p).def.name.clone()),
                    ));
                }
            }
            if current == Some(i) {
                current = entry.parent;
            }
            removed.push(i);
        }
        plan.removed = removed
            .iter()
            .map(|&r| self.entry(r).def.name.clone())
            .collect();
        if !opts.metadata_only {
            plan.discard = plan.removed.clone();
        }
        plan.new_current = current.map(|c| self.entry(c).def.name.clone());
        Ok(plan)
    }

    /// Records in `plan` (made by [`plan_delete`](Self::plan_delete) on this list) that
    /// the discard of checkpoint `name` failed, for a driver that goes on with the
    /// other discards as libvirt does (qemuCheckpointDelete over its descendants):
    /// `name` keeps its bitmaps and its metadata, and so does the checkpoint the delete
    /// names, which libvirt keeps once any discard failed (a delete without children
    /// then changes nothing). A checkpoint that stays while its parent goes gets its
    /// nearest ancestor that stays as parent, its metadata rewritten (libvirt leaves it
    /// naming its deleted parent, a root once reloaded); the current checkpoint is unset
    /// if it goes (libvirt unsets it as it discards it), else kept. Apply the rest with
    /// [`apply_delete`](Self::apply_delete) once the other discards went through. A
    /// checkpoint the plan does not discard is VIR_ERR_INVALID_ARG, the plan unchanged.
    pub fn refuse_discard(&self, plan: &mut DeletePlan, name: &str) -> Result<()> {
        if !plan.discard.iter().any(|n| n == name) {
            return Err(Error::invalid_arg(
                ErrorDomain::Domain,
                format_args!("checkpoint '{name}' is not discarded by this delete"),
            ));
        }
        let target = self.idx(&plan.target)?;
        if !plan.options.children && !plan.options.children_only {
            plan.discard.clear();
            plan.removed.clear();
            plan.reparent.clear();
            plan.new_current = self.current().map(str::to_owned);
            return Ok(());
        }
        let target_name = plan.target.clone();
        plan.discard.retain(|n| n != name && *n != target_name);
        plan.removed.retain(|n| n != name && *n != target_name);
        let goes = |i: usize| plan.removed.contains(&self.entry(i).def.name);
        let mut desc = Vec::new();
        self.preorder(&self.entry(target).children, &mut desc);
        plan.reparent = desc
            .into_iter()
            .filter(|&i| !goes(i) && self.entry(i).parent.is_some_and(goes))
            .map(|i| {
                let mut p = self.entry(i).parent;
                while let Some(up) = p.filter(|&up| goes(up)) {
                    p = self.entry(up).parent;
                }
                (
                    self.entry(i).def.name.clone(),
                    p.map(|p| self.entry(p).def.name.clone()),
                )
            })
            .collect();
        plan.new_current = self
            .current
            .filter(|&c| !goes(c))
            .map(|c| self.entry(c).def.name.clone());
        Ok(())
    }

    /// Applies a plan made by [`plan_delete`](Self::plan_delete) on this list, once
    /// QEMU accepted the discards. Returns the names whose metadata changed and must be
    /// written again (the re-parented children).
    pub fn apply_delete(&mut self, plan: &DeletePlan) -> Result<Vec<String>> {
        for n in plan
            .removed
            .iter()
            .chain(plan.reparent.iter().map(|(c, _)| c))
        {
            self.idx(n)?;
        }
        let mut rewrite = Vec::new();
        for (child, parent) in &plan.reparent {
            let c = self.idx(child)?;
            let p = match parent {
                Some(p) => Some(self.idx(p)?),
                None => None,
            };
            self.unlink(c);
            self.link(c, p);
            self.entry_mut(c).def.parent = parent.clone();
            rewrite.push(child.clone());
        }
        for name in &plan.removed {
            let i = self.idx(name)?;
            let children = std::mem::take(&mut self.entry_mut(i).children);
            for c in children {
                self.entry_mut(c).parent = None; // removed together with i (deepest first)
            }
            self.unlink(i);
            self.index.remove(name);
            self.slots[i] = None;
        }
        self.current = match &plan.new_current {
            Some(n) => Some(self.idx(n)?),
            None => None,
        };
        Ok(rewrite)
    }

    /// Rebuilds parent/child links from the definitions' parent names (after a load):
    /// a checkpoint whose parent is unknown becomes a root. The current checkpoint is
    /// the only leaf, if there is exactly one (virDomainCheckpointUpdateRelations).
    pub fn from_defs(defs: Vec<CheckpointDef>) -> Self {
        let mut list = CheckpointList::new();
        let mut pending: Vec<(usize, Option<String>)> = Vec::with_capacity(defs.len());
        for def in defs {
            if list.contains(&def.name) {
                continue;
            }
            let parent = def.parent.clone();
            let i = list.slots.len();
            list.index.insert(def.name.clone(), i);
            list.slots.push(Some(Entry {
                def,
                parent: None,
                children: Vec::new(),
            }));
            pending.push((i, parent));
        }
        for (i, parent) in pending {
            let p = parent
                .and_then(|p| list.index.get(&p).copied())
                .filter(|&p| p != i);
            // A parent that would close a cycle is dropped: the entry becomes a root.
            let p = p.filter(|&p| !list.is_ancestor_or_self(i, p));
            list.link(i, p);
        }
        let current = {
            let mut leaves = list
                .index_order()
                .filter(|&i| list.entry(i).children.is_empty());
            match (leaves.next(), leaves.next()) {
                (Some(l), None) => Some(l),
                _ => None,
            }
        };
        list.current = current;
        list
    }

    fn is_ancestor_or_self(&self, anc: usize, mut node: usize) -> bool {
        loop {
            if node == anc {
                return true;
            }
            match self.entry(node).parent {
                Some(p) => node = p,
                None => return false,
            }
        }
    }

    /// The definition of checkpoint `index` of `plan`'s discard list (in order).
    pub fn discarded(&self, plan: &DeletePlan, index: usize) -> Result<&CheckpointDef> {
        let name = plan.discard.get(index).ok_or_else(|| {
            Error::invalid_arg(
                ErrorDomain::Qemu,
                format_args!(
                    "discard index {index} out of range (the plan discards {})",
                    plan.discard.len()
                ),
            )
        })?;
        self.get(name)
    }

    /// Every definition, parents before children: what the reconcile and the backup
    /// resolver take.
    pub fn topological(&self) -> Vec<&CheckpointDef> {
        let mut order = Vec::with_capacity(self.index.len());
        self.preorder(&self.roots, &mut order);
        order.into_iter().map(|i| &self.entry(i).def).collect()
    }

    /// Every definition, in creation order.
    pub fn defs(&self) -> impl Iterator<Item = &CheckpointDef> {
        self.index_order().map(|i| &self.entry(i).def)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(name: &str) -> CheckpointDef {
        CheckpointDef {
            name: name.into(),
            ..Default::default()
        }
    }

    /// a -> b -> c, b -> d (current d), plus an independent redefined root r.
    fn sample() -> CheckpointList {
        let mut l = CheckpointList::new();
        l.add_created(def("a")).unwrap();
        l.add_created(def("b")).unwrap();
        l.add_created(def("c")).unwrap();
        l.set_current(Some("b")).unwrap();
        l.add_created(def("d")).unwrap();
        l
    }

    #[test]
    fn create_links_to_current_and_becomes_current() {
        let l = sample();
        assert_eq!(l.current(), Some("d"));
        assert_eq!(l.parent("d").unwrap(), Some("b"));
        assert_eq!(l.get("d").unwrap().parent.as_deref(), Some("b"));
        assert_eq!(l.parent("a").unwrap(), None);
        let mut l = l;
        let e = l.add_created(def("c")).unwrap_err();
        assert_eq!(e.code(), ErrorCode::OperationFailed);
        assert_eq!(
            e.message(),
            "operation failed: domain moment c already exists"
        );
        let e = l.get("zz").unwrap_err();
        assert_eq!(e.code(), ErrorCode::NoDomainCheckpoint);
        assert_eq!(
            e.message(),
            "Domain checkpoint not found: no domain checkpoint with matching name 'zz'"
        );
    }

    #[test]
    fn listing_flags() {
        let l = sample();
        assert_eq!(
            l.list(None, ListOptions::default()).unwrap(),
            ["a", "b", "c", "d"]
        );
        assert_eq!(
            l.list(
                None,
                ListOptions {
                    roots: true,
                    ..Default::default()
                }
            )
            .unwrap(),
            ["a"]
        );
        assert_eq!(
            l.list(
                None,
                ListOptions {
                    topological: true,
                    ..Default::default()
                }
            )
            .unwrap(),
            ["a", "b", "d", "c"],
            "siblings newest first, as stock libvirt 9.0 lists them"
        );
        assert_eq!(
            l.list(
                None,
                ListOptions {
                    leaves: true,
                    ..Default::default()
                }
            )
            .unwrap(),
            ["c", "d"]
        );
        assert_eq!(
            l.list(
                None,
                ListOptions {
                    no_leaves: true,
                    ..Default::default()
                }
            )
            .unwrap(),
            ["a", "b"]
        );
        assert_eq!(
            l.list(
                None,
                ListOptions {
                    leaves: true,
                    no_leaves: true,
                    ..Default::default()
                }
            )
            .unwrap(),
            ["a", "b", "c", "d"]
        );
        assert_eq!(l.list(Some("a"), ListOptions::default()).unwrap(), ["b"]);
        assert_eq!(
            l.list(
                Some("a"),
                ListOptions {
                    descendants: true,
                    ..Default::default()
                }
            )
            .unwrap(),
            ["b", "d", "c"]
        );
        assert_eq!(
            l.list(
                Some("a"),
                ListOptions {
                    descendants: true,
                    leaves: true,
                    ..Default::default()
                }
            )
            .unwrap(),
            ["d", "c"]
        );
        assert_eq!(
            l.list(Some("b"), ListOptions::default()).unwrap(),
            ["d", "c"]
        );
        assert_eq!(
            l.list(
                Some("b"),
                ListOptions {
                    no_leaves: true,
                    ..Default::default()
                }
            )
            .unwrap(),
            Vec::<&str>::new()
        );
        assert!(l.list(Some("zz"), ListOptions::default()).is_err());
    }

    #[test]
    fn topological_order_puts_parents_first() {
        let mut l = CheckpointList::new();
        let mut x = def("x");
        x.creation_time = 1;
        l.redefine(x).unwrap();
        let mut y = def("y");
        y.parent = Some("x".into());
        l.redefine(y).unwrap();
        let mut z = def("z"); // a later root whose child was defined first
        z.parent = None;
        l.redefine(z).unwrap();
        let mut w = def("w");
        w.parent = Some("z".into());
        l.redefine(w).unwrap();
        let order = l
            .list(
                None,
                ListOptions {
                    topological: true,
                    ..Default::default()
                },
            )
            .unwrap();
        for (child, parent) in [("y", "x"), ("w", "z")] {
            let pos = |n| order.iter().position(|o| *o == n).unwrap();
            assert!(pos(parent) < pos(child), "{order:?}");
        }
    }

    #[test]
    fn redefine_cycles_and_replacement() {
        let mut l = sample();
        let mut own = def("x");
        own.parent = Some("x".into());
        assert_eq!(
            l.redefine(own).unwrap_err().message(),
            "invalid argument: cannot set moment x as its own parent"
        );
        let mut orphan = def("x");
        orphan.parent = Some("nope".into());
        assert_eq!(
            l.redefine(orphan).unwrap_err().message(),
            "invalid argument: parent nope for moment x not found"
        );
        let mut cyc = def("b");
        cyc.parent = Some("c".into());
        assert_eq!(
            l.redefine(cyc).unwrap_err().message(),
            "invalid argument: parent c would create cycle to b"
        );
        // Replace b in place: children kept, description updated.
        let mut b = def("b");
        b.parent = Some("a".into());
        b.description = Some("new".into());
        assert!(!l.redefine(b).unwrap(), "b's parent a is not current");
        assert_eq!(l.get("b").unwrap().description.as_deref(), Some("new"));
        assert_eq!(
            l.list(Some("b"), ListOptions::default()).unwrap(),
            ["d", "c"]
        );
        // A child of the current one becomes current.
        let mut e = def("e");
        e.parent = Some("d".into());
        assert!(l.redefine(e).unwrap());
        assert_eq!(l.current(), Some("e"));
        // With no current checkpoint, a redefined root becomes current.
        let mut fresh = CheckpointList::new();
        assert!(fresh.redefine(def("r")).unwrap());
    }

    #[test]
    fn delete_plain_reparents_children() {
        let mut l = sample();
        let plan = l.plan_delete("b", DeleteOptions::default()).unwrap();
        assert_eq!(plan.discard, ["b"]);
        assert_eq!(plan.removed, ["b"]);
        assert_eq!(
            plan.reparent,
            [
                ("c".to_owned(), Some("a".to_owned())),
                ("d".to_owned(), Some("a".to_owned()))
            ]
        );
        assert_eq!(plan.new_current.as_deref(), Some("d"));
        let before = l.list(None, ListOptions::default()).unwrap().join(",");
        assert_eq!(before, "a,b,c,d", "planning changes nothing");
        let rewrite = l.apply_delete(&plan).unwrap();
        assert_eq!(rewrite, ["c", "d"]);
        // libvirt moves b's children, in their order, to the front of a's list.
        assert_eq!(
            l.list(Some("a"), ListOptions::default()).unwrap(),
            ["d", "c"]
        );
        assert_eq!(l.get("c").unwrap().parent.as_deref(), Some("a"));
        // Deleting the current root: children become roots, no current.
        let plan = l.plan_delete("a", DeleteOptions::default()).unwrap();
        l.apply_delete(&plan).unwrap();
        assert_eq!(
            l.list(
                None,
                ListOptions {
                    roots: true,
                    ..Default::default()
                }
            )
            .unwrap(),
            ["d", "c"]
        );
        assert_eq!(l.get("c").unwrap().parent, None);
    }

    #[test]
    fn delete_current_moves_current_to_parent() {
        let mut l = sample();
        let plan = l
            .plan_delete(
                "d",
                DeleteOptions {
                    metadata_only: true,
                    ..Default::default()
                },
            )
            .unwrap();
        assert!(plan.discard.is_empty());
        assert_eq!(plan.new_current.as_deref(), Some("b"));
        l.apply_delete(&plan).unwrap();
        assert_eq!(l.current(), Some("b"));
        l.add_created(def("f")).unwrap();
        assert_eq!(l.parent("f").unwrap(), Some("b"));
    }

    #[test]
    fn delete_children_and_children_only() {
        let l = sample();
        let plan = l
            .plan_delete(
                "a",
                DeleteOptions {
                    children: true,
                    ..Default::default()
                },
            )
            .unwrap();
        // libvirt's virDomainMomentForEachDescendant: a child before its own children,
        // siblings newest first (d was created after c); the target last.
        assert_eq!(
            plan.discard,
            ["b", "d", "c", "a"],
            "libvirt's order, target last"
        );
        assert_eq!(plan.new_current, None);
        let plan = l
            .plan_delete(
                "b",
                DeleteOptions {
                    children_only: true,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(plan.discard, ["d", "c"]);
        assert_eq!(
            plan.new_current.as_deref(),
            Some("b"),
            "current was a descendant"
        );
        let mut l2 = l.clone();
        l2.apply_delete(&plan).unwrap();
        assert_eq!(l2.list(None, ListOptions::default()).unwrap(), ["a", "b"]);
        assert_eq!(
            l2.list(
                None,
                ListOptions {
                    leaves: true,
                    ..Default::default()
                }
            )
            .unwrap(),
            ["b"]
        );
        let plan = l
            .plan_delete(
                "b",
                DeleteOptions {
                    children: true,
                    metadata_only: true,
                    ..Default::default()
                },
            )
            .unwrap();
        assert!(plan.discard.is_empty());
        assert_eq!(plan.removed, ["d", "c", "b"]);
        assert_eq!(plan.new_current.as_deref(), Some("a"));
        assert!(l.plan_delete("zz", DeleteOptions::default()).is_err());
    }

    #[test]
    fn relations_rebuilt_from_definitions() {
        let mut defs = Vec::new();
        for (n, p) in [
            ("a", None),
            ("b", Some("a")),
            ("c", Some("b")),
            ("x", Some("gone")),
        ] {
            let mut d = def(n);
            d.parent = p.map(str::to_owned);
            defs.push(d);
        }
        let l = CheckpointList::from_defs(defs.clone());
        assert_eq!(
            l.list(
                None,
                ListOptions {
                    roots: true,
                    ..Default::default()
                }
            )
            .unwrap(),
            ["x", "a"]
        );
        assert_eq!(l.current(), None, "two leaves: no current");
        defs.pop();
        let l = CheckpointList::from_defs(defs.clone());
        assert_eq!(l.current(), Some("c"), "the only leaf is current");
        // A cycle in foreign metadata does not hang or crash.
        let mut p = def("p");
        p.parent = Some("q".into());
        let mut q = def("q");
        q.parent = Some("p".into());
        let l = CheckpointList::from_defs(vec![p, q]);
        assert_eq!(
            l.list(
                None,
                ListOptions {
                    topological: true,
                    ..Default::default()
                }
            )
            .unwrap()
            .len(),
            2
        );
    }

    /// A delete with children whose discard of one descendant failed, the others gone
    /// (libvirt's walk goes on): the refused one and the target stay, a kept one whose
    /// parent goes is re-parented to the nearest ancestor that stays, the current one
    /// unset when it goes; a plain delete whose discard failed changes nothing.
    #[test]
    fn a_refused_discard_keeps_that_checkpoint_and_the_target() {
        // a -> b -> {c -> e, d} (d current, the newest child of b).
        let mut l = sample();
        l.set_current(Some("c")).unwrap();
        l.add_created(def("e")).unwrap();
        l.set_current(Some("d")).unwrap();
        let children = DeleteOptions {
            children: true,
            ..Default::default()
        };
        let plan = l.plan_delete("b", children).unwrap();
        assert_eq!(plan.discard, ["d", "c", "e", "b"]);

        // c refused: d and e go; e's parent c stays, so nothing moves.
        let mut p = plan.clone();
        l.refuse_discard(&mut p, "c").unwrap();
        assert_eq!(
            (p.discard.clone(), p.removed.clone()),
            (
                vec!["d".to_owned(), "e".to_owned()],
                vec!["d".to_owned(), "e".to_owned()]
            )
        );
        assert!(p.reparent.is_empty());
        assert_eq!(p.new_current, None, "the current one (d) went");
        let mut after = l.clone();
        after.apply_delete(&p).unwrap();
        assert_eq!(
            after.list(None, ListOptions::default()).unwrap(),
            ["a", "b", "c"]
        );
        assert_eq!(after.parent("c").unwrap(), Some("b"));

        // e refused: c goes, so e gets b, the nearest ancestor that stays.
        let mut p = plan.clone();
        l.refuse_discard(&mut p, "e").unwrap();
        assert_eq!(p.removed, ["d", "c"]);
        assert_eq!(p.reparent, [("e".to_owned(), Some("b".to_owned()))]);
        let mut after = l.clone();
        let rewritten = after.apply_delete(&p).unwrap();
        assert_eq!(rewritten, ["e"]);
        assert_eq!(after.parent("e").unwrap(), Some("b"));
        assert_eq!(after.get("e").unwrap().parent.as_deref(), Some("b"));
        assert_eq!(
            after.list(Some("b"), ListOptions::default()).unwrap(),
            ["e"]
        );

        // Two refusals, and the target's own refusal.
        let mut p = plan.clone();
        l.refuse_discard(&mut p, "c").unwrap();
        l.refuse_discard(&mut p, "d").unwrap();
        assert_eq!(p.removed, ["e"]);
        assert_eq!(
            p.new_current.as_deref(),
            Some("d"),
            "the current one stayed"
        );
        let e = l.refuse_discard(&mut p, "b").unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArg);

        // A plain delete whose own discard failed: nothing changes.
        let mut p = l.plan_delete("c", DeleteOptions::default()).unwrap();
        l.refuse_discard(&mut p, "c").unwrap();
        assert!(p.removed.is_empty() && p.reparent.is_empty());
        let mut after = l.clone();
        after.apply_delete(&p).unwrap();
        assert_eq!(after.list(None, ListOptions::default()).unwrap().len(), 5);
        assert_eq!(after.current(), Some("d"));
    }
}
