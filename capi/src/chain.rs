//! The chain face: entry points at libvirt's own granularity for drivers that hold
//! their parsed state. A chain is the caller's array of node names (borrowed for the
//! call, top first), node data is built once per reply and kept, and the actions go
//! to the caller's [`vcp_action_sink`], one callback per action, so that no JSON text
//! is written or read on either side.

use std::borrow::Borrow;
use std::ffi::{CStr, c_char, c_int, c_uint, c_ulonglong, c_void};

use crate::checkpoint::vcp_checkpoint_def;
use crate::domain::vcp_domain;
use crate::nodes::vcp_node_data;
use crate::plan::{VCP_BLOCKCOMMIT_ACTIVE, VCP_BLOCKCOPY_SHALLOW};
use crate::step::vcp_step;
use crate::{Call, Out, collect_sized, guard, into_handle};
use virtcheckpoint::{
    Action, BlockJobEnd, Error, ErrorCode, ErrorDomain, Json, MergeOne, MergeSpec, NodeData,
    Result, backup_bitmap_actions, bitmap_chain_is_valid, bitmap_merge_actions,
    blockcopy_bitmap_actions, chain_blockjob_end_step, checkpoint_add_actions,
    commit_finish_actions, disk_discard, disk_size_actions, measured_size, merge_plan,
    propagate_bitmap_actions,
};

/// Where the chain face delivers the actions it plans, in transaction order. Each
/// callback returns 0, or -1 to stop the call (which then fails with
/// VIR_ERR_OPERATION_FAILED; the actions delivered so far are the caller's to drop).
/// A kind whose callback is NULL goes to `action` as JSON; with `action` NULL too the
/// call is refused before anything is delivered. The strings passed are valid during
/// the callback only.
#[repr(C)]
pub struct vcp_action_sink {
    /// Passed to every callback.
    pub opaque: *mut c_void,
    /// `block-dirty-bitmap-add` of bitmap `name` on node `node` (booleans 0 or 1);
    /// `granularity` 0 means QEMU's default (libvirt omits the member). May be NULL.
    pub bitmap_add: Option<
        unsafe extern "C" fn(
            opaque: *mut c_void,
            node: *const c_char,
            name: *const c_char,
            persistent: c_int,
            disabled: c_int,
            granularity: c_ulonglong,
        ) -> c_int,
    >,
    /// `block-dirty-bitmap-remove` of bitmap `name` on node `node`. May be NULL.
    pub bitmap_remove: Option<
        unsafe extern "C" fn(
            opaque: *mut c_void,
            node: *const c_char,
            name: *const c_char,
        ) -> c_int,
    >,
    /// `block-dirty-bitmap-merge` into bitmap `target` on node `node` of the
    /// `n_sources` bitmaps `source_names[i]` on nodes `source_nodes[i]`, in that
    /// order. May be NULL.
    pub bitmap_merge: Option<
        unsafe extern "C" fn(
            opaque: *mut c_void,
            node: *const c_char,
            target: *const c_char,
            n_sources: usize,
            source_nodes: *const *const c_char,
            source_names: *const *const c_char,
        ) -> c_int,
    >,
    /// Every action without a callback of its own, as one compact JSON object
    /// (`{"type":...,"data":{...}}`). May be NULL.
    pub action: Option<unsafe extern "C" fn(opaque: *mut c_void, json: *const c_char) -> c_int>,
}

impl Call {
    /// A chain of `n` node names, top first; a NULL entry is a layer without a node
    /// (it matches none).
    ///
    /// # Safety
    /// `p` points to `n` entries, each NULL or a NUL-terminated string, or `n` is 0.
    unsafe fn chain<'a>(&self, p: *const *const c_char, n: usize) -> Result<Vec<&'a str>> {
        // SAFETY: forwarded contract.
        let entries = unsafe { self.slice(p, n, "chain") }?;
        collect_sized(entries.iter().map(|&e| {
            // SAFETY: each entry NULL or NUL-terminated per the contract.
            unsafe { self.opt_str(e, "chain entry") }.map(Option::unwrap_or_default)
        }))
    }

    /// Optional node data: NULL is a reply without nodes.
    ///
    /// # Safety
    /// `p` is NULL or a live `vcp_node_data`.
    unsafe fn nodes_or_empty<'a>(&self, p: *const vcp_node_data) -> &'a NodeData {
        static EMPTY: std::sync::OnceLock<NodeData> = std::sync::OnceLock::new();
        // SAFETY: forwarded contract.
        match unsafe { self.opt_handle(p) } {
            Some(n) => &n.0,
            None => EMPTY.get_or_init(NodeData::new),
        }
    }

