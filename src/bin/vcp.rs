//! `vcp`: the command line over virtcheckpoint.

use std::io::Read;
use std::process::ExitCode;

use virtcheckpoint::{NodeData, parse_node_data};

const USAGE: &str = "\
usage: vcp <command> [arguments]

commands:
  nodes [FILE|-]    read a query-named-block-nodes reply (bare array or whole QMP
                    reply) and print every node's dirty bitmaps
  report [FILE|-]   print libvirt's bitmap detection report for the reply
  help              show this text

Errors are printed on stderr in libvirt's wording; the exit code is 0 on success,
1 when the library refused the input, 2 on a usage error.";

fn read_input(arg: Option<&str>) -> Result<String, String> {
    let mut text = String::new();
    match arg {
        None | Some("-") => std::io::stdin()
            .read_to_string(&mut text)
            .map(|_| text)
            .map_err(|e| format!("cannot read standard input: {e}")),
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| format!("cannot read '{path}': {e}"))
        }
    }
}

fn print_nodes(nd: &NodeData) {
    for node in nd.nodes() {
        let mut flags = Vec::new();
        if node.qcow2v2 {
            flags.push("qcow2 v2");
        }
        println!(
            "{}  size {}  cluster {}{}",
            node.name,
            node.capacity,
            node.cluster_size,
            if flags.is_empty() {
                String::new()
            } else {
                format!("  [{}]", flags.join(", "))
            }
        );
        if node.bitmaps.is_empty() {
            println!("    (no bitmaps)");
        }
        for b in &node.bitmaps {
            let mut state = Vec::new();
            state.push(if b.recording { "recording" } else { "disabled" });
            if b.persistent {
                state.push("persistent");
            } else {
                state.push("transient");
            }
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

fn run(args: &[String]) -> Result<(), (u8, String)> {
    let cmd = args.first().map(String::as_str).unwrap_or("help");
    let arg = args.get(1).map(String::as_str);
    match cmd {
        "nodes" | "report" => {
            let text = read_input(arg).map_err(|e| (1, e))?;
            let nd = parse_node_data(&text).map_err(|e| (1, format!("error: {e}")))?;
            if cmd == "nodes" {
                print_nodes(&nd);
            } else {
                print!("{}", virtcheckpoint::qmp::print::detect_report(&nd));
            }
            Ok(())
        }
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err((2, format!("vcp: unknown command '{other}'\n\n{USAGE}"))),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, msg)) => {
            eprintln!("{msg}");
            ExitCode::from(code)
        }
    }
}
