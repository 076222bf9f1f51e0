//! Connection strings: `http://` and `https://` URLs, and the KurrentDB clients'
//! `kurrentdb://` (or `esdb://`, `kdb://`) URLs with their settings, parsed into
//! [`ConnectionSettings`].
//!
//! ```text
//! kurrentdb://USER:PASSWORD@HOST:PORT?tlsCaFile=PATH     TLS (the default), as a user
//! kurrentdb://HOST:PORT?tls=false                        plain text, anonymous
//! https://USER:PASSWORD@HOST:PORT?tlsCaFile=PATH         the same as the first
//! http://HOST:PORT                                       the same as the second
//! ```
//!
//! TLS needs `tlsCaFile`, the PEM file of the certificate authority that signed the server's
//! certificate (`ca.pem` of `factum dev-cert`): this client does not read the system's trust
//! roots. `tlsVerifyCert=false` accepts any certificate instead (for development only: the
//! connection is encrypted, but anyone in the middle can pose as the server and read the
//! password). Client certificates, several hosts and `+discover` are refused with a message
//! saying so, rather than silently connecting some other way. A user name and
//! password in the URL (percent-encoded where needed) are sent as HTTP basic credentials with
//! every call; [`Credentials`] can also be set on the parsed settings, which keeps the password
//! out of the URL.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use factum_core::Error;

/// The port KurrentDB clients use when a URL names none.
pub const DEFAULT_PORT: u16 = 2113;

/// A user name and password, sent as HTTP basic credentials with every call. `Debug` does not
/// show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    username: String,
    password: String,
}

