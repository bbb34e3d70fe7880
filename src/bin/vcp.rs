//! `vcp`: the command line over virtcheckpoint. It plans libvirt's bitmap operations
//! from XML and JSON files and prints the QMP, checks a domain's checkpoints against
//! its bitmaps, draws the checkpoint tree, and fixes what drifted.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use virtcheckpoint::model::checkpoint::CheckpointDef;
use virtcheckpoint::model::domain::Domain;
use virtcheckpoint::plan::backup::{BackupDisk, BackupMode, backup_actions};
use virtcheckpoint::plan::delete::Reopen;
use virtcheckpoint::plan::reconcile::{
    apply_fix_metadata, fix_actions, fix_commands, fix_plan, reconcile,
};
use virtcheckpoint::plan::resolve::resolve_backup;
use virtcheckpoint::plan::snapshot::{SnapshotDisk, snapshot_bitmap_actions};
use virtcheckpoint::plan::{commit, copy, create, delete, pull, size};
use virtcheckpoint::qmp::action::{Action, actions_json, reopen_command, transaction};

use virtcheckpoint::store::dir::MetadataDir;
use virtcheckpoint::store::list::CheckpointList;
use virtcheckpoint::xml::domain::parse_domain;
use virtcheckpoint::{Error, NodeData, api, parse_node_data, report, tools};

const USAGE: &str = "\
usage: vcp <command> [options]

Plan libvirt's dirty-bitmap operations and print the QMP (a transaction, compact;
--pretty for libvirt's indented form). Files may be '-' for standard input.

  vcp nodes [FILE]                     bitmaps per node of a query-named-block-nodes reply
  vcp report [FILE]                    libvirt's bitmap detection report of a reply
  vcp plan create   --domain D --checkpoint C [--nodes N]
  vcp plan delete   --domain D --checkpoint C --nodes N [--ignore-missing]
  vcp plan backup   --domain D --nodes N --disk vda=STORE_NODE... [--from CHK] [--pull]
  vcp plan snapshot --domain D --nodes N --disk vda=OVERLAY_NODE...
  vcp plan commit   --domain D --nodes N --disk vda --top NODE --base NODE [--active]
  vcp plan copy     --domain D --nodes N --disk vda --mirror NODE [--shallow]
  vcp plan pull     --domain D --nodes N --disk vda [--base NODE]
  vcp plan size     --domain D --checkpoint C --nodes N
  vcp resolve --domain D --metadata DIR --name VM --nodes N --from CHK --disk vda=STORE...
                                       per-disk backup plan: incremental where the chain
                                       is valid, full (with the reason) where it is not
  vcp check --domain D --metadata DIR --name VM (--nodes N | --offline [--in-use]) [--json]
                                       checkpoints x disks x layers, one symbol per state
  vcp tree  --metadata DIR --name VM   the checkpoint tree (* marks the current one)
  vcp fix   --domain D --metadata DIR --name VM (--nodes N | --offline [--in-use]) [--apply]
                                       remove orphan and broken bitmaps, never a valid one,
                                       and bring the metadata in line (a checkpoint stops
                                       claiming its broken disks, one broken everywhere is
                                       dropped); prints the plan; --apply runs it and
                                       rewrites the metadata files (offline only)

D: live or status domain XML; C: checkpoint XML (create: the request; delete and
size: the stored definition, as checkpoint-dumpxml prints it); N: query-named-block-nodes reply
(bare array or whole reply); DIR/VM: libvirt's checkpoint metadata folder and domain
name (DIR/VM/<checkpoint>.xml). --offline reads the images with qemu-img (a shut-off
domain; --in-use reads a running one's images with -U, for check only).

Exit codes: 0 success (check: clean), 1 refused or failed (libvirt's error text on
stderr), 2 usage error, 3 check found drift.";

enum Fail {
    Usage(String),
    Lib(Error),
    Other(String),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Lib(e)
    }
}

type R<T> = Result<T, Fail>;

struct Args {
    positional: Vec<String>,
    options: HashMap<String, Vec<String>>,
    flags: Vec<String>,
}

const FLAGS: &[&str] = &[
    "--pretty",
    "--ignore-missing",
    "--pull",
    "--active",
    "--shallow",
    "--json",
    "--offline",
    "--in-use",
    "--apply",
    "--help",
    "-h",
];

impl Args {
    fn parse(raw: &[String]) -> R<Args> {
        let mut a = Args {
            positional: Vec::new(),
            options: HashMap::new(),
            flags: Vec::new(),
        };
        let mut it = raw.iter();
        while let Some(x) = it.next() {
            if FLAGS.contains(&x.as_str()) {
                a.flags.push(x.clone());
            } else if x.starts_with("--") {
                let v = it
                    .next()
                    .ok_or_else(|| Fail::Usage(format!("option {x} needs a value")))?;
                a.options.entry(x.clone()).or_default().push(v.clone());
            } else {
                a.positional.push(x.clone());
            }
        }
        Ok(a)
    }

