//! The documents' snippets against the real binary: every ```toml block in README.md and docs/*.md
//! is a config that `tokengate --check` accepts, and every ```sh block parses as shell, so a key
//! renamed in the code or a default changed cannot leave the documents behind.
//!
//! A block fenced ```toml fragment is only parsed as TOML (for the rare piece that cannot stand
//! alone). Files a snippet names that `--check` opens (TLS certificate and key, previous JWT keys)
//! are made in the temporary folder beside it first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One fenced code block of a document.
struct Snippet {
    /// `README.md:42`: where its fence opens.
    place: String,
    /// The info string's first word (`toml`, `sh`).
    lang: String,
    /// The info string has the word `fragment`.
    fragment: bool,
    text: String,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every docs/*.md, in a fixed order.
fn documents() -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    docs.insert(0, root().join("README.md"));
    docs
}

fn snippets(path: &Path) -> Vec<Snippet> {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path.strip_prefix(root()).unwrap_or(path).display().to_string();
    let mut out = Vec::new();
    // The open fence: its marker, the line it opens on, its info string, the lines so far.
    let mut open: Option<(String, usize, String, Vec<&str>)> = None;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker: String = trimmed.chars().take_while(|&c| c == '`' || c == '~').collect();
        let rest = trimmed[marker.len()..].trim();
        // A fence is three or more of one character: ``` or ~~~.
        let is_fence = marker.len() >= 3 && !(marker.contains('`') && marker.contains('~'));
        let closes = matches!(&open, Some((m, ..)) if is_fence && marker.starts_with(m.as_str()) && rest.is_empty());
        if closes {
            let (_, at, info, body) = open.take().unwrap();
            let mut words = info.split_whitespace();
            out.push(Snippet {
                place: format!("{name}:{at}"),
                lang: words.next().unwrap_or_default().to_string(),
                fragment: words.any(|w| w == "fragment"),
                text: body.join("\n") + "\n",
            });
        } else if let Some((_, _, _, body)) = &mut open {
            body.push(line);
        } else if is_fence {
            open = Some((marker, n + 1, rest.to_string(), Vec::new()));
        }
    }
    assert!(open.is_none(), "{name}: a code fence is never closed");
    out
}

fn all(lang: &[&str]) -> Vec<Snippet> {
    documents()
        .iter()
        .flat_map(|d| snippets(d))
        .filter(|s| lang.contains(&s.lang.as_str()))
        .collect()
}

/// Writes what `--check` opens besides the config: a certificate and its key, previous JWT keys.
fn make_named_files(dir: &Path, config: &toml::Table) {
    let server = config.get("server").and_then(|s| s.as_table());
    let path = |v: &toml::Value| {
        let p = Path::new(v.as_str().expect("a path is a string"));
        let p = if p.is_absolute() { p.to_path_buf() } else { dir.join(p) };
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        p
    };
    if let Some((cert, key)) = server.and_then(|s| Some((s.get("tls_cert")?, s.get("tls_key")?))) {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        std::fs::write(path(cert), c.cert.pem()).unwrap();
        std::fs::write(path(key), c.signing_key.serialize_pem()).unwrap();
    }
    let previous = config
        .get("oauth")
        .and_then(|o| o.get("jwt_previous_keys"))
        .and_then(|k| k.as_array());
    for key in previous.into_iter().flatten() {
        let pair = rcgen::KeyPair::generate().unwrap();
        std::fs::write(path(key), pair.serialize_pem()).unwrap();
    }
}

#[test]
fn every_toml_snippet_is_a_config_the_gateway_accepts() {
    let snippets = all(&["toml"]);
    assert!(snippets.len() >= 5, "only {} ```toml snippets found", snippets.len());
    let mut failures = Vec::new();
    for s in &snippets {
        let parsed: toml::Table = match toml::from_str(&s.text) {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!("{}: not TOML: {e}", s.place));
                continue;
            }
        };
        if s.fragment {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("gateway.toml");
        std::fs::write(&conf, &s.text).unwrap();
        make_named_files(dir.path(), &parsed);
        let out = Command::new(env!("CARGO_BIN_EXE_tokengate"))
            .arg("--conf")
            .arg(&conf)
            .arg("--check")
            .output()
            .unwrap();
        if !out.status.success() {
            failures.push(format!(
                "{}: --check refused it: {}",
                s.place,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    let fragments = snippets.iter().filter(|s| s.fragment).count();
    assert!(
        fragments * 5 <= snippets.len(),
        "{fragments} of {} ```toml snippets are fragments: keep them rare, make them whole configs",
        snippets.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_shell_snippet_parses() {
    let snippets = all(&["sh", "bash", "shell", "console"]);
    assert!(!snippets.is_empty(), "no ```sh snippets found");
    let mut failures = Vec::new();
    for s in &snippets {
        let mut child = Command::new("bash")
            .arg("-n")
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), s.text.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        if !out.status.success() {
            failures.push(format!("{}: {}", s.place, String::from_utf8_lossy(&out.stderr).trim()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
