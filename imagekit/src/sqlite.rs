//! SQLite as a workload: the script both of its uses build (a kernel-allocated image's database,
//! and a recorded workload's), and running it through the `sqlite3` shell.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::cmd::{describe, tool};
use crate::error::{cut, io_err, Error, Result};
use crate::Rng;

/// Every script's start: a rollback journal synced on every commit (what makes SQLite allocate
/// and free blocks in small steps).
pub(crate) const JOURNAL: &str = "PRAGMA journal_mode=DELETE;\nPRAGMA synchronous=FULL;\n";

/// The one table: rows of blobs.
pub(crate) const TABLE: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);\n";

/// Opens a transaction of one to three inserted rows of 500 B to 20 KB (`rows` counts the rows
/// inserted so far); the caller adds what else goes in it and the `COMMIT`.
pub(crate) fn insert_rows(sql: &mut String, rng: &mut Rng, rows: &mut u64) {
    sql.push_str("BEGIN;\n");
    for _ in 0..rng.range(1, 4) {
        *rows += 1;
        let bytes = rng.range(500, 20_000);
        sql.push_str(&format!("INSERT INTO t(v) VALUES (randomblob({bytes}));\n"));
    }
}

/// Runs `sql` on the database `db` (`sqlite3 -bail`, the script on its standard input, so no
/// script file lands on the file system being measured); `image` names the image in errors.
pub(crate) fn run(db: &Path, sql: &str, image: &Path) -> Result<()> {
    let mut cmd = Command::new(tool("sqlite3")?);
    cmd.arg("-bail")
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let command = describe(&cmd);
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        command: command.clone(),
        source,
    })?;
    // Fed whole, then closed; a shell that stopped early (-bail) fails the write, and its exit
    // status and message say why better than the broken pipe.
    let fed = match child.stdin.take() {
        Some(mut stdin) => stdin.write_all(sql.as_bytes()),
        None => Ok(()),
    };
    let out = child
        .wait_with_output()
        .map_err(io_err("waiting for sqlite3 on", db))?;
    if !out.status.success() {
        return Err(Error::Failed {
            command,
            image: image.to_owned(),
            status: out.status.to_string(),
            stderr: cut(&String::from_utf8_lossy(&out.stderr)),
        });
    }
    fed.map_err(io_err("feeding sqlite3 for", db))
}