    /// The caller's sink, checked: it can take every action of `actions`.
    ///
    /// # Safety
    /// `p` is NULL or a readable `vcp_action_sink`.
    pub(crate) unsafe fn sink<'a>(&self, p: *const vcp_action_sink) -> Result<&'a vcp_action_sink> {
        // SAFETY: forwarded contract.
        let sink = unsafe { self.handle(p, "sink") }?;
        if sink.action.is_none()
            && (sink.bitmap_add.is_none()
                || sink.bitmap_remove.is_none()
                || sink.bitmap_merge.is_none())
        {
            return Err(Error::invalid_arg(
                ErrorDomain::None,
                format_args!(
                    "sink in {} needs an action callback for the kinds it has no callback for",
                    self.func
                ),
            ));
        }
        Ok(sink)
    }
}

fn refused(kind: &str) -> Error {
    Error::new(
        ErrorCode::OperationFailed,
        ErrorDomain::None,
        format_args!("the caller's sink refused the '{kind}' action"),
    )
}

/// Every string the actions pass to C, NUL-terminated in one buffer, written before
/// anything is delivered (a name with a NUL byte fails the call first).
struct Strings {
    buf: Vec<u8>,
}

impl Strings {
    /// Appends `s` and returns its offset.
    fn push(&mut self, s: &str) -> Result<usize> {
        if s.as_bytes().contains(&0) {
            return Err(Error::internal(format_args!(
                "'{}' holds a NUL byte and cannot be passed to C",
                s.escape_debug()
            )));
        }
        let at = self.buf.len();
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        Ok(at)
    }
}

/// One action with its strings as offsets into [`Strings`].
enum Prepared {
    Add(usize, usize, bool, bool, u64),
    Remove(usize, usize),
    /// Node, target, and the sources' (node, name) pairs.
    Merge(usize, usize, Vec<(usize, usize)>),
    Other(usize),
}

/// The `type` of an action's JSON.
fn kind_of(json: &Json) -> &str {
    match json {
        Json::Obj(members) => members
            .iter()
            .find_map(|(k, v)| match (*k, v) {
                ("type", Json::Str(t)) => Some(t.as_str()),
                _ => None,
            })
            .unwrap_or("?"),
        _ => "?",
    }
}

fn prepare(a: &Action, sink: &vcp_action_sink, s: &mut Strings) -> Result<Prepared> {
    Ok(match a {
        Action::BitmapAdd {
            node,
            name,
            persistent,
            disabled,
            granularity,
        } if sink.bitmap_add.is_some() => Prepared::Add(
            s.push(node)?,
            s.push(name)?,
            *persistent,
            *disabled,
            *granularity,
        ),
        Action::BitmapRemove { node, name } if sink.bitmap_remove.is_some() => {
            Prepared::Remove(s.push(node)?, s.push(name)?)
        }
        Action::BitmapMerge {
            node,
            target,
            bitmaps,
        } if sink.bitmap_merge.is_some() => {
            let (n, t) = (s.push(node)?, s.push(target)?);
            let sources = bitmaps
                .iter()
                .map(|b| Ok((s.push(&b.node)?, s.push(&b.name)?)))
                .collect::<Result<_>>()?;
            Prepared::Merge(n, t, sources)
        }
        other => prepare_other(&other.to_json(), sink, s)?,
    })
}

/// An action the sink takes as JSON.
fn prepare_other(json: &Json, sink: &vcp_action_sink, s: &mut Strings) -> Result<Prepared> {
    if sink.action.is_none() {
        // Refused before anything is delivered: the sink has no way to take it.
        return Err(Error::invalid_arg(
            ErrorDomain::None,
            format_args!(
                "the sink has no callback for the '{}' action",
                kind_of(json)
            ),
        ));
    }
    Ok(Prepared::Other(s.push(&json.to_compact())?))
}

/// An action of a step's transaction, as sent (`{"type":...,"data":{...}}`).
fn prepare_sent(json: &Json, sink: &vcp_action_sink, s: &mut Strings) -> Result<Prepared> {
    match Action::bitmap_from_json(json) {
        Some(a) => prepare(&a, sink, s),
        None => prepare_other(json, sink, s),
    }
}

