//! A QMP client over a unix socket: greeting, capabilities, commands, events, errors.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{HarnessError, Result, io};

/// One QMP connection.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    events: VecDeque<Value>,
    next_id: u64,
    /// Every command sent, as text (for narration).
    pub sent: Vec<String>,
}

impl Qmp {
    /// Connects to `socket` (waiting up to `timeout` for it to appear), reads the
    /// greeting (skipping any early event) and negotiates capabilities.
    pub fn connect(socket: &Path, timeout: Duration) -> Result<Qmp> {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(socket) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => {
                    return Err(HarnessError::Io(format!("connect {}", socket.display()), e));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        io(
            "socket timeout",
            stream.set_read_timeout(Some(Duration::from_secs(60))),
        )?;
        let writer = io("socket clone", stream.try_clone())?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
            events: VecDeque::new(),
            next_id: 1,
            sent: Vec::new(),
        };
        loop {
            let msg = qmp.read_message()?;
            if msg.get("QMP").is_some() {
                break;
            }
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    fn read_line(&mut self) -> Result<String> {
        let mut line = String::new();
        let n = io("read from QMP", self.reader.read_line(&mut line))?;
        if n == 0 {
            return Err(HarnessError::Other("QEMU closed the QMP connection".into()));
        }
        Ok(line)
    }

    fn read_message(&mut self) -> Result<Value> {
        let line = self.read_line()?;
        serde_json::from_str(&line)
            .map_err(|e| HarnessError::Other(format!("QMP sent non-JSON '{line}': {e}")))
    }

    /// Sends `{"execute": command, "arguments": args}` and returns the raw reply line.
    pub fn execute_raw(&mut self, command: &str, args: Option<&str>) -> Result<String> {
        let id = format!("vcp-{}", self.next_id);
        self.next_id += 1;
        let text = match args {
            Some(a) => format!(r#"{{"execute":"{command}","arguments":{a},"id":"{id}"}}"#),
            None => format!(r#"{{"execute":"{command}","id":"{id}"}}"#),
        };
        self.send_text(&text, command, &id)
    }

    /// Sends an already formatted command (`{"execute":...}` without `id`).
    pub fn execute_text(&mut self, command_json: &str) -> Result<String> {
        let id = format!("vcp-{}", self.next_id);
        self.next_id += 1;
        let body = command_json.trim();
        let body = body
            .strip_suffix('}')
            .ok_or_else(|| HarnessError::Other(format!("not a JSON object: {command_json}")))?;
        let name = serde_json::from_str::<Value>(command_json)
            .ok()
            .and_then(|v| v["execute"].as_str().map(str::to_owned))
            .unwrap_or_default();
        self.send_text(&format!(r#"{body},"id":"{id}"}}"#), &name, &id)
    }

    fn send_text(&mut self, text: &str, command: &str, id: &str) -> Result<String> {
        if std::env::var_os("VCP_QMP_TRACE").is_some() {
            eprintln!("qmp -> {text}");
        }
        self.sent.push(text.to_owned());
        io("write to QMP", self.writer.write_all(text.as_bytes()))?;
        io("write to QMP", self.writer.write_all(b"\n"))?;
        loop {
            let line = self.read_line()?;
            let msg: Value = serde_json::from_str(&line)
                .map_err(|e| HarnessError::Other(format!("QMP sent non-JSON '{line}': {e}")))?;
            if msg.get("event").is_some() {
                self.events.push_back(msg);
                continue;
            }
            if msg["id"].as_str() != Some(id) {
                continue;
            }
            if let Some(err) = msg.get("error") {
                return Err(HarnessError::Qmp {
                    command: command.to_owned(),
                    class: err["class"].as_str().unwrap_or("").to_owned(),
                    desc: err["desc"].as_str().unwrap_or("").to_owned(),
                });
            }
            return Ok(line);
        }
    }

    /// Sends a command and returns its `return` value.
    pub fn execute(&mut self, command: &str, args: Option<Value>) -> Result<Value> {
        let a = args.map(|v| v.to_string());
        let line = self.execute_raw(command, a.as_deref())?;
        let v: Value = serde_json::from_str(&line)
            .map_err(|e| HarnessError::Other(format!("bad reply: {e}")))?;
        Ok(v["return"].clone())
    }

    /// Forgets the events received so far (those of another driver's jobs).
    pub fn discard_events(&mut self) {
        self.events.clear();
    }

    /// Waits for event `name` whose `data` satisfies `pred`; earlier events are kept.
    pub fn wait_event(
        &mut self,
        name: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(pos) = self
                .events
                .iter()
                .position(|e| e["event"] == name && pred(&e["data"]))
            {
                return Ok(self.events.remove(pos).unwrap_or_default());
            }
            if Instant::now() > deadline {
                return Err(HarnessError::Other(format!(
                    "no {name} event within {timeout:?}"
                )));
            }
            let msg = self.read_message()?;
            if msg.get("event").is_some() {
                self.events.push_back(msg);
            }
        }
    }
}
