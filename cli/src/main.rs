//! `vcp`: the command line over virtcheckpoint. It plans libvirt's bitmap operations
//! from XML and JSON files and prints the QMP, checks a domain's checkpoints against
//! its bitmaps, draws the checkpoint tree, and fixes what drifted.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;
use vcp_cli::{table, tools};
use virtcheckpoint::{
    Action, BackupDisk, BackupMode, CheckpointDef, CheckpointList, CreateOptions, DeleteOptions,
    Domain, Error, FormatOptions, Image, ListOptions, MetadataDir, NodeData, ParseOptions,
    SnapshotDisk, Step, TMP_SIZE, actions_json, adopt_into, apply_fix, backup_begin_actions,
    backup_step, blockcommit_bitmap_actions, blockcopy_bitmap_actions, blockpull_bitmap_actions,
    checkpoint_add_actions_with, checkpoint_def_from_xml, checkpoint_discard_actions, commit_step,
    copy_step, create_step_with, discard_step, drop_pending, fix_commands, fix_plan, fix_step,
    format_checkpoint, now, offline, parse_domain, parse_node_data, pending_abort_step, pull_step,
    reconcile, redefine_validate_step, report_json, reset_step, resolution_json, resolve_backup,
    retire_all, size_actions, size_step, snapshot_bitmap_actions, snapshot_step, transaction,
};

const USAGE: &str = "\
usage: vcp <command> [options]