impl Credentials {
    /// A user's credentials. Refused with [`Error::InvalidRequest`]: an empty user name, or
    /// one with a `:` (basic credentials cannot carry it).
    pub fn new(
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Result<Credentials, Error> {
        let username = username.into();
        if username.is_empty() {
            return Err(Error::invalid_request("the user name is empty"));
        }
        if username.contains(':') {
            return Err(Error::invalid_request(format!(
                "the user name {username:?} contains ':', which basic credentials cannot carry"
            )));
        }
        Ok(Credentials {
            username,
            password: password.into(),
        })
    }

    /// The user name.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The value of the `authorization` header: `Basic base64(USER:PASSWORD)`.
    pub fn authorization(&self) -> String {
        let pair = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// Where and how to connect, as a connection string says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// The gRPC endpoint: `http://HOST:PORT`, or `https://HOST:PORT` with TLS.
    pub endpoint: String,
    /// With TLS, how the server's certificate is trusted; `None` for plain text.
    pub tls: Option<TlsTrust>,
    /// Sent as basic credentials with every call; `None` calls anonymously.
    pub credentials: Option<Credentials>,
    /// Sent as the `connection-name` header of every call (the server may log it).
    pub connection_name: Option<String>,
    /// The deadline of every call but subscriptions (`defaultDeadline`, in milliseconds).
    pub default_deadline: Option<Duration>,
    /// How often HTTP/2 pings an idle connection (`keepAliveInterval`, in milliseconds).
    pub keep_alive_interval: Option<Duration>,
    /// How long a ping may go unanswered before the connection is dropped
    /// (`keepAliveTimeout`, in milliseconds).
    pub keep_alive_timeout: Option<Duration>,
}

/// How a TLS connection trusts the server's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsTrust {
    /// The certificate must chain to a certificate authority of this PEM file (`tlsCaFile`)
    /// and name the URL's host.
    CaFile(PathBuf),
    /// Any certificate is accepted (`tlsVerifyCert=false`): the connection is encrypted but
    /// the server is not authenticated, so whoever is in the middle can pose as it and read
    /// the credentials. For development only.
    AnyCertificate,
}

/// What the query of a URL asks for, before it is checked against the scheme.
#[derive(Default)]
struct Query {
    tls: Option<bool>,
    tls_ca_file: Option<PathBuf>,
    verify_certificate: Option<bool>,
}

impl Query {
    /// How to trust the server, when the connection is TLS.
    fn trust(self, invalid: &dyn Fn(String) -> Error) -> Result<TlsTrust, Error> {
        match (self.tls_ca_file, self.verify_certificate) {
            (Some(_), Some(false)) => Err(invalid(
                "tlsCaFile and tlsVerifyCert=false contradict each other: give one".into(),
            )),
            (Some(path), _) => Ok(TlsTrust::CaFile(path)),
            (None, Some(false)) => Ok(TlsTrust::AnyCertificate),
            (None, _) => Err(invalid(
                "TLS (the default of kurrentdb:// URLs) needs tlsCaFile=PATH, the PEM file of \
                 the certificate authority that signed the server's certificate (this client \
                 does not read the system's trust roots); for plain text, add tls=false"
                    .into(),
            )),
        }
    }
}

impl ConnectionSettings {
    /// Parses a connection string:
    ///
    /// - `http://[USER:PASSWORD@]HOST[:PORT]`: plain-text HTTP/2 (gRPC without TLS);
    /// - `kurrentdb://[USER:PASSWORD@]HOST[:PORT][?SETTING=VALUE&...]`, also with the schemes
    ///   `esdb` and `kdb`, as the KurrentDB clients write them, and
    ///   `https://[USER:PASSWORD@]HOST[:PORT][?SETTING=VALUE&...]` (TLS whatever `tls` says
    ///   otherwise). Settings are case-insensitive: `tls` (`true`, the default, or `false`),
    ///   `tlsCaFile` (required with TLS unless `tlsVerifyCert=false`), `tlsVerifyCert`,
    ///   `connectionName`, `defaultDeadline`, `keepAliveInterval`, `keepAliveTimeout`
    ///   (milliseconds; -1 turns keep-alive off) are honoured; `nodePreference`,
    ///   `gossipTimeout`, `maxDiscoverAttempts` and `discoveryInterval` are accepted and mean
    ///   nothing for one node. With `tls=false`, `tlsVerifyCert` is ignored.
    ///
    /// The user name and password are percent-decoded. The port defaults to 2113. Refused with
    /// [`Error::InvalidRequest`] saying why: TLS without `tlsCaFile` (or
    /// `tlsVerifyCert=false`), both of them, `tlsCaFile` with `tls=false`, client certificates,
    /// several hosts, `+discover`, unknown settings, a user name without a password.
    pub fn parse(url: &str) -> Result<ConnectionSettings, Error> {
        let url = url.trim();
        // The message quotes the URL without its password.
        let shown = redact(url);
        let invalid =
            |reason: String| Error::invalid_request(format!("server URL {shown:?}: {reason}"));
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            invalid(
                "expected http://HOST:PORT, https://HOST:PORT?tlsCaFile=PATH or \
                 kurrentdb://HOST:PORT?tlsCaFile=PATH (or ?tls=false)"
                    .into(),
            )
        })?;
        let scheme = scheme.to_ascii_lowercase();
        let (location, query) = match rest.split_once('?') {
            Some((location, query)) => (location, Some(query)),
            None => (rest, None),
        };
        let mut settings = ConnectionSettings {
            endpoint: String::new(),
            tls: None,
            credentials: None,
            connection_name: None,
            default_deadline: None,
            keep_alive_interval: None,
            keep_alive_timeout: None,
        };
        match scheme.as_str() {
            "http" => {
                if query.is_some() {
                    return Err(invalid("an http:// URL takes no settings".into()));
                }
            }
            "https" => {
                let asked = settings.apply_query(query.unwrap_or(""), &invalid)?;
                if asked.tls == Some(false) {
                    return Err(invalid(
                        "an https:// URL is TLS: use http://HOST:PORT for plain text".into(),
                    ));
                }
                settings.tls = Some(asked.trust(&invalid)?);
            }
            "kurrentdb" | "esdb" | "kdb" => {
                let asked = settings.apply_query(query.unwrap_or(""), &invalid)?;
                if asked.tls.unwrap_or(true) {
                    settings.tls = Some(asked.trust(&invalid)?);
                } else if asked.tls_ca_file.is_some() {
                    // `tlsVerifyCert` is ignored: `tls=false&tlsVerifyCert=false` is a common
                    // way to write a plain-text URL.
                    return Err(invalid(
                        "tlsCaFile is for TLS, and this URL says tls=false".into(),
                    ));
                }
            }
            "kurrentdb+discover" | "esdb+discover" | "kdb+discover" => {
                return Err(invalid(
                    "cluster discovery (+discover) is not supported: name the node, \
                     kurrentdb://HOST:PORT?tlsCaFile=PATH"
                        .into(),
                ));
            }
            other => {
                return Err(invalid(format!(
                    "unknown scheme {other:?}: expected http, https, kurrentdb, esdb or kdb"
                )));
            }
        };
        let location = location.strip_suffix('/').unwrap_or(location);
        if location.contains('/') {
            return Err(invalid("a server URL has no path".into()));
        }
        let authority = match location.rsplit_once('@') {
            Some((user_info, host)) => {
                settings.credentials = Some(credentials(user_info).map_err(&invalid)?);
                host
            }
            None => location,
        };
        if authority.contains(',') {
            return Err(invalid(
                "several hosts (a cluster) are not supported: name one node".into(),
            ));
        }
        let (host, port) = split_host_port(authority).map_err(invalid)?;
        let scheme = if settings.tls.is_some() {
            "https"
        } else {
            "http"
        };
        settings.endpoint = format!("{scheme}://{host}:{port}");
        Ok(settings)
    }

    fn apply_query(
        &mut self,
        query: &str,
        invalid: &dyn Fn(String) -> Error,
    ) -> Result<Query, Error> {
        let mut asked = Query::default();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value, true).map_err(invalid)?;
            let milliseconds = || -> Result<Option<Duration>, Error> {
                match value.parse::<i64>() {
                    Ok(ms) if ms < 0 => Ok(None),
                    Ok(ms) => Ok(Some(Duration::from_millis(ms.unsigned_abs()))),
                    Err(_) => Err(invalid(format!("{key} must be a number of milliseconds"))),
                }
            };
            let boolean = || match value.to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(invalid(format!("{key} must be true or false"))),
            };
            match key.to_ascii_lowercase().as_str() {
                "tls" => asked.tls = Some(boolean()?),
                "tlscafile" => {
                    if value.is_empty() {
                        return Err(invalid("tlsCaFile names no file".into()));
                    }
                    asked.tls_ca_file = Some(PathBuf::from(value));
                }
                "tlsverifycert" => asked.verify_certificate = Some(boolean()?),
                "connectionname" => self.connection_name = Some(value),
                "defaultdeadline" => self.default_deadline = milliseconds()?,
                "keepaliveinterval" => self.keep_alive_interval = milliseconds()?,
                "keepalivetimeout" => self.keep_alive_timeout = milliseconds()?,
                // Meaningless for one node.
                "nodepreference"
                | "gossiptimeout"
                | "maxdiscoverattempts"
                | "discoveryinterval" => {}
                "usercertfile" | "userkeyfile" => {
                    return Err(invalid(format!(
                        "{key}: client certificates are not supported: log in with a user name \
                         and password"
                    )));
                }
                _ => return Err(invalid(format!("unknown setting {key:?}"))),
            }
        }
        Ok(asked)
    }
}