    fn flag(&self, f: &str) -> bool {
        self.flags.iter().any(|x| x == f)
    }

    fn opt(&self, o: &str) -> Option<&str> {
        self.options
            .get(o)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    fn req(&self, o: &str) -> R<&str> {
        self.opt(o)
            .ok_or_else(|| Fail::Usage(format!("missing required option {o}")))
    }

    fn all(&self, o: &str) -> &[String] {
        self.options.get(o).map_or(&[], Vec::as_slice)
    }
}

fn read(path: &str) -> R<String> {
    let mut text = String::new();
    if path == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Fail::Other(format!("cannot read standard input: {e}")))?;
        return Ok(text);
    }
    std::fs::read_to_string(path).map_err(|e| Fail::Other(format!("cannot read '{path}': {e}")))
}

fn domain(a: &Args) -> R<Domain> {
    Ok(parse_domain(read(a.req("--domain")?)?.as_bytes())?)
}

fn nodes(a: &Args) -> R<NodeData> {
    Ok(parse_node_data(&read(a.req("--nodes")?)?)?)
}

/// The checkpoint of `--checkpoint`: a creation request (aligned against the domain),
/// or, with `stored`, a definition as `virsh checkpoint-dumpxml` prints it.
fn checkpoint(a: &Args, dom: &Domain, stored: bool) -> R<CheckpointDef> {
    let text = read(a.req("--checkpoint")?)?;
    Ok(api::checkpoint_def_from_xml(
        text.as_bytes(),
        Some(dom),
        u32::from(stored),
        api::now(),
    )?)
}

fn pairs(a: &Args) -> R<Vec<(String, String)>> {
    a.all("--disk")
        .iter()
        .map(|d| {
            d.split_once('=')
                .map(|(t, n)| (t.to_owned(), n.to_owned()))
                .ok_or_else(|| Fail::Usage(format!("--disk takes TARGET=NODE, not '{d}'")))
        })
        .collect()
}

fn print_tx(a: &Args, actions: &[Action]) {
    if a.flag("--pretty") {
        print!("{}", actions_json(actions).to_pretty());
    } else {
        println!("{}", transaction(actions).to_compact());
    }
}

/// A transaction that touches backing layers: their read-write reopens, the
/// transaction, their read-only reopens, as libvirt sends them.
fn print_with_reopen(a: &Args, actions: &[Action], reopen: &[Reopen]) {
    let line = |r: &Reopen, ro: bool| {
        reopen_command(
            &r.format_node,
            &r.storage_node,
            r.backing_node.as_deref(),
            ro,
        )
        .to_compact()
    };
    for r in reopen {
        println!("{}", line(r, false));
    }
    print_tx(a, actions);
    for r in reopen {
        println!("{}", line(r, true));
    }
}

fn metadata(a: &Args) -> R<CheckpointList> {
    let md = MetadataDir::new(Path::new(a.req("--metadata")?), a.req("--name")?)?;
    let (list, problems) = md.load()?;
    for p in problems {
        eprintln!("warning: skipped {}: {}", p.path.display(), p.reason);
    }
    Ok(list)
}

fn disk_index(dom: &Domain, target: &str, node: &str) -> R<usize> {
    dom.disk(target)
        .and_then(|d| d.chain.iter().position(|i| i.format_node == node))
        .ok_or_else(|| {
            Fail::Usage(format!(
                "node '{node}' is not in the chain of disk '{target}'"
            ))
        })
}

