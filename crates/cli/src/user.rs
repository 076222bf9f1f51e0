//! `factum user add|passwd|disable|enable|list`: the users of a store, kept in the store itself
//! (see `factum_server::auth::users`). Works on the data directory (with the server stopped:
//! the directory belongs to one process) or on a server (`--server`), where a secure server
//! lets only an administrator (a member of `$admins`, such as `admin`) write and read them.
//!
//! Passwords never appear on the command line (where `ps` and shell histories would show
//! them): they are read from standard input, a file, or an environment variable.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use factum_core::EventStore;
use factum_server::auth::users::{User, UserError, UserStore};
use serde_json::json;

/// `factum user`'s commands.
#[derive(Debug, Args)]
pub struct UserArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: UserCommand,
}

/// The user commands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Creates a user.
    Add {
        /// The name the user logs in with.
        name: String,
        /// A name for people.
        #[arg(long, default_value = "")]
        full_name: String,
        /// A group the user belongs to (repeat for several; `$admins` for administrators).
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
        /// Where the password comes from.
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Sets a user's password.
    Passwd {
        /// The user.
        name: String,
        /// Where the new password comes from.
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Stops a user from logging in.
    Disable {
        /// The user.
        name: String,
    },
    /// Lets a disabled user log in again.
    Enable {
        /// The user.
        name: String,
    },
    /// Lists the users, one JSON object a line.
    List,
}

/// Where a password comes from; standard input (its first line) unless one of these is given.
#[derive(Debug, Args)]
pub struct PasswordSource {
    /// Read the password from this file (its first line).
    #[arg(long, value_name = "FILE", conflicts_with = "password_env")]
    pub password_file: Option<PathBuf>,
    /// Read the password from this environment variable.
    #[arg(long, value_name = "VAR")]
    pub password_env: Option<String>,
}

impl PasswordSource {
    fn read(&self) -> anyhow::Result<String> {
        let text = if let Some(path) = &self.password_file {
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the password file {}", path.display()))?
        } else if let Some(variable) = &self.password_env {
            std::env::var(variable)
                .with_context(|| format!("the environment variable {variable} is not set"))?
        } else {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read the password from standard input")?;
            text
        };
        let password = text.lines().next().unwrap_or_default().to_owned();
        if password.is_empty() {
            bail!("the password is empty");
        }
        Ok(password)
    }
}

/// Runs a user command on `store`.
pub async fn run(store: Arc<dyn EventStore>, args: UserArgs) -> anyhow::Result<()> {
    run_on(store, args).await.map_err(|error| {
        let denied = matches!(
            error.downcast_ref::<UserError>(),
            Some(UserError::Store(factum_core::Error::AccessDenied { .. }))
        );
        if denied {
            error.context(
                "managing users takes an administrator (a member of $admins): give the server \
                 an admin's credentials (FACTUM_USERNAME and FACTUM_PASSWORD)",
            )
        } else {
            error
        }
    })
}

async fn run_on(store: Arc<dyn EventStore>, args: UserArgs) -> anyhow::Result<()> {
    let users = UserStore::new(store);
    match args.command {
        UserCommand::Add {
            name,
            full_name,
            groups,
            password,
        } => {
            let password = password.read()?;
            users.create(&name, &full_name, &groups, &password).await?;
            crate::commands::print_line(&json!({ "created": name }).to_string())
        }
        UserCommand::Passwd { name, password } => {
            let password = password.read()?;
            users.change_password(&name, &password).await?;
            crate::commands::print_line(&json!({ "password_changed": name }).to_string())
        }
        UserCommand::Disable { name } => {
            users.set_disabled(&name, true).await?;
            crate::commands::print_line(&json!({ "disabled": name }).to_string())
        }
        UserCommand::Enable { name } => {
            users.set_disabled(&name, false).await?;
            crate::commands::print_line(&json!({ "enabled": name }).to_string())
        }
        UserCommand::List => {
            for user in users.list().await? {
                crate::commands::print_line(&user_json(&user).to_string())?;
            }
            Ok(())
        }
    }
}

fn user_json(user: &User) -> serde_json::Value {
    json!({
        "name": user.name,
        "full_name": user.full_name,
        "groups": user.groups,
        "disabled": user.disabled,
    })
}