/// The credentials of a URL's `USER:PASSWORD` part.
fn credentials(user_info: &str) -> Result<Credentials, String> {
    let Some((username, password)) = user_info.split_once(':') else {
        return Err("a user name without a password: write USER:PASSWORD@HOST".into());
    };
    let username = percent_decode(username, false)?;
    let password = percent_decode(password, false)?;
    Credentials::new(username, password).map_err(|error| match error {
        Error::InvalidRequest { reason } => reason,
        other => other.to_string(),
    })
}

/// `url` with the password of its user part, if any, replaced by `***`: for messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let location_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (location, tail) = rest.split_at(location_end);
    match location.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info
                .split_once(':')
                .map_or(user_info, |(user, _)| user);
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

/// `HOST`, `HOST:PORT`, `[V6]` or `[V6]:PORT`, with the default port.
fn split_host_port(authority: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| "an IPv6 address misses its closing ]".to_owned())?;
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| format!("unexpected {after:?} after the host"))?,
            ),
        };
        (format!("[{host}]"), port)
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (authority.to_owned(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err("the host is missing".into());
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(text) => match text.parse::<u16>() {
            Ok(port) if port != 0 => port,
            _ => return Err(format!("{text:?} is not a port number")),
        },
    };
    Ok((host, port))
}