/// Delivers the actions of a step's transaction (as sent) to `sink`, every string
/// converted first.
///
/// # Safety
/// The sink's callbacks are callable with its `opaque`.
pub(crate) unsafe fn deliver_sent(sink: &vcp_action_sink, actions: &[Json]) -> Result<()> {
    let mut strings = Strings {
        buf: Vec::with_capacity(32 * actions.len()),
    };
    let prepared = collect_sized(actions.iter().map(|a| prepare_sent(a, sink, &mut strings)))?;
    // SAFETY: forwarded contract.
    unsafe { send(sink, &prepared, &strings) }
}

/// Delivers `actions` to `sink`, every string converted first.
///
/// # Safety
/// The sink's callbacks are callable with its `opaque`.
unsafe fn deliver<A: Borrow<Action>>(
    sink: &vcp_action_sink,
    actions: impl IntoIterator<Item = A, IntoIter: ExactSizeIterator>,
) -> Result<()> {
    let actions = actions.into_iter();
    // Room for a removal's two names: a plan of a few dozen actions then stays below
    // the allocator's large-chunk size, whose request makes glibc consolidate its
    // free lists (the greater part of a delete's cost through the library).
    let mut strings = Strings {
        buf: Vec::with_capacity(32 * actions.len()),
    };
    let prepared = collect_sized(actions.map(|a| prepare(a.borrow(), sink, &mut strings)))?;
    // SAFETY: forwarded contract.
    unsafe { send(sink, &prepared, &strings) }
}

/// Calls the sink for each prepared action, in order.
///
/// # Safety
/// The sink's callbacks are callable with its `opaque`.
unsafe fn send(sink: &vcp_action_sink, prepared: &[Prepared], strings: &Strings) -> Result<()> {
    let base = strings.buf.as_ptr().cast::<c_char>();
    // SAFETY: every offset is the start of a NUL-terminated string within the buffer,
    // which is not changed from here on.
    let at = |off: usize| unsafe { base.add(off) };
    let o = sink.opaque;
    for p in prepared {
        // SAFETY: the callbacks exist where `prepare` chose them (else `action`, which
        // `Call::sink` checked), with pointers valid for the call.
        let (rc, kind) = unsafe {
            match p {
                Prepared::Add(n, b, pers, dis, g) => (
                    sink.bitmap_add.map_or(-1, |f| {
                        f(o, at(*n), at(*b), c_int::from(*pers), c_int::from(*dis), *g)
                    }),
                    "block-dirty-bitmap-add",
                ),
                Prepared::Remove(n, b) => (
                    sink.bitmap_remove.map_or(-1, |f| f(o, at(*n), at(*b))),
                    "block-dirty-bitmap-remove",
                ),
                Prepared::Merge(n, t, sources) => {
                    let np: Vec<*const c_char> = sources.iter().map(|s| at(s.0)).collect();
                    let bp: Vec<*const c_char> = sources.iter().map(|s| at(s.1)).collect();
                    (
                        sink.bitmap_merge.map_or(-1, |f| {
                            f(o, at(*n), at(*t), np.len(), np.as_ptr(), bp.as_ptr())
                        }),
                        "block-dirty-bitmap-merge",
                    )
                }
                Prepared::Other(json) => (sink.action.map_or(-1, |f| f(o, at(*json))), "action"),
            }
        };
        if rc < 0 {
            return Err(refused(kind));
        }
    }
    Ok(())
}

/// Whether bitmap `bitmap` is valid along `chain` (`n` node names, top first; a NULL
/// entry is a layer without a node) in `nodes` (NULL: none): present on the top, then
/// on each layer down to where it stops, each copy recording, persistent and
/// consistent (qemuBlockBitmapChainIsValid). Returns 1, 0, or -1 on error.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_chain_bitmap_is_valid(
    chain: *const *const c_char,
    n: usize,
    nodes: *const vcp_node_data,
    bitmap: *const c_char,
) -> c_int {
    guard!(|cx| {
        // SAFETY: the caller's chain, handle and string.
        let (chain, nodes, bitmap) = unsafe {
            (
                cx.chain(chain, n)?,
                cx.nodes_or_empty(nodes),
                cx.str(bitmap, "bitmap")?,
            )
        };
        Ok(c_int::from(bitmap_chain_is_valid(&chain, bitmap, nodes)))
    })
}

