//! Connection strings: `http://host:port`, and the KurrentDB clients' `kurrentdb://` (or
//! `esdb://`, `kdb://`) URLs with their settings, parsed into [`ConnectionSettings`].
//!
//! Only what a plain-text connection to one node needs is supported: TLS (the KurrentDB URLs'
//! default), several hosts and `+discover` are refused with a message saying so, rather than
//! silently connecting some other way.

use std::time::Duration;

use factum_core::Error;

/// The port KurrentDB clients use when a URL names none.
pub const DEFAULT_PORT: u16 = 2113;

/// Where and how to connect, as a connection string says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// The gRPC endpoint, `http://HOST:PORT`.
    pub endpoint: String,
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

impl ConnectionSettings {
    /// Parses a connection string:
    ///
    /// - `http://HOST[:PORT]`: plain-text HTTP/2 (gRPC without TLS);
    /// - `kurrentdb://HOST[:PORT]?tls=false[&SETTING=VALUE...]`, also with the schemes `esdb`
    ///   and `kdb`, as the KurrentDB clients write them. Settings are case-insensitive:
    ///   `tls` (must be `false`), `connectionName`, `defaultDeadline`, `keepAliveInterval`,
    ///   `keepAliveTimeout` (milliseconds; -1 turns keep-alive off) are honoured;
    ///   `tlsVerifyCert`, `nodePreference`, `gossipTimeout`, `maxDiscoverAttempts` and
    ///   `discoveryInterval` are accepted and mean nothing for one node without TLS. A user
    ///   name and password are ignored: plain-text connections are anonymous.
    ///
    /// The port defaults to 2113. Refused with [`Error::InvalidRequest`] saying why: TLS
    /// (`https://`, `tls=true`, a `kurrentdb://` URL without `tls=false`, certificate
    /// settings), several hosts, `+discover`, unknown settings.
    pub fn parse(url: &str) -> Result<ConnectionSettings, Error> {
        let url = url.trim();
        let invalid =
            |reason: String| Error::invalid_request(format!("server URL {url:?}: {reason}"));
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            invalid("expected http://HOST:PORT or kurrentdb://HOST:PORT?tls=false".into())
        })?;
        let scheme = scheme.to_ascii_lowercase();
        let (location, query) = match rest.split_once('?') {
            Some((location, query)) => (location, Some(query)),
            None => (rest, None),
        };
        let mut settings = ConnectionSettings {
            endpoint: String::new(),
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
                return Err(invalid(
                    "TLS is not supported yet: use http://HOST:PORT (plain-text HTTP/2)".into(),
                ));
            }
            "kurrentdb" | "esdb" | "kdb" => {
                settings.apply_query(query.unwrap_or(""), &invalid)?;
            }
            "kurrentdb+discover" | "esdb+discover" | "kdb+discover" => {
                return Err(invalid(
                    "cluster discovery (+discover) is not supported: name the node, \
                     kurrentdb://HOST:PORT?tls=false"
                        .into(),
                ));
            }
            other => {
                return Err(invalid(format!(
                    "unknown scheme {other:?}: expected http, kurrentdb, esdb or kdb"
                )));
            }
        }
        let location = location.strip_suffix('/').unwrap_or(location);
        if location.contains('/') {
            return Err(invalid("a server URL has no path".into()));
        }
        // User info is for TLS connections, which send it as basic authentication.
        let authority = location.rsplit_once('@').map_or(location, |(_, host)| host);
        if authority.contains(',') {
            return Err(invalid(
                "several hosts (a cluster) are not supported: name one node".into(),
            ));
        }
        let (host, port) = split_host_port(authority).map_err(invalid)?;
        settings.endpoint = format!("http://{host}:{port}");
        Ok(settings)
    }

    fn apply_query(&mut self, query: &str, invalid: &dyn Fn(String) -> Error) -> Result<(), Error> {
        let mut tls = true;
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value).map_err(invalid)?;
            let milliseconds = || -> Result<Option<Duration>, Error> {
                match value.parse::<i64>() {
                    Ok(ms) if ms < 0 => Ok(None),
                    Ok(ms) => Ok(Some(Duration::from_millis(ms.unsigned_abs()))),
                    Err(_) => Err(invalid(format!("{key} must be a number of milliseconds"))),
                }
            };
            match key.to_ascii_lowercase().as_str() {
                "tls" => {
                    tls = match value.to_ascii_lowercase().as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(invalid("tls must be true or false".into())),
                    }
                }
                "connectionname" => self.connection_name = Some(value),
                "defaultdeadline" => self.default_deadline = milliseconds()?,
                "keepaliveinterval" => self.keep_alive_interval = milliseconds()?,
                "keepalivetimeout" => self.keep_alive_timeout = milliseconds()?,
                // Meaningless for one node on a plain-text connection.
                "tlsverifycert"
                | "nodepreference"
                | "gossiptimeout"
                | "maxdiscoverattempts"
                | "discoveryinterval" => {}
                "tlscafile" | "usercertfile" | "userkeyfile" => {
                    return Err(invalid(format!("{key}: TLS is not supported yet")));
                }
                _ => return Err(invalid(format!("unknown setting {key:?}"))),
            }
        }
        if tls {
            return Err(invalid(
                "TLS (the default of these URLs) is not supported yet: add ?tls=false".into(),
            ));
        }
        Ok(())
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