/// Decodes the `%XX` escapes of a query value (where `+` is a space, `plus_is_space`) or of a
/// user name or password (where it is not).
fn percent_decode(value: &str, plus_is_space: bool) -> Result<String, String> {
    // A password is not repeated in messages.
    let shown = if plus_is_space {
        format!("{value:?}")
    } else {
        "the user name or password".to_owned()
    };
    let bytes = value.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' => {
                let hex = bytes
                    .get(index + 1..index + 3)
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                    .ok_or_else(|| format!("bad %-escape in {shown}"))?;
                decoded.push(hex);
                index += 3;
            }
            b'+' if plus_is_space => {
                decoded.push(b' ');
                index += 1;
            }
            byte => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(decoded).map_err(|_| format!("{shown} is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> ConnectionSettings {
        ConnectionSettings::parse(url).unwrap_or_else(|error| panic!("{url}: {error}"))
    }

    fn endpoint(url: &str) -> String {
        parse(url).endpoint
    }

    fn refusal(url: &str) -> String {
        match ConnectionSettings::parse(url) {
            Ok(settings) => panic!("{url} was accepted: {settings:?}"),
            Err(Error::InvalidRequest { reason }) => reason,
            Err(other) => panic!("{url}: not an invalid request: {other:?}"),
        }
    }

    fn user_and_authorization(url: &str) -> (String, String) {
        let credentials = parse(url).credentials.expect("credentials");
        (
            credentials.username().to_owned(),
            credentials.authorization(),
        )
    }

    #[test]
    fn plain_http_urls_name_the_endpoint_with_port_2113_by_default() {
        assert_eq!(endpoint("http://127.0.0.1:5000"), "http://127.0.0.1:5000");
        assert_eq!(endpoint("http://localhost/"), "http://localhost:2113");
        assert_eq!(endpoint("HTTP://[::1]:7"), "http://[::1]:7");
        assert_eq!(endpoint(" http://[::1] "), "http://[::1]:2113");
        let plain = parse("http://localhost:1");
        assert_eq!(plain.tls, None);
        assert_eq!(plain.credentials, None);
    }

    #[test]
    fn kurrentdb_urls_with_tls_false_are_plain_and_keep_their_settings() {
        for scheme in ["kurrentdb", "esdb", "kdb", "KurrentDB"] {
            let url = format!("{scheme}://localhost:2113?tls=false");
            assert_eq!(endpoint(&url), "http://localhost:2113");
        }
        let settings = parse(
            "kurrentdb://h:1?Tls=False&ConnectionName=my%20app&defaultDeadline=1500\
             &keepAliveInterval=-1&keepAliveTimeout=20&NodePreference=leader&tlsVerifyCert=false",
        );
        assert_eq!(settings.tls, None);
        assert_eq!(settings.connection_name.as_deref(), Some("my app"));
        assert_eq!(settings.default_deadline, Some(Duration::from_millis(1500)));
        assert_eq!(settings.keep_alive_interval, None);
        assert_eq!(settings.keep_alive_timeout, Some(Duration::from_millis(20)));
    }

    #[test]
    fn tls_is_the_default_of_kurrentdb_urls_and_trusts_the_ca_file() {
        let settings = parse("kurrentdb://localhost:2113?tlsCaFile=certs%2Fca.pem");
        assert_eq!(settings.endpoint, "https://localhost:2113");
        assert_eq!(settings.tls, Some(TlsTrust::CaFile("certs/ca.pem".into())));
        let explicit = parse("esdb://h?tls=true&tlsCaFile=/c/ca.pem&tlsVerifyCert=true");
        assert_eq!(explicit.endpoint, "https://h:2113");
        let https = parse("https://127.0.0.1:9?tlsCaFile=ca.pem");
        assert_eq!(https.endpoint, "https://127.0.0.1:9");
        assert_eq!(https.tls, Some(TlsTrust::CaFile("ca.pem".into())));
        let any = parse("kurrentdb://h:1?tlsVerifyCert=false");
        assert_eq!(any.endpoint, "https://h:1");
        assert_eq!(any.tls, Some(TlsTrust::AnyCertificate));
    }

    #[test]
    fn user_and_password_are_percent_decoded_into_basic_credentials() {
        // base64("admin:changeit")
        assert_eq!(
            user_and_authorization("kurrentdb://admin:changeit@localhost?tlsCaFile=ca.pem"),
            ("admin".to_owned(), "Basic YWRtaW46Y2hhbmdlaXQ=".to_owned())
        );
        // "p@ss:w+rd/?" encoded; `+` stays a plus in a password. base64("bob smith:p@ss:w+rd/?")
        let (user, authorization) =
            user_and_authorization("https://bob%20smith:p%40ss%3Aw+rd%2F%3F@h:1?tlsCaFile=ca.pem");
        assert_eq!(user, "bob smith");
        assert_eq!(authorization, "Basic Ym9iIHNtaXRoOnBAc3M6dytyZC8/");
        // An unencoded @ in the password: the last @ ends the user part.
        let (user, _) = user_and_authorization("http://carol:a@b@h:1");
        assert_eq!(user, "carol");
        assert_eq!(
            parse("http://carol:a@b@h:1").endpoint,
            "http://h:1",
            "the host follows the last @"
        );
    }

    #[test]
    fn messages_and_debug_output_never_show_the_password() {
        let reason = refusal("kurrentdb://admin:s3cret@a:1,b:2?tlsCaFile=ca.pem");
        assert!(reason.contains("several hosts"), "{reason}");
        assert!(reason.contains("admin:***@a:1"), "{reason}");
        assert!(!reason.contains("s3cret"), "{reason}");
        let reason = refusal("http://admin:s3cret%zz@h:1");
        assert!(reason.contains("bad %-escape"), "{reason}");
        assert!(!reason.contains("s3cret"), "{reason}");
        let settings = parse("http://admin:s3cret@h:1");
        assert!(!format!("{settings:?}").contains("s3cret"));
        assert_eq!(redact("http://h:1?x=@y"), "http://h:1?x=@y");
    }

    #[test]
    fn tls_without_a_ca_file_and_unsupported_settings_are_refused_with_the_reason() {
        let reason = refusal("kurrentdb://localhost:2113");
        assert!(reason.contains("tlsCaFile"), "{reason}");
        assert!(reason.contains("tls=false"), "{reason}");
        assert!(refusal("esdb://localhost:2113?tls=true").contains("tlsCaFile"));
        assert!(refusal("https://localhost:2113").contains("tlsCaFile"));
        assert!(refusal("https://h?tls=false&tlsCaFile=ca.pem").contains("http://"));
        assert!(refusal("kurrentdb://h?tls=false&tlsCaFile=ca.pem").contains("tls=false"));
        assert!(refusal("kurrentdb://h?tlsCaFile=").contains("no file"));
        assert!(
            refusal("kurrentdb://h?tlsCaFile=ca.pem&tlsVerifyCert=false").contains("contradict")
        );
        assert!(
            refusal("kurrentdb://h?tlsCaFile=ca.pem&tlsVerifyCert=maybe").contains("true or false")
        );
        assert!(
            refusal("kurrentdb://h?tlsCaFile=ca.pem&userCertFile=u.pem")
                .contains("client certificates")
        );
        assert!(refusal("kurrentdb://h?tls=yes").contains("true or false"));
        assert!(refusal("http://admin@h:1").contains("without a password"));
        assert!(refusal("http://:pw@h:1").contains("user name is empty"));
        assert!(refusal("http://a%3Ab:pw@h:1").contains("':'"));
        assert!(refusal("http://h:1?tls=false").contains("no settings"));
    }

    #[test]
    fn clusters_and_malformed_urls_are_refused_with_the_reason() {
        assert!(refusal("kurrentdb://a:1,b:2?tls=false").contains("several hosts"));
        assert!(refusal("kurrentdb+discover://a:1?tls=false").contains("discovery"));
        assert!(refusal("kurrentdb://a:1?tls=false&color=red").contains("unknown setting"));
        assert!(refusal("ftp://a:1").contains("unknown scheme"));
        assert!(refusal("localhost:2113").contains("expected"));
        assert!(refusal("http://a:0").contains("port"));
        assert!(refusal("http://a:99999").contains("port"));
        assert!(refusal("http://:80").contains("host"));
        assert!(refusal("http://a:1/streams").contains("path"));
    }
}
