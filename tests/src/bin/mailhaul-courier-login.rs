//! The test kit's pre-login for Courier-IMAP (tests/src/kit/courier.rs), in place of
//! Courier's `imaplogin` + authdaemond (whose socket and config paths are compiled in,
//! so private instances could not run side by side).
//!
//! `couriertcpd` runs it per connection with the socket on stdin/stdout:
//! `mailhaul-courier-login <users-file> <mail-root> <imapd>`. It greets, answers
//! CAPABILITY, NOOP and LOGOUT, and on a `LOGIN` whose user and password match a
//! `user:password` line of the users file it does what `imaplogin` does after
//! authentication: `chdir` to `<mail-root>/<user>`, set `AUTHENTICATED` and
//! `IMAPLOGINTAG`, and exec Courier's `imapd Maildir`, which answers the LOGIN itself
//! (`<tag> OK LOGIN Ok.`) and serves the session. Everything after login is Courier's.

use std::io::{BufRead as _, Write as _};
use std::os::unix::process::CommandExt as _;
use std::process::Command;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: mailhaul-courier-login <users-file> <mail-root> <imapd>");
        std::process::exit(2);
    }
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut out = std::io::stdout();
    let caps = "IMAP4rev1 AUTH=LOGIN";
    let _ = write!(
        out,
        "* OK [CAPABILITY {caps}] Courier-IMAP ready (mailhaul test pre-login)\r\n"
    );
    let _ = out.flush();
    let mut line = String::new();
    loop {
        line.clear();
        match input.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let words = tokens(line.trim_end_matches(['\r', '\n']));
        let (Some(tag), Some(verb)) = (words.first(), words.get(1)) else {
            let _ = write!(out, "* BAD empty command\r\n");
            let _ = out.flush();
            continue;
        };
        match verb.to_ascii_uppercase().as_str() {
            "CAPABILITY" => {
                let _ = write!(
                    out,
                    "* CAPABILITY {caps}\r\n{tag} OK CAPABILITY completed\r\n"
                );
            }
            "NOOP" => {
                let _ = write!(out, "{tag} OK NOOP completed\r\n");
            }
            "LOGOUT" => {
                let _ = write!(out, "* BYE bye\r\n{tag} OK LOGOUT completed\r\n");
                let _ = out.flush();
                return;
            }
            "LOGIN" if words.len() == 4 => {
                if known(&args[1], &words[2], &words[3]) {
                    let _ = out.flush();
                    let home = std::path::Path::new(&args[2]).join(&words[2]);
                    let err = Command::new(&args[3])
                        .arg("Maildir")
                        .current_dir(&home)
                        .env("AUTHENTICATED", &words[2])
                        .env("HOME", &home)
                        .env("IMAPLOGINTAG", tag)
                        .exec();
                    let _ = write!(out, "{tag} NO cannot start imapd: {err}\r\n");
                } else {
                    let _ = write!(out, "{tag} NO Login failed.\r\n");
                }
            }
            _ => {
                let _ = write!(out, "{tag} BAD not before LOGIN\r\n");
            }
        }
        let _ = out.flush();
    }
}

/// Whether `user:password` is a line of the users file.
fn known(file: &str, user: &str, password: &str) -> bool {
    let want = format!("{user}:{password}");
    std::fs::read_to_string(file).is_ok_and(|s| s.lines().any(|l| l == want))
}

/// Splits a command line into atoms and quoted strings (RFC 3501 §4.3, `\"` and `\\`).
fn tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c == ' ' {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if c == '"' {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => word.extend(chars.next()),
                    '"' => break,
                    c => word.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        out.push(word);
    }
    out
}