/// `libvirt-tmp-activewrite`, NUL-terminated for a sink.
const ACTIVEWRITE: &CStr = c"libvirt-tmp-activewrite";

/// The caller's own strings of a generic merge of one bitmap, as it passed them.
struct Given {
    chain: *const *const c_char,
    target: *const c_char,
    bitmap: *const c_char,
    dst: *const c_char,
    write: *const c_char,
}

impl Given {
    /// Sends `plan` (of bitmap `self.bitmap`) to the sink's typed callbacks, naming
    /// each source by the caller's chain entry: the actions `bitmap_merge_actions`
    /// gives. A missing callback is a refusal, as in `send`.
    ///
    /// # Safety
    /// The strings are the caller's, valid and NUL-terminated (`dst` and `write` may
    /// be NULL), the chain holds every position of `plan`, and the sink's callbacks
    /// are callable with its `opaque`.
    unsafe fn send(&self, sink: &vcp_action_sink, plan: &[MergeOne<'_>]) -> Result<()> {
        let o = sink.opaque;
        // Under a destination name, added transient and disabled; else the bitmap's
        // own, persistent and enabled.
        let (dst, named) = if self.dst.is_null() {
            (self.bitmap, 0)
        } else {
            (self.dst, 1)
        };
        let (mut nodes, mut names) = (Vec::new(), Vec::new());
        for one in plan {
            // SAFETY: per the contract; a source holds the bitmap, so it has a node and
            // its chain entry is one of the caller's non-NULL strings.
            unsafe {
                if one.add
                    && sink.bitmap_add.map_or(-1, |f| {
                        f(o, self.target, dst, 1 - named, named, one.granularity)
                    }) < 0
                {
                    return Err(refused("block-dirty-bitmap-add"));
                }
                nodes.clear();
                nodes.extend(one.sources.iter().map(|&i| *self.chain.add(i)));
                names.clear();
                names.resize(nodes.len(), self.bitmap);
                if !self.write.is_null() {
                    nodes.push(self.write);
                    names.push(ACTIVEWRITE.as_ptr());
                }
                if sink.bitmap_merge.map_or(-1, |f| {
                    f(
                        o,
                        self.target,
                        dst,
                        nodes.len(),
                        nodes.as_ptr(),
                        names.as_ptr(),
                    )
                }) < 0
                {
                    return Err(refused("block-dirty-bitmap-merge"));
                }
            }
        }
        if !self.write.is_null() {
            // SAFETY: per the contract.
            if unsafe {
                sink.bitmap_remove
                    .map_or(-1, |f| f(o, self.write, ACTIVEWRITE.as_ptr()))
            } < 0
            {
                return Err(refused("block-dirty-bitmap-remove"));
            }
        }
        Ok(())
    }
}

/// The generic merge (qemuBlockGetBitmapMergeActions) along `chain` (as for
/// `vcp_chain_bitmap_is_valid()`): the first `n_sources` layers are the sources
/// (libvirt's walk from the top to the base; `n` = to the end), bitmap `bitmap` (NULL
/// = every bitmap valid along the chain) is merged into node `target_node` under
/// `dst_bitmap` (NULL = its own name, created persistent where missing), with
/// `libvirt-tmp-activewrite` of `write_bitmap_node` (NULL = none) merged in and then
/// removed. The actions go to `sink`; nothing to do delivers none. `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_chain_merge_actions(
    chain: *const *const c_char,
    n: usize,
    n_sources: usize,
    nodes: *const vcp_node_data,
    target_node: *const c_char,
    bitmap: *const c_char,
    dst_bitmap: *const c_char,
    write_bitmap_node: *const c_char,
    sink: *const vcp_action_sink,
    flags: c_uint,
) -> c_int {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: the caller's chain, handles and strings.
        unsafe {
            let names = cx.chain(chain, n)?;
            let spec = MergeSpec {
                chain: &names,
                base: (n_sources < names.len()).then_some(n_sources),
                target: cx.str(target_node, "target_node")?,
                bitmap: cx.opt_str(bitmap, "bitmap")?,
                dst_name: cx.opt_str(dst_bitmap, "dst_bitmap")?,
                write_bitmap_src: cx.opt_str(write_bitmap_node, "write_bitmap_node")?,
            };
            let (sink, nodes) = (cx.sink(sink)?, cx.nodes_or_empty(nodes));
            // One bitmap, and a callback for each kind the merge sends: every string
            // is one the caller passed (or libvirt-tmp-activewrite), so each goes as
            // given, with nothing built or copied.
            let typed = sink.bitmap_add.is_some()
                && sink.bitmap_merge.is_some()
                && (write_bitmap_node.is_null() || sink.bitmap_remove.is_some());
            if typed && !bitmap.is_null() {
                let given = Given {
                    chain,
                    target: target_node,
                    bitmap,
                    dst: dst_bitmap,
                    write: write_bitmap_node,
                };
                given.send(sink, &merge_plan(&spec, nodes))?;
            } else {
                deliver(sink, bitmap_merge_actions(&spec, nodes))?;
            }
        }
        Ok(0)
    })
}