/// Decodes `%XX` escapes (and `+` as a space) of a query value.
fn percent_decode(value: &str) -> Result<String, String> {
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
                    .ok_or_else(|| format!("bad %-escape in {value:?}"))?;
                decoded.push(hex);
                index += 3;
            }
            b'+' => {
                decoded.push(b' ');
                index += 1;
            }
            byte => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(decoded).map_err(|_| format!("{value:?} is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str) -> String {
        ConnectionSettings::parse(url)
            .unwrap_or_else(|error| panic!("{url}: {error}"))
            .endpoint
    }

    fn refusal(url: &str) -> String {
        match ConnectionSettings::parse(url) {
            Ok(settings) => panic!("{url} was accepted: {settings:?}"),
            Err(Error::InvalidRequest { reason }) => reason,
            Err(other) => panic!("{url}: not an invalid request: {other:?}"),
        }
    }

    #[test]
    fn plain_http_urls_name_the_endpoint_with_port_2113_by_default() {
        assert_eq!(endpoint("http://127.0.0.1:5000"), "http://127.0.0.1:5000");
        assert_eq!(endpoint("http://localhost/"), "http://localhost:2113");
        assert_eq!(endpoint("HTTP://[::1]:7"), "http://[::1]:7");
        assert_eq!(endpoint(" http://[::1] "), "http://[::1]:2113");
    }

    #[test]
    fn kurrentdb_urls_need_tls_false_and_keep_their_settings() {
        for scheme in ["kurrentdb", "esdb", "kdb", "KurrentDB"] {
            let url = format!("{scheme}://admin:changeit@localhost:2113?tls=false");
            assert_eq!(endpoint(&url), "http://localhost:2113");
        }
        let settings = ConnectionSettings::parse(
            "kurrentdb://h:1?Tls=False&ConnectionName=my%20app&defaultDeadline=1500\
             &keepAliveInterval=-1&keepAliveTimeout=20&NodePreference=leader&tlsVerifyCert=false",
        )
        .unwrap();
        assert_eq!(settings.connection_name.as_deref(), Some("my app"));
        assert_eq!(settings.default_deadline, Some(Duration::from_millis(1500)));
        assert_eq!(settings.keep_alive_interval, None);
        assert_eq!(settings.keep_alive_timeout, Some(Duration::from_millis(20)));
    }

    #[test]
    fn tls_clusters_and_unknown_settings_are_refused_with_the_reason() {
        assert!(refusal("kurrentdb://localhost:2113").contains("tls=false"));
        assert!(refusal("esdb://localhost:2113?tls=true").contains("TLS"));
        assert!(refusal("https://localhost:2113").contains("TLS"));
        assert!(refusal("kurrentdb://a:1,b:2?tls=false").contains("several hosts"));
        assert!(refusal("kurrentdb+discover://a:1?tls=false").contains("discovery"));
        assert!(refusal("kurrentdb://a:1?tls=false&color=red").contains("unknown setting"));
        assert!(refusal("kurrentdb://a:1?tls=false&tlsCaFile=x").contains("TLS"));
        assert!(refusal("ftp://a:1").contains("unknown scheme"));
        assert!(refusal("localhost:2113").contains("expected"));
        assert!(refusal("http://a:0").contains("port"));
        assert!(refusal("http://a:99999").contains("port"));
        assert!(refusal("http://:80").contains("host"));
        assert!(refusal("http://a:1/streams").contains("path"));
    }
}
