//! `tollgate events validate`.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::json;
use tollgate_event::EventBody;
use tollgate_event::{ReasonCode, RejectReason};

use crate::cli::ValidateArgs;
use crate::config::Loaded;
use crate::progress::count;

pub fn validate(loaded: Loaded, args: ValidateArgs) -> Result<ExitCode> {
    let limits = loaded.config.ingest.limits();
    let received_at = args.received_at.unwrap_or_else(chrono::Utc::now);
    let input: Box<dyn Read> = if args.input.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(
            std::fs::File::open(&args.input)
                .with_context(|| format!("opening {}", args.input.display()))?,
        )
    };
    let mut reader = BufReader::with_capacity(1 << 20, input);
    // The limit, a CR and an LF.
    let line_limit = limits.max_event_bytes as u64 + 2;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (mut lines, mut valid, mut rejected) = (0u64, 0u64, 0u64);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        // A line is read up to the event size limit (and its line end);
        // the rest of a longer one is skipped, never held in memory.
        let n = (&mut reader)
            .take(line_limit)
            .read_until(b'\n', &mut buf)
            .context("reading the input")?;
        if n == 0 {
            break;
        }
        lines += 1;
        let overlong = n as u64 == line_limit && !buf.ends_with(b"\n");
        if overlong {
            skip_line(&mut reader).context("reading the input")?;
        }
        let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let result = if overlong {
            Err(RejectReason::new(
                ReasonCode::TooLarge,
                "$",
                format!(
                    "the line is longer than {} bytes (ingest.max_event_bytes)",
                    limits.max_event_bytes
                ),
            ))
        } else {
            tollgate_event::decode(line, &limits, received_at)
        };
        let written = match &result {
            Ok(e) => {
                valid += 1;
                let kind = e.body.kind();
                let phase = match &e.body {
                    EventBody::ToolCall(c) => Some(c.phase.as_str()),
                    EventBody::GpuUsage(_) => None,
                };
                let s = e.envelope.schema;
                if args.quiet {
                    Ok(())
                } else if args.json {
                    writeln!(
                        out,
                        "{}",
                        json!({"line": lines, "ok": true, "kind": kind, "phase": phase, "version": format!("v{}.{}", s.major, s.minor), "upcast": s.major == 0, "kept_fields": e.extra.len()})
                    )
                } else {
                    let mut note = String::new();
                    if s.major == 0 {
                        note.push_str(" (upcast from v0)");
                    }
                    if !e.extra.is_empty() {
                        note.push_str(&format!(
                            " (kept {} field(s) of v{}.{})",
                            e.extra.len(),
                            s.major,
                            s.minor
                        ));
                    }
                    writeln!(
                        out,
                        "line {lines}: ok {kind}{}{note}",
                        phase.map(|p| format!(" {p}")).unwrap_or_default()
                    )
                }
            }
            Err(r) => {
                rejected += 1;
                if args.quiet {
                    Ok(())
                } else if args.json {
                    writeln!(
                        out,
                        "{}",
                        json!({"line": lines, "ok": false, "code": r.code, "field": r.field, "message": r.message})
                    )
                } else {
                    writeln!(out, "line {lines}: rejected [{}] {r}", r.code)
                }
            }
        };
        match written {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::from(1)),
            other => other.context("writing results")?,
        }
    }
    out.flush().ok();
    eprintln!(
        "checked {} event(s): {} valid, {} rejected",
        count(valid + rejected),
        count(valid),
        count(rejected)
    );
    Ok(if rejected == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Skips the rest of the current line (through its `\n`, or to the end).
fn skip_line(reader: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let (done, used) = {
            let available = reader.fill_buf()?;
            match available.iter().position(|&b| b == b'\n') {
                Some(i) => (true, i + 1),
                None => (available.is_empty(), available.len()),
            }
        };
        reader.consume(used);
        if done {
            return Ok(());
        }
    }
}