/// qemuBackupDiskPrepareOneBitmapsChain along `chain`: add `tmp_bitmap` (transient,
/// disabled, the chain's granularity) on `target_node` and merge checkpoint
/// `incremental`'s bitmap from every layer into it. No validity check: an invalid
/// chain delivers nothing. `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_chain_backup_actions(
    chain: *const *const c_char,
    n: usize,
    nodes: *const vcp_node_data,
    incremental: *const c_char,
    target_node: *const c_char,
    tmp_bitmap: *const c_char,
    sink: *const vcp_action_sink,
    flags: c_uint,
) -> c_int {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: the caller's chain, handles and strings.
        unsafe {
            let chain = cx.chain(chain, n)?;
            let (inc, target, tmp) = (
                cx.str(incremental, "incremental")?,
                cx.str(target_node, "target_node")?,
                cx.str(tmp_bitmap, "tmp_bitmap")?,
            );
            let sink = cx.sink(sink)?;
            let acts = backup_bitmap_actions(&chain, cx.nodes_or_empty(nodes), inc, target, tmp);
            deliver(sink, &acts)?;
        }
        Ok(0)
    })
}

/// qemuBlockBitmapsHandleBlockcopy after the pivot of a copy of `chain` to
/// `mirror_node`: every bitmap valid along the chain is created on the mirror unless
/// there, and filled from the chain (its top only with `VCP_BLOCKCOPY_SHALLOW`) and the
/// mirror's activewrite bitmap, which is then removed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_chain_blockcopy_actions(
    chain: *const *const c_char,
    n: usize,
    nodes: *const vcp_node_data,
    mirror_node: *const c_char,
    sink: *const vcp_action_sink,
    flags: c_uint,
) -> c_int {
    guard!(|cx| {
        cx.flags(flags, VCP_BLOCKCOPY_SHALLOW)?;
        // SAFETY: the caller's chain, handles and strings.
        unsafe {
            let chain = cx.chain(chain, n)?;
            let mirror = cx.str(mirror_node, "mirror_node")?;
            let sink = cx.sink(sink)?;
            let shallow = flags & VCP_BLOCKCOPY_SHALLOW != 0;
            deliver(
                sink,
                blockcopy_bitmap_actions(&chain, mirror, shallow, cx.nodes_or_empty(nodes)),
            )?;
        }
        Ok(0)
    })
}

/// qemuBlockBitmapsHandleCommitFinish: `chain` from the commit's top down as the
/// caller's links give it (it may stop above the base: libvirt cuts the chain above
/// the base before this step); the layers above `base_node` are merged into it. With
/// `VCP_BLOCKCOMMIT_ACTIVE` the base's activewrite bitmap is merged too, then removed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_chain_blockcommit_actions(
    chain: *const *const c_char,
    n: usize,
    nodes: *const vcp_node_data,
    base_node: *const c_char,
    sink: *const vcp_action_sink,
    flags: c_uint,
) -> c_int {
    guard!(|cx| {
        cx.flags(flags, VCP_BLOCKCOMMIT_ACTIVE)?;
        // SAFETY: the caller's chain, handles and strings.
        unsafe {
            let chain = cx.chain(chain, n)?;
            let base = cx.str(base_node, "base_node")?;
            let sink = cx.sink(sink)?;
            let active = flags & VCP_BLOCKCOMMIT_ACTIVE != 0;
            deliver(
                sink,
                commit_finish_actions(&chain, base, active, cx.nodes_or_empty(nodes)),
            )?;
        }
        Ok(0)
    })
}