fn plan(a: &Args) -> R<ExitCode> {
    let op = a.positional.get(1).map(String::as_str).unwrap_or("");
    let dom = domain(a)?;
    match op {
        "create" => {
            let def = checkpoint(a, &dom, false)?;
            let nd = match a.opt("--nodes") {
                Some(_) => Some(nodes(a)?),
                None => None,
            };
            print_tx(a, &create::add_actions(&dom, &def, nd.as_ref())?);
        }
        "delete" => {
            let def = checkpoint(a, &dom, true)?;
            let plan = delete::discard_actions(&dom, &def, &nodes(a)?, a.flag("--ignore-missing"))?;
            print_with_reopen(a, &plan.actions, &plan.reopen);
            for m in &plan.missing {
                eprintln!(
                    "note: bitmap '{}' was already gone from every layer of disk '{m}'",
                    def.name
                );
            }
        }
        "backup" => {
            let disks: Vec<BackupDisk> = pairs(a)?
                .into_iter()
                .map(|(t, n)| BackupDisk {
                    target: t,
                    incremental: a.opt("--from").map(str::to_owned),
                    store_node: n,
                    export_bitmap: None,
                })
                .collect();
            let mode = if a.flag("--pull") {
                BackupMode::Pull
            } else {
                BackupMode::Push
            };
            let plan = backup_actions(&dom, mode, &disks, &nodes(a)?, &|_| true, None)?;
            print_tx(a, &plan.actions);
            for c in &plan.cleanup {
                println!("{}", c.to_command().to_compact());
            }
        }
        "snapshot" => {
            let disks: Vec<SnapshotDisk> = pairs(a)?
                .into_iter()
                .map(|(t, n)| SnapshotDisk {
                    target: t,
                    overlay_node: n,
                })
                .collect();
            print_tx(a, &snapshot_bitmap_actions(&dom, &disks, &nodes(a)?)?);
        }
        "commit" => {
            let target = a.req("--disk")?;
            let top = disk_index(&dom, target, a.req("--top")?)?;
            let base = disk_index(&dom, target, a.req("--base")?)?;
            let chain = &dom.disk(target).expect("checked").chain;
            print_tx(
                a,
                &commit::blockcommit_bitmap_actions(
                    chain,
                    top,
                    base,
                    a.flag("--active"),
                    &nodes(a)?,
                )?,
            );
        }
        "copy" => {
            let target = a.req("--disk")?;
            let d = dom
                .disk(target)
                .ok_or_else(|| Fail::Usage(format!("no disk named '{target}'")))?;
            print_tx(
                a,
                &copy::blockcopy_bitmap_actions(
                    &d.chain,
                    a.req("--mirror")?,
                    a.flag("--shallow"),
                    &nodes(a)?,
                ),
            );
        }
        "pull" => {
            let target = a.req("--disk")?;
            let base = match a.opt("--base") {
                Some(b) => Some(disk_index(&dom, target, b)?),
                None => None,
            };
            let d = dom.disk(target).expect("checked above when base given");
            print_tx(
                a,
                &pull::blockpull_bitmap_actions(&d.chain, base, &nodes(a)?),
            );
        }
        "size" => {
            let def = checkpoint(a, &dom, true)?;
            let plan = size::size_actions(&dom, &def, &nodes(a)?);
            if !plan.recovery.is_empty() {
                print_tx(a, &plan.recovery);
            }
            print_tx(a, &plan.merge);
            println!(
                "# read query-named-block-nodes again: each disk's size is the count of libvirt-tmp-size-xml"
            );
            print_tx(a, &plan.cleanup);
        }
        other => return Err(Fail::Usage(format!("unknown plan '{other}'"))),
    }
    Ok(ExitCode::SUCCESS)
}

fn bitmaps_for(a: &Args, dom: &Domain) -> R<(Domain, NodeData)> {
    if a.flag("--offline") {
        let d = tools::offline_domain(dom);
        let nd = tools::inspect(&d, a.flag("--in-use"))?;
        Ok((d, nd))
    } else {
        Ok((dom.clone(), nodes(a)?))
    }
}

