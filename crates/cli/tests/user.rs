//! `factum user`: users created, changed and listed on a data directory, checked by
//! authenticating against the store afterwards.

mod support;

use std::process::{Command, Output};
use std::sync::Arc;

use factum_server::auth::users::UserStore;

fn factum(dir: &std::path::Path, args: &[&str], stdin: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_factum"));
    command.arg("--data-dir").arg(dir).args(args);
    support::run_with_input(command, stdin)
}

fn ok(dir: &std::path::Path, args: &[&str], stdin: &str) -> String {
    let output = factum(dir, args, stdin);
    assert!(
        output.status.success(),
        "factum {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

async fn authenticates(dir: &std::path::Path, name: &str, password: &str) -> bool {
    let store = factum_log::EmbeddedStore::open(dir).unwrap();
    let users = UserStore::new(Arc::new(store));
    users.authenticate(name, password).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_added_changed_disabled_and_listed_without_passwords_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(
        &data,
        &[
            "user",
            "add",
            "alice",
            "--full-name",
            "Alice A.",
            "--group",
            "$admins",
        ],
        "s3cret pass\n",
    );
    let password_file = dir.path().join("bob.txt");
    std::fs::write(&password_file, "bobs password\nignored second line\n").unwrap();
    ok(
        &data,
        &[
            "user",
            "add",
            "bob",
            "--password-file",
            password_file.to_str().unwrap(),
        ],
        "",
    );
    assert!(authenticates(&data, "alice", "s3cret pass").await);
    assert!(authenticates(&data, "bob", "bobs password").await);

    let listed: Vec<serde_json::Value> = ok(&data, &["user", "list"], "")
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["name"], "alice");
    assert_eq!(listed[0]["groups"][0], "$admins");
    assert_eq!(listed[1]["disabled"], false);
    assert!(!listed.iter().any(|user| user.to_string().contains("pass")));

    ok(&data, &["user", "passwd", "bob"], "new password\n");
    assert!(!authenticates(&data, "bob", "bobs password").await);
    assert!(authenticates(&data, "bob", "new password").await);
    ok(&data, &["user", "disable", "bob"], "");
    assert!(!authenticates(&data, "bob", "new password").await);
    ok(&data, &["user", "enable", "bob"], "");
    assert!(authenticates(&data, "bob", "new password").await);

    // Refusals change nothing: a second alice, an empty password, an unknown user.
    let again = factum(&data, &["user", "add", "alice"], "other\n");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    assert!(
        !factum(&data, &["user", "add", "carol"], "\n")
            .status
            .success()
    );
    assert!(
        !factum(&data, &["user", "disable", "nobody"], "")
            .status
            .success()
    );
    assert!(authenticates(&data, "alice", "s3cret pass").await);
    assert_eq!(ok(&data, &["user", "list"], "").lines().count(), 2);
}