/// One disk's part of the checkpoint size query (qemuCheckpointGetXMLDescUpdateSize)
/// along `chain`, for checkpoint bitmap `bitmap`. Returns 0 when the chain does not
/// carry the bitmap validly (libvirt measures no such disk; nothing is delivered), or
/// 1 with: to `recovery`, the removal of a temporary bitmap an earlier query left on
/// the top (when there is one; send first); to `merge`, the merge into the temporary
/// bitmap (send second); to `cleanup`, its removal (send once the node data was read
/// again and the size taken with `vcp_chain_size_read()`). -1 on error. `flags` must
/// be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_chain_size_actions(
    chain: *const *const c_char,
    n: usize,
    nodes: *const vcp_node_data,
    bitmap: *const c_char,
    recovery: *const vcp_action_sink,
    merge: *const vcp_action_sink,
    cleanup: *const vcp_action_sink,
    flags: c_uint,
) -> c_int {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: the caller's chain, handles, string and sinks.
        unsafe {
            let chain = cx.chain(chain, n)?;
            let bitmap = cx.str(bitmap, "bitmap")?;
            let sinks = (cx.sink(recovery)?, cx.sink(merge)?, cx.sink(cleanup)?);
            let Some(d) = disk_size_actions(&chain, bitmap, cx.nodes_or_empty(nodes)) else {
                return Ok(0);
            };
            deliver(sinks.0, d.recovery.as_slice())?;
            deliver(sinks.1, &d.merge)?;
            deliver(sinks.2, std::slice::from_ref(&d.cleanup))?;
        }
        Ok(1)
    })
}

/// The size the query measured on the disk whose top node is `top_node`, from `after`
/// (the node data read after the merge transaction): 1 with the bytes changed since
/// the checkpoint in `*size`, or 0 when the temporary bitmap is not there (libvirt then
/// leaves the disk without size). -1 on error.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_chain_size_read(
    after: *const vcp_node_data,
    top_node: *const c_char,
    size: *mut c_ulonglong,
) -> c_int {
    guard!(|cx| {
        // SAFETY: the caller's handle, string and out-parameter.
        unsafe {
            let (after, top) = (cx.nodes_or_empty(after), cx.str(top_node, "top_node")?);
            let out = cx.out(size, "size")?;
            match measured_size(after, top) {
                Some(bytes) => {
                    out.put(bytes);
                    Ok(1)
                }
                None => Ok(0),
            }
        }
    })
}

/// qemuCheckpointDiscardDiskBitmaps along `chain`: the removal of `bitmap` from every
/// layer that has it goes to `sink`, and the positions in `chain` of the non-top
/// layers among them, deepest first (to reopen read-write around the transaction), are
/// written to `reopen` (room for `n` entries) and their number to `*n_reopen`. A
/// bitmap found nowhere is VIR_ERR_INTERNAL_ERROR "bitmap '%s' not found in backing
/// chain of '%s'" naming `disk_target`, and delivers nothing. `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_chain_discard_actions(
    chain: *const *const c_char,
    n: usize,
    nodes: *const vcp_node_data,
    bitmap: *const c_char,
    disk_target: *const c_char,
    sink: *const vcp_action_sink,
    reopen: *mut usize,
    n_reopen: *mut usize,
    flags: c_uint,
) -> c_int {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        let (r, nr): (Out<usize>, Out<usize>) =
            (cx.out(reopen, "reopen")?, cx.out(n_reopen, "n_reopen")?);
        // SAFETY: the caller's chain, handles, strings and out-parameters.
        unsafe {
            let names = cx.chain(chain, n)?;
            let (name, disk) = (
                cx.str(bitmap, "bitmap")?,
                cx.str(disk_target, "disk_target")?,
            );
            let sink = cx.sink(sink)?;
            let d = disk_discard(&names, cx.nodes_or_empty(nodes), name, disk)?;
            match sink.bitmap_remove {
                // Each removal names the caller's own strings, the layer's node and the
                // bitmap, as given: nothing to convert (a delete's cost through the
                // library was mostly that conversion).
                Some(remove) => {
                    for &i in d.layers() {
                        // SAFETY: a layer holding the bitmap has a node, so its entry
                        // is one of the caller's non-NULL strings.
                        if remove(sink.opaque, *chain.add(i), bitmap) < 0 {
                            return Err(refused("block-dirty-bitmap-remove"));
                        }
                    }
                }
                None => deliver(sink, d.actions())?,
            }
            // At most n - 1 layers (never the top), within the caller's room for n.
            let dst = r.as_ptr();
            let mut count = 0;
            for l in d.reopen() {
                dst.add(count).write(l);
                count += 1;
            }
            nr.put(count);
        }
        Ok(0)
    })
}