Plan libvirt's dirty-bitmap operations and print the QMP (a transaction, compact;
--pretty for libvirt's indented form). Files may be '-' for standard input.

  vcp nodes [FILE]                     bitmaps per node of a query-named-block-nodes reply
  vcp report [FILE]                    libvirt's bitmap detection report of a reply
  vcp plan create   --domain D --checkpoint C [--nodes N] [--granularity BYTES]
  vcp plan delete   --domain D --checkpoint C --nodes N [--ignore-missing]
  vcp plan delete   --domain D --metadata DIR --name VM --checkpoint NAME --nodes N
                    [--children | --children-only]
                                       the stored tree's delete: each checkpoint it
                                       discards, in libvirt's order, with its step
  vcp plan backup   --domain D --nodes N --disk vda=STORE_NODE... [--from CHK] [--pull]
                    [--checkpoint C]   C: the checkpoint the backup creates
                    [--incremental vda=CHK]... [--full vda]... [--export-bitmap vda=B]...
                                       per disk, as libvirt's incremental='CHK',
                                       backupmode='full' (else --from) and a pull
                                       backup's exportbitmap='B' (else backup-vda)
  vcp plan snapshot --domain D --nodes N --disk vda=OVERLAY_NODE...
  vcp plan commit   --domain D --nodes N --disk vda --top NODE --base NODE [--active]
  vcp plan copy     --domain D --nodes N --disk vda --mirror NODE [--mirror-format raw] [--shallow]
  vcp plan pull     --domain D --nodes N --disk vda [--base NODE]
  vcp plan size     --domain D --checkpoint C --nodes N
  vcp plan validate --domain D --checkpoint C --nodes N
                                       redefine validation: fails as libvirt does when
                                       a bitmap chain is missing or broken
  vcp plan ... --step                  the whole driver step as JSON: the commands to
                                       send now, when the job is ready, at its end, to
                                       abort it, and the job ids (create, delete, backup,
                                       snapshot, commit, copy, pull, size, validate)
  vcp offline create|delete|size --domain D --checkpoint C [--ignore-missing] [--apply]
  vcp offline commit  --domain D --disk vda --top FILE --base FILE [--apply]
  vcp offline snapshot --domain D --disk vda --overlay FILE [--apply]
                                       the same plans for a shut-off domain, read with
                                       qemu-img info and written as qemu-img commands;
                                       --apply runs them (size: prints each disk's size)
  vcp resolve --domain D --metadata DIR --name VM --nodes N --from CHK --disk vda=STORE...
                                       per-disk backup plan: incremental where the chain
                                       is valid, full (with the reason) where it is not
  vcp check --domain D --metadata DIR --name VM (--nodes N | --offline [--in-use]) [--json]
                                       checkpoints x disks x layers, one symbol per state
  vcp tree  --metadata DIR --name VM   the checkpoint tree (* marks the current one)
  vcp adopt --domain D --metadata DIR --name VM (--nodes N | --offline) [--apply]
                                       rebuild lost checkpoint metadata from the images'
                                       bitmaps (valid chains of no known checkpoint,
                                       ordered by their dirty data; refused where the
                                       order cannot be told); --apply writes it
  vcp retain --domain D --metadata DIR --name VM --nodes N --owner O --keep K
                                       retention for one owner (checkpoints named O:NAME):
                                       the deletes, oldest first, with their steps
  vcp pending --metadata DIR --name VM [--domain D --nodes N] [--apply]
                                       checkpoints a crash left pending (two-phase backup
                                       checkpoints): the steps removing their bitmaps;
                                       --apply drops their metadata
  vcp reset --domain D --metadata DIR --name VM (--nodes N | --offline) [--apply]
                                       after a revert or a restore: drop every bitmap on
                                       every layer, retire every checkpoint
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
    "--step",
    "--children",
    "--children-only",
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
    Ok(checkpoint_def_from_xml(
        text.as_bytes(),
        Some(dom),
        ParseOptions {
            redefine: stored,
            ..ParseOptions::default()
        },
        now(),
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

/// The TARGET=VALUE pairs of a repeated per-disk option.
fn per_disk<'a>(a: &'a Args, option: &str, what: &str) -> R<Vec<(&'a str, &'a str)>> {
    a.all(option)
        .iter()
        .map(|d| {
            d.split_once('=')
                .ok_or_else(|| Fail::Usage(format!("{option} takes TARGET={what}, not '{d}'")))
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

/// A step's commands to send now, one per line, as libvirt sends them; with `--step`
/// the whole step (every phase, the jobs) as JSON.
fn print_step(a: &Args, step: &Step) {
    if a.flag("--step") {
        println!("{}", step.to_json().to_pretty());
        return;
    }
    for c in &step.now {
        println!("{}", c.to_compact());
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
            let granularity = match a.opt("--granularity") {
                Some(g) => Some(g.parse::<u64>().map_err(|_| {
                    Fail::Usage(format!("--granularity needs a number of bytes, not '{g}'"))
                })?),
                None => None,
            };
            let opts = CreateOptions { granularity };
            if a.flag("--step") {
                print_step(a, &create_step_with(&dom, &def, nd.as_ref(), opts)?);
            } else {
                print_tx(
                    a,
                    &checkpoint_add_actions_with(&dom, &def, nd.as_ref(), opts)?,
                );
            }
        }
        "delete" if a.opt("--metadata").is_some() => {
            // virDomainCheckpointDelete on the stored tree: each checkpoint the delete
            // discards, in libvirt's order, its step planned from the same node data
            // (each removes its own bitmaps only).
            let list = metadata(a)?;
            let opts = DeleteOptions {
                children: a.flag("--children"),
                children_only: a.flag("--children-only"),
                metadata_only: false,
            };
            let plan = list.plan_delete(a.req("--checkpoint")?, opts)?;
            let nd = nodes(a)?;
            let tolerate = a.flag("--ignore-missing");
            // As libvirt runs them (qemuCheckpointDelete over
            // virDomainMomentForEachDescendant): every descendant is discarded in turn,
            // also after one was refused (that one keeps its bitmaps and metadata);
            // after a refusal the target is not, and the delete fails with the last
            // refusal's error.
            let descendants = if opts.children_only {
                plan.discard.len()
            } else {
                plan.discard.len().saturating_sub(1)
            };
            let mut refused = None;
            for (i, name) in plan.discard.iter().enumerate() {
                if i == descendants && refused.is_some() {
                    break;
                }
                match discard_step(&dom, list.discarded(&plan, i)?, &nd, tolerate) {
                    Ok(step) => {
                        if !a.flag("--step") {
                            println!("# discard {name}");
                        }
                        print_step(a, &step);
                    }
                    Err(e) => refused = Some(e),
                }
            }
            if let Some(e) = refused {
                return Err(e.into());
            }
        }
        "delete" => {
            let def = checkpoint(a, &dom, true)?;
            let nodes = nodes(a)?;
            let tolerate = a.flag("--ignore-missing");
            let plan = checkpoint_discard_actions(&dom, &def, &nodes, tolerate)?;
            print_step(a, &discard_step(&dom, &def, &nodes, tolerate)?);
            for m in &plan.missing {
                eprintln!(
                    "note: bitmap '{}' was already gone from every layer of disk '{m}'",
                    def.name
                );
            }
        }
        "backup" => {
            // Per disk as libvirt aligns a backup's disks: its own checkpoint
            // (incremental='CHK'), else full when asked (backupmode='full'), else the
            // backup's <incremental>.
            let own = per_disk(a, "--incremental", "CHECKPOINT")?;
            let export = per_disk(a, "--export-bitmap", "BITMAP")?;
            let of = |pairs: &[(&str, &str)], t: &str| {
                pairs
                    .iter()
                    .find(|(d, _)| *d == t)
                    .map(|(_, v)| (*v).to_owned())
            };
            let disks: Vec<BackupDisk> = pairs(a)?
                .into_iter()
                .map(|(t, n)| BackupDisk {
                    incremental: of(&own, &t).or_else(|| {
                        (!a.all("--full").contains(&t))
                            .then(|| a.opt("--from").map(str::to_owned))
                            .flatten()
                    }),
                    export_bitmap: of(&export, &t),
                    target: t,
                    store_node: n,
                })
                .collect();
            let mode = if a.flag("--pull") {
                BackupMode::Pull
            } else {
                BackupMode::Push
            };
            let nd = nodes(a)?;
            // The checkpoint the backup creates, as requested (virsh backup-begin's
            // second document).
            let new = match a.opt("--checkpoint") {
                Some(_) => Some(checkpoint(a, &dom, false)?),
                None => None,
            };
            if a.flag("--step") {
                print_step(
                    a,
                    &backup_step(&dom, mode, &disks, &nd, &|_| true, new.as_ref(), &[])?,
                );
                return Ok(ExitCode::SUCCESS);
            }
            let plan = backup_begin_actions(&dom, mode, &disks, &nd, &|_| true, new.as_ref())?;
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
            if a.flag("--step") {
                let overlays: Vec<Image> = disks
                    .iter()
                    .map(|d| Image {
                        format: "qcow2".into(),
                        format_node: d.overlay_node.clone(),
                        ..Default::default()
                    })
                    .collect();
                print_step(a, &snapshot_step(&dom, &disks, &overlays, &nodes(a)?)?);
            } else {
                print_tx(a, &snapshot_bitmap_actions(&dom, &disks, &nodes(a)?)?);
            }
        }
        "validate" => {
            let def = checkpoint(a, &dom, true)?;
            let step = redefine_validate_step(&dom, &def, Some(&nodes(a)?), true)?;
            print_step(a, &step);
            eprintln!("checkpoint '{}': every bitmap chain is valid", def.name);
        }
        "commit" if a.flag("--step") => {
            let target = a.req("--disk")?;
            let (top, base) = (a.req("--top")?, a.req("--base")?);
            let job = format!("commit-{target}-{top}");
            print_step(a, &commit_step(&dom, target, top, base, &job, &nodes(a)?)?);
        }
        "copy" if a.flag("--step") => {
            let target = a.req("--disk")?;
            let mirror = Image {
                format: a.opt("--mirror-format").unwrap_or("qcow2").into(),
                format_node: a.req("--mirror")?.to_owned(),
                ..Default::default()
            };
            let job = format!("copy-{target}-{}", mirror.format_node);
            let shallow = a.flag("--shallow");
            print_step(
                a,
                &copy_step(
                    &dom,
                    target,
                    &mirror,
                    shallow,
                    false,
                    true,
                    &job,
                    &nodes(a)?,
                )?,
            );
        }
        "pull" if a.flag("--step") => {
            let target = a.req("--disk")?;
            let job = format!("pull-{target}");
            print_step(
                a,
                &pull_step(&dom, target, a.opt("--base"), &job, &nodes(a)?)?,
            );
        }
        "commit" => {
            let d = dom.find_disk(a.req("--disk")?)?;
            let top = d.layer_of(a.req("--top")?)?;
            let base = d.layer_of(a.req("--base")?)?;
            print_tx(
                a,
                &blockcommit_bitmap_actions(&d.chain, top, base, a.flag("--active"), &nodes(a)?)?,
            );
        }
        "copy" => {
            let d = dom.find_disk(a.req("--disk")?)?;
            print_tx(
                a,
                &blockcopy_bitmap_actions(
                    &d.chain,
                    a.req("--mirror")?,
                    a.flag("--shallow"),
                    &nodes(a)?,
                ),
            );
        }
        "pull" => {
            let d = dom.find_disk(a.req("--disk")?)?;
            let base = a.opt("--base").map(|b| d.layer_of(b)).transpose()?;
            print_tx(a, &blockpull_bitmap_actions(&d.chain, base, &nodes(a)?));
        }
        "size" if a.flag("--step") => {
            let def = checkpoint(a, &dom, true)?;
            print_step(a, &size_step(&dom, &def, &nodes(a)?));
        }
        "size" => {
            let def = checkpoint(a, &dom, true)?;
            let plan = size_actions(&dom, &def, &nodes(a)?);
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

/// `vcp offline OP`: a plan for a shut-off domain, as `qemu-img` commands, printed
/// and with `--apply` carried out.
fn offline_op(a: &Args) -> R<ExitCode> {
    let op = a.positional.get(1).map(String::as_str).unwrap_or("");
    let dom = domain(a)?;
    let nd = tools::inspect(&dom, false)?;
    let layer = |flag: &str| -> R<usize> {
        let file = a.req(flag)?;
        let d = dom.find_disk(a.req("--disk")?)?;
        d.chain
            .iter()
            .position(|i| i.source == file)
            .ok_or_else(|| {
                Fail::Usage(format!("{file} is not in the chain of disk '{}'", d.target))
            })
    };
    let cmds = match op {
        "create" => offline::create_commands(&dom, &checkpoint(a, &dom, false)?, &nd)?,
        "delete" => {
            let def = checkpoint(a, &dom, true)?;
            let (cmds, missing) =
                offline::delete_commands(&dom, &def, &nd, a.flag("--ignore-missing"))?;
            for m in &missing {
                eprintln!(
                    "note: bitmap '{}' was already gone from disk '{m}'",
                    def.name
                );
            }
            cmds
        }
        "commit" => {
            let target = a.req("--disk")?;
            offline::commit_commands(&dom, target, layer("--top")?, layer("--base")?, &nd)?
        }
        "snapshot" => offline::snapshot_commands(&dom, a.req("--disk")?, a.req("--overlay")?, &nd)?,
        "size" => {
            let def = checkpoint(a, &dom, true)?;
            let plan = offline::size_commands(&dom, &def, &nd)?;
            print_argv(&plan.merge);
            print_argv(&plan.cleanup);
            if a.flag("--apply") {
                plan.merge.iter().try_for_each(|c| tools::run(c))?;
                let measured = plan
                    .disks
                    .iter()
                    .map(|(t, file)| Ok((t, tools::dirty_bytes(file, TMP_SIZE)?)))
                    .collect::<R<Vec<_>>>();
                plan.cleanup.iter().try_for_each(|c| tools::run(c))?;
                for (target, bytes) in measured? {
                    println!("{target}: {bytes}");
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        other => return Err(Fail::Usage(format!("unknown offline plan '{other}'"))),
    };
    print_argv(&cmds);
    if a.flag("--apply") {
        cmds.iter().try_for_each(|c| tools::run(c))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// An offline plan: its `qemu-img` commands printed, and run with `--apply`.
fn print_or_run(a: &Args, cmds: &[offline::Argv]) -> R<()> {
    for c in cmds {
        println!("{}", c.join(" "));
        if a.flag("--apply") {
            tools::run(c)?;
        }
    }
    Ok(())
}

/// An online plan: its step printed for the driver to send (`--apply` is offline only).
fn print_online(a: &Args, step: &Step) -> R<()> {
    if a.flag("--apply") {
        return Err(Fail::Usage(
            "--apply runs offline plans only; send the printed QMP to QEMU".into(),
        ));
    }
    print_step(a, step);
    Ok(())
}

fn print_argv(cmds: &[offline::Argv]) {
    for c in cmds {
        println!("{}", c.join(" "));
    }
}

fn bitmaps_for(a: &Args, dom: &Domain) -> R<(Domain, NodeData)> {
    if a.flag("--offline") {
        Ok((dom.clone(), tools::inspect(dom, a.flag("--in-use"))?))
    } else {
        Ok((dom.clone(), nodes(a)?))
    }
}

fn check(a: &Args) -> R<ExitCode> {
    let (dom, nd) = bitmaps_for(a, &domain(a)?)?;
    let list = metadata(a)?;
    let rep = reconcile(&dom, &list.topological(), &nd);
    let fix = fix_plan(&rep, &dom);
    if a.flag("--json") {
        println!("{}", report_json(&rep, &fix).to_compact());
    } else {
        print!("{}", table::table(&rep, &dom));
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
    let rep = reconcile(&dom, &list.topological(), &nd);
    if rep.is_clean() {
        println!("nothing to fix");
        return Ok(ExitCode::SUCCESS);
    }
    // Adoption before removal: orphans that form valid chains can become checkpoints
    // again (`vcp adopt`) instead of being removed.
    if !rep.orphans.is_empty() {
        let mut trial = list.clone();
        if let Ok(names) = adopt_into(&mut trial, &dom, &nd, None, now())
            && !names.is_empty()
        {
            println!(
                "# {} orphan bitmap(s) can be adopted as checkpoints instead of removed: {} (run 'vcp adopt ... --apply' first)",
                names.len(),
                names.join(", ")
            );
        }
    }
    let plan = fix_plan(&rep, &dom);
    let apply = a.flag("--apply");
    if a.flag("--offline") {
        if a.flag("--in-use") && apply {
            return Err(Fail::Usage(
                "--apply cannot change the images of a running domain; plan online instead".into(),
            ));
        }
        print_or_run(a, &fix_commands(&plan))?;
    } else {
        print_online(a, &fix_step(&dom, &plan, &nd))?;
    }
    for (cp, disk) in &plan.uncover {
        println!("# metadata: checkpoint {cp} no longer claims disk {disk}");
    }
    for cp in &plan.drop {
        println!("# metadata: checkpoint {cp} is broken on every disk and is dropped");
    }
    if apply {
        let md = MetadataDir::new(Path::new(a.req("--metadata")?), a.req("--name")?)?;
        let (changed, removed) = apply_fix(&mut list, &plan, Some(&md))?;
        println!(
            "applied: {} bitmap removal(s), {changed} checkpoint(s) rewritten, {removed} dropped",
            plan.removals.len(),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `vcp adopt`: rebuilds lost checkpoint metadata from the images' bitmaps, prints
/// the definitions (as `virsh checkpoint-redefine` takes them), and with `--apply`
/// writes them into the metadata folder.
fn adopt_cmd(a: &Args) -> R<ExitCode> {
    let (dom, nd) = bitmaps_for(a, &domain(a)?)?;
    let mut list = metadata(a)?;
    let md = MetadataDir::new(Path::new(a.req("--metadata")?), a.req("--name")?)?;
    let dir = a.flag("--apply").then_some(&md);
    let names = adopt_into(&mut list, &dom, &nd, dir, now())?;
    if names.is_empty() {
        println!("nothing to adopt");
        return Ok(ExitCode::SUCCESS);
    }
    for n in &names {
        let def = list.get(n)?;
        print!(
            "{}",
            format_checkpoint(
                def,
                FormatOptions {
                    secure: true,
                    ..Default::default()
                }
            )
        );
    }
    let verb = if a.flag("--apply") {
        "adopted"
    } else {
        "would adopt"
    };
    println!("# {verb}, oldest first: {}", names.join(" -> "));
    Ok(ExitCode::SUCCESS)
}

/// `vcp reset`: drops every bitmap on every layer and retires every checkpoint, for
/// after a revert or a restore. Online it prints the step; offline `--apply` runs the
/// `qemu-img` commands and removes the metadata files.
fn reset_cmd(a: &Args) -> R<ExitCode> {
    let (dom, nd) = bitmaps_for(a, &domain(a)?)?;
    let mut list = metadata(a)?;
    let apply = a.flag("--apply");
    if a.flag("--offline") {
        print_or_run(a, &offline::reset_commands(&dom, &nd)?)?;
    } else {
        print_online(a, &reset_step(&dom, &nd))?;
    }
    let names: Vec<String> = list.defs().map(|d| d.name.clone()).collect();
    println!("# metadata: checkpoints retired: {}", names.join(", "));
    if apply {
        let md = MetadataDir::new(Path::new(a.req("--metadata")?), a.req("--name")?)?;
        retire_all(&mut list, Some(&md))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `vcp retain`: for one owner, which checkpoints retention deletes (oldest first),
/// and each delete's step from the node data. No other owner's checkpoint is listed.
fn retain_cmd(a: &Args) -> R<ExitCode> {
    let dom = domain(a)?;
    let nd = nodes(a)?;
    let list = metadata(a)?;
    let owner = a.req("--owner")?;
    let keep: usize = a
        .req("--keep")?
        .parse()
        .map_err(|_| Fail::Usage("--keep needs a count".into()))?;
    let plans = list.plan_retention(owner, keep)?;
    if plans.is_empty() {
        println!("nothing to delete for owner {owner}");
    }
    let mut next = list.clone();
    for plan in &plans {
        println!("# delete {}", plan.target);
        for i in 0..plan.discard.len() {
            print_step(a, &discard_step(&dom, next.discarded(plan, i)?, &nd, true)?);
        }
        next.apply_delete(plan)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `vcp pending`: the checkpoints a crash left pending (created with a backup, never
/// committed), and with `--nodes` the steps that remove their bitmaps; `--apply` then
/// drops their metadata (once those steps were sent).
fn pending_cmd(a: &Args) -> R<ExitCode> {
    let md = MetadataDir::new(Path::new(a.req("--metadata")?), a.req("--name")?)?;
    let names = md.pending()?;
    if names.is_empty() {
        println!("nothing pending");
        return Ok(ExitCode::SUCCESS);
    }
    println!("# pending: {}", names.join(", "));
    if a.opt("--nodes").is_some() {
        let dom = domain(a)?;
        let nd = nodes(a)?;
        for n in &names {
            print_step(a, &pending_abort_step(&dom, &nd, n));
        }
    }
    if a.flag("--apply") {
        let mut list = metadata(a)?;
        for n in &names {
            drop_pending(&mut list, &md, n)?;
        }
        println!("# dropped: {}", names.join(", "));
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
        // Sorted by name, as virsh's --tree prints them.
        let mut children = list
            .list(Some(name), ListOptions::default())
            .unwrap_or_default();
        children.sort_unstable();
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
    let mut roots = list.list(
        None,
        virtcheckpoint::ListOptions {
            roots: true,
            ..Default::default()
        },
    )?;
    roots.sort_unstable();
    for root in roots {
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
    let (decided, plan) = resolve_backup(
        &dom,
        mode,
        &disks,
        &nodes(a)?,
        &list.topological(),
        from,
        None,
    )?;
    println!("{}", resolution_json(&decided).to_compact());
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
                print!("{}", virtcheckpoint::detect_report(&nd));
            }
            Ok(ExitCode::SUCCESS)
        }
        "plan" => plan(&a),
        "offline" => offline_op(&a),
        "check" => check(&a),
        "fix" => fix(&a),
        "tree" => tree(&a),
        "adopt" => adopt_cmd(&a),
        "reset" => reset_cmd(&a),
        "retain" => retain_cmd(&a),
        "pending" => pending_cmd(&a),
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
