//! `factum demo bank` end to end, as a user runs it: no service, no data directory of their
//! own, and the summary, the query, the snapshot effect, the fraud report and the upcast
//! orders on standard output, with the figures checked in the JSON report on its last line.

use std::process::Command;

use serde_json::Value;

/// Runs `factum demo bank` with `args`, expecting success; returns standard output.
fn demo(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_factum"))
        .args(["demo", "bank"])
        .args(args)
        .output()
        .expect("factum runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "factum demo bank failed: {stderr}");
    String::from_utf8(output.stdout).expect("the demo prints UTF-8")
}

/// The line of `text` containing `needle`, or a failure that shows the text.
fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines()
        .find(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
}

/// The default run, in a temporary directory it removes: every step prints, with the figures
/// of the script.
#[test]
fn demo_bank_prints_every_step() {
    let text = demo(&["--busy-events", "2000"]);

    let refused = line_with(&text, "REFUSED");
    assert!(refused.contains("account-bob"), "{refused}");
    assert!(refused.contains("Insufficient funds"), "{refused}");
    let nothing = line_with(&text, "nothing written");
    let heads: Vec<&str> = nothing
        .split(|c: char| !c.is_ascii_digit())
        .filter(|part| !part.is_empty())
        .collect();
    assert_eq!(heads.len(), 2, "{nothing}");
    assert_eq!(
        heads[0], heads[1],
        "a refused command moved the head: {nothing}"
    );

    // The summary, then the query's answer, richest first.
    let bob = text
        .lines()
        .find(|line| line.trim_start().starts_with("bob "))
        .expect("the summary has a row for bob");
    assert!(bob.contains("Bob") && bob.ends_with("$150.00"), "{bob}");
    let rich: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("balance > $1,000:"))
        .collect();
    assert_eq!(rich.len(), 3, "{text}");
    assert!(
        rich[0].contains("carol") && rich[0].contains("$2,703.45"),
        "{rich:?}"
    );
    assert!(
        rich[1].contains("erin") && rich[1].contains("$2,001.00"),
        "{rich:?}"
    );
    assert!(
        rich[2].contains("alice") && rich[2].contains("$1,050.00"),
        "{rich:?}"
    );

    assert!(line_with(&text, "without snapshots").contains("replayed 2,002 events"));
    let with = line_with(&text, "with snapshots:");
    assert!(
        with.contains("replayed 0 events after the snapshot at revision 2001"),
        "{with}"
    );

    assert!(line_with(&text, "built by replaying all history").contains("2,024 account events"));
    let flagged = line_with(&text, "fraud report:");
    assert!(flagged.contains("dave flagged, 5 withdrawals"), "{flagged}");

    assert!(
        line_with(&text, "order-1001: stored as v1").contains("total_cents 1250, currency USD")
    );
    assert!(line_with(&text, "order-1002: stored as v2").contains("currency USD"));

    let dir = line_with(&text, "on an embedded store in ")
        .rsplit(' ')
        .next()
        .expect("the line names the directory");
    assert!(
        !std::path::Path::new(dir).exists(),
        "the temporary directory {dir} was left behind"
    );
}

/// With --json the last line holds the figures, and a named data directory is kept, with the
/// store and both read models in it.
#[test]
fn demo_bank_reports_its_figures_and_keeps_a_named_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("demo");
    let text = demo(&[
        "--busy-events",
        "500",
        "--json",
        "--data-dir",
        data_dir.to_str().unwrap(),
    ]);
    let report: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();

    assert_eq!(report["refused"]["account_id"], "bob");
    assert_eq!(
        report["refused"]["head_before"],
        report["refused"]["head_after"]
    );
    let rich: Vec<&str> = report["rich_accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["account_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        rich,
        ["carol", "alice"],
        "erin has $501.00 with 500 deposits"
    );
    assert_eq!(report["snapshot"]["events"], 502);
    assert_eq!(report["snapshot"]["without"]["replayed"], 502);
    assert_eq!(report["snapshot"]["with"]["replayed"], 0);
    assert_eq!(report["snapshot"]["with"]["snapshot_revision"], 501);
    assert_eq!(report["fraud"]["replayed_events"], 14 + 8 + 502);
    assert_eq!(report["concurrent"]["balance_cents"], 270_345);
    assert_eq!(report["fraud"]["flagged"], serde_json::json!([["dave", 5]]));
    let versions: Vec<u64> = report["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|order| order["stored_version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2, 3]);

    assert!(data_dir.join("events").is_dir());
    assert!(data_dir.join("account_summary.sqlite").is_file());
    assert!(data_dir.join("fraud_report.sqlite").is_file());

    // A second run refuses the used directory rather than mixing its accounts in.
    let again = Command::new(env!("CARGO_BIN_EXE_factum"))
        .args(["demo", "bank", "--data-dir", data_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
}