/// `vcp_checkpoint_add_actions()` with the actions delivered to `sink`
/// (qemuCheckpointAddActions, which appends to the caller's transaction).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_add_actions_sink(
    dom: *const vcp_domain,
    def: *const vcp_checkpoint_def,
    nodes: *const vcp_node_data,
    sink: *const vcp_action_sink,
    flags: c_uint,
) -> c_int {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: the caller's handles.
        unsafe {
            let (dom, def) = (&cx.handle(dom, "dom")?.0, &cx.handle(def, "def")?.0);
            let sink = cx.sink(sink)?;
            deliver(
                sink,
                &checkpoint_add_actions(dom, def, cx.opt_handle(nodes).map(|n| &n.0))?,
            )?;
        }
        Ok(0)
    })
}

/// `vcp_node_propagate_bitmap_actions()` with the actions delivered to `sink`
/// (qemuSnapshotDiskBitmapsPropagate, one image); `nodes` may be NULL (none).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_node_propagate_actions(
    nodes: *const vcp_node_data,
    top_node: *const c_char,
    overlay_node: *const c_char,
    sink: *const vcp_action_sink,
    flags: c_uint,
) -> c_int {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: the caller's handle and strings.
        unsafe {
            let (top, overlay) = (
                cx.str(top_node, "top_node")?,
                cx.str(overlay_node, "overlay_node")?,
            );
            let sink = cx.sink(sink)?;
            deliver(
                sink,
                propagate_bitmap_actions(cx.nodes_or_empty(nodes), top, overlay),
            )?;
        }
        Ok(0)
    })
}

/// `vcp_chain_blockjob_end_step()`: a block pull (`block-stream`) has completed.
pub const VCP_BLOCKJOB_END_PULL: c_int = 0;
/// `vcp_chain_blockjob_end_step()`: a commit below the active layer has completed.
pub const VCP_BLOCKJOB_END_COMMIT: c_int = 1;
/// `vcp_chain_blockjob_end_step()`: an active commit has completed (pivoted).
pub const VCP_BLOCKJOB_END_ACTIVE_COMMIT: c_int = 2;
/// `vcp_chain_blockjob_end_step()`: a block copy has completed (pivoted); with
/// `VCP_BLOCKCOPY_SHALLOW` in `flags` the mirror kept the backing chain.
pub const VCP_BLOCKJOB_END_COPY: c_int = 3;