fn check(a: &Args) -> R<ExitCode> {
    let (dom, nd) = bitmaps_for(a, &domain(a)?)?;
    let list = metadata(a)?;
    let rep = reconcile(&dom, &list, &nd);
    let fix = fix_plan(&rep, &dom);
    if a.flag("--json") {
        println!("{}", report::json(&rep, &fix).to_compact());
    } else {
        print!("{}", report::table(&rep, &dom));
    }
    Ok(if rep.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

fn fix(a: &Args) -> R<ExitCode> {
    let (dom, nd) = bitmaps_for(a, &domain(a)?)?;
    let mut list = metadata(a)?;
    let rep = reconcile(&dom, &list, &nd);
    if rep.is_clean() {
        println!("nothing to fix");
        return Ok(ExitCode::SUCCESS);
    }
    let plan = fix_plan(&rep, &dom);
    let apply = a.flag("--apply");
    if a.flag("--offline") {
        if a.flag("--in-use") && apply {
            return Err(Fail::Usage(
                "--apply cannot change the images of a running domain; plan online instead".into(),
            ));
        }
        let cmds = fix_commands(&plan);
        for c in &cmds {
            println!("{}", c.join(" "));
            if apply {
                tools::run(c)?;
            }
        }
    } else {
        if apply {
            return Err(Fail::Usage(
                "--apply runs offline plans only; send the printed QMP to QEMU".into(),
            ));
        }
        let (actions, reopen) = fix_actions(&plan, &dom);
        print_with_reopen(a, &actions, &reopen);
    }
    for (cp, disk) in &plan.uncover {
        println!("# metadata: checkpoint {cp} no longer claims disk {disk}");
    }
    for cp in &plan.drop {
        println!("# metadata: checkpoint {cp} is broken on every disk and is dropped");
    }
    if apply {
        let md = MetadataDir::new(Path::new(a.req("--metadata")?), a.req("--name")?)?;
        let (changed, removed) = apply_fix_metadata(&mut list, &plan)?;
        for c in &changed {
            md.save(list.get(c)?)?;
        }
        for r in &removed {
            md.remove(r)?;
        }
        println!(
            "applied: {} bitmap removal(s), {} checkpoint(s) rewritten, {} dropped",
            plan.removals.len(),
            changed.len(),
            removed.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn tree(a: &Args) -> R<ExitCode> {
    let list = metadata(a)?;
    let current = list.current().map(str::to_owned);
    fn walk(
        list: &CheckpointList,
        name: &str,
        prefix: &str,
        last: bool,
        root: bool,
        cur: &Option<String>,
        out: &mut String,
    ) {
        let mark = if cur.as_deref() == Some(name) {
            " *"
        } else {
            ""
        };
        if root {
            out.push_str(&format!("{name}{mark}\n"));
        } else {
            out.push_str(&format!(
                "{prefix}{}{name}{mark}\n",
                if last { "`-- " } else { "|-- " }
            ));
        }
        let children = list.list(Some(name), 0).unwrap_or_default();
        let next = if root {
            String::new()
        } else {
            format!("{prefix}{}", if last { "    " } else { "|   " })
        };
        for (i, c) in children.iter().enumerate() {
            walk(list, c, &next, i + 1 == children.len(), false, cur, out);
        }
    }
    let mut out = String::new();
    for root in list.list(None, virtcheckpoint::store::list::LIST_ROOTS)? {
        walk(&list, root, "", true, true, &current, &mut out);
    }
    if list.is_empty() {
        out.push_str("(no checkpoints)\n");
    }
    print!("{out}");

    Ok(ExitCode::SUCCESS)
}

fn resolve(a: &Args) -> R<ExitCode> {
    let dom = domain(a)?;
    let list = metadata(a)?;
    let from = a.req("--from")?;
    let disks: Vec<BackupDisk> = pairs(a)?
        .into_iter()
        .map(|(t, n)| BackupDisk {
            target: t,
            incremental: None,
            store_node: n,
            export_bitmap: None,
        })
        .collect();
    let mode = if a.flag("--pull") {
        BackupMode::Pull
    } else {
        BackupMode::Push
    };
    let (decided, plan) = resolve_backup(&dom, mode, &disks, &nodes(a)?, &list, from, None)?;
    println!("{}", report::resolution_json(&decided).to_compact());
    print_tx(a, &plan.actions);
    for c in &plan.cleanup {
        println!("{}", c.to_command().to_compact());
    }
    Ok(ExitCode::SUCCESS)
}

fn print_nodes(nd: &NodeData) {
    for node in nd.nodes() {
        println!(
            "{}  size {}  cluster {}{}",
            node.name,
            node.capacity,
            node.cluster_size,
            if node.qcow2v2 { "  [qcow2 v2]" } else { "" }
        );
        if node.bitmaps.is_empty() {
            println!("    (no bitmaps)");
        }
        for b in &node.bitmaps {
            let mut state = vec![if b.recording { "recording" } else { "disabled" }];
            state.push(if b.persistent {
                "persistent"
            } else {
                "transient"
            });
            if b.inconsistent {
                state.push("INCONSISTENT");
            }
            if b.busy {
                state.push("busy");
            }
            println!(
                "    {:<20} {:>12} dirty bytes  granularity {:<6} {}",
                b.name,
                b.count,
                b.granularity,
                state.join(", ")
            );
        }
    }
}

fn run(raw: &[String]) -> R<ExitCode> {
    let a = Args::parse(raw)?;
    let cmd = a.positional.first().map(String::as_str).unwrap_or("help");
    if a.flag("--help") || a.flag("-h") || cmd == "help" {
        println!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    match cmd {
        "nodes" | "report" => {
            let nd = parse_node_data(&read(a.positional.get(1).map_or("-", String::as_str))?)?;
            if cmd == "nodes" {
                print_nodes(&nd);
            } else {
                print!("{}", virtcheckpoint::qmp::print::detect_report(&nd));
            }
            Ok(ExitCode::SUCCESS)
        }
        "plan" => plan(&a),
        "check" => check(&a),
        "fix" => fix(&a),
        "tree" => tree(&a),
        "resolve" => resolve(&a),
        other => Err(Fail::Usage(format!("unknown command '{other}'"))),
    }
}

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    match run(&raw) {
        Ok(code) => code,
        Err(Fail::Usage(m)) => {
            eprintln!("vcp: {m}\n(run 'vcp --help' for usage)");
            ExitCode::from(2)
        }
        Err(Fail::Lib(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
        Err(Fail::Other(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(1)
        }
    }
}