/// The bitmaps' part of the end of block job `job` (`VCP_BLOCKJOB_END_*`) at libvirt's
/// granularity (qemuBlockJobProcessEventCompleted{Pull,Commit,Copy}Bitmaps), along
/// `chain` (`n` node names from the job's top down as the driver's links give them once
/// the job completed: libvirt cuts an active commit's chain above the base first), from
/// node data read then. `target_node` receives the bitmaps: a commit's base, a copy's
/// mirror, a pull's top (the chain's first); a pull's sources are the first
/// `n_sources` layers (`n`: all of them; ignored for the other jobs). `VCP_STEP_NOW`
/// is the merges' transaction, nothing when there is none (libvirt sends nothing then),
/// with the base reopened read-write before it and read-only after it for a commit
/// below the active layer. The reopens name the node alone, for the driver reopens the
/// image its own way: run the step with `vcp_step_run()` (its text is refused). `flags`:
/// `VCP_BLOCKCOPY_SHALLOW` (with `VCP_BLOCKJOB_END_COPY` only).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_chain_blockjob_end_step(
    job: c_int,
    chain: *const *const c_char,
    n: usize,
    n_sources: usize,
    nodes: *const vcp_node_data,
    target_node: *const c_char,
    flags: c_uint,
) -> *mut vcp_step {
    guard!(|cx| {
        let job = match job {
            VCP_BLOCKJOB_END_PULL => BlockJobEnd::Pull { sources: n_sources },
            VCP_BLOCKJOB_END_COMMIT => BlockJobEnd::Commit,
            VCP_BLOCKJOB_END_ACTIVE_COMMIT => BlockJobEnd::ActiveCommit,
            VCP_BLOCKJOB_END_COPY => BlockJobEnd::Copy {
                shallow: flags & VCP_BLOCKCOPY_SHALLOW != 0,
            },
            _ => {
                return Err(Error::invalid_arg(
                    ErrorDomain::Qemu,
                    format_args!("unknown block job {job}"),
                ));
            }
        };
        let allowed = if matches!(job, BlockJobEnd::Copy { .. }) {
            VCP_BLOCKCOPY_SHALLOW
        } else {
            0
        };
        cx.flags(flags, allowed)?;
        // SAFETY: the caller's chain, handle and string.
        let (chain, nodes, target) = unsafe {
            (
                cx.chain(chain, n)?,
                cx.nodes_or_empty(nodes),
                cx.str(target_node, "target_node")?,
            )
        };
        Ok(into_handle(vcp_step(chain_blockjob_end_step(
            job, &chain, target, nodes,
        ))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    unsafe extern "C" fn add(
        o: *mut c_void,
        _: *const c_char,
        _: *const c_char,
        _: c_int,
        _: c_int,
        _: c_ulonglong,
    ) -> c_int {
        // SAFETY: the tests pass a Vec<String> as opaque.
        unsafe { (*o.cast::<Vec<String>>()).push("add".into()) };
        0
    }
    unsafe extern "C" fn remove(o: *mut c_void, _: *const c_char, _: *const c_char) -> c_int {
        // SAFETY: as above.
        unsafe { (*o.cast::<Vec<String>>()).push("remove".into()) };
        0
    }
    unsafe extern "C" fn merge(
        o: *mut c_void,
        _: *const c_char,
        _: *const c_char,
        _: usize,
        _: *const *const c_char,
        _: *const *const c_char,
    ) -> c_int {
        // SAFETY: as above.
        unsafe { (*o.cast::<Vec<String>>()).push("merge".into()) };
        0
    }
    unsafe extern "C" fn json(o: *mut c_void, j: *const c_char) -> c_int {
        // SAFETY: as above; `j` is NUL-terminated for the call.
        unsafe { (*o.cast::<Vec<String>>()).push(CStr::from_ptr(j).to_str().unwrap().to_owned()) };
        0
    }

    /// A sink with every callback, recording into `got`.
    fn recording(got: &mut Vec<String>) -> vcp_action_sink {
        vcp_action_sink {
            opaque: (got as *mut Vec<String>).cast(),
            bitmap_add: Some(add),
            bitmap_remove: Some(remove),
            bitmap_merge: Some(merge),
            action: Some(json),
        }
    }

    fn actions() -> Vec<Action> {
        vec![
            Action::remove("n1", "a"),
            Action::BlockdevSnapshot {
                node: "n1".into(),
                overlay: "o1".into(),
            },
        ]
    }

    #[test]
    fn the_activewrite_name_handed_to_c_is_the_cores() {
        assert_eq!(ACTIVEWRITE.to_str(), Ok(virtcheckpoint::TMP_ACTIVEWRITE));
    }

    #[test]
    fn an_action_without_a_callback_is_refused_before_any_is_delivered() {
        let mut got: Vec<String> = Vec::new();
        let sink = vcp_action_sink {
            action: None,
            ..recording(&mut got)
        };
        // SAFETY: the callbacks above take `got`.
        let err = unsafe { deliver(&sink, actions()) }.unwrap_err();
        assert!(err.to_string().contains("'blockdev-snapshot'"), "{err}");
        assert!(got.is_empty());
    }

    #[test]
    fn the_json_fallback_takes_the_kinds_without_a_callback_in_order() {
        let mut got: Vec<String> = Vec::new();
        let sink = vcp_action_sink {
            bitmap_add: None,
            bitmap_merge: None,
            ..recording(&mut got)
        };
        // SAFETY: as above.
        unsafe { deliver(&sink, actions()) }.unwrap();
        assert_eq!(got[0], "remove");
        assert_eq!(got[1], actions()[1].to_json().to_compact());
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn a_name_with_a_nul_byte_delivers_nothing() {
        let mut got: Vec<String> = Vec::new();
        let sink = recording(&mut got);
        let list = vec![Action::remove("n1", "a"), Action::remove("n1", "b\0c")];
        // SAFETY: as above.
        let err = unsafe { deliver(&sink, &list) }.unwrap_err();
        assert!(err.to_string().contains("NUL"), "{err}");
        assert!(got.is_empty());
    }
}
